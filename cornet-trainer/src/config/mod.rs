//! Experiment configs: one YAML file per run, `--set key.path=value` overrides, every field
//! checked, errors that name the file, line and key.

mod error;
mod locate;

pub use error::{ConfigError, Origin};

use crate::distributed::Backend;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// A change to a config's field from the command line: `--set key.path=value`, or one of the
/// original's flags (`--lr 0.1` sets `optim.lr`). A value that is wrong is blamed on its flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// The flag that asked for it: `--set`, `--lr`.
    pub flag: String,
    /// `key.path=value`, the value in YAML syntax.
    pub assignment: String,
}

impl Override {
    /// `--set key.path=value`.
    pub fn set(assignment: impl Into<String>) -> Self {
        Override {
            flag: "--set".into(),
            assignment: assignment.into(),
        }
    }

    /// `flag` setting `key` to `value` (YAML syntax).
    pub fn by_flag(flag: &str, key: &str, value: impl std::fmt::Display) -> Self {
        Override {
            flag: flag.into(),
            assignment: format!("{key}={value}"),
        }
    }

    /// The key it sets (all of the assignment when it is not `key=value`).
    fn key(&self) -> &str {
        self.assignment
            .split_once('=')
            .map_or(self.assignment.as_str(), |(key, _)| key)
    }
}

/// A whole experiment.
///
/// ```
/// use cornet_trainer::config::{Config, Override};
/// use std::path::Path;
///
/// let yaml = "
/// model: {arch: Z}
/// data: {train: /data/imagenet/train}
/// optim: {lr: 0.01, step_size: 10}
/// train: {epochs: 25, batch_size: 256}
/// output: {path: runs/z}
/// ";
/// // As `--set optim.lr=0.05` on the command line.
/// let overrides = vec![Override::set("optim.lr=0.05")];
/// let config = Config::parse(yaml, Path::new("z.yaml"), &overrides)?;
/// assert_eq!(config.optim.lr, 0.05);
/// assert_eq!(config.model.times, 5); // the default
/// # Ok::<(), cornet_trainer::config::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Which CORnet, at which size.
    pub model: ModelSection,
    /// The images and how they are loaded.
    pub data: DataSection,
    /// SGD and its learning-rate schedule.
    pub optim: OptimSection,
    /// Epochs, batch, seed, device and precision.
    pub train: TrainSection,
    /// Ranks and their transport (one process on one device when absent).
    #[serde(default)]
    pub dist: DistSection,
    /// Where the run writes, and when it validates and checkpoints.
    pub output: OutputSection,
}

/// `model:` the network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// Z, R, RT or S.
    pub arch: String,
    /// Time steps that R and RT unroll.
    #[serde(default = "defaults::times")]
    pub times: usize,
    /// Classes of the decoder (1000 for ImageNet).
    #[serde(default = "defaults::num_classes")]
    pub num_classes: usize,
    /// Output channels of V1, V2, V4, IT.
    #[serde(default = "defaults::widths")]
    pub widths: Vec<usize>,
    /// Images that each BatchNorm's batch statistics cover in training (CORnet-S), whatever
    /// the number of ranks: a divisor of each rank's batch (its groups normalized apart) or a
    /// multiple of it (the ranks of a group sum their statistics). Unset: each rank's batch.
    /// The original's 2-GPU `nn.DataParallel` normalized over 128 of its 256 images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bn_images: Option<usize>,
}

/// `data.format`: how the images are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataFormat {
    /// A folder of class folders of images, as torchvision's ImageFolder.
    Imagefolder,
    /// WebDataset tar shards written by `cornet-data pack`.
    Shards,
}

/// `data:` the images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// Training images: an ImageFolder root or a folder of shards.
    pub train: PathBuf,
    /// Validation images (optional: no validation without).
    #[serde(default)]
    pub val: Option<PathBuf>,
    /// How the images are stored.
    #[serde(default = "defaults::format")]
    pub format: DataFormat,
    /// Decoding threads.
    #[serde(default = "defaults::workers")]
    pub workers: usize,
    /// Side of the square crops fed to the model.
    #[serde(default = "defaults::image_size")]
    pub image_size: usize,
    /// Batches decoded ahead of the training step.
    #[serde(default = "defaults::prefetch")]
    pub prefetch: usize,
    /// Skip (and count) unreadable images instead of stopping.
    #[serde(default = "defaults::yes")]
    pub skip_bad_images: bool,
    /// Generate a small labelled dataset at `train` and `val` when they do not exist, so that
    /// a smoke run needs no download.
    #[serde(default)]
    pub synthetic: Option<SyntheticData>,
}

/// The most images `data.synthetic` generates.
pub const MAX_SYNTHETIC_IMAGES: usize = 100_000;

