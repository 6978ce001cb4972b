//! torchvision's transforms on RGB8 images, ending in `ToTensor` + `Normalize` (ImageNet mean
//! and std) as CHW float32.

use crate::error::{DataError, Result};
use fast_image_resize::images::{CroppedImage, Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::LazyLock;

/// ImageNet's per-channel (RGB) mean of pixel values scaled to [0, 1], which `Normalize`
/// subtracts.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet's per-channel (RGB) standard deviation, by which `Normalize` divides.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// The three pipelines of the original `run.py`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    /// Training: `RandomResizedCrop(size)` (scale 0.08-1, ratio 3/4-4/3) and
    /// `RandomHorizontalFlip()`.
    Train {
        /// The output's side, in pixels.
        size: usize,
    },
    /// Validation: `Resize(round(size * 256 / 224))` on the shorter side, `CenterCrop(size)`.
    Val {
        /// The output's side, in pixels.
        size: usize,
    },
    /// Feature extraction: `Resize((size, size))`.
    Test {
        /// The output's side, in pixels.
        size: usize,
    },
}

/// A pixel rectangle of the source image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crop {
    /// The first row, in pixels from the top.
    pub top: u32,
    /// The first column, in pixels from the left.
    pub left: u32,
    /// Rows.
    pub height: u32,
    /// Columns.
    pub width: u32,
}

impl Transform {
    /// The side of the square output, in pixels.
    pub fn size(&self) -> usize {
        match *self {
            Transform::Train { size } | Transform::Val { size } | Transform::Test { size } => size,
        }
    }

    /// Floats per transformed image: 3 x size x size.
    pub fn output_len(&self) -> usize {
        3 * self.size() * self.size()
    }

    /// Transforms `image` into `out` (CHW, normalized). Random draws come from `rng` only.
    pub fn apply(
        &self,
        image: &RgbImage,
        rng: &mut ChaCha8Rng,
        resizer: &mut Resizer,
        out: &mut [f32],
    ) -> Result<()> {
        let (w, h) = image.dimensions();
        let size = self.size() as u32;
        let whole = Crop {
            top: 0,
            left: 0,
            height: h,
            width: w,
        };
        // The resized pixels, and the size x size window of them that becomes the tensor.
        let (pixels, window) = match *self {
            Transform::Train { .. } => {
                let crop = random_resized_crop(w, h, rng);
                let pixels = resize(image, crop, size, size, resizer)?;
                let flip = rng.random::<f64>() < 0.5;
                (pixels, Window::whole(size, flip))
            }
            Transform::Val { .. } => {
                let short = (size as f64 * 256.0 / 224.0).round_ties_even() as u32;
                let (rw, rh) = resize_shorter_side(w, h, short);
                let pixels = resize(image, whole, rw, rh, resizer)?;
                (pixels, Window::center(rw, rh, size))
            }
            Transform::Test { .. } => {
                let pixels = resize(image, whole, size, size, resizer)?;
                (pixels, Window::whole(size, false))
            }
        };
        normalize_into(&pixels, &window, out);
        Ok(())
    }
}

/// The random generator of one sample's augmentation: a function of (seed, epoch, index)
/// only, so a batch is the same for any number of workers, ranks or restarts.
pub fn sample_rng(seed: u64, epoch: u64, index: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // Distinct streams for each (epoch, sample), all derived from the run's seed.
    rng.set_stream(epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index);
    rng
}

/// torchvision's `RandomResizedCrop.get_params` with scale (0.08, 1) and ratio (3/4, 4/3):
/// ten tries at a random area and log-uniform aspect ratio, then the central fallback.
pub fn random_resized_crop(width: u32, height: u32, rng: &mut impl Rng) -> Crop {
    let (scale, ratio) = ((0.08f64, 1.0f64), (3.0f64 / 4.0, 4.0f64 / 3.0));
    let area = (width * height) as f64;
    let (log_lo, log_hi) = (ratio.0.ln(), ratio.1.ln());
    for _ in 0..10 {
        let target_area = area * rng.random_range(scale.0..scale.1);
        let aspect = rng.random_range(log_lo..log_hi).exp();
        let w = (target_area * aspect).sqrt().round_ties_even() as i64;
        let h = (target_area / aspect).sqrt().round_ties_even() as i64;
        if 0 < w && w <= width as i64 && 0 < h && h <= height as i64 {
            let top = rng.random_range(0..=(height as i64 - h)) as u32;
            let left = rng.random_range(0..=(width as i64 - w)) as u32;
            return Crop {
                top,
                left,
                height: h as u32,
                width: w as u32,
            };
        }
    }
    let in_ratio = width as f64 / height as f64;
    let (w, h) = if in_ratio < ratio.0 {
        (width, (width as f64 / ratio.0).round_ties_even() as u32)
    } else if in_ratio > ratio.1 {
        ((height as f64 * ratio.1).round_ties_even() as u32, height)
    } else {
        (width, height)
    };
    Crop {
        top: (height - h) / 2,
        left: (width - w) / 2,
        height: h,
        width: w,
    }
}

/// `Resize(short)`: the shorter side becomes `short`, the longer `int(short * long / short_in)`.
pub fn resize_shorter_side(width: u32, height: u32, short: u32) -> (u32, u32) {
    let long = |l: u32, s: u32| (short as u64 * l as u64 / s as u64) as u32;
    if width <= height {
        (short, long(height, width))
    } else {
        (long(width, height), short)
    }
}

