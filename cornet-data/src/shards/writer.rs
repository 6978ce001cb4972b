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
pub struct ShardWriter {
    dir: PathBuf,
    prefix: String,
    max_bytes: u64,
    open: Option<OpenShard>,
    finished: Vec<ShardRecord>,
}

struct OpenShard {
    path: PathBuf,
    builder: tar::Builder<CountingWriter<BufWriter<File>>>,
    samples: usize,
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
    /// Shards go to `dir/<prefix>-NNNNNN.tar`; a shard holding samples is closed before a
    /// sample would take it past `max_bytes`.
    pub fn new(dir: &Path, prefix: &str, max_bytes: u64) -> Self {
        ShardWriter {
            dir: dir.to_owned(),
            prefix: prefix.to_owned(),
            max_bytes,
            open: None,
            finished: Vec::new(),
        }
    }

    /// Appends sample `key`: its encoded image as `<key>.jpg`, `.png` or `.webp` as its bytes
    /// say (WebDataset readers decode by extension), and its class as `<key>.cls`.
    pub fn write(&mut self, key: &str, image: &[u8], label: usize) -> Result<()> {
        let ext = member_extension(image).ok_or_else(|| {
            DataError::Invalid(format!(
                "sample {key}: neither JPEG, PNG nor WebP; shards hold only those (re-encode \
                 it as JPEG with --max-side)"
            ))
        })?;
        let label = label.to_string();
        let grows_by = tar_member_bytes(image.len()) + tar_member_bytes(label.len());
        if let Some(open) = &self.open {
            let written = open.builder.get_ref().bytes;
            if open.samples > 0 && written + grows_by > self.max_bytes {
                self.close_shard()?;
            }
        }
        let open = match &mut self.open {
            Some(open) => open,
            None => self.open.insert(self.start_shard()?),
        };
        let path = open.path.clone();
        append(&mut open.builder, &format!("{key}.{ext}"), image)
            .and_then(|()| append(&mut open.builder, &format!("{key}.cls"), label.as_bytes()))
            .map_err(|e| DataError::io(path, e))?;
        open.samples += 1;
        Ok(())
    }

    /// Closes the last shard and returns every shard written, in order.
    pub fn finish(mut self) -> Result<Vec<ShardRecord>> {
        if self.open.is_some() {
            self.close_shard()?;
        }
        Ok(self.finished)
    }

    fn start_shard(&self) -> Result<OpenShard> {
        let name = format!("{}-{:06}.tar", self.prefix, self.finished.len());
        let path = self.dir.join(name);
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

    fn close_shard(&mut self) -> Result<()> {
        let open = self.open.take().expect("a shard is open");
        let path = open.path;
        let io = |e| DataError::io(&path, e);
        let written = open.builder.into_inner().map_err(io)?;
        let file = written.inner.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        // The index comes from scanning the finished tar: one way of indexing for our shards
        // and everyone else's, and the checksum of what is on disk.
        let index = ShardIndex::build(&path, &NoProgress)?;
        index.save(&path).map_err(io)?;
        self.finished.push(ShardRecord {
            file: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            samples: open.samples,
            bytes: written.bytes,
            sha256: index.sha256,
        });
        Ok(())
    }
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
