//! A labelled image set made on the spot, so that a smoke run or a loader benchmark needs no
//! download. Class k is a striped pattern whose hue (k / 2) and stripe direction (k % 2:
//! vertical or horizontal) survive the training augmentations (random crops and horizontal
//! flips); frequency, phase, brightness and noise vary per image. Written into an ImageFolder:
//! small PNG squares for training, or photo-sized JPEGs for timing the decoder.

use crate::error::{DataError, Result};
use image::codecs::jpeg::JpegEncoder;
use image::{Rgb, RgbImage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::path::Path;

/// Writes `root/class_<k>/<i>.png` for `classes` classes of `per_class` images of
/// `size x size` pixels, the same for the same `seed`.
pub fn write_image_folder(
    root: &Path,
    classes: usize,
    per_class: usize,
    size: u32,
    seed: u64,
) -> Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for class in 0..classes {
        let dir = class_dir(root, class)?;
        let pattern = Pattern::of_class(class, classes);
        for i in 0..per_class {
            let image = pattern.draw(size, size, &mut rng);
            let path = dir.join(format!("{i:04}.png"));
            image
                .save(&path)
                .map_err(|e| DataError::Invalid(format!("{}: {e}", path.display())))?;
        }
    }
    Ok(())
}

/// Writes `root/class_<k>/<i>.jpg` for `classes` classes of `per_class` JPEGs of
/// `width x height` pixels at `quality` (1-100), the same for the same `seed`. Their per-pixel
/// noise makes them about as costly to decode as photographs of that size (an ImageNet JPEG
/// is ~500 x 375 at ~110 KB). Classes are drawn in parallel, each from its own random stream.
pub fn write_jpeg_folder(
    root: &Path,
    classes: usize,
    per_class: usize,
    (width, height): (u32, u32),
    quality: u8,
    seed: u64,
) -> Result<()> {
    (0..classes).into_par_iter().try_for_each(|class| {
        let dir = class_dir(root, class)?;
        let pattern = Pattern::of_class(class, classes);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(class as u64);
        for i in 0..per_class {
            let image = pattern.draw(width, height, &mut rng);
            let path = dir.join(format!("{i:04}.jpg"));
            let file = std::fs::File::create(&path).map_err(|e| DataError::io(&path, e))?;
            JpegEncoder::new_with_quality(std::io::BufWriter::new(file), quality)
                .encode_image(&image)
                .map_err(|e| DataError::Invalid(format!("{}: {e}", path.display())))?;
        }
        Ok(())
    })
}

/// `root/class_<k>`, created.
fn class_dir(root: &Path, class: usize) -> Result<std::path::PathBuf> {
    let dir = root.join(format!("class_{class:02}"));
    std::fs::create_dir_all(&dir).map_err(|e| DataError::io(&dir, e))?;
    Ok(dir)
}

/// What tells a class apart: its hue and its stripes' direction.
struct Pattern {
    hue: f64,
    horizontal: bool,
}

impl Pattern {
    fn of_class(class: usize, classes: usize) -> Self {
        let hues = classes.div_ceil(2);
        Pattern {
            hue: (class / 2) as f64 / hues as f64,
            horizontal: class % 2 == 1,
        }
    }

    /// One image: the class's stripes at a random frequency, phase and brightness, with noise.
    fn draw(&self, width: u32, height: u32, rng: &mut impl Rng) -> RgbImage {
        let (hue, horizontal) = (self.hue, self.horizontal);
        let frequency = rng.random_range(0.15..0.4);
        let phase = rng.random_range(0.0..std::f64::consts::TAU);
        let brightness = rng.random_range(0.6..1.0);
        let color = hue_to_rgb(hue);
        RgbImage::from_fn(width, height, |x, y| {
            let along = if horizontal { y } else { x };
            let v = brightness * (0.55 + 0.45 * (along as f64 * frequency + phase).sin());
            Rgb(color.map(|c| {
                let noise: f64 = rng.random_range(-0.08..0.08);
                ((v * c + noise).clamp(0.0, 1.0) * 255.0) as u8
            }))
        })
    }
}

/// A fully saturated colour of `hue` in [0, 1).
fn hue_to_rgb(hue: f64) -> [f64; 3] {
    let h = hue * 6.0;
    let x = 1.0 - (h % 2.0 - 1.0).abs();
    match h as u32 {
        0 => [1.0, x, 0.0],
        1 => [x, 1.0, 0.0],
        2 => [0.0, 1.0, x],
        3 => [0.0, x, 1.0],
        4 => [x, 0.0, 1.0],
        _ => [1.0, 0.0, x],
    }
}
