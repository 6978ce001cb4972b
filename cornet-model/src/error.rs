//! The one error type of this crate: every message names the file or state-dict key at fault.

use std::path::PathBuf;

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    // The cause is part of the message rather than a `source`, so that error chains print it
    // once.
    #[error("{path}: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },

    #[error("{path}: not a checkpoint: {reason}")]
    NotACheckpoint { path: PathBuf, reason: String },

    #[error("{path}: damaged checkpoint: {reason}")]
    DamagedCheckpoint { path: PathBuf, reason: String },

    #[error("missing key `{key}` (the model expects shape {expected:?})")]
    MissingKey { key: String, expected: Vec<usize> },

    #[error(
        "unexpected key `{key}` with shape {found:?}: the model has no such parameter or buffer"
    )]
    UnexpectedKey { key: String, found: Vec<usize> },

    #[error("key `{key}`: the model expects shape {expected:?}, the weights have {found:?}")]
    ShapeMismatch {
        key: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },

    #[error("cannot build the model from these weights: {0}")]
    Incompatible(String),

    #[error("{0}")]
    InvalidConfig(String),

    /// An input the network cannot take (wrong shape, too small a batch).
    #[error("{0}")]
    InvalidInput(String),

    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, cause: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            cause,
        }
    }
}
