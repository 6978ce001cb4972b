//! The loop's batches from image files: a `cornet-data` pipeline.

use super::error::Result;
use super::source::BatchSource;
use crate::loading::LabelledBatch;
use cornet_data::{Dataset, Pipeline};

/// A [`BatchSource`] over images decoded by a [`Pipeline`].
pub struct ImageSource<D: Dataset + 'static> {
    pipeline: Pipeline<D>,
}

impl<D: Dataset + 'static> ImageSource<D> {
    /// The batches `pipeline` cuts and decodes.
    pub fn new(pipeline: Pipeline<D>) -> Self {
        ImageSource { pipeline }
    }
}

impl<D: Dataset + 'static> BatchSource for ImageSource<D> {
    fn batches(
        &self,
        epoch: u64,
        start: u64,
    ) -> Result<Box<dyn Iterator<Item = Result<LabelledBatch>> + '_>> {
        let batches = self.pipeline.epoch(epoch, start as usize);
        Ok(Box::new(
            batches.map(|batch| Ok(LabelledBatch::decoded(batch?)?)),
        ))
    }

    fn steps_per_epoch(&self) -> u64 {
        self.pipeline.steps_per_epoch() as u64
    }

    fn fingerprint(&self) -> String {
        self.pipeline.loader().dataset().fingerprint()
    }

    fn problems(&self) -> Option<String> {
        let (count, examples) = self.pipeline.loader().bad_images();
        (count > 0).then(|| {
            format!(
                "{count} unreadable images skipped so far, e.g. {}",
                examples.join("; ")
            )
        })
    }
}
