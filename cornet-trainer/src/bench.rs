//! `cornet-trainer bench`: images per second of the train step and of inference on synthetic
//! input, after a warm-up, as timm's benchmark script reports them.

use crate::config::Precision;
use crate::distributed::DistributedError;
use crate::memory::{self, PeakSpan};
use crate::optim::{OptimError, Sgd};
use crate::progress::{Progress, Work};
use crate::step::forward_backward;
use candle_core::{Device, Tensor};
use cornet_model::{Arch, BatchGroups, Mode, Model, ModelConfig};
use serde::Serialize;
use std::time::Instant;

/// A benchmark that could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The model could not be built or run.
    #[error(transparent)]
    Model(#[from] cornet_model::Error),
    /// The SGD update failed.
    #[error(transparent)]
    Optim(#[from] OptimError),
    /// A collective failed (or the ranks never met).
    #[error(transparent)]
    Distributed(#[from] DistributedError),
    /// A tensor operation (or the device's synchronisation) failed.
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
    /// The all-reduce benchmark started as a single process: it would time a no-op.
    #[error(
        "bench-allreduce times the all-reduce between ranks, and this is a single process: start \
         it under a launcher, e.g. cornet-trainer launch --nproc 2 -- bench-allreduce"
    )]
    SingleRank,
}

/// What benchmarks return.
pub type Result<T, E = BenchError> = std::result::Result<T, E>;

/// What to time.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Which CORnet, at full size with 1000 classes.
    pub arch: Arch,
    /// Images per step.
    pub batch_size: usize,
    /// Image side.
    pub image_size: usize,
    /// Timed steps; the median is reported.
    pub steps: usize,
    /// Untimed steps first.
    pub warmup: usize,
    /// The activation dtype.
    pub precision: Precision,
    /// BatchNorm over groups of this many images (ghost batch norm); `None`: the whole batch.
    pub bn_images: Option<usize>,
}

/// The timings, printed as one JSON line.
#[derive(Debug, Serialize)]
pub struct StepTimings {
    /// `CORnet-<arch>`.
    pub model: String,
    /// The device, as candle shows it.
    pub device: String,
    /// Images per step.
    pub batch_size: usize,
    /// Image side.
    pub image_size: usize,
    /// Timed steps.
    pub steps: usize,
    /// The activation dtype.
    pub precision: Precision,
    /// Images per BatchNorm group, if not the whole batch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bn_images: Option<usize>,
    /// Median over the timed steps of forward + backward + SGD update.
    pub train_step_ms: f64,
    /// Training throughput.
    pub train_images_per_sec: f64,
    /// Median over the timed steps of an eval-mode forward.
    pub infer_step_ms: f64,
    /// Inference throughput.
    pub infer_images_per_sec: f64,
    /// Peak resident memory of the process over the train steps (Linux; host memory only).
    pub peak_rss_mib: Option<f64>,
}

/// Times the train step and inference of a freshly initialised model on random images,
/// telling `progress` of each step.
pub fn run(
    options: &BenchOptions,
    device: &Device,
    progress: &mut dyn Progress,
) -> Result<StepTimings> {
    let mut model = Model::new(&ModelConfig::full(options.arch), device, 0)?;
    if let Some(images) = options.bn_images {
        model.set_batch_groups(BatchGroups::Ghost { images });
    }
    let classes = model.config().num_classes;
    let (n, size) = (options.batch_size, options.image_size);
    let images = Tensor::randn(0f32, 1., (n, 3, size, size), device)?;
    let labels: Vec<u32> = (0..n).map(|i| (i * 37 % classes) as u32).collect();
    let targets = Tensor::from_vec(labels, n, device)?;
    let mut sgd = Sgd::new(0.9, 1e-4);

    let steps_of_each = (options.warmup + options.steps) as u64;
    progress.start(Work::Benchmarking, 2 * steps_of_each, 0);
    let train_peak = PeakSpan::start();
    let train_ms = time_steps(options, device, "train step", progress, || {
        let out = forward_backward(&model, &images, &targets, options.precision)?;
        sgd.step(model.store().parameters(), &out.grads, 0.01)?;
        Ok(())
    })?;
    // Where the kernel cannot reset its peak, the process's: the model's creation before.
    let peak_rss_mib = train_peak.peak_mib().or_else(memory::peak_rss_mib);
    let infer_ms = time_steps(options, device, "inference", progress, || {
        model.forward(
            &images.to_dtype(options.precision.activation_dtype())?,
            Mode::Eval,
        )?;
        Ok(())
    })?;
    progress.finish();
    let per_sec = |ms: f64| n as f64 / (ms / 1000.0);
    Ok(StepTimings {
        model: format!("CORnet-{}", options.arch),
        device: format!("{device:?}"),
        batch_size: n,
        precision: options.precision,
        bn_images: options.bn_images,
        image_size: size,
        steps: options.steps,
        train_step_ms: train_ms,
        train_images_per_sec: per_sec(train_ms),
        infer_step_ms: infer_ms,
        infer_images_per_sec: per_sec(infer_ms),
        peak_rss_mib,
    })
}

