//! Throughput of the training (or validation) pipeline over a dataset: `cornet-data bench`.

use crate::dataset::Dataset;
use crate::error::{DataError, Result};
use crate::pipeline::{Pipeline, PipelineOptions};
use crate::transform::Transform;
use std::time::Instant;

/// What [`bench()`] times.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Decoding threads.
    pub workers: usize,
    /// Images per batch.
    pub batch_size: usize,
    /// The validation pipeline (resize, center crop) instead of the training one.
    pub val: bool,
    /// Timed passes over the whole dataset, after the warm-up.
    pub epochs: u64,
    /// The side of the output images, in pixels.
    pub image_size: usize,
    /// Batches decoded before timing starts (threads started, caches and page cache warm).
    pub warmup_batches: usize,
}

/// One timed epoch.
#[derive(Debug, Clone, Copy)]
pub struct EpochTiming {
    /// Images decoded and transformed.
    pub images: usize,
    /// Wall-clock time, in seconds.
    pub seconds: f64,
}

impl EpochTiming {
    /// Throughput, in images per second.
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
    let pipeline_options = PipelineOptions {
        skip_bad_images: true,
        ..PipelineOptions::single_process(options.batch_size, options.workers)
    };
    let len = dataset.len();
    let size = options.image_size;
    let pipeline = if options.val {
        Pipeline::evaluation(dataset, Transform::Val { size }, &pipeline_options)?
    } else {
        Pipeline::training(dataset, size, &pipeline_options)?
    };
    if pipeline.steps_per_epoch() == 0 {
        return Err(DataError::Invalid(format!(
            "{len} images make no batch of {}",
            options.batch_size
        )));
    }
    let warmup: Vec<_> = pipeline
        .sampler()
        .batches(0, 0)
        .into_iter()
        .take(options.warmup_batches)
        .collect();
    for batch in pipeline.loader().epoch(0, warmup) {
        batch?;
    }
    let mut timings = Vec::new();
    for epoch in 1..=options.epochs {
        let start = Instant::now();
        let mut images = 0;
        for batch in pipeline.epoch(epoch, 0) {
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
