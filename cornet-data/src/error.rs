//! Errors that name the file at fault.

use std::path::PathBuf;

/// This crate's results.
pub type Result<T> = std::result::Result<T, DataError>;

/// Why data could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file or folder could not be opened, read or written.
    #[error("{path}: {cause}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the system said.
        cause: std::io::Error,
    },

    /// An image that does not decode.
    #[error("{path}: not a readable image: {reason}")]
    BadImage {
        /// The image's file, or `<shard>.tar/<member>` within a shard.
        path: PathBuf,
        /// What the decoder said.
        reason: String,
    },

    /// A shard that is cut, inconsistent with its index or manifest, or no tar at all.
    #[error("{shard}: {reason}")]
    BadShard {
        /// The shard (or its index).
        shard: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// Anything else: a folder without classes, a batch of unreadable images, ...
    #[error("{0}")]
    Invalid(String),

    /// A sampler asked for batches of no images (every epoch would divide by zero).
    #[error("the batch size must be at least 1")]
    ZeroBatchSize,

    /// A sampler asked for a rank outside its world.
    #[error("rank {rank} is not below the world size {world_size}")]
    BadRank {
        /// The rank asked for.
        rank: usize,
        /// The number of ranks.
        world_size: usize,
    },
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, cause: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            cause,
        }
    }
}
