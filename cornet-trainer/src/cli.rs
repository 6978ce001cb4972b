//! The command line: `cornet-trainer <command>`, with the original `run.py` flag names. These
//! types belong to the binary; `commands` translates them into the library's requests.

use clap::{Args, Parser, Subcommand, ValueEnum};
use cornet_trainer::config::{DataFormat, Precision};
use cornet_trainer::network::NetworkSpec;
use cornet_trainer::published;
use cornet_trainer::score::command::{Metric, COMPONENTS};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "cornet-trainer",
    version,
    about = "Train, run and score CORnet models (Z, R, RT, S)",
    long_about = "Train, run and score the CORnet models (Kubilius, Schrimpf et al., NeurIPS 2019).\n\n\
                  `cornet-trainer test` extracts features as the original `run.py test` did."
)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Without a command: train.
    #[command(flatten)]
    pub train: TrainArgs,
}

/// Training, the default command: `cornet-trainer --config configs/cornet_s.yaml`. The
/// original `run.py train` flags override the config's fields.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The experiment: a YAML file as in configs/.
    #[arg(long, short = 'c', required = true)]
    pub config: Option<PathBuf>,

    /// Override a config field, e.g. `--set optim.lr=0.05` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,

    /// Continue a run: `auto` for its newest good checkpoint, or a checkpoint folder.
    #[arg(long, value_name = "PATH|auto")]
    pub resume: Option<String>,

    /// Resume even if the config or the training data changed since the checkpoint.
    #[arg(long)]
    pub force: bool,

    /// Start from these weights: a path (.pth or safetensors), or Z, R, RT or S for the
    /// published weights (downloaded into PyTorch's hub cache). An existing path wins over a
    /// name.
    #[arg(long, value_name = "PATH|Z|R|RT|S")]
    pub init: Option<PathBuf>,

    /// ImageNet root with train/ and val/ folders (sets data.train and data.val).
    #[arg(long, alias = "data_path")]
    pub data_path: Option<PathBuf>,

    /// Output folder (output.path).
    #[arg(short = 'o', long, alias = "output_path")]
    pub output_path: Option<PathBuf>,

    /// Z, R, RT or S (model.arch).
    #[arg(long)]
    pub model: Option<String>,

    /// Time steps of R and RT (model.times).
    #[arg(long)]
    pub times: Option<usize>,

    /// Ranks (dist.ngpus).
    #[arg(long)]
    pub ngpus: Option<usize>,

    /// Decoding threads (data.workers).
    #[arg(short = 'j', long)]
    pub workers: Option<usize>,

    /// Images per step over all ranks (train.batch_size).
    #[arg(long, alias = "batch_size")]
    pub batch_size: Option<usize>,

    /// Initial learning rate (optim.lr).
    #[arg(long)]
    pub lr: Option<f64>,

    /// Epochs between learning-rate drops (optim.step_size).
    #[arg(long, alias = "step_size")]
    pub step_size: Option<f64>,

    /// Training epochs (train.epochs).
    #[arg(long)]
    pub epochs: Option<u64>,

    /// SGD momentum (optim.momentum).
    #[arg(long)]
    pub momentum: Option<f64>,

    /// L2 weight decay (optim.weight_decay).
    #[arg(long, alias = "weight_decay")]
    pub weight_decay: Option<f64>,

    /// Image side (data.image_size).
    #[arg(long)]
    pub imsize: Option<usize>,
}

