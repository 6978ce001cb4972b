//! An ImageFolder packed into WebDataset shards (`cornet-data pack`): the images' bytes as
//! they are, or re-encoded as JPEG at a smaller size (what FFCV does for speed), with a
//! manifest of classes, counts and checksums.
//!
//! Images are read (and re-encoded) on the thread pool while a writer thread appends the
//! previous ones to the shard, so that reading the source and writing the shards overlap. A
//! pack can be interrupted at any point and resumed: the folder's unfinished manifest lists
//! the shards finished so far (each closed, synced and indexed before it is listed), and the
//! same command run again keeps those that are intact and writes the rest, the same bytes as
//! a pack that was never interrupted ([`resume`]).

mod reencode;
mod resume;

use crate::dataset::{Dataset, ImageFolder};
use crate::error::{DataError, Result};
use crate::progress::{Progress, Unit};
use crate::shards::manifest::{self, ClassCount, Manifest, Reencode, UNFINISHED_MANIFEST_FILE};
use crate::shards::writer::{ShardRecord, ShardWriter, WrittenShard};
use crossbeam_channel::{bounded, Sender};
use rayon::prelude::*;
use reencode::reencode;
use resume::Start;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Where and how [`pack`] writes.
#[derive(Debug, Clone)]
pub struct PackOptions {
    /// The folder of the shards and their manifest.
    pub out: PathBuf,
    /// Shards are named `<prefix>-000000.tar`, ...
    pub prefix: String,
    /// A shard is closed before a sample would take it past this size.
    pub shard_bytes: u64,
    /// Re-encoding as smaller JPEGs, or `None` to keep the files' bytes.
    pub reencode: Option<Reencode>,
}

/// What [`pack`] did.
#[derive(Debug, Clone)]
pub struct Packed {
    /// The manifest of all the shards.
    pub manifest: Manifest,
    /// Shards an earlier, interrupted run of the same pack had finished, found intact and
    /// kept (all of them where that run had finished).
    pub kept: usize,
}

/// Samples read (and re-encoded) together on the thread pool, then handed to the writer.
const CHUNK: usize = 64;
/// Chunks read ahead of the writer: enough to keep it busy while the next chunk is read,
/// few enough to bound memory (a chunk of ImageNet JPEGs is about 7 MB).
const CHUNKS_AHEAD: usize = 3;

/// Packs `folder` into shards in `options.out`, in the folder's sample order; `progress`
/// counts the images written (and, on a resume, the bytes of earlier shards checked).
///
/// `out` may be empty or absent, or hold an interrupted pack of the same folder with the same
/// options, which is then finished; shards of anything else are refused, naming what differs.
pub fn pack(
    folder: &ImageFolder,
    options: &PackOptions,
    progress: &dyn Progress,
) -> Result<Packed> {
    if options.reencode.is_some_and(|r| r.max_side == 0) {
        return Err(DataError::Invalid(
            "re-encoding with a longer side of at most 0 pixels would make every image 1x1".into(),
        ));
    }
    let out = &options.out;
    std::fs::create_dir_all(out).map_err(|e| DataError::io(out, e))?;
    let keys = sample_keys(folder)?;
    let plan = plan(folder, options);
    let finished = match resume::start(out, &plan, progress)? {
        Start::Finished(manifest) => {
            return Ok(Packed {
                kept: manifest.shards.len(),
                manifest,
            })
        }
        Start::After(finished) => finished,
    };
    let kept = finished.len();
    let writer = ShardWriter::new(out, &options.prefix, options.shard_bytes, kept);
    let job = Job {
        folder,
        keys: &keys,
        plan: &plan,
        out,
        progress,
    };
    let shards = job.write(writer, finished)?;
    let manifest = Manifest { shards, ..plan };
    manifest.save(out)?;
    let unfinished = out.join(UNFINISHED_MANIFEST_FILE);
    std::fs::remove_file(&unfinished).map_err(|e| DataError::io(&unfinished, e))?;
    Ok(Packed { manifest, kept })
}

/// The manifest the pack will write, without its shards: what a rerun must match.
fn plan(folder: &ImageFolder, options: &PackOptions) -> Manifest {
    let mut counts = vec![0; folder.classes().len()];
    for i in 0..folder.len() {
        counts[folder.label(i)] += 1;
    }
    // Absolute, so that a rerun from another working folder is known for the same source.
    let source = std::fs::canonicalize(folder.root()).unwrap_or_else(|_| folder.root().into());
    Manifest {
        source: source.display().to_string(),
        samples: folder.len(),
        classes: folder
            .classes()
            .iter()
            .zip(counts)
            .map(|(name, count)| ClassCount {
                name: name.clone(),
                count,
            })
            .collect(),
        reencode: options.reencode,
        packing: Some(manifest::Packing {
            prefix: options.prefix.clone(),
            shard_bytes: options.shard_bytes,
            fingerprint: folder.fingerprint(),
        }),
        shards: Vec::new(),
    }
}

