//! What can go wrong in training, from an experiment's config to its final weights. Messages
//! name the config key, file or rank at fault.

use crate::checkpoint::CheckpointError;
use crate::config::ConfigError;
use crate::device::DeviceError;
use crate::distributed::DistributedError;
use crate::error::{Cause, StoppedBySignal};
use crate::loading::DatasetError;
use crate::optim::OptimError;
use crate::records::RecordsError;
use cornet_data::DataError;
use cornet_model::ModelConfig;
use std::path::PathBuf;

/// A training run that could not start, continue or finish. The kinds tell apart a wrong
/// experiment (config, device, data that do not fit the model), a run folder in the way,
/// failures of the data, the model, checkpoints or the ranks, and I/O on the run's files.
///
/// The largest causes are boxed, so that every `Result` of the loop stays small.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The config could not be read or is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `train.device` names no device this build and machine have.
    #[error("train.device")]
    Device(#[source] DeviceError),
    /// The run diverged: the loss of a step, or the weights about to be saved, are not finite.
    /// Nothing non-finite is ever checkpointed, so the newest checkpoint is the last finite
    /// state.
    #[error(
        "step {step}: the {what} is not finite (NaN or infinite): the run diverged and stopped; \
         the newest checkpoint holds the last finite weights: continue with --resume auto and a \
         lower optim.lr"
    )]
    Diverged {
        /// The optimizer step after which it was found.
        step: u64,
        /// `loss` or `weights`.
        what: &'static str,
    },
    /// The checkpoint's epochs had another number of steps (`train.batch_size` or the training
    /// set changed): its place in the epoch cannot carry over, even with `--force`.
    #[error(
        "refusing to resume: the checkpoint was taken at {was} steps per epoch and this run has \
         {now} (train.batch_size or the training set changed); its place in the epoch does not \
         carry over, even with --force: train into another output.path (-o), or start from \
         its weights with --init"
    )]
    EpochLengthChanged {
        /// Steps per epoch of the checkpoint's run.
        was: u64,
        /// Steps per epoch now.
        now: u64,
    },
    /// The config needs more memory than the machine has available; the message names the
    /// fields that drive it.
    #[error("{0}")]
    TooBig(String),
    /// `train.batch_size` cannot be shared equally by the ranks.
    #[error("train.batch_size {batch_size} does not split evenly over {world_size} ranks")]
    UnevenBatch {
        /// The configured (global) batch size.
        batch_size: usize,
        /// The number of ranks.
        world_size: usize,
    },
    /// `data.synthetic` asked for together with `data.format: shards`.
    #[error("data.synthetic generates an ImageFolder: use it with data.format: imagefolder")]
    SyntheticShards,
    /// A dataset (`data.train`, `data.val`) could not be opened, or its classes do not fit
    /// the training set's or the model's.
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    /// The data failed: synthetic images not written, an unreadable batch (the message names
    /// the file).
    #[error(transparent)]
    Data(#[from] DataError),
    /// The training set is smaller than one batch.
    #[error("the training set gives no full batch: lower train.batch_size or add images")]
    NoFullBatch,
    /// A batch source ended before the last step of its epoch.
    #[error("the data ran out before the epoch's last step")]
    DataRanOut,
    /// The model could not be built, loaded, run or written.
    #[error(transparent)]
    Model(#[from] cornet_model::Error),
    /// The `--init` weights are another model than the config's.
    #[error(
        "--init {}: the weights are a {found:?}, the config asks for {expected:?}",
        path.display()
    )]
    InitMismatch {
        /// The weights file.
        path: PathBuf,
        /// The model they are.
        found: Box<ModelConfig>,
        /// The model the config asks for.
        expected: Box<ModelConfig>,
    },
    /// `output.path` holds what an earlier run left and `--resume` was not given.
    #[error(
        "{} already holds {what} of a run: continue it with --resume auto, or train into \
         another output.path (-o)",
        out.display()
    )]
    RunExists {
        /// The run's folder.
        out: PathBuf,
        /// What it holds: checkpoints, the final weights or the records.
        what: &'static str,
    },
    /// Another run is writing into `output.path` now.
    #[error(
        "{} is in use by another run (its lock is held by process {holder}): wait for it, or \
         train into another output.path (-o)",
        out.display()
    )]
    RunFolderBusy {
        /// The run's folder.
        out: PathBuf,
        /// The PID the lock file names.
        holder: String,
    },
    /// `--resume auto` found checkpoints, but none that loads.
    #[error(
        "--resume auto: no checkpoint in {} loads ({}): nothing was changed; resume from a \
         checkpoint folder with --resume DIR, or train into another output.path (-o)",
        dir.display(),
        damaged.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    NoUsableCheckpoint {
        /// The checkpoints' folder.
        dir: PathBuf,
        /// Every checkpoint in it, none of which loads.
        damaged: Vec<PathBuf>,
    },
    /// `--resume auto` in a finished run's folder whose checkpoints are gone.
    #[error(
        "--resume auto: {} holds a finished run's final weights but no checkpoint to resume \
         from: nothing was changed; train into another output.path (-o)",
        out.display()
    )]
    FinishedWithoutCheckpoint {
        /// The run's folder.
        out: PathBuf,
    },
    /// A checkpoint could not be written, read or verified.
    #[error(transparent)]
    Checkpoint(Box<CheckpointError>),
    /// The checkpoint to resume from belongs to another config or dataset (and no `--force`).
    #[error(
        "refusing to resume: {} (pass --force to resume anyway)",
        changes.join("; ")
    )]
    ProvenanceChanged {
        /// What changed, one line each.
        changes: Vec<String>,
    },
    /// The checkpoint's weights do not fit the model.
    #[error("loading the checkpoint's weights")]
    CheckpointWeights(#[source] cornet_model::Error),
    /// The ranks could not meet, a collective failed, or their weights diverged.
    #[error(transparent)]
    Distributed(#[from] DistributedError),
    /// An SGD update failed.
    #[error(transparent)]
    Optim(Box<OptimError>),
    /// A tensor operation failed.
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
    /// `records.jsonl` could not be read, cut back or appended to; the message names it.
    #[error(transparent)]
    Records(#[from] RecordsError),
    /// A file or folder of the run (`output.path`, its config, curves or final weights)
    /// could not be created, read or written; the message names it.
    #[error("{0}")]
    Io(String, #[source] Option<Cause>),
    /// The handlers of SIGINT, SIGTERM and SIGUSR1 could not be installed.
    #[error("installing the signal handlers")]
    Signals(#[source] std::io::Error),
    /// SIGINT or SIGTERM stopped the run before its end, after a checkpoint.
    #[error(transparent)]
    Stopped(#[from] StoppedBySignal),
}

impl From<CheckpointError> for TrainError {
    fn from(err: CheckpointError) -> Self {
        TrainError::Checkpoint(Box::new(err))
    }
}

impl From<OptimError> for TrainError {
    fn from(err: OptimError) -> Self {
        TrainError::Optim(Box::new(err))
    }
}

/// What training returns.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;
