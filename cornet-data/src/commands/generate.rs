//! `cornet-data generate`: an ImageFolder of ImageNet-sized JPEGs.

use crate::cli::GenerateArgs;
use anyhow::{Context, Result};
use bytesize::ByteSize;
use cornet_data::{Dataset, ImageFolder};

pub fn run(args: &GenerateArgs) -> Result<()> {
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
