//! What the loop tells the outside as it goes, kept out of the loop: the events, which any
//! number of observers hear ([`super::observers::Observers`] tells several in order).

use super::error::Result;
use crate::records::Record;
use std::path::Path;

/// Sees the loop's events, in order. Each event is ignored unless the observer says
/// otherwise.
pub trait RunObserver {
    /// A training step is done; `images` were in its batch on this rank.
    fn on_step(&mut self, _record: &Record, _images: usize) -> Result<()> {
        Ok(())
    }
    /// A validation before step `step` begins: `batches` of this rank's. Its batches and its
    /// end follow; progress only, so nothing can fail.
    fn on_validation_start(&mut self, _step: u64, _batches: u64) {}
    /// A batch of the validation under way is done: `images` on this rank.
    fn on_validation_batch(&mut self, _images: usize) {}
    /// A validation is done.
    fn on_validation(&mut self, _record: &Record) -> Result<()> {
        Ok(())
    }
    /// Rank 0 wrote a checkpoint to `path`.
    fn on_checkpoint(&mut self, _path: &Path) -> Result<()> {
        Ok(())
    }
    /// The run stopped on a signal, after its checkpoint.
    fn on_stop(&mut self) -> Result<()> {
        Ok(())
    }
    /// Every step is done (the final validation and checkpoint follow).
    fn on_finish(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Where a run starts, for the observers opened for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunStart {
    /// Steps of the whole run.
    pub total_steps: u64,
    /// Steps of an epoch.
    pub steps_per_epoch: u64,
    /// Steps already taken (a resumed run's checkpoint).
    pub global_step: u64,
    /// This process's rank; only rank 0 writes the run's files.
    pub rank: usize,
    /// Ranks in the run.
    pub world_size: usize,
}
