//! A CORnet with its state dict: build, load, run.

use crate::arch::{Arch, ModelConfig};
use crate::batch_groups::BatchGroups;
use crate::error::{Error, Result};
use crate::layers::{Mode, Pass};
use crate::nets::{recurrent::CornetRecurrent, s::CornetS, z::CornetZ, Network};
use crate::store::{Builder, ParamStore};
use crate::taps::{TapFilter, Taps};
use crate::weights::{self, StateDict};
use candle_core::{Device, Tensor};
use std::path::Path;

/// One CORnet: its graph and its named parameters and buffers.
///
/// It takes RGB images as an f32 tensor `[N, 3, H, W]` (normalized as torchvision's ImageNet
/// transforms do) and gives logits `[N, num_classes]`.
///
/// # Example
///
/// A small CORnet-Z on the CPU, run on a batch of two black 64x64 images:
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use cornet_model::{Arch, Mode, Model, ModelConfig};
///
/// let config = ModelConfig {
///     widths: [8, 16, 32, 64],
///     num_classes: 10,
///     ..ModelConfig::full(Arch::Z)
/// };
/// let model = Model::new(&config, &Device::Cpu, 0)?;
/// let images = Tensor::zeros((2, 3, 64, 64), DType::F32, &Device::Cpu)?;
/// let logits = model.forward(&images, Mode::Eval)?;
/// assert_eq!(logits.dims(), [2, 10]);
/// # Ok::<(), cornet_model::Error>(())
/// ```
pub struct Model {
    config: ModelConfig,
    store: ParamStore,
    network: Box<dyn Network>,
    batch_groups: BatchGroups,
}

impl Model {
    /// A freshly initialised model on `device`, as the original's constructors initialise it,
    /// with the random draws fixed by `seed`. Fails with [`Error::InvalidConfig`] where
    /// [`ModelConfig::validate`] does.
    pub fn new(config: &ModelConfig, device: &Device, seed: u64) -> Result<Self> {
        config.validate()?;
        let mut b = Builder::new(device, seed);
        let network = match config.arch {
            Arch::Z => Box::new(CornetZ::new(&mut b, config)?) as Box<dyn Network>,
            Arch::R | Arch::RT => Box::new(CornetRecurrent::new(&mut b, config)?),
            Arch::S => Box::new(CornetS::new(&mut b, config)?),
        };
        Ok(Model {
            config: config.clone(),
            store: b.store,
            network,
            batch_groups: BatchGroups::default(),
        })
    }

    /// Builds the model that `state` describes (widths, classes and CORnet-S's recurrence are
    /// read off its shapes) and loads it. `arch` picks between R and RT, whose parameters are
    /// the same; where it is `None` the checkpoint's own `arch` entry decides, else RT.
    pub fn from_state_dict(
        state: &StateDict,
        arch: Option<Arch>,
        times: Option<usize>,
        device: &Device,
    ) -> Result<Self> {
        let mut config = weights::infer_config(state, arch)?;
        if let Some(times) = times {
            config.times = times;
        }
        let model = Model::new(&config, device, 0)?;
        model.store.load(&state.tensors)?;
        Ok(model)
    }

    /// [`Model::from_state_dict`] on a `.pth` (zip or legacy) or safetensors file. Errors name
    /// the file: unreadable, not a checkpoint, damaged, or weights of another model.
    pub fn from_checkpoint(
        path: &Path,
        arch: Option<Arch>,
        times: Option<usize>,
        device: &Device,
    ) -> Result<Self> {
        let state = weights::read(path)?;
        Self::from_state_dict(&state, arch, times, device).map_err(|e| match e {
            Error::Io { .. } | Error::NotACheckpoint { .. } | Error::DamagedCheckpoint { .. } => e,
            other => Error::Incompatible(format!("{}: {other}", path.display())),
        })
    }

    /// The sizes this model was built with.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Groups the images of each training batch for BatchNorm's statistics (the whole batch
    /// until set; the networks without BatchNorm ignore it).
    pub fn set_batch_groups(&mut self, groups: BatchGroups) {
        self.batch_groups = groups;
    }

    /// The parameters and buffers under their PyTorch names.
    pub fn store(&self) -> &ParamStore {
        &self.store
    }

    /// Where its parameters live, and so where its inputs must be.
    pub fn device(&self) -> &Device {
        self.store.entries()[0].var.device()
    }

    /// Logits `[N, num_classes]` for an f32 batch `[N, 3, H, W]` on the model's device. In
    /// [`Mode::Train`] BatchNorm (CORnet-S) uses and updates batch statistics.
    pub fn forward(&self, images: &Tensor, mode: Mode) -> Result<Tensor> {
        self.run(images, mode, &mut Taps::none())
    }

    /// Logits and the taps `filter` selects, from one pass: `(name, value)` in call order,
    /// named `<module>.<call>` (see [`crate::taps`]). Asking for a tap the model does not have
    /// is an [`Error::InvalidConfig`] listing those it has.
    pub fn forward_with_taps(
        &self,
        images: &Tensor,
        mode: Mode,
        filter: TapFilter,
    ) -> Result<(Tensor, Vec<(String, Tensor)>)> {
        let mut taps = Taps::new(filter);
        let logits = self.run(images, mode, &mut taps)?;
        Ok((logits, taps.finish()?))
    }

    fn run(&self, images: &Tensor, mode: Mode, taps: &mut Taps) -> Result<Tensor> {
        let (_, channels, _, _) = images.dims4()?;
        if channels != 3 {
            return Err(Error::InvalidConfig(format!(
                "CORnet takes RGB images as [N, 3, H, W], got shape {:?}",
                images.dims()
            )));
        }
        let mut pass = Pass {
            mode,
            taps,
            batch_groups: &self.batch_groups,
        };
        self.network.forward(images, &mut pass)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Evaluation keeps no autograd graph behind its outputs (so an unrolled recurrence frees
    /// each step as it goes), while training keeps the whole graph for the backward pass.
    #[test]
    fn evaluation_keeps_no_graph_and_training_does() -> Result<()> {
        let config = ModelConfig {
            arch: Arch::RT,
            widths: [32, 32, 32, 32],
            num_classes: 5,
            // Enough steps for the image to reach IT (at 3, RT's logits never see V1).
            times: 5,
            s_times: [1, 1, 1],
        };
        let model = Model::new(&config, &Device::Cpu, 0)?;
        let images = Tensor::randn(0f32, 1., (2, 3, 64, 64), &Device::Cpu)?;
        let v1 = |model: &Model| {
            let entry = model.store().parameters().next().expect("parameters");
            entry.var.as_tensor().clone()
        };
        let first = v1(&model);
        let eval = model.forward(&images, Mode::Eval)?.sum_all()?.backward()?;
        assert!(eval.get(&first).is_none(), "an eval forward kept its graph");
        let train = model.forward(&images, Mode::Train)?.sum_all()?.backward()?;
        assert!(
            train.get(&first).is_some(),
            "a training forward lost its graph"
        );
        Ok(())
    }
}
