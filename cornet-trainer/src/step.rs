//! One training step's forward and backward, shared by the training loop and its tests.

use crate::config::Precision;
use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor};
use cornet_model::{Mode, Model};

/// What a forward-backward pass yields.
pub struct StepOutput {
    /// The logits `[N, classes]`, in f32.
    pub logits: Tensor,
    /// Mean cross-entropy over the batch.
    pub loss: Tensor,
    /// The gradients of every parameter, in f32.
    pub grads: GradStore,
}

/// Train-mode forward (BatchNorm updates its running statistics) with activations in
/// `precision`, mean cross-entropy against `targets` (class indices) in f32, and the f32
/// gradients of every parameter. Fails as the model's forward pass or a tensor operation does.
pub fn forward_backward(
    model: &Model,
    images: &Tensor,
    targets: &Tensor,
    precision: Precision,
) -> cornet_model::Result<StepOutput> {
    let images = images.to_dtype(precision.activation_dtype())?;
    let logits = model.forward(&images, Mode::Train)?.to_dtype(DType::F32)?;
    let loss = candle_nn::loss::cross_entropy(&logits, targets)?;
    let grads = loss.backward()?;
    Ok(StepOutput {
        logits,
        loss,
        grads,
    })
}
