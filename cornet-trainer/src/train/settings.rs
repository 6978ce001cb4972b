//! What the loop needs to know of an experiment, read from its config in one place.

use crate::checkpoint::CheckpointPolicy;
use crate::config::{Config, Precision};
use crate::optim::LrSchedule;
use std::path::PathBuf;

/// Steps between checks that all ranks hold the same weights: often enough to catch a
/// divergence early, rarely enough that the checksum's cost (one pass over the weights and
/// a broadcast) does not show.
const SYNC_CHECK_STEPS: u64 = 100;

/// The loop's settings. [`RunSettings::from_config`] reads them from an experiment; tests
/// write them directly.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// Training epochs.
    pub epochs: u64,
    /// The learning rate over (fractional) epochs.
    pub schedule: LrSchedule,
    /// SGD momentum.
    pub momentum: f64,
    /// L2 weight decay.
    pub weight_decay: f64,
    /// The run's seed, recorded in checkpoints.
    pub seed: u64,
    /// Folder for records, checkpoints and the final weights.
    pub output_dir: PathBuf,
    /// Validate every this many epochs (0: never).
    pub save_val_epochs: f64,
    /// Validate before the first step too (when validating at all).
    pub val_at_start: bool,
    /// Checkpoint every this many epochs (0: never).
    pub save_model_epochs: u64,
    /// Checkpoint every this many steps (0: never).
    pub save_model_steps: u64,
    /// Checkpoint every this many seconds (0: never).
    pub save_model_secs: u64,
    /// Checkpoints kept.
    pub keep: usize,
    /// Hash of the resolved config, for provenance.
    pub config_hash: String,
    /// Steps between checks that all ranks hold the same weights.
    pub sync_check_steps: u64,
    /// The dtype of activations.
    pub precision: Precision,
    /// The elastic agent's id of this job, recorded in its checkpoints (see
    /// [`Provenance::elastic_run`](crate::checkpoint::Provenance::elastic_run)).
    pub elastic_run: Option<String>,
}

impl RunSettings {
    /// The settings of the experiment `config` describes.
    pub fn from_config(config: &Config) -> Self {
        let (optim, output) = (&config.optim, &config.output);
        RunSettings {
            epochs: config.train.epochs,
            schedule: LrSchedule::Step {
                base_lr: optim.lr,
                step_size: optim.step_size,
                gamma: optim.gamma,
            },
            momentum: optim.momentum,
            weight_decay: optim.weight_decay,
            seed: config.train.seed,
            output_dir: output.path.clone(),
            save_val_epochs: output.save_val_epochs,
            val_at_start: output.val_at_start,
            save_model_epochs: output.save_model_epochs,
            save_model_steps: output.save_model_steps,
            save_model_secs: output.save_model_secs,
            keep: output.keep,
            config_hash: config.hash(),
            sync_check_steps: SYNC_CHECK_STEPS,
            precision: config.train.precision,
            elastic_run: None,
        }
    }

    /// When to checkpoint, as these settings say.
    pub fn checkpoint_policy(&self) -> CheckpointPolicy {
        CheckpointPolicy::new(
            self.save_model_steps,
            self.save_model_epochs,
            self.save_model_secs,
        )
    }
}
