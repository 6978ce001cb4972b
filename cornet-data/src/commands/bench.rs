//! `cornet-data bench`: the loader's throughput, timed for a bounded while by default.

use crate::cli::{BenchArgs, DEFAULT_BENCH_BATCHES};
use anyhow::{Context, Result};
use cornet_data::bench::{bench, BenchOptions, Measure};
use cornet_data::progress::Progress;
use cornet_data::{Dataset, ImageFolder, Shards};

pub fn run(args: &BenchArgs, progress: &dyn Progress) -> Result<()> {
    let (dataset, kind): (Box<dyn Dataset>, _) = if Shards::found_in(&args.data) {
        let shards = Shards::open(&args.data).context("--data")?;
        (Box::new(shards), "shards")
    } else {
        let folder = ImageFolder::list(&args.data, progress).context("--data")?;
        (Box::new(folder), "ImageFolder")
    };
    let source = format!("{kind} {} ({} images)", args.data.display(), dataset.len());
    let measure = match (args.batches, args.seconds, args.epochs) {
        (_, Some(seconds), _) => Measure::Time(seconds),
        (_, _, Some(epochs)) => Measure::Epochs(epochs),
        (batches, _, _) => Measure::Batches(batches.unwrap_or(DEFAULT_BENCH_BATCHES)),
    };
    let options = BenchOptions {
        workers: args.workers,
        batch_size: args.batch_size,
        val: args.val,
        measure,
        image_size: args.image_size,
        warmup_batches: args.warmup_batches,
    };
    let measured = bench(dataset, &options, progress)?;
    let pipeline = if args.val {
        "validation (resize, center crop)"
    } else {
        "training (random resized crop, flip)"
    };
    println!(
        "timed {} images in {} batches of {} over {:.2} s, after {} warm-up batches: the {pipeline} \
         pipeline at {} px, {} workers, {source}",
        measured.images,
        measured.batches,
        args.batch_size,
        measured.seconds,
        args.warmup_batches,
        args.image_size,
        args.workers,
    );
    println!("images_per_sec {:.1}", measured.images_per_sec());
    Ok(())
}