/// A pack under way: what its stages share.
struct Job<'a> {
    folder: &'a ImageFolder,
    keys: &'a [String],
    /// The manifest being written, without its shards.
    plan: &'a Manifest,
    out: &'a Path,
    progress: &'a dyn Progress,
}

impl Job<'_> {
    /// Writes the samples after those of the shards `finished` through `writer`, in three
    /// stages that overlap: images are read (and re-encoded) in chunks on the thread pool
    /// here, appended in order to the shard on a writer thread, and each shard the writer
    /// closes is synced, indexed and added to the unfinished manifest on a sealing thread
    /// while the next is written. The last shard is closed only when every sample was read,
    /// so that a pack that fails (an unreadable image) lists no shard cut short.
    fn write(
        &self,
        mut writer: ShardWriter,
        finished: Vec<ShardRecord>,
    ) -> Result<Vec<ShardRecord>> {
        let first: usize = finished.iter().map(|s| s.samples).sum();
        let indices: Vec<usize> = (first..self.folder.len()).collect();
        self.progress.begin(
            &format!("packing into {}", self.out.display()),
            Unit::Items("images"),
            Some(indices.len() as u64),
        );
        let (chunks, chunks_received) = bounded::<Vec<(usize, Vec<u8>)>>(CHUNKS_AHEAD);
        // One shard waits while the one before it is sealed: the writer never waits on a sync.
        let (written, written_received) = bounded::<WrittenShard>(1);
        std::thread::scope(|scope| {
            let sealing = scope.spawn(move || -> Result<Vec<ShardRecord>> {
                let mut sealed = finished;
                for shard in written_received {
                    sealed.push(shard.seal()?);
                    let so_far = Manifest {
                        shards: sealed.clone(),
                        ..self.plan.clone()
                    };
                    so_far.save_unfinished(self.out)?;
                }
                Ok(sealed)
            });
            let to_seal = written.clone();
            let writing = scope.spawn(move || -> Result<Option<ShardWriter>> {
                for chunk in chunks_received {
                    for (i, image) in chunk {
                        let label = self.folder.label(i);
                        if let Some(closed) = writer.write(&self.keys[i], &image, label)? {
                            if to_seal.send(closed).is_err() {
                                return Ok(None); // the sealer failed; its error is told
                            }
                        }
                        self.progress.advance(1);
                    }
                }
                Ok(Some(writer))
            });
            // A stage that fails hangs up: the stage before it stops at its next send.
            let read = self.read_chunks(&indices, &chunks);
            drop(chunks);
            let wrote = writing
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            let closed_last = match wrote {
                Ok(Some(writer)) if read.is_ok() => writer.finish().map(|last| {
                    if let Some(last) = last {
                        // A send fails only if the sealer failed, whose error is told below.
                        let _ = written.send(last);
                    }
                }),
                Ok(_) => Ok(()),
                Err(e) => Err(e),
            };
            drop(written);
            let sealed = sealing
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))?;
            closed_last?;
            read?;
            self.progress.finish();
            Ok(sealed)
        })
    }

    /// Reads (and re-encodes) the samples `indices` in chunks, in parallel within a chunk,
    /// and sends each chunk in order until done or the receiver is gone.
    fn read_chunks(&self, indices: &[usize], chunks: &Sender<Vec<(usize, Vec<u8>)>>) -> Result<()> {
        let folder = self.folder;
        for chunk in indices.chunks(CHUNK) {
            let images = chunk
                .par_iter()
                .map(|&i| {
                    let bytes = folder.read(i)?;
                    let image = match self.plan.reencode {
                        Some(settings) => reencode(bytes, folder.path(i), settings)?,
                        None => bytes,
                    };
                    Ok((i, image))
                })
                .collect::<Result<Vec<_>>>()?;
            if chunks.send(images).is_err() {
                break;
            }
        }
        Ok(())
    }
}

/// Each sample's WebDataset key: its path under the folder without the extension, other
/// dots made `_` (a key ends at the first dot of the base name), e.g. `n01440764/n01440764_18`.
fn sample_keys(folder: &ImageFolder) -> Result<Vec<String>> {
    let mut first_use: HashMap<String, &Path> = HashMap::new();
    (0..folder.len())
        .map(|i| {
            let path = folder.path(i);
            let relative = path.strip_prefix(folder.root()).unwrap_or(path);
            let key = relative
                .with_extension("")
                .to_string_lossy()
                .replace('.', "_");
            if let Some(other) = first_use.insert(key.clone(), path) {
                return Err(DataError::Invalid(format!(
                    "{} and {} would share the shard key {key:?}; rename one",
                    other.display(),
                    path.display()
                )));
            }
            Ok(key)
        })
        .collect()
}
