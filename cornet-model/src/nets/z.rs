//! CORnet-Z: four conv-ReLU-maxpool areas and a linear decoder.

use crate::arch::{ModelConfig, AREAS};
use crate::error::Result;
use crate::layers::{child, Conv2d, ConvSpec, Decoder, Linear, MaxPool, Output, Pass, Relu};
use crate::nets::Network;
use crate::store::{Builder, Init};
use candle_core::Tensor;

/// `CORblock_Z`.
struct Area {
    conv: Conv2d,
    nonlin: Relu,
    pool: MaxPool,
    output: Output,
}

impl Area {
    fn new(b: &mut Builder, name: &str, spec: ConvSpec) -> Result<Self> {
        // The original: xavier_uniform_ weights and zero biases for every conv and linear layer.
        let xavier = Init::Uniform((6.0 / (spec.fan_in() + spec.fan_out()) as f64).sqrt());
        Ok(Area {
            conv: Conv2d::new(b, child(name, "conv"), spec, xavier, Init::Const(0.0))?,
            nonlin: Relu(child(name, "nonlin")),
            pool: MaxPool(child(name, "pool")),
            output: Output(child(name, "output")),
        })
    }

    fn forward(&self, x: &Tensor, pass: &mut Pass) -> Result<Tensor> {
        let x = self.conv.forward(x, pass)?;
        let x = self.nonlin.forward(&x, pass)?;
        let x = self.pool.forward(&x, pass)?;
        Ok(self.output.forward(x, pass))
    }
}

pub(crate) struct CornetZ {
    areas: Vec<Area>,
    decoder: Decoder,
}

impl CornetZ {
    pub fn new(b: &mut Builder, config: &ModelConfig) -> Result<Self> {
        let [w1, w2, w4, wit] = config.widths;
        let specs = [
            ConvSpec::same(3, w1, 7, 2),
            ConvSpec::same(w1, w2, 3, 1),
            ConvSpec::same(w2, w4, 3, 1),
            ConvSpec::same(w4, wit, 3, 1),
        ];
        let areas = AREAS
            .iter()
            .zip(specs)
            .map(|(name, spec)| Area::new(b, name, spec))
            .collect::<Result<_>>()?;
        let xavier = Init::Uniform((6.0 / (wit + config.num_classes) as f64).sqrt());
        let linear = Linear::new(
            b,
            "decoder.linear".into(),
            wit,
            config.num_classes,
            xavier,
            Init::Const(0.0),
        )?;
        Ok(CornetZ {
            areas,
            decoder: Decoder::new(linear, true),
        })
    }
}

impl Network for CornetZ {
    fn forward(&self, image: &Tensor, pass: &mut Pass) -> Result<Tensor> {
        let mut x = image.clone();
        for area in &self.areas {
            x = area.forward(&x, pass)?;
        }
        self.decoder.forward(&x, pass)
    }
}