/// The largest side of a generated image.
pub const MAX_SYNTHETIC_SIZE: usize = 1024;

/// `data.synthetic`: a generated dataset for smoke runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyntheticData {
    /// Classes (at least 2).
    pub classes: usize,
    /// Training images per class.
    pub train_per_class: usize,
    /// Validation images per class.
    pub val_per_class: usize,
    /// Side of the generated images.
    pub size: usize,
}

/// `optim:` SGD with a step learning-rate schedule, as the original.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimSection {
    /// Initial learning rate.
    pub lr: f64,
    /// SGD momentum.
    #[serde(default = "defaults::momentum")]
    pub momentum: f64,
    /// L2 weight decay.
    #[serde(default = "defaults::weight_decay")]
    pub weight_decay: f64,
    /// Epochs between learning-rate drops.
    pub step_size: f64,
    /// Factor of each drop.
    #[serde(default = "defaults::gamma")]
    pub gamma: f64,
}

/// `train:` the run itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSection {
    /// Training epochs.
    pub epochs: u64,
    /// Images per optimizer step over all ranks, as the original's `--batch_size`: each of the
    /// `WORLD_SIZE` ranks takes `batch_size / WORLD_SIZE` of them (it must divide evenly).
    pub batch_size: usize,
    /// Fixes the initial weights, the data order and the augmentations.
    #[serde(default)]
    pub seed: u64,
    /// `auto` (the default: CUDA when this build has it and a GPU opens, else the CPU), `cpu`,
    /// `cuda` or `cuda:N`.
    #[serde(default = "defaults::device")]
    pub device: String,
    /// The dtype of activations: `f32` (the default, and the parity reference) or `bf16`.
    #[serde(default)]
    pub precision: Precision,
}

/// Mixed precision as autocast does it: activations and convolutions in the chosen dtype;
/// weights, gradients, optimizer state, normalization statistics and the loss in f32.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Everything in f32.
    #[default]
    F32,
    /// No loss scaling: bf16 keeps f32's 8-bit exponent, so gradients that fp16 would flush
    /// to zero (below ~6e-8) stay representable; only the mantissa is shorter.
    Bf16,
}

impl Precision {
    /// The dtype activations are computed in.
    pub fn activation_dtype(self) -> candle_core::DType {
        match self {
            Precision::F32 => candle_core::DType::F32,
            Precision::Bf16 => candle_core::DType::BF16,
        }
    }
}

/// `dist:` devices and ranks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistSection {
    /// Devices to train on, as the original's `--ngpus`: `0` trains on the CPU (whatever
    /// `train.device` says), `N` on N devices, one rank each (`cornet-trainer launch --nproc N`
    /// or `scripts/launch_2gpu.sh` starts them); see
    /// [`Placement`](crate::distributed::placement::Placement).
    #[serde(default = "defaults::ngpus")]
    pub ngpus: usize,
    /// The transport between ranks: `auto`, `nccl` or `tcp`.
    #[serde(default = "defaults::backend")]
    pub backend: Backend,
}

impl Default for DistSection {
    fn default() -> Self {
        DistSection {
            ngpus: defaults::ngpus(),
            backend: defaults::backend(),
        }
    }
}

/// `output:` where the run writes, and when it validates and checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSection {
    /// Folder for records, checkpoints and the final weights.
    pub path: PathBuf,
    /// Validate every this many epochs (0: never).
    #[serde(default = "defaults::save_val_epochs")]
    pub save_val_epochs: f64,
    /// Checkpoint every this many epochs (0: never).
    #[serde(default = "defaults::one")]
    pub save_model_epochs: u64,
    /// Checkpoint every this many seconds (0: never).
    #[serde(default = "defaults::save_model_secs")]
    pub save_model_secs: u64,
    /// Checkpoint every this many steps (0: never).
    #[serde(default)]
    pub save_model_steps: u64,
    /// Checkpoints kept (the newest).
    #[serde(default = "defaults::keep")]
    pub keep: usize,
    /// TensorBoard event files in `<path>/tensorboard/` (rank 0; `tensorboard --logdir`).
    /// Left out of the config when false, so that the hash of a config written before the
    /// key existed is the same.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tensorboard: bool,
    /// Validate before the first step too, as the original (when validating at all). False
    /// skips that one validation (half an hour over ImageNet's at 224 px on a CPU) and keeps
    /// the others.
    #[serde(default = "defaults::yes", skip_serializing_if = "defaults::is_yes")]
    pub val_at_start: bool,
    /// Where no progress bar can be drawn (stderr not a terminal: a batch job's log, nohup, a
    /// pipe), a progress line every this many training steps or validation batches (0: not by
    /// steps).
    #[serde(
        default = "defaults::log_every_steps",
        skip_serializing_if = "defaults::is_log_every_steps"
    )]
    pub log_every_steps: u64,
    /// ... and every this many seconds, whichever comes first (0: not by time).
    #[serde(
        default = "defaults::log_every_secs",
        skip_serializing_if = "defaults::is_log_every_secs"
    )]
    pub log_every_secs: u64,
}

