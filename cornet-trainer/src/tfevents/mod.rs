//! TensorBoard's event files (`events.out.tfevents.*`): [`Event`] messages in TFRecord
//! framing, each record `length (u64 LE) | masked CRC-32C of length | data | masked CRC-32C
//! of data`. [`EventWriter`] appends to a new file; [`read_events`] reads one back.

pub mod proto;

pub use proto::{Event, SessionLog, SessionStatus, SourceMetadata, Summary, SummaryValue, What};

use prost::Message;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The `file_version` that makes TensorBoard honour [`SessionStatus::Start`] events.
pub const FILE_VERSION: &str = "brain.Event:2";

/// Files made by this process so far: the last part of their names, as TensorBoard's own
/// writer does, so that two made in the same second never share a name.
static FILES_MADE: AtomicU64 = AtomicU64::new(0);

/// The CRC of TFRecord framing: CRC-32C rotated and offset, so that the CRC of data holding
/// CRCs is not degenerate.
pub fn masked_crc(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// Scalars at `step`, one event: `(tag, value)` pairs, each kept as a 32-bit float, as
/// TensorBoard does (NaN stays NaN).
pub fn scalars(wall_time: f64, step: u64, values: &[(&str, f64)]) -> Event {
    Event {
        wall_time,
        step: step as i64,
        what: Some(What::Summary(Summary {
            value: values
                .iter()
                .map(|&(tag, value)| SummaryValue {
                    tag: tag.into(),
                    simple_value: Some(value as f32),
                })
                .collect(),
        })),
        source_metadata: None,
    }
}

/// A restart at `step`: TensorBoard drops every value logged at `step` or later before it
/// (in any file of the run, any tag).
pub fn restart(wall_time: f64, step: u64) -> Event {
    Event {
        wall_time,
        step: step as i64,
        what: Some(What::SessionLog(SessionLog {
            status: SessionStatus::Start as i32,
        })),
        source_metadata: None,
    }
}

/// `event` as one TFRecord: its framing and its encoding.
pub fn encode_record(event: &Event) -> Vec<u8> {
    let data = event.encode_to_vec();
    let length = (data.len() as u64).to_le_bytes();
    let mut record = Vec::with_capacity(data.len() + 16);
    record.extend_from_slice(&length);
    record.extend_from_slice(&masked_crc(&length).to_le_bytes());
    record.extend_from_slice(&data);
    record.extend_from_slice(&masked_crc(&data).to_le_bytes());
    record
}

/// A new event file, written through a buffer: events reach the disk on [`EventWriter::flush`]
/// (and when dropped).
pub struct EventWriter {
    path: PathBuf,
    file: BufWriter<File>,
}

impl EventWriter {
    /// Creates `dir/events.out.tfevents.<secs>.<host>.<pid>.<n>` (TensorBoard's name; it reads
    /// a folder's files in name order, so a later file continues an earlier one) and writes
    /// the file's first event, the [`FILE_VERSION`] with `writer` as its source, at
    /// `wall_time`.
    pub fn create(dir: &Path, wall_time: f64, writer: &str) -> std::io::Result<Self> {
        let host = nix::unistd::gethostname()
            .ok()
            .and_then(|name| name.into_string().ok())
            .unwrap_or_else(|| "localhost".into());
        let name = format!(
            "events.out.tfevents.{:010}.{host}.{}.{}",
            wall_time as u64,
            std::process::id(),
            FILES_MADE.fetch_add(1, Ordering::Relaxed)
        );
        let path = dir.join(name);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        let mut events = EventWriter {
            path,
            file: BufWriter::new(file),
        };
        events.write(&Event {
            wall_time,
            step: 0,
            what: Some(What::FileVersion(FILE_VERSION.into())),
            source_metadata: Some(SourceMetadata {
                writer: writer.into(),
            }),
        })?;
        Ok(events)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `event` (buffered).
    pub fn write(&mut self, event: &Event) -> std::io::Result<()> {
        self.file.write_all(&encode_record(event))
    }

    /// Hands what is buffered to the operating system: a killed process loses nothing
    /// written before.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// The events of the file at `path`, in order. A torn last record (a writer killed in the
/// middle of it) ends the file, as TensorBoard reads it; a record whose CRC does not match
/// is an error ([`ErrorKind::InvalidData`]), as is one that does not decode.
pub fn read_events(path: &Path) -> std::io::Result<Vec<Event>> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    let invalid = |what: String| std::io::Error::new(ErrorKind::InvalidData, what);
    let mut events = Vec::new();
    let mut rest = bytes.as_slice();
    while rest.len() >= 12 {
        let (length, after) = rest.split_at(8);
        let crc = u32::from_le_bytes(after[..4].try_into().expect("4 bytes"));
        if crc != masked_crc(length) {
            return Err(invalid(format!("record {}: bad length CRC", events.len())));
        }
        let length = u64::from_le_bytes(length.try_into().expect("8 bytes"));
        let after = &after[4..];
        // A record shorter than its length says is torn: the file ends before it.
        let fits = |n: &usize| after.len().checked_sub(4).is_some_and(|room| *n <= room);
        let Some(data_len) = usize::try_from(length).ok().filter(fits) else {
            break;
        };
        let (data, after) = after.split_at(data_len);
        let crc = u32::from_le_bytes(after[..4].try_into().expect("4 bytes"));
        if crc != masked_crc(data) {
            return Err(invalid(format!("record {}: bad data CRC", events.len())));
        }
        let event = Event::decode(data)
            .map_err(|err| invalid(format!("record {}: {err}", events.len())))?;
        events.push(event);
        rest = &after[4..];
    }
    Ok(events)
}

/// The event files in `dir` (`events.out.tfevents.*`), in the order TensorBoard reads them;
/// none when `dir` does not exist.
pub fn event_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err),
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry?.path();
        let is_events = path
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.starts_with("events.out.tfevents."));
        if is_events {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `tools/interop/record_tfevents.py` wrote with TensorBoard's own writer.
    const RECORDED: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/interop/tfevents_scalars.bin"
    ));

    #[test]
    fn events_are_written_byte_for_byte_as_tensorboard_writes_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = EventWriter::create(dir.path(), 1700000000.25, "cornet-trainer").unwrap();
        writer.write(&restart(1700000001.5, 3)).unwrap();
        let train = [
            ("train/loss", std::f64::consts::LN_10), // 2.3025851 in the recording
            ("train/top1", 0.0),
            ("train/lr", 0.1),
            ("train/data_wait_secs", f64::NAN),
        ];
        writer.write(&scalars(1700000002.0, 4, &train)).unwrap();
        writer
            .write(&scalars(1700000003.75, 4, &[("val/top5", 1.0)]))
            .unwrap();
        writer.flush().unwrap();
        let name = writer
            .path()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            name.starts_with("events.out.tfevents.1700000000."),
            "{name}"
        );
        assert!(std::fs::read(writer.path()).unwrap() == RECORDED);
        assert_eq!(read_events(writer.path()).unwrap().len(), 4);
    }

    #[test]
    fn a_torn_last_record_ends_the_file_and_a_damaged_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = EventWriter::create(dir.path(), 1.5, "test").unwrap();
        writer
            .write(&scalars(2.0, 7, &[("train/loss", f64::NAN)]))
            .unwrap();
        writer.flush().unwrap();
        let path = writer.path().to_owned();
        drop(writer);
        let events = read_events(&path).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].what, Some(What::FileVersion(FILE_VERSION.into())));
        let Some(What::Summary(summary)) = &events[1].what else {
            panic!("{:?}", events[1])
        };
        assert!(summary.value[0].simple_value.unwrap().is_nan());

        let whole = std::fs::read(&path).unwrap();
        std::fs::write(&path, &whole[..whole.len() - 3]).unwrap();
        assert_eq!(
            read_events(&path).unwrap().len(),
            1,
            "torn: the first stays"
        );

        let mut damaged = whole.clone();
        let last = damaged.len() - 6;
        damaged[last] ^= 1;
        std::fs::write(&path, damaged).unwrap();
        let err = read_events(&path).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidData);
        assert!(err.to_string().contains("record 1: bad data CRC"), "{err}");
    }
}
