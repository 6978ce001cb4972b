//! What can go wrong in the `eval` command; messages name the flag or file at fault.

use crate::device::DeviceError;
use crate::distributed::DistributedError;
use crate::loading::DatasetError;
use cornet_data::DataError;

/// Why a model could not be evaluated: its weights, the device, the labelled images, the
/// ranks, or a model that gives NaN or infinite logits.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The weights could not be read, or are not the model asked for.
    #[error(transparent)]
    Weights(cornet_model::Error),
    /// `--device` names no device this build and machine have.
    #[error("--device")]
    Device(#[source] DeviceError),
    /// The labelled images (or the training set named for their classes) could not be
    /// opened, or their classes are not the training set's or exceed the model's outputs.
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    /// The images failed: an unreadable image (the message names the file), a batch size of
    /// 0.
    #[error(transparent)]
    Data(#[from] DataError),
    /// Some logits were NaN or infinite: the scores would mean nothing.
    #[error(
        "{images} of {total} images got NaN or infinite logits: the weights are diverged or \
         damaged (or bf16 overflowed: try --precision f32)"
    )]
    NonFinite {
        /// Images with a non-finite logit.
        images: u64,
        /// Images scored.
        total: u64,
    },
    /// The mean loss is NaN or infinite although every logit was finite (a logit too far
    /// below the others: the label's probability underflowed).
    #[error(
        "the mean loss over {images} images is not finite although every logit is: a label's \
         probability underflowed"
    )]
    NonFiniteLoss {
        /// Images scored.
        images: u64,
    },
    /// The model could not run on the images.
    #[error(transparent)]
    Model(#[from] cornet_model::Error),
    /// The ranks could not meet, or the all-reduce failed.
    #[error(transparent)]
    Distributed(#[from] DistributedError),
    /// A tensor operation failed.
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
}
