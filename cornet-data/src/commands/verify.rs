//! `cornet-data verify`: every shard hashed whole and checked against the manifest.

use crate::cli::VerifyArgs;
use anyhow::{Context, Result};
use cornet_data::progress::Progress;
use cornet_data::shards::manifest::{Manifest, MANIFEST_FILE};
use cornet_data::{Dataset, Shards};

pub fn run(args: &VerifyArgs, progress: &dyn Progress) -> Result<()> {
    let shards =
        Shards::verify(&args.dir, progress).with_context(|| args.dir.display().to_string())?;
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
