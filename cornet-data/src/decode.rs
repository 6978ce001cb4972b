//! Encoded bytes to RGB8, whatever the file name says: the format is read from the bytes, as
//! Pillow does (ImageNet has PNGs named `.JPEG` and CMYK JPEGs).

use crate::error::{DataError, Result};
use image::RgbImage;
use std::path::Path;

/// Decodes `bytes` (JPEG or PNG) to RGB as `PIL.Image.convert("RGB")`: grayscale is
/// replicated, alpha dropped, CMYK converted. `path` names the file in errors.
pub fn decode_rgb(bytes: &[u8], path: &Path) -> Result<RgbImage> {
    let bad = |reason: String| DataError::BadImage {
        path: path.to_owned(),
        reason,
    };
    let format = image::guess_format(bytes).map_err(|_| bad("neither JPEG nor PNG".into()))?;
    let image =
        image::load_from_memory_with_format(bytes, format).map_err(|e| bad(e.to_string()))?;
    // `into_rgb8` moves an RGB image out (most JPEGs); `to_rgb8` would copy it.
    Ok(image.into_rgb8())
}
