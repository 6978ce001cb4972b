//! Which images a training-mode BatchNorm takes its statistics over.
//!
//! The original CORnet-S ran under `nn.DataParallel` on 2 GPUs: each BatchNorm normalized its
//! replica's 128 images. To train the same network on another number of devices, the count of
//! images per statistic is fixed apart from the batch: a rank holding several groups normalizes
//! each on its own (ghost batch norm), and a group spread over several ranks sums its
//! statistics over them ([`BatchStatsGroup`], as `nn.SyncBatchNorm`), forward and backward.

use std::sync::Arc;

/// The error a [`BatchStatsGroup`] reports (its transport's), carried through the op.
pub type GroupError = Box<dyn std::error::Error + Send + Sync>;

/// The ranks that share one BatchNorm group, as the model sees them: a sum over them.
///
/// Every rank of the group calls it the same number of times, in the same order (each
/// BatchNorm call forward, then backward in reverse), with as many values.
pub trait BatchStatsGroup: Send + Sync {
    /// Replaces `values` by their elementwise sum over the group's ranks.
    fn all_reduce_sum(&self, values: &mut [f64]) -> Result<(), GroupError>;
}

/// How the images of a rank's batch are grouped for BatchNorm's statistics in training
/// (evaluation uses the running statistics, whatever the grouping). The running statistics
/// follow the first group, as `nn.DataParallel` keeps its first replica's.
#[derive(Clone, Default)]
pub enum BatchGroups {
    /// The whole batch of this rank, as PyTorch on one device (and DDP).
    #[default]
    WholeBatch,
    /// Consecutive groups of `images` images, each normalized by its own statistics; `images`
    /// must divide the batch.
    Ghost {
        /// Images per group.
        images: usize,
    },
    /// The whole batch of this rank is its part of one group spread over several ranks, whose
    /// sums (count, sum, squared deviations; in the backward the gradient's two sums) are
    /// added over them.
    AcrossRanks(Arc<dyn BatchStatsGroup>),
}

impl std::fmt::Debug for BatchGroups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BatchGroups::WholeBatch => write!(f, "WholeBatch"),
            BatchGroups::Ghost { images } => write!(f, "Ghost {{ images: {images} }}"),
            BatchGroups::AcrossRanks(_) => write!(f, "AcrossRanks"),
        }
    }
}