impl TrainArgs {
    /// The `--set` overrides followed by the original's flags as overrides.
    pub fn overrides(&self) -> Vec<String> {
        let mut out = self.set.clone();
        let mut put = |key: &str, value: Option<String>| {
            if let Some(value) = value {
                out.push(format!("{key}={value}"));
            }
        };
        if let Some(root) = &self.data_path {
            put("data.train", Some(root.join("train").display().to_string()));
            put("data.val", Some(root.join("val").display().to_string()));
        }
        put(
            "output.path",
            self.output_path.as_ref().map(|p| p.display().to_string()),
        );
        put("model.arch", self.model.clone());
        put("model.times", self.times.map(|v| v.to_string()));
        put("dist.ngpus", self.ngpus.map(|v| v.to_string()));
        put("data.workers", self.workers.map(|v| v.to_string()));
        put("train.batch_size", self.batch_size.map(|v| v.to_string()));
        put("optim.lr", self.lr.map(|v| v.to_string()));
        put("optim.step_size", self.step_size.map(|v| v.to_string()));
        put("train.epochs", self.epochs.map(|v| v.to_string()));
        put("optim.momentum", self.momentum.map(|v| v.to_string()));
        put(
            "optim.weight_decay",
            self.weight_decay.map(|v| v.to_string()),
        );
        put("data.image_size", self.imsize.map(|v| v.to_string()));
        out
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a model on preprocessed images and save module outputs (the original `run.py test`).
    Test(TestArgs),
    /// Top-1, top-5 and mean cross-entropy of weights on a labelled image folder, with
    /// training's validation transform; one JSON line on stdout. Several ranks (under
    /// `launch --nproc N -- eval ...`) each score a disjoint part.
    Eval(EvalArgs),
    /// How brain-like are features: RSA, linear CKA and PLS neural predictivity with a
    /// split-half noise ceiling, against neural recordings of the same stimuli.
    Score(ScoreArgs),
    /// Time the train step (forward, backward, update) and inference on synthetic input and
    /// print one JSON line.
    Bench(BenchArgs),
    /// Time the gradient all-reduce between ranks (start it under `launch`) and print one
    /// JSON line from rank 0.
    BenchAllreduce(BenchAllreduceArgs),
    /// Start one training process per device as torchrun does (same variables, same store),
    /// watch them, and restart all from the newest checkpoint when one fails. Under torchrun,
    /// srun or a PyTorchJob, start `cornet-trainer --config ...` directly instead.
    Launch(LaunchArgs),
    /// Draw the learning curves of one or more training runs into one SVG: loss and top-1
    /// (train: means per tenth of an epoch; validation: each one) and the learning rate,
    /// against epochs, one colour per run.
    Plot(PlotArgs),
}

#[derive(Debug, Args)]
pub struct PlotArgs {
    /// Run folders (each a training run's output.path, holding records.jsonl); the legend
    /// names each by its folder.
    #[arg(required = true, value_name = "RUN")]
    pub runs: Vec<PathBuf>,

    /// The SVG to write.
    #[arg(short = 'o', long, value_name = "FILE.svg")]
    pub output: PathBuf,
}

/// The network and its weights, as `test` and `eval` take them.
#[derive(Debug, Args)]
pub struct NetworkArgs {
    /// Which CORnet: Z, R, RT or S (R and RT share weights and differ in how time unrolls).
    #[arg(long)]
    pub model: cornet_model::Arch,

    /// Weights: a path (PyTorch .pth, zip or legacy format, or safetensors: a run's
    /// final.safetensors, a checkpoint's model.safetensors), or Z, R, RT or S for the published
    /// weights (downloaded into PyTorch's hub cache). An existing path wins over a name.
    /// Widths, classes and CORnet-S's recurrence are read off the shapes.
    #[arg(long, value_name = "PATH|Z|R|RT|S")]
    pub weights: PathBuf,

    /// Time steps that R and RT unroll (default 5, as the original).
    #[arg(long)]
    pub times: Option<usize>,
}

impl NetworkArgs {
    /// The network these flags name, a published name (`--weights S`) resolved to its file,
    /// downloaded if need be.
    pub fn resolve(&self) -> anyhow::Result<NetworkSpec> {
        Ok(NetworkSpec {
            arch: self.model,
            weights: published::resolve(&self.weights)?,
            times: self.times,
        })
    }
}

/// `eval`: how often the weights name the right class, as training's validation measures it.
#[derive(Debug, Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub network: NetworkArgs,

