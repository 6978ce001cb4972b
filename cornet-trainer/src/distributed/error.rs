//! What can go wrong between ranks, each message naming the rank, variable or address.

// The crate's shared helper: `result.explain(DistributedError::Rendezvous, || format!(".."))`
// is that kind of error with the original error as its cause.
pub use crate::error::Cause;
pub(crate) use crate::error::Explain;

/// A failure to place, connect, synchronise or launch the ranks. The kinds tell apart a
/// wrong environment, ranks that never met, a collective that broke, and the launcher.
#[derive(Debug, thiserror::Error)]
pub enum DistributedError {
    /// The rank environment (`RANK`, `WORLD_SIZE`, ...) is incomplete or inconsistent.
    #[error("{0}")]
    RankEnv(String, #[source] Option<Cause>),
    /// The ranks could not meet: the rendezvous store, the ring's connections, a rank that
    /// did not arrive or was started differently.
    #[error("{0}")]
    Rendezvous(String, #[source] Option<Cause>),
    /// A collective failed (a peer died, a link broke, NCCL reported an error).
    #[error("{0}")]
    Collective(String, #[source] Option<Cause>),
    /// A rank's weights differ from rank 0's: a bug or a hardware fault.
    #[error("rank {rank}'s weights diverged from rank 0's (checksum {mine} vs {root})")]
    Diverged {
        /// The rank that differs.
        rank: usize,
        /// Its weights' checksum.
        mine: f64,
        /// Rank 0's.
        root: f64,
    },
    /// The launcher could not start or keep its ranks.
    #[error("{0}")]
    Launch(String, #[source] Option<Cause>),
    /// SIGINT or SIGTERM stopped the launcher, which had its ranks checkpoint and stop.
    #[error(transparent)]
    Stopped(#[from] crate::error::StoppedBySignal),
    /// `model.bn_images` cannot tile this rank's batch: it must divide it, or be a multiple of
    /// it that divides the global batch.
    #[error(
        "model.bn_images {bn_images} neither divides each rank's batch of {per_rank} images \
         (train.batch_size {batch_size} over {world_size} ranks) nor is a multiple of it that \
         divides train.batch_size: pick a divisor of {per_rank}, or a multiple of it that \
         divides {batch_size}"
    )]
    BatchNormGroups {
        /// Images per BatchNorm group (`model.bn_images`).
        bn_images: usize,
        /// The global batch (`train.batch_size`).
        batch_size: usize,
        /// Each rank's share of it.
        per_rank: usize,
        /// The number of ranks.
        world_size: usize,
    },
    /// This build or this device cannot carry the transport asked for.
    #[error("{0}")]
    Unsupported(String),
    /// An I/O error with nothing to add.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A tensor operation around a collective failed.
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
}

/// What distribution's operations return.
pub type Result<T, E = DistributedError> = std::result::Result<T, E>;
