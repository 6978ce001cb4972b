//! `cornet-data`: pack an ImageFolder into WebDataset shards, verify them, and measure the
//! data pipeline.

use anyhow::{Context, Result};
use bytesize::ByteSize;
use clap::{Args, Parser, Subcommand};
use cornet_data::bench::{bench, BenchOptions, Measure};
use cornet_data::pack::{pack, PackOptions};
use cornet_data::progress::NoProgress;
use cornet_data::shards::manifest::{Manifest, Reencode, MANIFEST_FILE};
use cornet_data::{Dataset, ImageFolder, Shards};
use std::path::PathBuf;
use std::process::ExitCode;

// The trainer runs the loader under mimalloc; the benchmark does too, so that it measures the
// allocator that training uses (every batch and image allocates buffers of 0.1 to 40 MB).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    version,
    about = "Image data for cornet-rs: shards and the loader's throughput"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Pack an ImageFolder into WebDataset tar shards (<key>.jpg + <key>.cls) with a byte
    /// offset index beside each shard and a manifest (classes, counts, checksums).
    Pack(PackArgs),
    /// Run the training (or validation) pipeline over an ImageFolder or a folder of shards
    /// and print `images_per_sec X` as the last line.
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
struct GenerateArgs {
    /// The folder to write (created; must be empty or absent).
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 8, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    classes: usize,
    #[arg(long, default_value_t = 100, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    per_class: usize,
    /// Image width in pixels (ImageNet's typical 500).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=65535))]
    width: u32,
    /// Image height in pixels (ImageNet's typical 375).
    #[arg(long, default_value_t = 375, value_parser = clap::value_parser!(u32).range(1..=65535))]
    height: u32,
    /// JPEG quality (1-100).
    #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u8).range(1..=100))]
    quality: u8,
    /// The same seed writes the same images.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(Args)]
struct VerifyArgs {
    /// The folder of shards, with its manifest.json.
    dir: PathBuf,
}

#[derive(Args)]
struct PackArgs {
    /// The ImageFolder to pack: one subfolder of images per class.
    #[arg(long)]
    src: PathBuf,
    /// Where the shards go (created; must hold no shards yet).
    #[arg(long)]
    out: PathBuf,
    /// Largest shard size, e.g. 1GiB, 500MB, 64MiB.
    #[arg(long, default_value = "1GiB", value_parser = parse_size)]
    shard_size: u64,
    /// Shard names: <NAME>-000000.tar, ... (default: the source folder's name).
    #[arg(long)]
    name: Option<String>,
    /// Re-encode every image as JPEG with its longer side at most this many pixels (JPEGs
    /// already that small keep their bytes). Without it the files are stored unchanged.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    max_side: Option<u32>,
    /// JPEG quality (1-100) of re-encoded images; needs --max-side.
    #[arg(long, default_value_t = 90, requires = "max_side",
          value_parser = clap::value_parser!(u8).range(1..=100))]
    quality: u8,
}

#[derive(Args)]
struct BenchArgs {
    /// An ImageFolder, or a folder of .tar shards.
    #[arg(long)]
    data: PathBuf,
    /// Decoding threads.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    #[arg(long, default_value_t = 64,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    batch_size: usize,
    /// Time the validation pipeline (resize, center crop) instead of the training one
    /// (random resized crop, flip).
    #[arg(long)]
    val: bool,
    /// Timed passes over the data, after the warm-up.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    epochs: u64,
    /// Side of the square crops.
    #[arg(long, default_value_t = 224)]
    image_size: usize,
    /// Batches decoded before timing starts.
    #[arg(long, default_value_t = 4)]
    warmup_batches: usize,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Pack(args) => run_pack(&args),
        Command::Bench(args) => run_bench(&args),
        Command::Verify(args) => run_verify(&args),
        Command::Generate(args) => run_generate(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn parse_size(text: &str) -> Result<u64, String> {
    let size: ByteSize = text.parse()?;
    match size.as_u64() {
        0 => Err("a shard size must be more than 0 bytes".into()),
        bytes => Ok(bytes),
    }
}

fn run_pack(args: &PackArgs) -> Result<()> {
    let folder = ImageFolder::open(&args.src).context("--src")?;
    let prefix = match &args.name {
        Some(name) => name.clone(),
        None => args
            .src
            .canonicalize()
            .with_context(|| format!("--src {}", args.src.display()))?
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "shard".into()),
    };
    let options = PackOptions {
        out: args.out.clone(),
        prefix,
        shard_bytes: args.shard_size,
        reencode: args.max_side.map(|max_side| Reencode {
            max_side,
            quality: args.quality,
        }),
    };
    let manifest = pack(&folder, &options, &NoProgress)
        .context("--out")?
        .manifest;
    let bytes: u64 = manifest.shards.iter().map(|s| s.bytes).sum();
    println!(
        "{} images of {} classes in {} shards ({}) in {}",
        manifest.samples,
        manifest.classes.len(),
        manifest.shards.len(),
        ByteSize(bytes),
        args.out.display()
    );
    Ok(())
}

fn run_bench(args: &BenchArgs) -> Result<()> {
    let dataset: Box<dyn Dataset> = if Shards::found_in(&args.data) {
        Box::new(Shards::open(&args.data).context("--data")?)
    } else {
        Box::new(ImageFolder::open(&args.data).context("--data")?)
    };
    let options = BenchOptions {
        workers: args.workers,
        batch_size: args.batch_size,
        val: args.val,
        measure: Measure::Epochs(args.epochs),
        image_size: args.image_size,
        warmup_batches: args.warmup_batches,
    };
    let measured = bench(dataset, &options, &NoProgress)?;
    println!("images_per_sec {:.1}", measured.images_per_sec());
    Ok(())
}

fn run_verify(args: &VerifyArgs) -> Result<()> {
    let shards =
        Shards::verify(&args.dir, &NoProgress).with_context(|| args.dir.display().to_string())?;
    let against = match Manifest::load(&args.dir)? {
        Some(_) => format!("match {MANIFEST_FILE}"),
        None => format!("indexed afresh (no {MANIFEST_FILE} to compare with)"),
    };
    println!(
        "{} samples in {}: the shards {against}",
        shards.len(),
        args.dir.display()
    );
    Ok(())
}

fn run_generate(args: &GenerateArgs) -> Result<()> {
    let out = &args.out;
    let holds_files = std::fs::read_dir(out).is_ok_and(|mut entries| entries.next().is_some());
    if holds_files {
        anyhow::bail!(
            "--out {}: already holds files; name a new folder",
            out.display()
        );
    }
    let size = (args.width, args.height);
    cornet_data::synthetic::write_jpeg_folder(
        out,
        args.classes,
        args.per_class,
        size,
        args.quality,
        args.seed,
    )
    .with_context(|| format!("--out {}", out.display()))?;
    let folder = ImageFolder::open(out).with_context(|| format!("--out {}", out.display()))?;
    let bytes = (0..folder.len())
        .map(|i| std::fs::metadata(folder.path(i)).map(|m| m.len()))
        .sum::<std::io::Result<u64>>()
        .with_context(|| format!("--out {}", out.display()))?;
    println!(
        "{} JPEGs of {}x{} in {} classes ({}, {} each on average) in {}",
        folder.len(),
        args.width,
        args.height,
        args.classes,
        ByteSize(bytes),
        ByteSize(bytes / folder.len() as u64),
        out.display()
    );
    Ok(())
}
