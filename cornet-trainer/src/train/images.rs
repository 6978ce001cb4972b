//! The loop's batches from image files: a `cornet-data` loader driven by its sampler.

use super::source::{BatchSource, LabelledBatch};
use anyhow::Result;
use candle_core::{Device, Tensor};
use cornet_data::{Dataset, Loader, Sampler};

pub struct ImageSource<D: Dataset + 'static> {
    loader: Loader<D>,
    sampler: Sampler,
}

impl<D: Dataset + 'static> ImageSource<D> {
    pub fn new(loader: Loader<D>, sampler: Sampler) -> Self {
        ImageSource { loader, sampler }
    }
}

impl<D: Dataset + 'static> BatchSource for ImageSource<D> {
    fn batches(
        &self,
        epoch: u64,
        start: u64,
    ) -> Result<Box<dyn Iterator<Item = Result<LabelledBatch>> + '_>> {
        let batches = self
            .loader
            .epoch(epoch, self.sampler.batches(epoch, start as usize));
        Ok(Box::new(batches.map(|batch| {
            let batch = batch?;
            let n = batch.labels.len();
            Ok(LabelledBatch {
                images: Tensor::from_vec(batch.images, batch.shape.to_vec(), &Device::Cpu)?,
                labels: Tensor::from_vec(batch.labels, n, &Device::Cpu)?,
            })
        })))
    }

    fn steps_per_epoch(&self) -> u64 {
        self.sampler.steps_per_epoch() as u64
    }

    fn fingerprint(&self) -> String {
        self.loader.dataset().fingerprint()
    }

    fn report(&self) -> Option<String> {
        let (count, examples) = self.loader.bad_images();
        (count > 0).then(|| {
            format!(
                "{count} unreadable images skipped so far, e.g. {}",
                examples.join("; ")
            )
        })
    }
}