    /// The labelled images themselves (e.g. /data/imagenet/val, not its parent): one folder
    /// per class, labels in sorted class-name order as training gives them; or a folder of
    /// shards with --data-format shards.
    #[arg(long, alias = "data_path", value_name = "DIR")]
    pub data_path: PathBuf,

    /// How --data-path is stored (data.format in a config).
    #[arg(long, value_enum, default_value = "imagefolder")]
    pub data_format: DataFormatArg,

    /// The training set the weights learned (e.g. /data/imagenet/train): --data-path must
    /// hold its classes in the same order, as training checks its validation set.
    #[arg(long, value_name = "DIR")]
    pub classes_from: Option<PathBuf>,

    /// Side of the centre crop: Resize(round(N * 256 / 224)), CenterCrop(N), as training's
    /// validation.
    #[arg(long, alias = "imsize", default_value_t = 224, value_parser = clap::value_parser!(u64).range(1..))]
    pub image_size: u64,

    /// Images per forward pass on each rank.
    #[arg(long, alias = "batch_size", default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_size: u64,

    /// Decoding threads per rank.
    #[arg(short = 'j', long, default_value_t = 4)]
    pub workers: usize,

    /// Where to run: cpu, auto, or cuda[:N] in a build with the `cuda` feature (a bare `cuda`
    /// under `launch` is each rank's own GPU).
    #[arg(long, default_value = "cpu")]
    pub device: String,

    /// Activation dtype: f32, or bf16.
    #[arg(long, default_value = "f32")]
    pub precision: PrecisionArg,
}

#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// Model features, float32/64 .npy [stimuli, units] (e.g. from `cornet-trainer test`).
    #[arg(
        long,
        value_name = "F.npy",
        required_unless_present = "model",
        conflicts_with = "model"
    )]
    pub features: Option<PathBuf>,

    /// Neural responses, .npy [repetitions, stimuli, neuroids] (or [stimuli, neuroids]: no
    /// ceiling), stimuli in the order of the features' rows (or of the images, with --model).
    #[arg(long, value_name = "R.npy")]
    pub recordings: PathBuf,

    /// Cross-validation fold per stimulus (int64 .npy); drawn from --seed when not given.
    #[arg(long, value_name = "folds.npy")]
    pub folds: Option<PathBuf>,

    /// Split halves (int64 .npy [splits, repetitions], each row a permutation); drawn from
    /// --seed when not given.
    #[arg(long, value_name = "halves.npy")]
    pub split_halves: Option<PathBuf>,

    /// Which scores: RSA, linear CKA, PLS predictivity (with the ceiling), or all of them.
    #[arg(long, value_enum, default_value = "all")]
    pub metric: MetricArg,

    /// PLS components: at most as many as the features have units (as scikit-learn), and
    /// fewer than each fold's training stimuli.
    #[arg(long, default_value_t = COMPONENTS as u64, value_parser = clap::value_parser!(u64).range(1..))]
    pub components: u64,

    /// Seed of the folds and split halves drawn when not given.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// Write the folds and split halves drawn from --seed into this folder (folds.npy,
    /// split_halves.npy), to pass back with --folds and --split-halves; a different file
    /// already there is refused, never replaced. With --model they go into --output-path.
    #[arg(long, value_name = "DIR", conflicts_with = "model")]
    pub save_draws: Option<PathBuf>,

    /// Print one JSON object instead of a table (with --features).
    #[arg(long, conflicts_with = "model")]
    pub json: bool,

    #[command(flatten)]
    pub scan: ScoreModelArgs,
}

/// Scoring a model: its features are extracted from images instead of read from --features.
#[derive(Debug, Args)]
#[command(next_help_heading = "Scoring a model (instead of --features)")]
pub struct ScoreModelArgs {
    /// Extract and score every area's output at every time step (V1, V2, V4, IT) and the
    /// decoder's avgpool of this CORnet (Z, R, RT or S); writes scores.csv (area, time_step,
    /// metric, value) and scores.svg (score against time step per area) into --output-path.
    #[arg(long, requires_all = ["weights", "data_path", "output_path"])]
    pub model: Option<cornet_model::Arch>,

