//! WebDataset-compatible tar shards as a [`Dataset`]: every sample is one positioned read,
//! found through each shard's sidecar index (made on first open when a shard has none, e.g.
//! for shards from Python's `webdataset.ShardWriter`).

pub mod index;
pub mod manifest;
mod member;
pub mod writer;

use crate::dataset::Dataset;
use crate::error::{DataError, Result};
use crate::progress::{NoProgress, Progress, Unit};
use index::{parse_label, ShardIndex};
use manifest::{Manifest, MANIFEST_FILE, UNFINISHED_MANIFEST_FILE};
use member::read_member;
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::path::{Path, PathBuf};

/// The shards of a folder, as one dataset: those its manifest lists, in its order, or without
/// a manifest its `*.tar` files in sorted name order.
#[derive(Debug, Clone)]
pub struct Shards {
    shards: Vec<PathBuf>,
    samples: Vec<ShardSample>,
    classes: Vec<String>,
}

#[derive(Debug, Clone)]
struct ShardSample {
    shard: usize,
    key: String,
    offset: u64,
    len: u64,
    label: usize,
    label_offset: u64,
    label_len: u64,
    /// `<shard>.tar/<key>.<ext>`, for errors.
    path: PathBuf,
}

impl Shards {
    /// Opens the shards in `root`, indexing those without an index. An index that cannot be
    /// written beside its shard (a read-only folder) is kept in memory only.
    pub fn open(root: &Path) -> Result<Self> {
        Self::open_indexing(root, false, &NoProgress)
    }

    /// Opens the shards in `root` indexing every one afresh, which hashes each whole and
    /// compares it with the manifest: the full check of a folder that was copied or may
    /// have been damaged since its indexes were made (`cornet-data verify`). `progress` counts
    /// the bytes hashed.
    pub fn verify(root: &Path, progress: &dyn Progress) -> Result<Self> {
        Self::open_indexing(root, true, progress)
    }

    fn open_indexing(root: &Path, reindex: bool, progress: &dyn Progress) -> Result<Self> {
        let manifest = Manifest::load(root)?;
        let shards = match &manifest {
            Some(manifest) => listed_shards(root, manifest)?,
            None if root.join(UNFINISHED_MANIFEST_FILE).exists() => {
                return Err(DataError::Invalid(format!(
                    "{}: an unfinished pack ({UNFINISHED_MANIFEST_FILE}, no {MANIFEST_FILE}); \
                     run the `cornet-data pack` that wrote it again to finish it",
                    root.display()
                )))
            }
            None => shard_files(root)?,
        };
        if shards.is_empty() {
            return Err(DataError::Invalid(format!(
                "{}: no .tar shards (write them with `cornet-data pack`)",
                root.display()
            )));
        }
        if reindex {
            let bytes = shards
                .iter()
                .map(|path| std::fs::metadata(path).map(|m| m.len()))
                .sum::<std::io::Result<u64>>()
                .map_err(|e| DataError::io(root, e))?;
            progress.begin(
                &format!("verifying {}", root.display()),
                Unit::Bytes,
                Some(bytes),
            );
        }
        // Shards are indexed (read whole, once) in parallel.
        let indexes = shards
            .par_iter()
            .map(|path| index_of(path, reindex, progress))
            .collect::<Result<Vec<_>>>()?;
        let mut samples = Vec::new();
        for (shard, (path, index)) in shards.iter().zip(indexes).enumerate() {
            if let Some(manifest) = &manifest {
                check_against_manifest(manifest, path, &index)?;
            }
            samples.extend(index.samples.into_iter().map(|s| ShardSample {
                shard,
                path: path.join(format!("{}.{}", s.key, s.ext)),
                key: s.key,
                offset: s.offset,
                len: s.len,
                label: s.label,
                label_offset: s.label_offset,
                label_len: s.label_len,
            }));
        }
        if samples.is_empty() {
            return Err(DataError::Invalid(format!(
                "{}: the shards hold no samples (a sample is <key>.jpg with <key>.cls)",
                root.display()
            )));
        }
        let classes: Vec<String> = match manifest {
            Some(manifest) => manifest.classes.into_iter().map(|c| c.name).collect(),
            // Shards of other tools carry class indices only.
            None => {
                let count = samples.iter().map(|s| s.label).max().map_or(0, |m| m + 1);
                (0..count).map(|label| label.to_string()).collect()
            }
        };
        if let Some(s) = samples.iter().find(|s| s.label >= classes.len()) {
            return Err(DataError::Invalid(format!(
                "{}: label {} but the manifest names {} classes",
                s.path.display(),
                s.label,
                classes.len()
            )));
        }
        if reindex {
            progress.finish();
        }
        Ok(Shards {
            shards,
            samples,
            classes,
        })
    }

    /// Whether `root` holds tar shards (rather than class folders).
    pub fn found_in(root: &Path) -> bool {
        shard_files(root).is_ok_and(|files| !files.is_empty())
    }
}

impl Dataset for Shards {
    fn len(&self) -> usize {
        self.samples.len()
    }

