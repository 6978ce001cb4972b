//! A CORnet with its state dict: build, load, run.

use crate::arch::{Arch, ModelConfig};
use crate::error::{Error, Result};
use crate::layers::{Mode, Pass};
use crate::nets::{recurrent::CornetRecurrent, s::CornetS, z::CornetZ, Network};
use crate::store::{Builder, ParamStore};
use crate::taps::{TapFilter, Taps};
use crate::weights::{self, StateDict};
use candle_core::{Device, Tensor};
use std::path::Path;

/// One CORnet: its graph and its named parameters and buffers.
pub struct Model {
    config: ModelConfig,
    store: ParamStore,
    network: Box<dyn Network>,
}

impl Model {
    /// A freshly initialised model, as the original's constructors initialise it, with the
    /// random draws fixed by `seed`.
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

    /// [`Model::from_state_dict`] on a `.pth` (zip or legacy) or safetensors file.
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

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The parameters and buffers under their PyTorch names.
    pub fn store(&self) -> &ParamStore {
        &self.store
    }

    pub fn device(&self) -> &Device {
        self.store.entries()[0].var.device()
    }

    /// Logits for an NCHW float32 batch.
    pub fn forward(&self, images: &Tensor, mode: Mode) -> Result<Tensor> {
        self.run(images, mode, &mut Taps::none())
    }

    /// Logits and the selected taps, from one pass.
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
        let mut pass = Pass { mode, taps };
        self.network.forward(images, &mut pass)
    }
}
