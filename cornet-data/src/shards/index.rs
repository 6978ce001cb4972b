//! The sidecar index of one tar shard: where each sample's image bytes lie and its label, so
//! that reading a sample is one positioned read. Built by scanning the tar's headers (any
//! WebDataset writer's shards), kept beside the shard as `<name>.idx` (JSON).

use crate::error::{DataError, Result};
use crate::files::write_atomically;
use crate::progress::Progress;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::fs::File;
use std::io::{BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Member extensions read as the sample's image (the format is read from the bytes).
const IMAGE_EXTENSIONS: [&str; 5] = ["jpg", "jpeg", "png", "webp", "img"];
/// The member holding the class index as decimal text, as WebDataset writes it.
const LABEL_EXTENSION: &str = "cls";

/// How much of each end of a shard its [`ShardIndex::fingerprint`] covers.
const FINGERPRINT_BYTES: u64 = 64 * 1024;

/// Where each sample of one shard lies, in the shard's order, and what identifies the shard.
///
/// An index is trusted only for the shard it was made from. Hashing a whole shard at every
/// open would read an ImageNet folder (140 GB) each start, so the checks are layered by cost:
/// - at every open, the shard's size and the hash of its first and last 64 KiB (two small
///   reads): an index of another shard, even of the same size, fails here, since tar headers
///   (member names, and `.cls` contents) sit in both ends;
/// - at every sample read, the member header before the image names the indexed key and
///   size, and the `.cls` member holds the indexed label (two small positioned reads, see
///   `super::member`): an index edited by hand fails here, on the sample it mislabels;
/// - once, when the index is built, the whole shard's SHA-256, compared with the manifest's
///   at every open (`cornet-data verify` builds every index again, to check a copied folder).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardIndex {
    /// The shard's length when it was indexed: a shard that no longer has it was rewritten
    /// or cut, and its index cannot be trusted.
    pub shard_bytes: u64,
    /// SHA-256 of the shard's first and last 64 KiB, in hex.
    pub fingerprint: String,
    /// SHA-256 of the whole shard when it was indexed, in hex.
    pub sha256: String,
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
    /// Byte offset of the `.cls` member's data, to check `label` at each read.
    pub label_offset: u64,
    /// Length of the `.cls` member's data, in bytes.
    pub label_len: u64,
}

/// Where the index of `shard` lives: `name-000000.tar` -> `name-000000.idx`.
pub fn sidecar_path(shard: &Path) -> PathBuf {
    shard.with_extension("idx")
}

