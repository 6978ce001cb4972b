//! Writes samples into WebDataset tar shards (`<key>.jpg` or `.png` + `<key>.cls`, shards
//! named `<prefix>-000000.tar`), starting a new shard at a size limit, each with its sidecar
//! index and checksum.

use super::index::ShardIndex;
use crate::error::{DataError, Result};
use crate::progress::NoProgress;
use image::ImageFormat;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// A finished shard, as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardRecord {
    /// Its file name in the shards' folder.
    pub file: String,
    /// Samples in it.
    pub samples: usize,
    /// Its length, in bytes.
    pub bytes: u64,
    /// The SHA-256 of its bytes, in lowercase hex.
    pub sha256: String,
}

/// Writes samples into numbered shards of at most a given size, one open shard at a time.
/// A shard it closes is handed back as a [`WrittenShard`], to be sealed (synced and indexed)
/// there or on another thread while the next one is written.
pub struct ShardWriter {
    dir: PathBuf,
    prefix: String,
    max_bytes: u64,
    open: Option<OpenShard>,
    /// The number of the next shard to start.
    next: usize,
}

struct OpenShard {
    path: PathBuf,
    builder: tar::Builder<CountingWriter<BufWriter<File>>>,
    samples: usize,
}

/// A shard whose tar is complete and flushed, not yet synced to disk nor indexed.
#[derive(Debug)]
pub struct WrittenShard {
    path: PathBuf,
    file: File,
    samples: usize,
    bytes: u64,
}

/// Counts what passes through: the size of the shard being written.
struct CountingWriter<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl ShardWriter {
    /// Shards go to `dir/<prefix>-NNNNNN.tar` from number `first` on (0, or the number after
    /// the shards an interrupted pack finished); a shard holding samples is closed before a
    /// sample would take it past `max_bytes`.
    pub fn new(dir: &Path, prefix: &str, max_bytes: u64, first: usize) -> Self {
        ShardWriter {
            dir: dir.to_owned(),
            prefix: prefix.to_owned(),
            max_bytes,
            open: None,
            next: first,
        }
    }

    /// Appends sample `key`: its encoded image as `<key>.jpg`, `.png` or `.webp` as its bytes
    /// say (WebDataset readers decode by extension), and its class as `<key>.cls`. Returns
    /// the shard it closed first to keep within the size, if it did.
    pub fn write(&mut self, key: &str, image: &[u8], label: usize) -> Result<Option<WrittenShard>> {
        let ext = member_extension(image).ok_or_else(|| {
            DataError::Invalid(format!(
                "sample {key}: neither JPEG, PNG nor WebP; shards hold only those (re-encode \
                 it as JPEG with --max-side)"
            ))
        })?;
        let label = label.to_string();
        let grows_by = tar_member_bytes(image.len()) + tar_member_bytes(label.len());
        let mut closed = None;
        if let Some(open) = &self.open {
            let written = open.builder.get_ref().bytes;
            if open.samples > 0 && written + grows_by > self.max_bytes {
                closed = self.close_shard()?;
            }
        }
        if self.open.is_none() {
            self.open = Some(self.start_shard()?);
        }
        let open = self.open.as_mut().expect("a shard is open");
        let path = open.path.clone();
        append(&mut open.builder, &format!("{key}.{ext}"), image)
            .and_then(|()| append(&mut open.builder, &format!("{key}.cls"), label.as_bytes()))
            .map_err(|e| DataError::io(path, e))?;
        open.samples += 1;
        Ok(closed)
    }

    /// Closes the last shard, if one is open.
    pub fn finish(mut self) -> Result<Option<WrittenShard>> {
        self.close_shard()
    }

    fn start_shard(&mut self) -> Result<OpenShard> {
        let path = self.dir.join(shard_file_name(&self.prefix, self.next));
        self.next += 1;
        let file = File::create(&path).map_err(|e| DataError::io(&path, e))?;
        let builder = tar::Builder::new(CountingWriter {
            inner: BufWriter::new(file),
            bytes: 0,
        });
        Ok(OpenShard {
            path,
            builder,
            samples: 0,
        })
    }

    fn close_shard(&mut self) -> Result<Option<WrittenShard>> {
        let Some(open) = self.open.take() else {
            return Ok(None);
        };
        let path = open.path;
        let io = |e| DataError::io(&path, e);
        let written = open.builder.into_inner().map_err(io)?;
        let file = written.inner.into_inner().map_err(|e| io(e.into_error()))?;
        Ok(Some(WrittenShard {
            file,
            samples: open.samples,
            bytes: written.bytes,
            path,
        }))
    }
}

impl WrittenShard {
    /// Syncs the shard to disk and indexes it beside itself: the record the manifest lists.
    /// The index comes from scanning the finished tar (one way of indexing for our shards and
    /// everyone else's), and with it the checksum of what is on disk.
    pub fn seal(self) -> Result<ShardRecord> {
        let path = self.path;
        let io = |e| DataError::io(&path, e);
        self.file.sync_all().map_err(io)?;
        let index = ShardIndex::build(&path, &NoProgress)?;
        index.save(&path).map_err(io)?;
        Ok(ShardRecord {
            file: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            samples: self.samples,
            bytes: self.bytes,
            sha256: index.sha256,
        })
    }
}

/// The file name of shard `number` (from 0): `<prefix>-000042.tar`.
pub fn shard_file_name(prefix: &str, number: usize) -> String {
    format!("{prefix}-{number:06}.tar")
}

/// The member extension for an image's real format (the file name may say otherwise), for
/// the formats the index reads as images.
fn member_extension(image: &[u8]) -> Option<&'static str> {
    match image::guess_format(image).ok()? {
        ImageFormat::Jpeg => Some("jpg"),
        ImageFormat::Png => Some("png"),
        ImageFormat::WebP => Some("webp"),
        _ => None,
    }
}

fn append<W: Write>(builder: &mut tar::Builder<W>, name: &str, data: &[u8]) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o444);
    header.set_entry_type(tar::EntryType::Regular);
    // Fixed times and owners: the same images give the same shard, byte for byte.
    header.set_mtime(0);
    builder.append_data(&mut header, name, data)
}

/// Bytes a member of `len` bytes adds to a tar: a header block and the data padded to blocks
/// (long names add a block or two more, which the limit tolerates).
fn tar_member_bytes(len: usize) -> u64 {
    512 + (len as u64).div_ceil(512) * 512
}
