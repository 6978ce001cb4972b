//! What can go wrong extracting features; messages name the file at fault.

use crate::arrays::ArrayError;
use crate::error::Cause;
use cornet_data::DataError;

/// Why features could not be extracted: the weights, the images, the model's run or the
/// output. Messages name the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// The weights could not be read, or are not the model asked for.
    #[error(transparent)]
    Weights(cornet_model::Error),
    /// The model could not run on the images (a tap it does not have, an input it cannot
    /// take).
    #[error(transparent)]
    Model(#[from] cornet_model::Error),
    /// The images could not be read: a folder without images, an image that does not decode.
    #[error(transparent)]
    Images(#[from] DataError),
    /// Preprocessed images (`.npy`, or an `.npz` entry) that could not be read.
    #[error(transparent)]
    Array(#[from] ArrayError),
    /// Preprocessed images that are not `[N, 3, H, W]`.
    #[error("{0}")]
    Input(String),
    /// The extraction cannot fit in the memory available; the message says what to lower.
    #[error("{0}")]
    TooBig(String),
    /// There were no images at all.
    #[error("no images to extract features from")]
    NoImages,
    /// An output file or folder could not be written; the message names it.
    #[error("{0}")]
    Output(String, #[source] Option<Cause>),
    /// An output array could not be written (candle's message says why).
    #[error(transparent)]
    WriteArray(candle_core::Error),
    /// A tensor operation failed.
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
}

/// What extraction returns.
pub type Result<T, E = ExtractError> = std::result::Result<T, E>;