/// Resamples `crop` of `image` to `width x height` as Pillow's antialiased bilinear filter.
/// The filter reads a view of the crop (no copy) and never outside it, as torchvision's
/// crop-then-resize does.
pub(crate) fn resize(
    image: &RgbImage,
    crop: Crop,
    width: u32,
    height: u32,
    resizer: &mut Resizer,
) -> Result<Vec<u8>> {
    let invalid = |e: String| {
        DataError::Invalid(format!(
            "resizing a {}x{} crop: {e}",
            crop.width, crop.height
        ))
    };
    let (iw, ih) = image.dimensions();
    let src = ImageRef::new(iw, ih, image.as_raw(), PixelType::U8x3)
        .map_err(|e| invalid(e.to_string()))?;
    let view = CroppedImage::new(&src, crop.left, crop.top, crop.width, crop.height)
        .map_err(|e| invalid(e.to_string()))?;
    let mut dst = Image::new(width, height, PixelType::U8x3);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    resizer
        .resize(&view, &mut dst, &options)
        .map_err(|e| invalid(e.to_string()))?;
    Ok(dst.into_vec())
}

/// The square of resized pixels that becomes the tensor, possibly mirrored: `CenterCrop` and
/// `RandomHorizontalFlip` done while normalizing, with no pass or copy of their own.
struct Window {
    /// Width of the resized buffer.
    stride: u32,
    top: u32,
    left: u32,
    size: u32,
    flip: bool,
}

impl Window {
    fn whole(size: u32, flip: bool) -> Self {
        Window {
            stride: size,
            top: 0,
            left: 0,
            size,
            flip,
        }
    }

    /// `CenterCrop(size)` of a `width x height` buffer: the top-left corner at
    /// `int(round((h - size) / 2))`, `int(round((w - size) / 2))`.
    fn center(width: u32, height: u32, size: u32) -> Self {
        let offset = |len: u32| ((len.saturating_sub(size)) as f64 / 2.0).round_ties_even() as u32;
        Window {
            stride: width,
            top: offset(height),
            left: offset(width),
            size,
            flip: false,
        }
    }
}

/// `(v / 255 - mean) / std` for every byte value and channel, in float32 as torchvision
/// computes it: a table lookup gives the same floats as the arithmetic.
static NORMALIZED: LazyLock<[[f32; 256]; 3]> = LazyLock::new(|| {
    std::array::from_fn(|c| {
        std::array::from_fn(|v| (v as f32 / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c])
    })
});

/// `ToTensor` + `Normalize` of `window` of the HWC bytes `pixels`, written CHW into `out`.
fn normalize_into(pixels: &[u8], window: &Window, out: &mut [f32]) {
    let size = window.size as usize;
    let plane = size * size;
    for y in 0..size {
        let start = ((window.top as usize + y) * window.stride as usize + window.left as usize) * 3;
        let row = &pixels[start..start + size * 3];
        for (c, table) in NORMALIZED.iter().enumerate() {
            let dst = &mut out[c * plane + y * size..][..size];
            let channel = row[c..].iter().step_by(3);
            if window.flip {
                for (d, &v) in dst.iter_mut().rev().zip(channel) {
                    *d = table[v as usize];
                }
            } else {
                for (d, &v) in dst.iter_mut().zip(channel) {
                    *d = table[v as usize];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_resized_crops_stay_inside_and_fall_back_to_the_center() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..1000 {
            let c = random_resized_crop(500, 375, &mut rng);
            assert!(
                c.left + c.width <= 500 && c.top + c.height <= 375 && c.width > 0 && c.height > 0
            );
        }
        // A 1000x10 strip never fits the ratio: the fallback keeps the height, width 4/3 of it.
        let c = random_resized_crop(1000, 10, &mut rng);
        assert_eq!(
            c,
            Crop {
                top: 0,
                left: 493,
                height: 10,
                width: 13
            }
        );
    }

    #[test]
    fn shorter_side_resize_truncates_the_longer_side() {
        assert_eq!(resize_shorter_side(500, 375, 256), (341, 256));
        assert_eq!(resize_shorter_side(375, 500, 256), (256, 341));
    }

    #[test]
    fn the_window_is_cropped_mirrored_and_normalized_as_computed() {
        // A 4 x 3 RGB buffer whose bytes count up; the 2 x 2 window at (1, 1), mirrored.
        let pixels: Vec<u8> = (0..4 * 3 * 3).map(|v| v as u8 * 7).collect();
        let window = Window {
            stride: 4,
            top: 1,
            left: 1,
            size: 2,
            flip: true,
        };
        let mut out = vec![0f32; 3 * 2 * 2];
        normalize_into(&pixels, &window, &mut out);
        for c in 0..3 {
            for y in 0..2 {
                for x in 0..2 {
                    let v = pixels[((1 + y) * 4 + 1 + (1 - x)) * 3 + c];
                    let expected = (v as f32 / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
                    assert_eq!(out[c * 4 + y * 2 + x], expected, "c {c}, y {y}, x {x}");
                }
            }
        }
    }

    #[test]
    fn the_same_seed_epoch_and_index_give_the_same_draws() {
        let draw = |s, e, i| sample_rng(s, e, i).random::<u64>();
        assert_eq!(draw(0, 1, 2), draw(0, 1, 2));
        assert_ne!(draw(0, 1, 2), draw(0, 2, 1));
        assert_ne!(draw(0, 1, 2), draw(1, 1, 2));
    }
}