mod defaults {
    use super::{Backend, DataFormat};
    pub fn times() -> usize {
        5
    }
    pub fn num_classes() -> usize {
        1000
    }
    pub fn widths() -> Vec<usize> {
        vec![64, 128, 256, 512]
    }
    pub fn format() -> DataFormat {
        DataFormat::Imagefolder
    }
    pub fn workers() -> usize {
        4
    }
    pub fn image_size() -> usize {
        224
    }
    pub fn prefetch() -> usize {
        4
    }
    pub fn yes() -> bool {
        true
    }
    pub fn is_yes(value: &bool) -> bool {
        *value
    }
    pub fn momentum() -> f64 {
        0.9
    }
    pub fn weight_decay() -> f64 {
        1e-4
    }
    pub fn gamma() -> f64 {
        0.1
    }
    pub fn device() -> String {
        "auto".into()
    }
    pub fn ngpus() -> usize {
        1
    }
    pub fn backend() -> Backend {
        Backend::Auto
    }
    pub fn save_val_epochs() -> f64 {
        0.5
    }
    pub fn one() -> u64 {
        1
    }
    pub fn save_model_secs() -> u64 {
        600
    }
    pub fn keep() -> usize {
        3
    }
    pub fn log_every_steps() -> u64 {
        100
    }
    pub fn is_log_every_steps(steps: &u64) -> bool {
        *steps == log_every_steps()
    }
    pub fn log_every_secs() -> u64 {
        60
    }
    pub fn is_log_every_secs(secs: &u64) -> bool {
        *secs == log_every_secs()
    }
}

