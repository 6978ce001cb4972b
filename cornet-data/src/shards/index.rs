//! The sidecar index of one tar shard: where each sample's image bytes lie and its label, so
//! that reading a sample is one positioned read. Built by scanning the tar's headers (any
//! WebDataset writer's shards), kept beside the shard as `<name>.idx` (JSON).

use crate::error::{DataError, Result};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

/// Member extensions read as the sample's image (the format is read from the bytes).
const IMAGE_EXTENSIONS: [&str; 5] = ["jpg", "jpeg", "png", "webp", "img"];
/// The member holding the class index as decimal text, as WebDataset writes it.
const LABEL_EXTENSION: &str = "cls";

/// Where each sample of one shard lies, in the shard's order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardIndex {
    /// The shard's length when it was indexed: a shard that no longer has it was rewritten
    /// or cut, and its index cannot be trusted.
    pub shard_bytes: u64,
    /// The samples, in the order of their members in the tar.
    pub samples: Vec<IndexedSample>,
}

/// One sample of a shard: where its image's bytes are and its label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexedSample {
    /// WebDataset's key: the member name up to the first dot of its base name.
    pub key: String,
    /// Extension of the image member (`jpg`, `png`, ...).
    pub ext: String,
    /// Byte offset of the image's data in the shard.
    pub offset: u64,
    /// Length of the image's data, in bytes.
    pub len: u64,
    /// The class index of its `.cls` member.
    pub label: usize,
}

/// Where the index of `shard` lives: `name-000000.tar` -> `name-000000.idx`.
pub fn sidecar_path(shard: &Path) -> PathBuf {
    shard.with_extension("idx")
}

impl ShardIndex {
    /// Scans the tar headers of `shard` (data is skipped by seeking; only the small label
    /// members are read). Members other than images and labels are ignored, as WebDataset
    /// readers do with keys they are not asked for.
    pub fn build(shard: &Path) -> Result<Self> {
        let file = File::open(shard).map_err(|e| DataError::io(shard, e))?;
        let shard_bytes = file.metadata().map_err(|e| DataError::io(shard, e))?.len();
        let corrupt = |what: String| DataError::BadShard {
            shard: shard.to_owned(),
            reason: what,
        };
        let mut archive = tar::Archive::new(BufReader::new(file));
        let entries = archive
            .entries_with_seek()
            .map_err(|e| corrupt(format!("not a tar archive: {e}")))?;
        let mut samples = Vec::new();
        let mut current = Partial::default();
        for entry in entries {
            let mut entry = entry.map_err(|e| corrupt(format!("unreadable tar header: {e}")))?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let name = entry
                .path()
                .map_err(|e| corrupt(format!("unreadable member name: {e}")))?
                .to_string_lossy()
                .into_owned();
            let end = entry.raw_file_position() + entry.size();
            if end > shard_bytes {
                return Err(corrupt(format!(
                    "truncated: {name} ends at byte {end} but the shard has {shard_bytes}"
                )));
            }
            let Some((key, ext)) = split_key(&name) else {
                continue;
            };
            if key != current.key {
                current.finish(shard, &mut samples)?;
                current = Partial {
                    key: key.to_owned(),
                    ..Partial::default()
                };
            }
            let ext = ext.to_ascii_lowercase();
            if IMAGE_EXTENSIONS.contains(&ext.as_str()) {
                current.image = Some((ext, entry.raw_file_position(), entry.size()));
            } else if ext == LABEL_EXTENSION {
                let mut text = String::new();
                entry
                    .read_to_string(&mut text)
                    .map_err(|e| corrupt(format!("{name}: unreadable label: {e}")))?;
                let label = text
                    .trim()
                    .parse()
                    .map_err(|_| corrupt(format!("{name}: label {text:?} is not a class index")))?;
                current.label = Some(label);
            }
        }
        current.finish(shard, &mut samples)?;
        Ok(ShardIndex {
            shard_bytes,
            samples,
        })
    }

