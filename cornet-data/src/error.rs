//! Errors that name the file at fault.

use std::path::PathBuf;

pub type Result<T> = std::result::Result<T, DataError>;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },

    #[error("{path}: not a readable image: {reason}")]
    BadImage { path: PathBuf, reason: String },

    #[error("{shard}: {reason}")]
    BadShard { shard: PathBuf, reason: String },

    #[error("{0}")]
    Invalid(String),

    /// A sampler asked for batches of no images (every epoch would divide by zero).
    #[error("the batch size must be at least 1")]
    ZeroBatchSize,

    /// A sampler asked for a rank outside its world.
    #[error("rank {rank} is not below the world size {world_size}")]
    BadRank { rank: usize, world_size: usize },
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, cause: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            cause,
        }
    }
}
