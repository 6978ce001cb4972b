//! The flags several commands take, each defined once and flattened into every command that
//! takes it, so that a flag means the same, with the same type and default, everywhere.

use clap::builder::{RangedU64ValueParser, TypedValueParser};
use clap::{Args, ValueEnum};
use cornet_model::Arch;
use cornet_trainer::config::Precision;
use cornet_trainer::device::{parse_device, DeviceError};
use cornet_trainer::network::NetworkSpec;
use cornet_trainer::published;
use std::path::PathBuf;

/// A count of at least `min` (images, steps, threads...), refused by clap with the flag named.
pub fn at_least(min: u64) -> impl TypedValueParser<Value = usize> {
    RangedU64ValueParser::<usize>::new().range(min..)
}

/// The weights' forms, shared by `--weights` and training's `--init`.
macro_rules! weights_forms {
    () => {
        "a path (PyTorch .pth, zip or legacy format, or safetensors: a run's final.safetensors, \
         a checkpoint's model.safetensors), or Z, R, RT or S for the published weights \
         (downloaded into PyTorch's hub cache). An existing path wins over a name"
    };
}
pub(crate) use weights_forms;

/// The network and its weights (`test`, `eval`, `score --model`).
#[derive(Debug, Args)]
pub struct NetworkArgs {
    /// Which CORnet: Z, R, RT or S (R and RT share weights and differ in how time unrolls).
    #[arg(long)]
    pub model: Arch,

    #[arg(
        long,
        value_name = "PATH|Z|R|RT|S",
        help = concat!(
            "Weights: ", weights_forms!(), ". Widths, classes and CORnet-S's recurrence are \
             read off the shapes"
        )
    )]
    pub weights: PathBuf,

    /// Time steps that R and RT unroll (default 5, as the original).
    #[arg(long)]
    pub times: Option<usize>,
}

impl NetworkArgs {
    /// The network these flags name, a published name (`--weights S`) resolved to its file,
    /// downloaded if need be.
    pub fn resolve(&self) -> anyhow::Result<NetworkSpec> {
        // Before any download: another model's weights would only be refused once fetched.
        if let Some(named) = published::published_arch(&self.weights) {
            anyhow::ensure!(
                named == self.model,
                "--weights {named} names CORnet-{named}'s published weights, and --model is {}: \
                 name the same model in both",
                self.model
            );
        }
        Ok(NetworkSpec {
            arch: self.model,
            weights: published::resolve(&self.weights)?,
            times: self.times,
        })
    }
}

/// How images reach the model (`test`, `eval`, `score --model`).
#[derive(Debug, Args)]
pub struct ImageArgs {
    /// Image side: `test` and `score` resize each image to N x N, as the original's
    /// `run.py test`; `eval` resizes to N * 256 / 224 and crops the centre N x N, as
    /// training's validation.
    #[arg(long, visible_alias = "imsize", default_value_t = 224, value_parser = at_least(1))]
    pub image_size: usize,

    /// Images per forward pass (on each rank, under `launch`).
    #[arg(long, alias = "batch_size", default_value_t = 32, value_parser = at_least(1))]
    pub batch_size: usize,

    /// Decoding threads (on each rank, under `launch`).
    #[arg(short = 'j', long, default_value_t = 4)]
    pub workers: usize,
}

/// Where a command runs (`test`, `eval`, `score`, `bench`). Commands run on the CPU unless
/// asked, so that a result does not depend on what the machine has (training's
/// `train.device` is `auto`, since a run is meant for whatever the machine has).
#[derive(Debug, Args)]
pub struct DeviceArgs {
    /// Where to run: cpu; auto (a GPU if this build has the `cuda` feature and one opens, else
    /// the CPU); or cuda[:N] in a build with the `cuda` feature (a bare `cuda` under `launch`
    /// is each rank's own GPU).
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

impl DeviceArgs {
    /// The device `--device` names.
    pub fn open(&self) -> Result<candle_core::Device, DeviceError> {
        parse_device(&self.device)
    }
}

/// The activations' dtype (`eval`, `bench`).
#[derive(Debug, Args)]
pub struct PrecisionArgs {
    /// Activation dtype: f32, or bf16 (mixed precision: weights, and in training gradients,
    /// stay f32).
    #[arg(long, value_enum, default_value = "f32")]
    pub precision: PrecisionArg,
}

/// `--precision`: the library's [`Precision`] as a command-line value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PrecisionArg {
    F32,
    /// No loss scaling: bf16 keeps f32's 8-bit exponent, so gradients that fp16 would flush
    /// to zero (below ~6e-8) stay representable; only the mantissa is shorter.
    Bf16,
}

impl From<PrecisionArg> for Precision {
    fn from(arg: PrecisionArg) -> Precision {
        match arg {
            PrecisionArg::F32 => Precision::F32,
            PrecisionArg::Bf16 => Precision::Bf16,
        }
    }
}
