//! What can go wrong getting published weights.

use cornet_model::Arch;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why published weights could not be had. Each message names the URL and, where fetching
/// failed, the cache path where a copy fetched by hand would be found (nothing is there: the
/// cache is looked at before any download).
#[derive(Debug, thiserror::Error)]
pub enum PublishedWeightsError {
    /// The table of published files has none for this model.
    #[error("no published weights of CORnet-{0} are known")]
    Unpublished(Arch),
    /// Neither `TORCH_HOME`, `XDG_CACHE_HOME` nor a home folder says where the cache is.
    #[error("no folder for PyTorch's hub cache: set TORCH_HOME (no home folder is known)")]
    NoCacheFolder,
    /// The cache folder could not be made or written.
    #[error("writing {} (PyTorch's hub cache)", path.display())]
    Cache {
        /// The folder or file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The server could not be reached, answered with an error, or the transfer broke off.
    #[error(
        "could not download {url}, so nothing was cached (to work offline, save a copy fetched \
         by hand as {})",
        cache_path.display()
    )]
    Download {
        /// The file's URL.
        url: String,
        /// Where the file would be cached.
        cache_path: PathBuf,
        /// What the client said.
        #[source]
        source: ureq::Error,
    },
    /// The transfer ended before the announced length.
    #[error(
        "the download of {url} stopped after {received} of {expected} bytes, so nothing was \
         cached (to work offline, save a copy fetched by hand as {})",
        cache_path.display()
    )]
    Incomplete {
        /// The file's URL.
        url: String,
        /// Where the file would be cached.
        cache_path: PathBuf,
        /// Bytes received.
        received: u64,
        /// The Content-Length.
        expected: u64,
    },
    /// The server stayed silent too long: accepting the connection, answering, or between two
    /// reads of the body.
    #[error(
        "the server of {url} sent nothing for {stall:?}, so the download was abandoned and \
         nothing was cached (to work offline, save a copy fetched by hand as {})",
        cache_path.display()
    )]
    Stalled {
        /// The file's URL.
        url: String,
        /// Where the file would be cached.
        cache_path: PathBuf,
        /// The silence allowed.
        stall: Duration,
    },
    /// The body is longer than any published file can be (or announces so).
    #[error(
        "{url} is longer than any published weights file can be ({}, over {limit} bytes): \
         refused, nothing was cached",
        match announced {
            Some(length) => format!("its Content-Length says {length} bytes"),
            None => "it sent more".to_owned(),
        }
    )]
    TooLong {
        /// The file's URL.
        url: String,
        /// The Content-Length, when that is what was too long.
        announced: Option<u64>,
        /// The most bytes a published file may have.
        limit: u64,
    },
    /// The file is not the one its name promises.
    #[error(
        "{url}: invalid hash value (expected a SHA-256 starting with {expected}, got {actual}); \
         nothing was cached"
    )]
    HashMismatch {
        /// The file's URL.
        url: String,
        /// The hash prefix in the file's name.
        expected: String,
        /// The downloaded file's SHA-256.
        actual: String,
    },
    /// The file does not load as weights of its model.
    #[error("{url} is not a CORnet-{arch} checkpoint; nothing was cached")]
    NotLoadable {
        /// The file's URL.
        url: String,
        /// The model it was published for.
        arch: Arch,
        /// Why it does not load.
        #[source]
        source: cornet_model::Error,
    },
}

pub(super) type Result<T, E = PublishedWeightsError> = std::result::Result<T, E>;

/// An I/O failure on `path` in the cache.
pub(super) fn cache_error(path: &Path) -> impl FnOnce(std::io::Error) -> PublishedWeightsError {
    let path = path.to_owned();
    move |source| PublishedWeightsError::Cache { path, source }
}
