//! Loss and accuracy of a model over labelled images, every image counted once across ranks:
//! training's validation and the `eval` command both run [`evaluate`]; [`request`] is what
//! the command asks (weights, a labelled folder, ranks).

mod error;
pub mod request;

pub use error::EvalError;

use crate::accuracy::Accuracy;
use crate::distributed::{Communicator, DistributedError};
use crate::loading::LabelledBatch;
use candle_core::{DType, Tensor};
use cornet_model::{Mode, Model};
use serde::Serialize;
use std::time::Instant;

/// Loss and accuracy over a whole labelled set, over all ranks: the `eval` command's JSON line.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Evaluation {
    /// Images scored, each once.
    pub images: u64,
    /// Fraction of images whose label has the highest logit.
    pub top1: f64,
    /// Fraction of images whose label is among the five highest logits.
    pub top5: f64,
    /// Mean cross-entropy over the images.
    pub loss: f64,
}

/// An [`Evaluation`], what it met and what it cost.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluated {
    /// The scores over all ranks.
    pub evaluation: Evaluation,
    /// Images, over all ranks, with a NaN or infinite logit: a diverged or damaged model.
    pub nonfinite_images: u64,
    /// Seconds this rank waited for batches.
    pub data_load_dur: f64,
    /// Seconds in the all-reduce of the sums.
    pub comm_dur: f64,
}

/// Runs every batch of this rank through `model` in eval mode (activations in `activations`,
/// the loss in f32), then sums the loss, hits and counts over the ranks of `comm`: each image
/// counts once when each rank's batches hold a disjoint part of the set (the evaluation
/// sampler's cut). `after_batch` hears of each batch's images, for progress and heartbeats.
pub fn evaluate<E>(
    model: &Model,
    mut batches: impl Iterator<Item = Result<LabelledBatch, E>>,
    activations: DType,
    comm: &mut dyn Communicator,
    mut after_batch: impl FnMut(usize),
) -> Result<Evaluated, E>
where
    E: From<candle_core::Error> + From<cornet_model::Error> + From<DistributedError>,
{
    // Loss sum, top-1 hits, top-5 hits, images, images with a non-finite logit.
    let mut totals = [0f64; 5];
    let mut data_load_dur = 0.0;
    loop {
        let wait = Instant::now();
        let Some(batch) = batches.next() else { break };
        data_load_dur += wait.elapsed().as_secs_f64();
        let batch = batch?;
        let device = model.device();
        let labels = batch.labels.to_device(device)?;
        let images = batch.images.to_device(device)?.to_dtype(activations)?;
        let logits = model.forward(&images, Mode::Eval)?.to_dtype(DType::F32)?;
        let loss = candle_nn::loss::cross_entropy(&logits, &labels)?
            .to_dtype(DType::F64)?
            .to_scalar::<f64>()?;
        let acc = Accuracy::of(&logits, &labels)?;
        totals[0] += loss * acc.count;
        totals[1] += acc.top1;
        totals[2] += acc.top5;
        totals[3] += acc.count;
        totals[4] += nonfinite_rows(&logits)? as f64;
        after_batch(acc.count as usize);
    }
    let comm_start = Instant::now();
    // Counts stay exact in f32 up to 2^24 images; the loss sum rounds to f32 (7 digits).
    let mut summed: Vec<f32> = totals.iter().map(|&v| v as f32).collect();
    comm.all_reduce_sum(&mut summed)?;
    let comm_dur = comm_start.elapsed().as_secs_f64();
    let images = f64::from(summed[3]);
    let per_image = |sum: f32| f64::from(sum) / images.max(1.0);
    Ok(Evaluated {
        evaluation: Evaluation {
            images: images as u64,
            top1: per_image(summed[1]),
            top5: per_image(summed[2]),
            loss: per_image(summed[0]),
        },
        nonfinite_images: summed[4] as u64,
        data_load_dur,
        comm_dur,
    })
}

/// Rows of `[N, classes]` logits holding a NaN or an infinity.
fn nonfinite_rows(logits: &Tensor) -> candle_core::Result<usize> {
    let rows = logits.to_vec2::<f32>()?;
    Ok(rows
        .iter()
        .filter(|row| row.iter().any(|v| !v.is_finite()))
        .count())
}
