//! Throughput of the training (or validation) pipeline over a dataset: `cornet-data bench`.
//! A measurement is bounded (a number of batches or of seconds) unless whole passes are
//! asked for: on ImageNet one pass is 1.28M images, hours on a small machine.

use crate::dataset::Dataset;
use crate::error::{DataError, Result};
use crate::pipeline::{Pipeline, PipelineOptions};
use crate::progress::{Progress, Unit};
use crate::transform::Transform;
use std::time::{Duration, Instant};

/// What [`bench()`] times.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Decoding threads.
    pub workers: usize,
    /// Images per batch.
    pub batch_size: usize,
    /// The validation pipeline (resize, center crop) instead of the training one.
    pub val: bool,
    /// How much is timed, after the warm-up.
    pub measure: Measure,
    /// The side of the output images, in pixels.
    pub image_size: usize,
    /// Batches decoded before timing starts (threads started, caches and page cache warm).
    pub warmup_batches: usize,
}

/// How much a benchmark times. Bounded measurements go on into the next epoch when the
/// dataset is smaller than the bound.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Measure {
    /// This many batches.
    Batches(u64),
    /// Batches until this long has passed.
    Time(Duration),
    /// This many whole passes over the dataset.
    Epochs(u64),
}

/// What a benchmark timed.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    /// Images decoded and transformed.
    pub images: u64,
    /// Batches they made.
    pub batches: u64,
    /// Wall-clock time, in seconds.
    pub seconds: f64,
}

impl Measured {
    /// Throughput, in images per second.
    pub fn images_per_sec(&self) -> f64 {
        self.images as f64 / self.seconds
    }
}

/// Runs the warm-up, then times batches until `options.measure` is met; `progress` counts the
/// images as they are timed (its running rate is the benchmark's figure so far).
pub fn bench<D: Dataset + 'static>(
    dataset: D,
    options: &BenchOptions,
    progress: &dyn Progress,
) -> Result<Measured> {
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
    let steps = pipeline.steps_per_epoch() as u64;
    if steps == 0 {
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
    // Every epoch has the same number of batches: whole passes are a number of batches.
    let (batch_limit, time_limit) = match options.measure {
        Measure::Batches(batches) => (Some(batches), None),
        Measure::Epochs(epochs) => (Some(epochs * steps), None),
        Measure::Time(limit) => (None, Some(limit)),
    };
    progress.begin(
        "timing",
        Unit::Items("images"),
        batch_limit.map(|batches| batches * options.batch_size as u64),
    );
    let start = Instant::now();
    let mut measured = Measured {
        images: 0,
        batches: 0,
        seconds: 0.0,
    };
    'epochs: for epoch in 1.. {
        for batch in pipeline.epoch(epoch, 0) {
            let images = batch?.labels.len() as u64;
            measured.images += images;
            measured.batches += 1;
            progress.advance(images);
            let elapsed = start.elapsed();
            if batch_limit.is_some_and(|limit| measured.batches >= limit)
                || time_limit.is_some_and(|limit| elapsed >= limit)
            {
                measured.seconds = elapsed.as_secs_f64();
                // Before the loader is dropped, which waits for the batches still decoding.
                progress.finish();
                break 'epochs;
            }
        }
    }
    Ok(measured)
}
