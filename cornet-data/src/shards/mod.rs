//! WebDataset-compatible tar shards as a [`Dataset`]: every sample is one positioned read,
//! found through each shard's sidecar index (made on first open when a shard has none, e.g.
//! for shards from Python's `webdataset.ShardWriter`).

pub mod index;
pub mod manifest;
pub mod writer;

use crate::dataset::Dataset;
use crate::error::{DataError, Result};
use index::ShardIndex;
use manifest::Manifest;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The `*.tar` shards of a folder, in sorted name order, as one dataset.
#[derive(Debug, Clone)]
pub struct Shards {
    shards: Vec<PathBuf>,
    samples: Vec<ShardSample>,
    classes: Vec<String>,
}

#[derive(Debug, Clone)]
struct ShardSample {
    shard: usize,
    offset: u64,
    len: u64,
    label: usize,
    /// `<shard>.tar/<key>.<ext>`, for errors.
    path: PathBuf,
}

impl Shards {
    /// Opens the shards in `root`, indexing those without an index. An index that cannot be
    /// written beside its shard (a read-only folder) is kept in memory only.
    pub fn open(root: &Path) -> Result<Self> {
        let shards = shard_files(root)?;
        if shards.is_empty() {
            return Err(DataError::Invalid(format!(
                "{}: no .tar shards (write them with `cornet-data pack`)",
                root.display()
            )));
        }
        let manifest = Manifest::load(root)?;
        let mut samples = Vec::new();
        for (shard, path) in shards.iter().enumerate() {
            let index = match ShardIndex::load(path)? {
                Some(index) => index,
                None => {
                    let index = ShardIndex::build(path)?;
                    // Only a cache: without it the next open scans the shard again.
                    let _ = index.save(path);
                    index
                }
            };
            if let Some(manifest) = &manifest {
                check_against_manifest(manifest, path, &index)?;
            }
            samples.extend(index.samples.into_iter().map(|s| ShardSample {
                shard,
                offset: s.offset,
                len: s.len,
                label: s.label,
                path: path.join(format!("{}.{}", s.key, s.ext)),
            }));
        }
        if let Some(manifest) = &manifest {
            let names: Vec<&str> = shards.iter().filter_map(|p| file_name(p)).collect();
            if let Some(lost) = manifest
                .shards
                .iter()
                .find(|s| !names.contains(&s.file.as_str()))
            {
                return Err(DataError::BadShard {
                    shard: root.join(&lost.file),
                    reason: format!("listed in {} but missing", manifest::MANIFEST_FILE),
                });
            }
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

    /// Class names in label order: the manifest's, or the label numbers for shards without.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }
}

impl Dataset for Shards {
    fn len(&self) -> usize {
        self.samples.len()
    }

    fn read(&self, index: usize) -> Result<Vec<u8>> {
        let sample = &self.samples[index];
        let shard = &self.shards[sample.shard];
        let mut bytes = vec![0; sample.len as usize];
        File::open(shard)
            .and_then(|file| file.read_exact_at(&mut bytes, sample.offset))
            .map_err(|e| DataError::io(&sample.path, e))?;
        Ok(bytes)
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

fn file_name(path: &Path) -> Option<&str> {
    path.file_name().and_then(|n| n.to_str())
}

/// A shard the manifest lists must hold the samples it says.
fn check_against_manifest(manifest: &Manifest, shard: &Path, index: &ShardIndex) -> Result<()> {
    let listed = manifest
        .shards
        .iter()
        .find(|s| Some(s.file.as_str()) == file_name(shard));
    match listed {
        Some(listed) if listed.samples != index.samples.len() => Err(DataError::BadShard {
            shard: shard.to_owned(),
            reason: format!(
                "{} lists {} samples but the shard's index has {}",
                manifest::MANIFEST_FILE,
                listed.samples,
                index.samples.len()
            ),
        }),
        _ => Ok(()),
    }
}
