//! Re-encoding an image as a smaller JPEG, for `pack --max-side`.

use crate::decode::decode_rgb;
use crate::error::{DataError, Result};
use crate::shards::manifest::Reencode;
use crate::transform::{resize, Crop};
use fast_image_resize::Resizer;
use image::codecs::jpeg::JpegEncoder;
use image::{ExtendedColorType, ImageFormat};
use std::path::Path;

/// The image as JPEG of quality `settings.quality`, scaled (antialiased bilinear) so its
/// longer side is at most `settings.max_side`. A JPEG already small enough keeps its bytes:
/// re-encoding it would only lose detail.
pub(super) fn reencode(bytes: Vec<u8>, path: &Path, settings: Reencode) -> Result<Vec<u8>> {
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
