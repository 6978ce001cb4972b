//! An ImageFolder packed into WebDataset shards (`cornet-data pack`): the images' bytes as
//! they are, or re-encoded as JPEG at a smaller size (what FFCV does for speed), with a
//! manifest of classes, counts and checksums.

use crate::dataset::{Dataset, ImageFolder};
use crate::decode::decode_rgb;
use crate::error::{DataError, Result};
use crate::shards::manifest::{ClassCount, Manifest, Reencode, MANIFEST_FILE};
use crate::shards::writer::ShardWriter;
use crate::transform::{resize, Crop};
use fast_image_resize::Resizer;
use image::codecs::jpeg::JpegEncoder;
use image::{ExtendedColorType, ImageFormat};
use rayon::prelude::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Where and how [`pack`] writes.
#[derive(Debug, Clone)]
pub struct PackOptions {
    /// The folder of the shards and their manifest.
    pub out: PathBuf,
    /// Shards are named `<prefix>-000000.tar`, ...
    pub prefix: String,
    /// A shard is closed before a sample would take it past this size.
    pub shard_bytes: u64,
    /// Re-encoding as smaller JPEGs, or `None` to keep the files' bytes.
    pub reencode: Option<Reencode>,
}

/// Samples read (and re-encoded) together on the thread pool, then written in order.
const CHUNK: usize = 64;

/// Packs `folder` into shards in `options.out` (which must hold no shards yet), in the
/// folder's sample order; `progress` is told how many samples each step wrote.
pub fn pack(
    folder: &ImageFolder,
    options: &PackOptions,
    progress: impl Fn(usize),
) -> Result<Manifest> {
    if options.reencode.is_some_and(|r| r.max_side == 0) {
        return Err(DataError::Invalid(
            "re-encoding with a longer side of at most 0 pixels would make every image 1x1".into(),
        ));
    }
    let out = &options.out;
    std::fs::create_dir_all(out).map_err(|e| DataError::io(out, e))?;
    if crate::shards::Shards::found_in(out) || out.join(MANIFEST_FILE).exists() {
        return Err(DataError::Invalid(format!(
            "{}: already holds shards; pack into an empty folder",
            out.display()
        )));
    }
    let keys = sample_keys(folder)?;
    let mut writer = ShardWriter::new(out, &options.prefix, options.shard_bytes);
    let indices: Vec<usize> = (0..folder.len()).collect();
    for chunk in indices.chunks(CHUNK) {
        let images: Vec<Vec<u8>> = chunk
            .par_iter()
            .map(|&i| {
                let bytes = folder.read(i)?;
                match options.reencode {
                    Some(settings) => reencode(bytes, folder.path(i), settings),
                    None => Ok(bytes),
                }
            })
            .collect::<Result<_>>()?;
        for (&i, image) in chunk.iter().zip(&images) {
            writer.write(&keys[i], image, folder.label(i))?;
        }
        progress(chunk.len());
    }
    let shards = writer.finish()?;
    let mut counts = vec![0; folder.classes().len()];
    for i in 0..folder.len() {
        counts[folder.label(i)] += 1;
    }
    let manifest = Manifest {
        source: folder.root().display().to_string(),
        samples: folder.len(),
        classes: folder
            .classes()
            .iter()
            .zip(counts)
            .map(|(name, count)| ClassCount {
                name: name.clone(),
                count,
            })
            .collect(),
        reencode: options.reencode,
        shards,
    };
    manifest.save(out)?;
    Ok(manifest)
}

/// Each sample's WebDataset key: its path under the folder without the extension, other
/// dots made `_` (a key ends at the first dot of the base name), e.g. `n01440764/n01440764_18`.
fn sample_keys(folder: &ImageFolder) -> Result<Vec<String>> {
    let mut first_use: HashMap<String, &Path> = HashMap::new();
    (0..folder.len())
        .map(|i| {
            let path = folder.path(i);
            let relative = path.strip_prefix(folder.root()).unwrap_or(path);
            let key = relative
                .with_extension("")
                .to_string_lossy()
                .replace('.', "_");
            if let Some(other) = first_use.insert(key.clone(), path) {
                return Err(DataError::Invalid(format!(
                    "{} and {} would share the shard key {key:?}; rename one",
                    other.display(),
                    path.display()
                )));
            }
            Ok(key)
        })
        .collect()
}

/// The image as JPEG of quality `settings.quality`, scaled (antialiased bilinear) so its
/// longer side is at most `settings.max_side`. A JPEG already small enough keeps its bytes:
/// re-encoding it would only lose detail.
fn reencode(bytes: Vec<u8>, path: &Path, settings: Reencode) -> Result<Vec<u8>> {
    let image = decode_rgb(&bytes, path)?;
    let (width, height) = image.dimensions();
    let long = width.max(height);
    if long <= settings.max_side && image::guess_format(&bytes).ok() == Some(ImageFormat::Jpeg) {
        return Ok(bytes);
    }
    let (new_width, new_height) = if long > settings.max_side {
        let scale = |side: u32| {
            ((side as f64 * settings.max_side as f64 / long as f64).round() as u32).max(1)
        };
        (scale(width), scale(height))
    } else {
        (width, height)
    };
    let whole = Crop {
        top: 0,
        left: 0,
        height,
        width,
    };
    let pixels = resize(&image, whole, new_width, new_height, &mut Resizer::new())?;
    let mut encoded = Vec::new();
    JpegEncoder::new_with_quality(&mut encoded, settings.quality)
        .encode(&pixels, new_width, new_height, ExtendedColorType::Rgb8)
        .map_err(|e| DataError::Invalid(format!("{}: re-encoding: {e}", path.display())))?;
    Ok(encoded)
}