/// Median milliseconds of `steps` runs of `step` after `warmup` untimed ones, each told to
/// `progress` as `what`.
fn time_steps(
    options: &BenchOptions,
    device: &Device,
    what: &str,
    progress: &mut dyn Progress,
    mut step: impl FnMut() -> Result<()>,
) -> Result<f64> {
    let total = options.warmup + options.steps;
    let mut times = Vec::with_capacity(options.steps);
    for k in 0..total {
        let start = Instant::now();
        step()?;
        device.synchronize()?;
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        let warming_up = k < options.warmup;
        if !warming_up {
            times.push(ms);
        }
        progress.advance(1);
        progress.say(&format!("{what}: {ms:.0} ms"));
        let untimed = if warming_up { " (warm-up)" } else { "" };
        progress.note(&format!("{what} {}/{total}{untimed}: {ms:.0} ms", k + 1));
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// Gradient all-reduce throughput over the ranks of `comm`, against `memcpy` of the same
/// buffer on this machine.
#[derive(Debug, Serialize)]
pub struct AllReduceTimings {
    /// Ranks taking part.
    pub ranks: usize,
    /// Floats per all-reduce.
    pub floats: usize,
    /// Median seconds of one all-reduce.
    pub seconds: f64,
    /// Buffer bytes per second (NCCL's "algorithm bandwidth").
    pub algbw_gb_per_sec: f64,
    /// Bytes each rank moves per second, 2 (n - 1) / n of the buffer ("bus bandwidth").
    pub busbw_gb_per_sec: f64,
    /// One-thread copy of the same buffer, for scale.
    pub memcpy_gb_per_sec: f64,
    /// How close the transport comes to a local copy.
    pub busbw_over_memcpy: f64,
}

/// Times `iters` all-reduces of `floats` floats (after a warm-up one) over `comm`'s ranks.
pub fn all_reduce(
    comm: &mut dyn crate::distributed::Communicator,
    floats: usize,
    iters: usize,
) -> Result<AllReduceTimings> {
    if comm.world_size() < 2 {
        return Err(BenchError::SingleRank);
    }
    let mut data = vec![1.0f32; floats];
    comm.all_reduce_sum(&mut data)?; // warm-up: connections, page faults
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters {
        comm.barrier()?;
        let start = Instant::now();
        comm.all_reduce_sum(&mut data)?;
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let seconds = times[times.len() / 2];
    let mut copy = vec![0f32; floats];
    let mut copies = Vec::with_capacity(iters);
    for _ in 0..iters {
        let start = Instant::now();
        copy.copy_from_slice(std::hint::black_box(&data));
        copies.push(start.elapsed().as_secs_f64());
    }
    copies.sort_by(f64::total_cmp);
    let bytes = (floats * 4) as f64;
    let n = comm.world_size() as f64;
    let algbw = bytes / seconds / 1e9;
    let busbw = algbw * 2.0 * (n - 1.0) / n;
    let memcpy = bytes / copies[copies.len() / 2] / 1e9;
    Ok(AllReduceTimings {
        ranks: comm.world_size(),
        floats,
        seconds,
        algbw_gb_per_sec: algbw,
        busbw_gb_per_sec: busbw,
        memcpy_gb_per_sec: memcpy,
        busbw_over_memcpy: busbw / memcpy,
    })
}
