//! One training step's forward and backward, shared by the training loop and its tests.

use anyhow::Result;
use candle_core::backprop::GradStore;
use candle_core::Tensor;
use cornet_model::{Mode, Model};

/// What a forward-backward pass yields.
pub struct StepOutput {
    pub logits: Tensor,
    /// Mean cross-entropy over the batch.
    pub loss: Tensor,
    pub grads: GradStore,
}

/// Train-mode forward (BatchNorm updates its running statistics), mean cross-entropy against
/// `targets` (class indices), and the gradients of every parameter.
pub fn forward_backward(model: &Model, images: &Tensor, targets: &Tensor) -> Result<StepOutput> {
    let logits = model.forward(images, Mode::Train)?;
    let loss = candle_nn::loss::cross_entropy(&logits, targets)?;
    let grads = loss.backward()?;
    Ok(StepOutput {
        logits,
        loss,
        grads,
    })
}