    /// Reads the image and its `.cls` member, each with the tar header before it: an index
    /// that no longer fits its shard is an error here rather than a wrong image or label.
    fn read(&self, index: usize) -> Result<Vec<u8>> {
        let sample = &self.samples[index];
        let shard = &self.shards[sample.shard];
        let file = File::open(shard).map_err(|e| DataError::io(&sample.path, e))?;
        let image_name = sample.path.strip_prefix(shard).unwrap_or(&sample.path);
        let image = read_member(
            &file,
            shard,
            sample.offset,
            sample.len,
            &image_name.to_string_lossy(),
        )?;
        let label_name = format!("{}.cls", sample.key);
        let text = read_member(
            &file,
            shard,
            sample.label_offset,
            sample.label_len,
            &label_name,
        )?;
        let text = String::from_utf8_lossy(&text);
        if parse_label(&text) != Some(sample.label) {
            return Err(DataError::BadShard {
                shard: shard.clone(),
                reason: format!(
                    "{label_name} holds {text:?} but the index says label {}; delete {} to \
                     index the shard again",
                    sample.label,
                    index::sidecar_path(shard).display()
                ),
            });
        }
        Ok(image)
    }

    fn label(&self, index: usize) -> usize {
        self.samples[index].label
    }

    fn num_classes(&self) -> usize {
        self.classes.len()
    }

    fn path(&self, index: usize) -> &Path {
        &self.samples[index].path
    }

    fn fingerprint(&self) -> String {
        let mut hasher = Sha256::new();
        for sample in &self.samples {
            let name = sample
                .path
                .strip_prefix(&self.shards[sample.shard])
                .unwrap_or(&sample.path);
            hasher.update(format!("{}\t{}\n", sample.label, name.display()));
        }
        hex::encode(hasher.finalize())[..16].to_string()
    }

    /// The manifest's class names, or the label numbers for shards without one.
    fn classes(&self) -> &[String] {
        &self.classes
    }
}

/// The `*.tar` files of `root`, sorted.
fn shard_files(root: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(root).map_err(|e| DataError::io(root, e))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| DataError::io(root, e))?.path();
        if path.extension().is_some_and(|e| e == "tar") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// The shards `manifest` lists, each present with the size it lists (a `stat`, so checked at
/// every open). A tar beside them that the manifest does not list is refused rather than
/// silently added: its samples were not packed with the others.
fn listed_shards(root: &Path, manifest: &Manifest) -> Result<Vec<PathBuf>> {
    let listed: Vec<PathBuf> = manifest.shards.iter().map(|s| root.join(&s.file)).collect();
    for (path, record) in listed.iter().zip(&manifest.shards) {
        let bad = |reason: String| DataError::BadShard {
            shard: path.clone(),
            reason,
        };
        let bytes = match std::fs::metadata(path) {
            Ok(metadata) => metadata.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(bad(format!("listed in {MANIFEST_FILE} but missing")))
            }
            Err(e) => return Err(DataError::io(path, e)),
        };
        if bytes != record.bytes {
            return Err(bad(format!(
                "the shard has {bytes} bytes but {MANIFEST_FILE} lists {} (cut or rewritten)",
                record.bytes
            )));
        }
    }
    if let Some(stray) = shard_files(root)?.into_iter().find(|p| !listed.contains(p)) {
        return Err(DataError::BadShard {
            shard: stray,
            reason: format!(
                "not listed in {MANIFEST_FILE}, so not packed with the shards beside it; move \
                 it out of {}",
                root.display()
            ),
        });
    }
    Ok(listed)
}

/// The index of `shard`: its sidecar, unless `reindex` or there is none; then built (and
/// kept beside the shard where it can be written), `progress` counting the bytes read.
fn index_of(shard: &Path, reindex: bool, progress: &dyn Progress) -> Result<ShardIndex> {
    if !reindex {
        if let Some(index) = ShardIndex::load(shard)? {
            return Ok(index);
        }
    }
    let index = ShardIndex::build(shard, progress)?;
    // Only a cache: without it the next open scans the shard again.
    let _ = index.save(shard);
    Ok(index)
}

fn file_name(path: &Path) -> Option<&str> {
    path.file_name().and_then(|n| n.to_str())
}

/// A shard the manifest lists must hold the samples it says, and have had its checksum when
/// it was indexed (see [`ShardIndex`] for why that is the SHA-256 checked at each open).
fn check_against_manifest(manifest: &Manifest, shard: &Path, index: &ShardIndex) -> Result<()> {
    let Some(listed) = manifest
        .shards
        .iter()
        .find(|s| Some(s.file.as_str()) == file_name(shard))
    else {
        return Ok(());
    };
    let bad = |reason: String| DataError::BadShard {
        shard: shard.to_owned(),
        reason,
    };
    if listed.samples != index.samples.len() {
        return Err(bad(format!(
            "{MANIFEST_FILE} lists {} samples but the shard's index has {}",
            listed.samples,
            index.samples.len()
        )));
    }
    if listed.sha256 != index.sha256 {
        return Err(bad(format!(
            "its SHA-256 is {} but {MANIFEST_FILE} lists {} (damaged or replaced)",
            index.sha256, listed.sha256
        )));
    }
    Ok(())
}
