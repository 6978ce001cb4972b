//! What can go wrong between ranks, each message naming the rank, variable or address.

/// The cause of a [`DistributedError`], when there is one.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

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

/// Explains a failure as one kind of [`DistributedError`], the original error as its cause:
/// `result.explain(DistributedError::Rendezvous, || format!("..."))`.
pub(crate) trait Explain<T> {
    /// On failure, `kind(message(), cause)`.
    fn explain(
        self,
        kind: fn(String, Option<Cause>) -> DistributedError,
        message: impl FnOnce() -> String,
    ) -> Result<T>;
}

impl<T, E: Into<Cause>> Explain<T> for std::result::Result<T, E> {
    fn explain(
        self,
        kind: fn(String, Option<Cause>) -> DistributedError,
        message: impl FnOnce() -> String,
    ) -> Result<T> {
        self.map_err(|cause| kind(message(), Some(cause.into())))
    }
}

impl<T> Explain<T> for Option<T> {
    fn explain(
        self,
        kind: fn(String, Option<Cause>) -> DistributedError,
        message: impl FnOnce() -> String,
    ) -> Result<T> {
        self.ok_or_else(|| kind(message(), None))
    }
}
