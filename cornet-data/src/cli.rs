//! The command line of `cornet-data` (clap types, private to the binary).

use bytesize::ByteSize;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    version,
    about = "Image data for cornet-rs: shards and the loader's throughput"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Seconds between progress lines when stderr is not a terminal (a log file, a pipe, a
    /// batch job); on a terminal progress is a bar.
    #[arg(long, global = true, default_value = "10", value_parser = parse_seconds)]
    pub progress_every: Duration,
}

#[derive(Subcommand)]
pub enum Command {
    /// Pack an ImageFolder into WebDataset tar shards (<key>.jpg + <key>.cls) with a byte
    /// offset index beside each shard and a manifest (classes, counts, checksums). An
    /// interrupted pack is finished by running the same command again.
    Pack(PackArgs),
    /// Run the training (or validation) pipeline over an ImageFolder or a folder of shards
    /// for a while (100 batches unless told otherwise), say what was timed, and print
    /// `images_per_sec X` as the last line.
    Bench(BenchArgs),
    /// Hash every shard of a folder whole and check it against manifest.json, indexing each
    /// afresh: the full check of shards that were copied (an open checks sizes, both ends
    /// and each sample read, and hashes a shard whole only when it indexes it).
    Verify(VerifyArgs),
    /// Write an ImageFolder of generated JPEGs (a striped pattern per class, with per-pixel
    /// noise), ImageNet-sized by default: data to benchmark the loader with where no images
    /// are at hand (the GPU proof's loader step uses it).
    Generate(GenerateArgs),
}

#[derive(Args)]
pub struct GenerateArgs {
    /// The folder to write (created; must be empty or absent).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 8, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub classes: usize,
    #[arg(long, default_value_t = 100, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub per_class: usize,
    /// Image width in pixels (ImageNet's typical 500).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=65535))]
    pub width: u32,
    /// Image height in pixels (ImageNet's typical 375).
    #[arg(long, default_value_t = 375, value_parser = clap::value_parser!(u32).range(1..=65535))]
    pub height: u32,
    /// JPEG quality (1-100).
    #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub quality: u8,
    /// The same seed writes the same images.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

#[derive(Args)]
pub struct VerifyArgs {
    /// The folder of shards, with its manifest.json.
    pub dir: PathBuf,
}

#[derive(Args)]
pub struct PackArgs {
    /// The ImageFolder to pack: one subfolder of images per class.
    #[arg(long)]
    pub src: PathBuf,
    /// Where the shards go (created; must hold no shards yet, or those of this same pack
    /// interrupted, which it then finishes).
    #[arg(long)]
    pub out: PathBuf,
    /// Largest shard size, e.g. 1GiB, 500MB, 64MiB.
    #[arg(long, default_value = "1GiB", value_parser = parse_size)]
    pub shard_size: u64,
    /// Shard names: <NAME>-000000.tar, ... (default: the source folder's name).
    #[arg(long)]
    pub name: Option<String>,
    /// Re-encode every image as JPEG with its longer side at most this many pixels (JPEGs
    /// already that small keep their bytes). Without it the files are stored unchanged.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_side: Option<u32>,
    /// JPEG quality (1-100) of re-encoded images; needs --max-side.
    #[arg(long, default_value_t = 90, requires = "max_side",
          value_parser = clap::value_parser!(u8).range(1..=100))]
    pub quality: u8,
}

/// Batches timed when neither --batches, --seconds nor --epochs says otherwise: about 15 s
/// of ImageNet on two cores at the default batch size, a few seconds on a GPU node.
pub const DEFAULT_BENCH_BATCHES: u64 = 100;

#[derive(Args)]
pub struct BenchArgs {
    /// An ImageFolder, or a folder of .tar shards.
    #[arg(long)]
    pub data: PathBuf,
    /// Decoding threads.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    #[arg(long, default_value_t = 64,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub batch_size: usize,
    /// Time the validation pipeline (resize, center crop) instead of the training one
    /// (random resized crop, flip).
    #[arg(long)]
    pub val: bool,
    /// Batches to time, after the warm-up [default: 100, unless --seconds or --epochs].
    #[arg(long, conflicts_with_all = ["seconds", "epochs"],
          value_parser = clap::value_parser!(u64).range(1..))]
    pub batches: Option<u64>,
    /// Time batches for this many seconds instead.
    #[arg(long, conflicts_with = "epochs", value_parser = parse_seconds)]
    pub seconds: Option<Duration>,
    /// Time this many whole passes over the data instead (ImageNet: 1.28M images a pass).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub epochs: Option<u64>,
    /// Side of the square crops.
    #[arg(long, default_value_t = 224)]
    pub image_size: usize,
    /// Batches decoded before timing starts.
    #[arg(long, default_value_t = 4)]
    pub warmup_batches: usize,
}

fn parse_size(text: &str) -> Result<u64, String> {
    let size: ByteSize = text.parse()?;
    match size.as_u64() {
        0 => Err("a shard size must be more than 0 bytes".into()),
        bytes => Ok(bytes),
    }
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(seconds)
        .map_err(|_| format!("{text:?} is not a number of seconds (0 or more)"))
}
