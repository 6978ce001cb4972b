//! `cornet-data pack`: an ImageFolder into shards, finishing an interrupted pack.

use crate::cli::PackArgs;
use anyhow::{Context, Result};
use bytesize::ByteSize;
use cornet_data::pack::{pack, PackOptions};
use cornet_data::progress::Progress;
use cornet_data::shards::manifest::Reencode;
use cornet_data::ImageFolder;

pub fn run(args: &PackArgs, progress: &dyn Progress) -> Result<()> {
    let folder = ImageFolder::list(&args.src, progress).context("--src")?;
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
    let packed = pack(&folder, &options, progress).context("--out")?;
    let manifest = &packed.manifest;
    let bytes: u64 = manifest.shards.iter().map(|s| s.bytes).sum();
    let shards = manifest.shards.len();
    let (before, after) = match packed.kept {
        0 => ("", String::new()),
        kept if kept == shards => ("already packed: ", String::new()),
        kept => (
            "",
            format!(" ({kept} of them kept from an interrupted run)"),
        ),
    };
    println!(
        "{before}{} images of {} classes in {shards} shards ({}) in {}{after}",
        manifest.samples,
        manifest.classes.len(),
        ByteSize(bytes),
        args.out.display()
    );
    Ok(())
}
