//! `manifest.json` beside the shards: what was packed from where, class names and counts,
//! and each shard's size and checksum.

use super::writer::ShardRecord;
use crate::error::{DataError, Result};
use crate::files::write_atomically;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The manifest's file name in the shards' folder.
pub const MANIFEST_FILE: &str = "manifest.json";

/// The manifest of a pack under way, beside its shards: what is being packed and the shards
/// finished so far (renamed [`MANIFEST_FILE`] when the last is). A folder holding it and no
/// manifest is not opened as shards: the pack that writes it is to be run again to finish.
pub const UNFINISHED_MANIFEST_FILE: &str = "manifest.unfinished.json";

/// What `cornet-data pack` wrote: the source, classes, re-encoding and shards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The ImageFolder the shards were packed from.
    pub source: String,
    /// Samples in all shards together.
    pub samples: usize,
    /// Class names in label order (label = position) and their sample counts.
    pub classes: Vec<ClassCount>,
    /// The re-encoding applied, if any (else the images are the source files' bytes).
    pub reencode: Option<Reencode>,
    /// How the shards were cut, and from which listing: what a rerun of `pack` must match to
    /// finish an interrupted pack (absent from manifests written before packs resumed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packing: Option<Packing>,
    /// Every shard, in order (in an unfinished manifest, those finished so far).
    pub shards: Vec<ShardRecord>,
}

/// How a pack cut its shards, beside the source and re-encoding the manifest names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Packing {
    /// Shards are named `<prefix>-000000.tar`, ...
    pub prefix: String,
    /// A shard is closed before a sample would take it past this size.
    pub shard_bytes: u64,
    /// The source's [`Dataset::fingerprint`](crate::Dataset::fingerprint): its image names and
    /// labels, in order.
    pub fingerprint: String,
}

/// One class of the packed ImageFolder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassCount {
    /// Its folder's name.
    pub name: String,
    /// Its samples.
    pub count: usize,
}

/// Re-encoding as JPEG, the longer side at most `max_side` pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reencode {
    /// The longest side allowed, in pixels.
    pub max_side: u32,
    /// JPEG quality, 1 to 100.
    pub quality: u8,
}

impl Manifest {
    /// The manifest in `dir`, or `None` for shards written by other tools.
    pub fn load(dir: &Path) -> Result<Option<Self>> {
        Self::load_file(&dir.join(MANIFEST_FILE))
    }

    /// The manifest of a pack under way in `dir`, if there is one.
    pub fn load_unfinished(dir: &Path) -> Result<Option<Self>> {
        Self::load_file(&dir.join(UNFINISHED_MANIFEST_FILE))
    }

    fn load_file(path: &Path) -> Result<Option<Self>> {
        match std::fs::read(path) {
            Ok(text) => serde_json::from_slice(&text).map(Some).map_err(|e| {
                DataError::Invalid(format!("{}: unreadable manifest: {e}", path.display()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(DataError::io(path, e)),
        }
    }

    /// Writes the manifest into `dir` as pretty JSON, whole or not at all.
    pub fn save(&self, dir: &Path) -> Result<()> {
        self.save_as(&dir.join(MANIFEST_FILE))
    }

    /// Writes the manifest of a pack under way into `dir`, whole or not at all.
    pub fn save_unfinished(&self, dir: &Path) -> Result<()> {
        self.save_as(&dir.join(UNFINISHED_MANIFEST_FILE))
    }

    fn save_as(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_vec_pretty(self).expect("a manifest serializes");
        write_atomically(path, &text).map_err(|e| DataError::io(path, e))
    }
}