    /// Weights: a path (PyTorch .pth or safetensors), or Z, R, RT or S for the published
    /// weights (downloaded into PyTorch's hub cache). An existing path wins over a name.
    #[arg(long, value_name = "PATH|Z|R|RT|S", requires = "model")]
    pub weights: Option<PathBuf>,

    /// Time steps that R and RT unroll (default 5, as the original).
    #[arg(long, requires = "model")]
    pub times: Option<usize>,

    /// The stimuli: a folder of images (JPEG or PNG), preprocessed as `test --data-path`.
    #[arg(long, alias = "data_path", value_name = "DIR", requires = "model")]
    pub data_path: Option<PathBuf>,

    /// The images in the recordings' stimulus order: one file name (relative to --data-path)
    /// per line. Without it, the folder's images in sorted file-name order, as `test`.
    #[arg(long, value_name = "order.txt", requires = "model")]
    pub stimuli: Option<PathBuf>,

    /// Image side.
    #[arg(long, default_value_t = 224)]
    pub imsize: usize,

    /// Images per forward pass.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_size: u64,

    /// Decoding threads.
    #[arg(short = 'j', long, default_value_t = 4)]
    pub workers: usize,

    /// Where to run the model: cpu, or cuda[:N] in a build with the `cuda` feature.
    #[arg(long, default_value = "cpu")]
    pub device: String,

    /// Folder for scores.csv, scores.svg, file_list.txt and drawn folds (created if missing).
    #[arg(
        short = 'o',
        long = "output-path",
        alias = "output_path",
        requires = "model"
    )]
    pub output_path: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BenchAllreduceArgs {
    /// Floats per all-reduce (CORnet-S has 53M parameters).
    #[arg(long, default_value_t = 53_000_000)]
    pub floats: usize,

    /// Timed all-reduces; the median is reported.
    #[arg(long, default_value_t = 5)]
    pub iters: usize,
}

#[derive(Debug, Args)]
pub struct LaunchArgs {
    /// Processes (devices) on this node (torchrun's --nproc-per-node).
    #[arg(long, visible_alias = "nproc-per-node")]
    pub nproc: usize,

    /// Nodes in the job; start one launcher per node, each with its --node-rank and the same
    /// CORNET_JOB_SECRET in its environment (a job of one node makes its own).
    #[arg(long, default_value_t = 1)]
    pub nnodes: usize,

    /// This node's index, 0-based. Node 0's launcher serves the store.
    #[arg(long, default_value_t = 0)]
    pub node_rank: usize,

    /// Address of node 0, where its launcher serves the store (a PyTorch TCPStore, on this
    /// address's interface, to clients that prove the job's secret).
    #[arg(long, default_value = "127.0.0.1")]
    pub master_addr: String,

    /// Port of the store on node 0.
    #[arg(long, default_value_t = 29500)]
    pub master_port: u16,

    /// The job's id, the same on every node (TORCHELASTIC_RUN_ID); keeps jobs sharing a store
    /// apart.
    #[arg(long, default_value = "none")]
    pub run_id: String,

    /// The address this node's ranks listen on for their ring peers (default: the interface
    /// that reaches node 0). Set it where a node has several networks.
    #[arg(long)]
    pub local_addr: Option<std::net::IpAddr>,

    /// Times to restart all ranks after one fails; restarted ranks resume from the newest
    /// checkpoint of the run.
    #[arg(long, default_value_t = 3)]
    pub max_restarts: usize,

    /// Start more ranks than this node has cores (refused without it: each rank needs a core
    /// at least).
    #[arg(long)]
    pub oversubscribe: bool,

    /// Seconds without a training step after which a rank counts as hung (at least 1).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub heartbeat_timeout: u64,

    /// Seconds to wait for node 0's launcher at start-up (several nodes only).
    #[arg(long, default_value_t = 300)]
    pub rendezvous_timeout: u64,

