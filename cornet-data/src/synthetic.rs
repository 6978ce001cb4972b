//! A small labelled image set made on the spot, so that a smoke run needs no download. Class k
//! is a striped pattern whose hue (k / 2) and stripe direction (k % 2: vertical or horizontal)
//! survive the training augmentations (random crops and horizontal flips); frequency, phase,
//! brightness and noise vary per image. Written as PNG into an ImageFolder.

use crate::error::{DataError, Result};
use image::{Rgb, RgbImage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
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
        let dir = root.join(format!("class_{class:02}"));
        std::fs::create_dir_all(&dir).map_err(|e| DataError::io(&dir, e))?;
        let hues = classes.div_ceil(2);
        let hue = (class / 2) as f64 / hues as f64;
        let horizontal = class % 2 == 1;
        for i in 0..per_class {
            let image = stripes(size, hue, horizontal, &mut rng);
            let path = dir.join(format!("{i:04}.png"));
            image
                .save(&path)
                .map_err(|e| DataError::Invalid(format!("{}: {e}", path.display())))?;
        }
    }
    Ok(())
}

fn stripes(size: u32, hue: f64, horizontal: bool, rng: &mut impl Rng) -> RgbImage {
    let frequency = rng.random_range(0.15..0.4);
    let phase = rng.random_range(0.0..std::f64::consts::TAU);
    let brightness = rng.random_range(0.6..1.0);
    let color = hue_to_rgb(hue);
    RgbImage::from_fn(size, size, |x, y| {
        let along = if horizontal { y } else { x };
        let v = brightness * (0.55 + 0.45 * (along as f64 * frequency + phase).sin());
        Rgb(color.map(|c| {
            let noise: f64 = rng.random_range(-0.08..0.08);
            ((v * c + noise).clamp(0.0, 1.0) * 255.0) as u8
        }))
    })
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
