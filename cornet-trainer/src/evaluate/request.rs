//! `cornet-trainer eval`: the weights of a model scored on a labelled folder with training's
//! validation transform, on one rank or as one of several that each score a disjoint part.

use super::{evaluate, EvalError, Evaluation};
use crate::config::{DataFormat, Precision};
use crate::distributed::launch::Heartbeat;
use crate::distributed::placement::{visible_cuda_devices, Placement};
use crate::distributed::{self, Backend, RankEnv};
use crate::loading::{check_classes, open_images, ClassLimit, LabelledBatch};
use crate::network::NetworkSpec;
use crate::progress::{Progress, Quiet, Work};
use cornet_data::{Dataset, Pipeline, PipelineOptions, Transform};
use std::path::PathBuf;

/// What `eval` scores, and how.
#[derive(Debug, Clone)]
pub struct EvalRequest {
    /// The network and its weights.
    pub network: NetworkSpec,
    /// The labelled images: class folders in sorted order give the labels, as in training.
    pub data: PathBuf,
    /// How `data` is stored.
    pub format: DataFormat,
    /// A training set whose classes `data` must hold in the same order, as training checks
    /// its validation set.
    pub classes_from: Option<PathBuf>,
    /// Side of the validation transform's crop.
    pub image_size: usize,
    /// Images per forward pass on each rank.
    pub batch_size: usize,
    /// Decoding threads per rank.
    pub workers: usize,
    /// `cpu`, `auto`, or `cuda[:N]`; a bare `cuda` is the local rank's GPU.
    pub device: String,
    /// The activations' dtype.
    pub precision: Precision,
    /// This process's place among the ranks, `None` for a single process.
    pub rank_env: Option<RankEnv>,
}

/// The request's model on its labelled images, all ranks together; every rank returns the
/// same scores, and rank 0 tells `progress` of its images. Logits that are NaN or infinite
/// anywhere are an error, never a score.
pub fn run(request: &EvalRequest, progress: &mut dyn Progress) -> Result<Evaluation, EvalError> {
    let env = request.rank_env.as_ref();
    let (rank, world_size) = env.map_or((0, 1), |e| (e.rank, e.world_size));
    let placement = Placement::resolve(
        world_size,
        &request.device,
        world_size,
        env.map_or(0, |e| e.local_rank),
        visible_cuda_devices(),
    );
    let device = placement.open().map_err(EvalError::Device)?;
    let model = request.network.load(&device).map_err(EvalError::Weights)?;
    let images = open_labelled(request, model.config().num_classes)?;
    let total = images.len();
    let mut comm = distributed::connect(Backend::Auto, &device, env)?;
    let options = PipelineOptions {
        batch_size: request.batch_size,
        rank,
        world_size,
        workers: request.workers,
        prefetch: 2 * request.workers.max(1),
        // Every image counts: a skipped one would change the denominator unseen.
        skip_bad_images: false,
        seed: 0,
    };
    let transform = Transform::Val {
        size: request.image_size,
    };
    let pipeline = Pipeline::evaluation(images, transform, &options)?;
    let progress = match rank {
        0 => progress,
        _ => &mut Quiet,
    };
    let images_here = (rank..total).step_by(world_size).len();
    progress.start(Work::Evaluating, images_here as u64, 0);
    let heartbeat = Heartbeat::from_env();
    let batches = pipeline
        .epoch(0, 0)
        .map(|batch| -> Result<_, EvalError> { Ok(LabelledBatch::decoded(batch?)?) });
    let evaluated = evaluate::<EvalError>(
        &model,
        batches,
        request.precision.activation_dtype(),
        comm.as_mut(),
        |images| {
            heartbeat.beat();
            progress.advance(images as u64);
        },
    )?;
    progress.finish();
    let evaluation = evaluated.evaluation;
    if evaluated.nonfinite_images > 0 {
        return Err(EvalError::NonFinite {
            images: evaluated.nonfinite_images,
            total: evaluation.images,
        });
    }
    if !evaluation.loss.is_finite() {
        return Err(EvalError::NonFiniteLoss {
            images: evaluation.images,
        });
    }
    Ok(evaluation)
}

/// The labelled images, checked as training checks its validation set: the training set's
/// classes in its order when one is named, and no more classes than the model has outputs.
fn open_labelled(request: &EvalRequest, num_classes: usize) -> Result<Box<dyn Dataset>, EvalError> {
    let images = open_images(&request.data, request.format, "--data-path")?;
    let training = match &request.classes_from {
        Some(path) => Some((path, open_images(path, request.format, "--classes-from")?)),
        None => None,
    };
    check_classes(
        &request.data.display().to_string(),
        &request.data,
        images.classes(),
        training
            .as_ref()
            .map(|(path, set)| (path.as_path(), set.classes())),
        ClassLimit::Weights(num_classes),
    )?;
    Ok(images)
}