    /// The trainer's arguments for every rank, after `--`.
    #[arg(last = true, required = true)]
    pub trainer_args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Which CORnet: Z, R, RT or S (full size, 1000 classes).
    #[arg(long)]
    pub model: cornet_model::Arch,

    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_size: u64,

    #[arg(long, default_value_t = 224, value_parser = clap::value_parser!(u64).range(32..))]
    pub image_size: u64,

    /// Timed steps; the median is reported.
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u64).range(1..))]
    pub steps: u64,

    /// Untimed steps first.
    #[arg(long, default_value_t = 2)]
    pub warmup: u64,

    /// Where to run: cpu, or cuda[:N] in a build with the `cuda` feature.
    #[arg(long, default_value = "cpu")]
    pub device: String,

    /// Activation dtype: f32, or bf16 (mixed precision, f32 weights and gradients).
    #[arg(long, default_value = "f32")]
    pub precision: PrecisionArg,

    /// BatchNorm (CORnet-S) over groups of this many images, as model.bn_images does on one
    /// rank (a divisor of --batch-size); the whole batch if left out.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub bn_images: Option<u64>,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    #[command(flatten)]
    pub network: NetworkArgs,

    /// Preprocessed images: a float32 .npy of shape [N, 3, H, W].
    #[arg(
        long,
        value_name = "X.npy",
        required_unless_present = "data_path",
        conflicts_with = "data_path"
    )]
    pub input_npy: Option<PathBuf>,

    /// A folder of images (JPEG or PNG, searched recursively), read in sorted file-name order
    /// and preprocessed as the original: Resize((imsize, imsize)), ToTensor, Normalize.
    #[arg(long, alias = "data_path", value_name = "DIR")]
    pub data_path: Option<PathBuf>,

    /// Image side for --data-path.
    #[arg(long, default_value_t = 224)]
    pub imsize: usize,

    /// Decoding threads for --data-path.
    #[arg(short = 'j', long, default_value_t = 4)]
    pub workers: usize,

    /// Save every area's output at every time step, `decoder.avgpool` and the logits to
    /// `OUTPUT/CORnet-<model>_taps.npz` instead of one layer.
    #[arg(long, conflicts_with_all = ["layer", "sublayer", "time_step"])]
    pub all_taps: bool,

    /// The area to read from: V1, V2, V4, IT or decoder.
    #[arg(long, default_value = "decoder")]
    pub layer: String,

    /// The module inside the area (`output`, `conv1`, `norm2_3`, `avgpool`, ...).
    #[arg(long, default_value = "avgpool")]
    pub sublayer: String,

    /// Which call of the module to keep: the time step for an area's `output`.
    #[arg(long = "time-step", alias = "time_step", default_value_t = 0)]
    pub time_step: usize,

    /// Images per forward pass.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_size: u64,

    /// Where to run: cpu, or cuda[:N] in a build with the `cuda` feature.
    #[arg(long, default_value = "cpu")]
    pub device: String,

    /// Folder for the output files (created if missing).
    #[arg(short = 'o', long = "output-path", alias = "output_path")]
    pub output_path: PathBuf,
}

/// `--metric`: the library's [`Metric`] as a command-line value.
// Variants carry no doc comments: clap would show them in `--help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MetricArg {
    Rsa,
    Cka,
    Pls,
    All,
}

impl From<MetricArg> for Metric {
    fn from(arg: MetricArg) -> Metric {
        match arg {
            MetricArg::Rsa => Metric::Rsa,
            MetricArg::Cka => Metric::Cka,
            MetricArg::Pls => Metric::Pls,
            MetricArg::All => Metric::All,
        }
    }
}

/// `--data-format`: the library's [`DataFormat`] as a command-line value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DataFormatArg {
    Imagefolder,
    Shards,
}

impl From<DataFormatArg> for DataFormat {
    fn from(arg: DataFormatArg) -> DataFormat {
        match arg {
            DataFormatArg::Imagefolder => DataFormat::Imagefolder,
            DataFormatArg::Shards => DataFormat::Shards,
        }
    }
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
