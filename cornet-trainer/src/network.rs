//! Which trained network a command runs (`test`, `eval`, `score --model`): the architecture,
//! the weights file and the time steps.

use candle_core::Device;
use cornet_model::{Arch, Model};
use std::path::PathBuf;

/// A CORnet and the weights to load into it.
#[derive(Debug, Clone)]
pub struct NetworkSpec {
    /// Which CORnet the weights are.
    pub arch: Arch,
    /// A PyTorch `.pth` or a safetensors file (a run's `final.safetensors`, a checkpoint's
    /// `model.safetensors`).
    pub weights: PathBuf,
    /// Time steps that R and RT unroll (their default when `None`).
    pub times: Option<usize>,
}

impl NetworkSpec {
    /// The model with these weights on `device`; widths, classes and CORnet-S's recurrence
    /// are read off the weights' shapes.
    pub fn load(&self, device: &Device) -> cornet_model::Result<Model> {
        Model::from_checkpoint(&self.weights, Some(self.arch), self.times, device)
    }
}