    /// Reads the sidecar index of `shard`, or `None` when there is none. An index that does
    /// not describe the shard as it is now is an error naming both.
    pub fn load(shard: &Path) -> Result<Option<Self>> {
        let path = sidecar_path(shard);
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(DataError::io(&path, e)),
        };
        let stale = |reason: String| DataError::BadShard {
            shard: shard.to_owned(),
            reason: format!(
                "{reason}; delete {} to index the shard again",
                path.display()
            ),
        };
        let index: ShardIndex = serde_json::from_slice(&text)
            .map_err(|e| stale(format!("its index {} is unreadable ({e})", path.display())))?;
        let actual = std::fs::metadata(shard)
            .map_err(|e| DataError::io(shard, e))?
            .len();
        if actual != index.shard_bytes {
            return Err(stale(format!(
                "the shard has {actual} bytes but its index was made for {} (cut or rewritten)",
                index.shard_bytes
            )));
        }
        index.check_within(shard, actual)?;
        Ok(Some(index))
    }

    /// Writes the sidecar beside `shard` (through a temporary file renamed into place, so a
    /// reader never sees half an index).
    pub fn save(&self, shard: &Path) -> std::io::Result<()> {
        let path = sidecar_path(shard);
        let staging = path.with_extension(format!("idx.{}.tmp", std::process::id()));
        std::fs::write(&staging, serde_json::to_vec(self)?)?;
        std::fs::rename(&staging, &path).inspect_err(|_| {
            std::fs::remove_file(&staging).ok();
        })
    }

    /// Every sample's bytes lie inside the shard (an index edited or mixed up by hand).
    fn check_within(&self, shard: &Path, shard_bytes: u64) -> Result<()> {
        match self.samples.iter().find(|s| s.offset + s.len > shard_bytes) {
            Some(s) => Err(DataError::BadShard {
                shard: shard.to_owned(),
                reason: format!(
                    "truncated: {}.{} ends at byte {} but the shard has {shard_bytes}",
                    s.key,
                    s.ext,
                    s.offset + s.len
                ),
            }),
            None => Ok(()),
        }
    }
}

/// The members of one key seen so far.
#[derive(Default)]
struct Partial {
    key: String,
    image: Option<(String, u64, u64)>,
    label: Option<usize>,
}

impl Partial {
    fn finish(self, shard: &Path, samples: &mut Vec<IndexedSample>) -> Result<()> {
        let missing = |what: &str| DataError::BadShard {
            shard: shard.to_owned(),
            reason: format!("sample {:?} has no {what} member", self.key),
        };
        match (self.image, self.label) {
            (None, None) => Ok(()), // no sample yet, or one of other keys only (metadata)
            (Some((ext, offset, len)), Some(label)) => {
                samples.push(IndexedSample {
                    key: self.key,
                    ext,
                    offset,
                    len,
                    label,
                });
                Ok(())
            }
            (None, Some(_)) => Err(missing("image (.jpg, .png, ...)")),
            (Some(_), None) => Err(missing(".cls label")),
        }
    }
}

/// WebDataset's split of a member name into key and extension: the key runs up to the first
/// dot of the base name (`a/b.c.jpg` -> `a/b`, `c.jpg`). Names with no such dot are no sample.
fn split_key(name: &str) -> Option<(&str, &str)> {
    let base = name.rfind('/').map_or(0, |slash| slash + 1);
    let dot = base + name[base..].find('.')?;
    (dot > base).then(|| (&name[..dot], &name[dot + 1..]))
}

#[cfg(test)]
mod tests {
    use super::split_key;

    #[test]
    fn keys_split_as_webdataset_does() {
        assert_eq!(split_key("a/b.c.jpg"), Some(("a/b", "c.jpg")));
        assert_eq!(split_key("x.y/n0_1.cls"), Some(("x.y/n0_1", "cls")));
        assert_eq!(split_key("noext"), None);
        assert_eq!(split_key("dir/.hidden"), None);
    }
}
