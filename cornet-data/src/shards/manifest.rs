//! `manifest.json` beside the shards: what was packed from where, class names and counts,
//! and each shard's size and checksum.

use super::writer::ShardRecord;
use crate::error::{DataError, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The manifest's file name in the shards' folder.
pub const MANIFEST_FILE: &str = "manifest.json";

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
    /// Every shard, in order.
    pub shards: Vec<ShardRecord>,
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
        let path = dir.join(MANIFEST_FILE);
        match std::fs::read(&path) {
            Ok(text) => serde_json::from_slice(&text).map(Some).map_err(|e| {
                DataError::Invalid(format!("{}: unreadable manifest: {e}", path.display()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(DataError::io(&path, e)),
        }
    }

    /// Writes the manifest into `dir` as pretty JSON.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join(MANIFEST_FILE);
        let text = serde_json::to_vec_pretty(self).expect("a manifest serializes");
        std::fs::write(&path, text).map_err(|e| DataError::io(&path, e))
    }
}
