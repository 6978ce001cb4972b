//! Throughput of the training (or validation) pipeline over a dataset: `cornet-data bench`.

use crate::dataset::Dataset;
use crate::error::{DataError, Result};
use crate::loader::{Loader, LoaderOptions};
use crate::sampler::Sampler;
use crate::transform::Transform;
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub workers: usize,
    pub batch_size: usize,
    /// The validation pipeline (resize, center crop) instead of the training one.
    pub val: bool,
    /// Timed passes over the whole dataset, after the warm-up.
    pub epochs: u64,
    pub image_size: usize,
    /// Batches decoded before timing starts (threads started, caches and page cache warm).
    pub warmup_batches: usize,
}

/// One timed epoch.
#[derive(Debug, Clone, Copy)]
pub struct EpochTiming {
    pub images: usize,
    pub seconds: f64,
}

impl EpochTiming {
    pub fn images_per_sec(&self) -> f64 {
        self.images as f64 / self.seconds
    }
}

/// Runs the warm-up, then `options.epochs` timed epochs; `on_epoch` sees each as it ends.
pub fn bench<D: Dataset + 'static>(
    dataset: D,
    options: &BenchOptions,
    mut on_epoch: impl FnMut(u64, &EpochTiming),
) -> Result<Vec<EpochTiming>> {
    let size = options.image_size;
    let transform = if options.val {
        Transform::Val { size }
    } else {
        Transform::Train { size }
    };
    let sampler = if options.val {
        Sampler::validation(dataset.len(), options.batch_size, 0, 1)?
    } else {
        Sampler::training(dataset.len(), options.batch_size, 0, 1, 0)?
    };
    if sampler.steps_per_epoch() == 0 {
        return Err(DataError::Invalid(format!(
            "{} images make no batch of {}",
            dataset.len(),
            options.batch_size
        )));
    }
    let loader = Loader::new(
        dataset,
        LoaderOptions {
            transform,
            workers: options.workers,
            prefetch: 2 * options.workers.max(1),
            skip_bad_images: true,
            seed: 0,
        },
    );
    let warmup: Vec<_> = sampler
        .batches(0, 0)
        .into_iter()
        .take(options.warmup_batches)
        .collect();
    for batch in loader.epoch(0, warmup) {
        batch?;
    }
    let mut timings = Vec::new();
    for epoch in 1..=options.epochs {
        let start = Instant::now();
        let mut images = 0;
        for batch in loader.epoch(epoch, sampler.batches(epoch, 0)) {
            images += batch?.labels.len();
        }
        let timing = EpochTiming {
            images,
            seconds: start.elapsed().as_secs_f64(),
        };
        on_epoch(epoch, &timing);
        timings.push(timing);
    }
    Ok(timings)
}
