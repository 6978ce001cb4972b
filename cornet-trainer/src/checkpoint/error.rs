//! What can go wrong with a checkpoint, each message naming the file.

use std::path::PathBuf;

/// A checkpoint that could not be written, read or verified.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// A file or folder operation failed; `doing` says which (`writing /x/state.json`).
    #[error("{doing}")]
    Io {
        /// The operation and its path.
        doing: String,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// A tensor file could not be read.
    #[error("reading {}", path.display())]
    ReadTensors {
        /// The safetensors file.
        path: PathBuf,
        /// What candle said.
        #[source]
        source: candle_core::Error,
    },
    /// The weights could not be written.
    #[error(transparent)]
    Weights(#[from] cornet_model::Error),
    /// `state.json` could not be serialized.
    #[error(transparent)]
    Serialize(#[from] serde_json::Error),
    /// `state.json` is not a checkpoint state.
    #[error("{}: damaged or not a checkpoint state", path.display())]
    BadState {
        /// The state file.
        path: PathBuf,
        /// What the JSON parser said.
        #[source]
        source: serde_json::Error,
    },
    /// `state.json` lists no checksum for a tensor file.
    #[error("{}: no checksum for {file}", path.display())]
    NoChecksum {
        /// The state file.
        path: PathBuf,
        /// The tensor file without a checksum.
        file: String,
    },
    /// A tensor file is not what was written.
    #[error(
        "{}: checksum mismatch (damaged or truncated: SHA-256 {actual}, expected {expected})",
        path.display()
    )]
    ChecksumMismatch {
        /// The damaged file.
        path: PathBuf,
        /// Its SHA-256 now.
        actual: String,
        /// Its SHA-256 when written.
        expected: String,
    },
}

/// Attaches `doing` (`"reading /x"`) to an I/O error, as a [`CheckpointError::Io`].
pub(super) fn io(doing: impl FnOnce() -> String) -> impl FnOnce(std::io::Error) -> CheckpointError {
    move |source| CheckpointError::Io {
        doing: doing(),
        source,
    }
}

/// `err` and its causes on one line, `: `-separated (as the command line prints an error).
pub(super) fn with_causes(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(err) = cause {
        text.push_str(": ");
        text.push_str(&err.to_string());
        cause = err.source();
    }
    text
}