impl Config {
    /// Reads `path`, applies `overrides` in order and checks every field.
    pub fn load(path: &Path, overrides: &[Override]) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::io(path, e))?;
        Self::parse(&text, path, overrides)
    }

    /// [`Config::load`] on text already read; `path` names it in errors.
    pub fn parse(text: &str, path: &Path, overrides: &[Override]) -> Result<Config, ConfigError> {
        let at = |key: &str, message: String| ConfigError::at(path, text, key, message);
        let mut value: serde_yaml::Value =
            serde_yaml::from_str(text).map_err(|e| ConfigError::syntax(path, &e))?;
        for change in overrides {
            let flag = |key: &str, message: String| ConfigError::flag(&change.flag, key, message);
            let Some((key, raw)) = change.assignment.split_once('=') else {
                return Err(flag(&change.assignment, "expected key.path=value".into()));
            };
            let parsed: serde_yaml::Value = serde_yaml::from_str(raw)
                .map_err(|e| flag(key, format!("bad value {raw:?}: {e}")))?;
            locate::set(&mut value, key, parsed).map_err(|message| flag(key, message))?;
        }
        // A data folder named on the command line (--data-path, --set data.train=...) must
        // hold the user's data: generated images go only where the file itself says.
        if overrides
            .iter()
            .any(|o| matches!(o.key(), "data.train" | "data.val"))
        {
            if let Some(data) = value.get_mut("data").and_then(|d| d.as_mapping_mut()) {
                data.remove("synthetic");
            }
        }
        // A wrong value is blamed on where it came from: the last flag that set it, else its
        // line.
        let blame = |key: &str, message: String| {
            let last = overrides.iter().rev().find(|o| o.key() == key);
            match last {
                Some(change) => ConfigError::flag(&change.flag, key, message),
                None => at(key, message),
            }
        };
        let config: Config = serde_path_to_error::deserialize(value).map_err(|e| {
            let key = e.path().to_string();
            let key = match key.as_str() {
                "." => "",
                key => key,
            };
            blame(key, e.inner().to_string())
        })?;
        config
            .validate()
            .map_err(|(key, message)| blame(key, message))?;
        Ok(config)
    }

    /// The first impossible value: its key path and what is wrong.
    fn validate(&self) -> Result<(), (&'static str, String)> {
        let check = |ok: bool, key: &'static str, message: &str| {
            if ok {
                Ok(())
            } else {
                Err((key, message.to_string()))
            }
        };
        self.arch().map_err(|e| ("model.arch", e.to_string()))?;
        check(self.model.times >= 1, "model.times", "must be at least 1")?;
        check(
            self.model.num_classes >= 1,
            "model.num_classes",
            "must be at least 1",
        )?;
        check(
            self.model.widths.len() == 4 && self.model.widths.iter().all(|&w| w > 0),
            "model.widths",
            "must be 4 positive channel counts (V1, V2, V4, IT)",
        )?;
        self.model_config()
            .validate()
            .map_err(|e| ("model.widths", e.to_string()))?;
        if let Some(images) = self.model.bn_images {
            check(
                self.arch().ok() == Some(cornet_model::Arch::S),
                "model.bn_images",
                "applies to CORnet-S only, the one CORnet with BatchNorm",
            )?;
            check(
                images >= 1 && self.train.batch_size.is_multiple_of(images),
                "model.bn_images",
                &format!(
                    "must divide train.batch_size ({}): groups of {images} images cannot tile it",
                    self.train.batch_size
                ),
            )?;
        }
        check(self.data.workers >= 1, "data.workers", "must be at least 1")?;
        check(
            self.data.image_size >= 32,
            "data.image_size",
            "must be at least 32",
        )?;
        check(
            self.data.prefetch >= 1,
            "data.prefetch",
            "must be at least 1",
        )?;
        check(
            self.optim.lr > 0.0 && self.optim.lr.is_finite(),
            "optim.lr",
            "must be a positive number",
        )?;
        check(
            (0.0..1.0).contains(&self.optim.momentum),
            "optim.momentum",
            "must be in [0, 1)",
        )?;
        check(
            self.optim.weight_decay >= 0.0,
            "optim.weight_decay",
            "must not be negative",
        )?;
        check(
            self.optim.step_size > 0.0,
            "optim.step_size",
            "must be positive",
        )?;
        check(
            self.optim.gamma > 0.0 && self.optim.gamma <= 1.0,
            "optim.gamma",
            "must be in (0, 1]",
        )?;
        check(self.train.epochs >= 1, "train.epochs", "must be at least 1")?;
        check(
            self.train.batch_size >= 1,
            "train.batch_size",
            "must be at least 1",
        )?;
        check(
            self.output.save_val_epochs >= 0.0,
            "output.save_val_epochs",
            "must not be negative (0 turns validation off)",
        )?;
        check(self.output.keep >= 1, "output.keep", "must be at least 1")?;
        if let Some(synthetic) = &self.data.synthetic {
            check(
                synthetic.classes >= 2 && synthetic.train_per_class >= 1 && synthetic.size >= 32,
                "data.synthetic",
                "needs at least 2 classes, 1 training image per class and images of 32 px",
            )?;
            // A smoke set, written to disk before training: bounded so that a typo cannot
            // fill the disk (1e8 classes wrote 2.7 GB before anything else happened).
            let images = synthetic.classes.saturating_mul(
                synthetic
                    .train_per_class
                    .saturating_add(synthetic.val_per_class),
            );
            check(
                images <= MAX_SYNTHETIC_IMAGES && synthetic.size <= MAX_SYNTHETIC_SIZE,
                "data.synthetic",
                &format!(
                    "generates at most {MAX_SYNTHETIC_IMAGES} images (classes x (train_per_class \
                     + val_per_class), here {images}) of at most {MAX_SYNTHETIC_SIZE} px"
                ),
            )?;
        }
        Ok(())
    }

    /// `model.arch` as an [`cornet_model::Arch`].
    pub fn arch(&self) -> cornet_model::Result<cornet_model::Arch> {
        self.model.arch.parse()
    }

    /// The model this config trains. Call after [`Config::load`], which checked it.
    pub fn model_config(&self) -> cornet_model::ModelConfig {
        let arch = self.arch().unwrap_or(cornet_model::Arch::Z);
        let mut config = cornet_model::ModelConfig::full(arch);
        config.times = self.model.times;
        config.num_classes = self.model.num_classes;
        if let [a, b, c, d] = self.model.widths[..] {
            config.widths = [a, b, c, d];
        }
        config
    }

    /// The resolved config, as saved beside a run's outputs.
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).expect("a config always serializes")
    }

    /// SHA-256 of the resolved config: what a checkpoint records to tell runs apart. The run
    /// folder's own path is left out, so that a run moved elsewhere still resumes, and so are
    /// the keys that change what a run shows, not what it trains (`output.tensorboard`,
    /// `output.val_at_start`, `output.log_every_*`): their defaults are left out of the
    /// serialized config, so that the hash of a config written before they existed is the
    /// same.
    pub fn hash(&self) -> String {
        let mut unplaced = self.clone();
        unplaced.output.path = PathBuf::new();
        unplaced.output.tensorboard = false;
        unplaced.output.val_at_start = defaults::yes();
        unplaced.output.log_every_steps = defaults::log_every_steps();
        unplaced.output.log_every_secs = defaults::log_every_secs();
        let json = serde_json::to_vec(&unplaced).expect("a config always serializes");
        hex::encode(Sha256::digest(json))[..16].to_string()
    }
}