impl ShardIndex {
    /// Scans the tar headers of `shard` and hashes it whole (only the small label members are
    /// parsed), telling `progress` the bytes read. Members other than images and labels are
    /// ignored, as WebDataset readers do with keys they are not asked for.
    pub fn build(shard: &Path, progress: &dyn Progress) -> Result<Self> {
        let file = File::open(shard).map_err(|e| DataError::io(shard, e))?;
        let shard_bytes = file.metadata().map_err(|e| DataError::io(shard, e))?.len();
        let corrupt = |what: String| DataError::BadShard {
            shard: shard.to_owned(),
            reason: what,
        };
        // Every byte passes through the hash: the scan reads the shard through anyway
        // (skipping data by reading), and the checksum then costs no second pass.
        let mut archive = tar::Archive::new(HashingReader::new(BufReader::new(file), progress));
        let entries = archive
            .entries()
            .map_err(|e| corrupt(format!("not a tar archive: {e}")))?;
        let mut samples = Vec::new();
        let mut finished_keys = HashSet::new();
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
            let member = (entry.raw_file_position(), entry.size());
            let end = member.0 + member.1;
            if end > shard_bytes {
                return Err(corrupt(format!(
                    "truncated: {name} ends at byte {end} but the shard has {shard_bytes}"
                )));
            }
            let Some((key, ext)) = split_key(&name) else {
                continue;
            };
            if key != current.key {
                if finished_keys.contains(key) {
                    return Err(corrupt(format!(
                        "duplicate key {key:?}: {name} follows other samples of that key"
                    )));
                }
                let done = std::mem::replace(
                    &mut current,
                    Partial {
                        key: key.to_owned(),
                        ..Partial::default()
                    },
                );
                finished_keys.insert(done.key.clone());
                done.finish(shard, &mut samples)?;
            }
            // As Python's webdataset: a sample holds each member once ("duplicate file
            // name"); merging them would silently lose samples.
            let duplicate = || corrupt(format!("duplicate file name {name} (key {key:?})"));
            let ext = ext.to_ascii_lowercase();
            if IMAGE_EXTENSIONS.contains(&ext.as_str()) {
                if current.image.is_some() {
                    return Err(duplicate());
                }
                current.image = Some((ext, member));
            } else if ext == LABEL_EXTENSION {
                if current.label.is_some() {
                    return Err(duplicate());
                }
                let mut text = String::new();
                entry
                    .read_to_string(&mut text)
                    .map_err(|e| corrupt(format!("{name}: unreadable label: {e}")))?;
                let label = parse_label(&text).ok_or_else(|| {
                    corrupt(format!("{name}: label {text:?} is not a class index"))
                })?;
                current.label = Some((label, member));
            }
        }
        current.finish(shard, &mut samples)?;
        let mut rest = archive.into_inner();
        std::io::copy(&mut rest, &mut std::io::sink()).map_err(|e| DataError::io(shard, e))?;
        Ok(ShardIndex {
            shard_bytes,
            fingerprint: fingerprint(shard, shard_bytes)?,
            sha256: rest.finish(),
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
        if fingerprint(shard, actual)? != index.fingerprint {
            return Err(stale(format!(
                "the shard's first and last {FINGERPRINT_BYTES} bytes are not those its index \
                 was made for (rewritten, or the index of another shard)"
            )));
        }
        index.check_within(shard, actual)?;
        Ok(Some(index))
    }

    /// Writes the sidecar beside `shard` (through a temporary file renamed into place, so a
    /// reader never sees half an index).
    pub fn save(&self, shard: &Path) -> std::io::Result<()> {
        write_atomically(&sidecar_path(shard), &serde_json::to_vec(self)?)
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

/// The members of one key seen so far: each as (offset, length) of its data.
#[derive(Default)]
struct Partial {
    key: String,
    image: Option<(String, (u64, u64))>,
    label: Option<(usize, (u64, u64))>,
}

impl Partial {
    fn finish(self, shard: &Path, samples: &mut Vec<IndexedSample>) -> Result<()> {
        let missing = |what: &str| DataError::BadShard {
            shard: shard.to_owned(),
            reason: format!("sample {:?} has no {what} member", self.key),
        };
        match (self.image, self.label) {
            (None, None) => Ok(()), // no sample yet, or one of other keys only (metadata)
            (Some((ext, (offset, len))), Some((label, (label_offset, label_len)))) => {
                samples.push(IndexedSample {
                    key: self.key,
                    ext,
                    offset,
                    len,
                    label,
                    label_offset,
                    label_len,
                });
                Ok(())
            }
            (None, Some(_)) => Err(missing("image (.jpg, .png, ...)")),
            (Some(_), None) => Err(missing(".cls label")),
        }
    }
}

/// A `.cls` member's class index (decimal text, as WebDataset writes it).
pub(crate) fn parse_label(text: &str) -> Option<usize> {
    text.trim().parse().ok()
}

/// SHA-256 of the shard's length and its first and last [`FINGERPRINT_BYTES`].
fn fingerprint(shard: &Path, shard_bytes: u64) -> Result<String> {
    let file = File::open(shard).map_err(|e| DataError::io(shard, e))?;
    let span = FINGERPRINT_BYTES.min(shard_bytes);
    let mut hasher = Sha256::new();
    hasher.update(shard_bytes.to_le_bytes());
    let mut block = vec![0; span as usize];
    for offset in [0, shard_bytes - span] {
        file.read_exact_at(&mut block, offset)
            .map_err(|e| DataError::io(shard, e))?;
        hasher.update(&block);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Hashes what is read through it, and counts it to a [`Progress`].
struct HashingReader<'a, R> {
    inner: R,
    hasher: Sha256,
    progress: &'a dyn Progress,
    /// Bytes read since `progress` was last told: it is told per MiB, not per read.
    untold: u64,
}

/// How many bytes read make one call to [`Progress::advance`].
const TELL_EVERY: u64 = 1 << 20;

impl<'a, R> HashingReader<'a, R> {
    fn new(inner: R, progress: &'a dyn Progress) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            progress,
            untold: 0,
        }
    }

    /// The hash of everything read, in lowercase hex.
    fn finish(self) -> String {
        self.progress.advance(self.untold);
        hex::encode(self.hasher.finalize())
    }
}

impl<R: Read> Read for HashingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.untold += n as u64;
        if self.untold >= TELL_EVERY {
            self.progress.advance(std::mem::take(&mut self.untold));
        }
        Ok(n)
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
