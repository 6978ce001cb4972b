//! The command line: `cornet-trainer <command>`, with the original `run.py` flag names.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "cornet-trainer",
    version,
    about = "Train, run and score CORnet models (Z, R, RT, S)",
    long_about = "Train, run and score the CORnet models (Kubilius, Schrimpf et al., NeurIPS 2019).\n\n\
                  `cornet-trainer test` extracts features as the original `run.py test` did."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a model on preprocessed images and save module outputs (the original `run.py test`).
    Test(TestArgs),
    /// Time the train step (forward, backward, update) and inference on synthetic input and
    /// print one JSON line.
    Bench(BenchArgs),
    /// Start one training process per device with torchrun's rank environment, watch them,
    /// and restart all from the newest checkpoint when one fails.
    Launch(LaunchArgs),
}

#[derive(Debug, Args)]
pub struct LaunchArgs {
    /// Processes (devices) on this node.
    #[arg(long)]
    pub nproc: usize,

    /// Nodes in the job.
    #[arg(long, default_value_t = 1)]
    pub nnodes: usize,

    /// This node's index, 0-based.
    #[arg(long, default_value_t = 0)]
    pub node_rank: usize,

    /// Address of node 0, where rank 0 serves the rendezvous store.
    #[arg(long, default_value = "127.0.0.1")]
    pub master_addr: String,

    #[arg(long, default_value_t = 29500)]
    pub master_port: u16,

    /// Times to restart all ranks (with `--resume auto`) after one fails.
    #[arg(long, default_value_t = 3)]
    pub max_restarts: usize,

    /// Seconds without a training step after which a rank counts as hung.
    #[arg(long, default_value_t = 300)]
    pub heartbeat_timeout: u64,

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
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Which CORnet: Z, R, RT or S (R and RT share weights and differ in how time unrolls).
    #[arg(long)]
    pub model: cornet_model::Arch,

    /// Weights: a PyTorch .pth (zip or legacy format, as published) or a safetensors file.
    /// Widths, classes and CORnet-S's recurrence are read off its shapes.
    #[arg(long)]
    pub weights: PathBuf,

    /// Time steps that R and RT unroll (default 5, as the original).
    #[arg(long)]
    pub times: Option<usize>,

    /// Preprocessed images: a float32 .npy of shape [N, 3, H, W].
    #[arg(long, value_name = "X.npy")]
    pub input_npy: PathBuf,

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
