//! What the loop needs from the data side: an epoch's batches for this rank, from any step.

use super::error::Result;
use crate::loading::batch_tensors;
use candle_core::Tensor;
use cornet_data::Batch;

/// Images `[N, 3, H, W]` (f32, on the CPU) and their class indices `[N]` (u32).
pub struct LabelledBatch {
    /// The images `[N, 3, H, W]`.
    pub images: Tensor,
    /// Their class indices `[N]`.
    pub labels: Tensor,
}

impl LabelledBatch {
    /// A batch the data crate decoded, as CPU tensors.
    pub fn decoded(batch: Batch) -> candle_core::Result<Self> {
        let (images, labels) = batch_tensors(batch)?;
        Ok(LabelledBatch { images, labels })
    }
}

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
    fn report(&self) -> Option<String> {
        None
    }
}
