//! The one error type of this crate: every message names the file or state-dict key at fault.

use std::path::PathBuf;

/// This crate's results.
pub type Result<T> = std::result::Result<T, Error>;

/// Why building, loading or running a model failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // The cause is part of the message rather than a `source`, so that error chains print it
    // once.
    /// A file could not be opened, read or written.
    #[error("{path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        cause: std::io::Error,
    },

    /// A file in none of the checkpoint formats (`.pth` zip or legacy, safetensors).
    #[error("{path}: not a checkpoint: {reason}")]
    NotACheckpoint {
        /// The file.
        path: PathBuf,
        /// What its first bytes are not.
        reason: String,
    },

    /// A checkpoint whose format is known but whose content is cut or inconsistent.
    #[error("{path}: damaged checkpoint: {reason}")]
    DamagedCheckpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong in it.
        reason: String,
    },

    /// Weights without a tensor the model has.
    #[error("missing key `{key}` (the model expects shape {expected:?})")]
    MissingKey {
        /// The state-dict name.
        key: String,
        /// The model's shape for it (empty where the shape is not known yet).
        expected: Vec<usize>,
    },

    /// Weights with a tensor the model lacks.
    #[error(
        "unexpected key `{key}` with shape {found:?}: the model has no such parameter or buffer"
    )]
    UnexpectedKey {
        /// The state-dict name.
        key: String,
        /// The tensor's shape in the weights.
        found: Vec<usize>,
    },

    /// A tensor whose shape differs between the model and the weights.
    #[error("key `{key}`: the model expects shape {expected:?}, the weights have {found:?}")]
    ShapeMismatch {
        /// The state-dict name.
        key: String,
        /// The model's shape.
        expected: Vec<usize>,
        /// The weights' shape.
        found: Vec<usize>,
    },

    /// Weights of another graph than the one asked for, or of no CORnet at all.
    #[error("cannot build the model from these weights: {0}")]
    Incompatible(String),

    /// A [`ModelConfig`](crate::ModelConfig) the constructors cannot build, or a tap that the
    /// model does not have.
    #[error("{0}")]
    InvalidConfig(String),

    /// An input the network cannot take (wrong shape, too small a batch).
    #[error("{0}")]
    InvalidInput(String),

    /// A tensor operation failed.
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
