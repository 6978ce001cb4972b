//! One published file, by name, address and place in the cache.

use cornet_model::Arch;
use std::path::PathBuf;

/// One model's published file: where it is served and where it is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedFile {
    /// The model it holds.
    pub arch: Arch,
    /// `cornet_<x>-<hash>.pth`.
    pub name: String,
    /// `<base>/cornet_<x>-<hash>.pth`.
    pub url: String,
    /// `<cache>/cornet_<x>-<hash>.pth`.
    pub cache_path: PathBuf,
    /// The start of the file's SHA-256, in hex, as its name carries it.
    pub hash_prefix: String,
}
