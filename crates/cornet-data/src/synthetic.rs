//! A small labelled image set made on the spot, so that a smoke run needs no download: class
//! k is a grating at angle k * 180 / classes degrees, with random phase, frequency, colour
//! and noise per image. Written as PNG into an ImageFolder.

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
        let angle = std::f64::consts::PI * class as f64 / classes as f64;
        for i in 0..per_class {
            let image = grating(size, angle, &mut rng);
            let path = dir.join(format!("{i:04}.png"));
            image
                .save(&path)
                .map_err(|e| DataError::Invalid(format!("{}: {e}", path.display())))?;
        }
    }
    Ok(())
}

fn grating(size: u32, angle: f64, rng: &mut impl Rng) -> RgbImage {
    let (sin, cos) = angle.sin_cos();
    let frequency = rng.random_range(0.15..0.35);
    let phase = rng.random_range(0.0..std::f64::consts::TAU);
    let tint: [f64; 3] = [
        rng.random_range(0.5..1.0),
        rng.random_range(0.5..1.0),
        rng.random_range(0.5..1.0),
    ];
    RgbImage::from_fn(size, size, |x, y| {
        let t = (x as f64 * cos + y as f64 * sin) * frequency + phase;
        let v = 0.5 + 0.4 * t.sin();
        Rgb(tint.map(|c| {
            let noise: f64 = rng.random_range(-0.1..0.1);
            ((v * c + noise).clamp(0.0, 1.0) * 255.0) as u8
        }))
    })
}
