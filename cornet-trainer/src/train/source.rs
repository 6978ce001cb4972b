//! What the loop needs from the data side: an epoch's batches for this rank, from any step.

use super::error::Result;
use crate::loading::LabelledBatch;

/// A rank's training or validation data, epoch by epoch.
pub trait BatchSource {
    /// This rank's batches of `epoch` from step `start` on. The same (epoch, step) must give
    /// the same batch whenever it is asked for: resuming depends on it.
    fn batches(
        &self,
        epoch: u64,
        start: u64,
    ) -> Result<Box<dyn Iterator<Item = Result<LabelledBatch>> + '_>>;

    /// Optimizer steps in one epoch (the same on every rank).
    fn steps_per_epoch(&self) -> u64;

    /// Identifies the data (its file list or shard manifest), for checkpoint provenance.
    fn fingerprint(&self) -> String;

    /// A line about problems met so far (bad images skipped), for the end of an epoch.
    fn problems(&self) -> Option<String> {
        None
    }
}
