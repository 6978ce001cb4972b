//! CORnet-RT and the legacy CORnet-R: the same areas and parameters, two ways to unroll time.
//!
//! At t = 0 only V1 sees the image; V2, V4 and IT start from zeros of their output shape. For
//! t >= 1, RT feeds each area the previous area's output from step t - 1 (signals take one step
//! per area, as in cortex); legacy R feeds it the output already computed at step t.

use crate::arch::{Arch, ModelConfig, AREAS, GROUP_NORM_GROUPS};
use crate::error::Result;
use crate::layers::{
    child, default_bound, Conv2d, ConvSpec, Decoder, GroupNorm, Linear, Output, Pass, Relu,
};
use crate::nets::Network;
use crate::store::{Builder, Init};
use candle_core::Tensor;

/// `CORblock_RT` (identical to `CORblock_R`).
struct Area {
    conv_input: Conv2d,
    norm_input: GroupNorm,
    nonlin_input: Relu,
    conv1: Conv2d,
    norm1: GroupNorm,
    nonlin1: Relu,
    output: Output,
    channels: usize,
}

impl Area {
    fn new(b: &mut Builder, name: &str, input: ConvSpec) -> Result<Self> {
        // No custom initialisation in the original: PyTorch's defaults.
        let conv = |b: &mut Builder, child_name: &str, spec: ConvSpec| {
            let bound = Init::Uniform(default_bound(spec.fan_in()));
            Conv2d::new(b, child(name, child_name), spec, bound, bound)
        };
        let width = input.out_channels;
        Ok(Area {
            conv_input: conv(b, "conv_input", input)?,
            norm_input: GroupNorm::new(b, child(name, "norm_input"), GROUP_NORM_GROUPS, width)?,
            nonlin_input: Relu(child(name, "nonlin_input")),
            conv1: conv(
                b,
                "conv1",
                ConvSpec::same(width, width, 3, 1).without_bias(),
            )?,
            norm1: GroupNorm::new(b, child(name, "norm1"), GROUP_NORM_GROUPS, width)?,
            nonlin1: Relu(child(name, "nonlin1")),
            output: Output(child(name, "output")),
            channels: width,
        })
    }

    /// A time step with an input: the image for V1, the previous area's output otherwise.
    fn step(&self, input: &Tensor, state: Option<&Tensor>, pass: &mut Pass) -> Result<Tensor> {
        let x = self.conv_input.forward(input, pass)?;
        let x = self.norm_input.forward(&x, pass)?;
        let x = self.nonlin_input.forward(&x, pass)?;
        self.recur(x, state, pass)
    }

    /// Step 0 of V2, V4 and IT, which nothing has reached yet: the input is zeros of the area's
    /// output shape `[batch, channels, h, w]`, in the image's dtype and on its device.
    fn step_without_input(
        &self,
        batch: usize,
        (h, w): (usize, usize),
        image: &Tensor,
        pass: &mut Pass,
    ) -> Result<Tensor> {
        let shape = (batch, self.channels, h, w);
        let zeros = Tensor::zeros(shape, image.dtype(), image.device())?;
        self.recur(zeros, None, pass)
    }

    /// `skip = input + state`, then conv1 -> GroupNorm -> ReLU gives the new output and state.
    fn recur(&self, input: Tensor, state: Option<&Tensor>, pass: &mut Pass) -> Result<Tensor> {
        let skip = match state {
            Some(state) => (input + state)?,
            None => input,
        };
        let x = self.conv1.forward(&skip, pass)?;
        let x = self.norm1.forward(&x, pass)?;
        let x = self.nonlin1.forward(&x, pass)?;
        Ok(self.output.forward(x, pass))
    }
}

pub(crate) struct CornetRecurrent {
    /// R feeds an area the current step's output of the area before it; RT the previous step's.
    reads_current_step: bool,
    times: usize,
    areas: Vec<Area>,
    decoder: Decoder,
}

impl CornetRecurrent {
    pub fn new(b: &mut Builder, config: &ModelConfig) -> Result<Self> {
        let [w1, w2, w4, wit] = config.widths;
        let specs = [
            ConvSpec::same(3, w1, 7, 4),
            ConvSpec::same(w1, w2, 3, 2),
            ConvSpec::same(w2, w4, 3, 2),
            ConvSpec::same(w4, wit, 3, 2),
        ];
        let areas = AREAS
            .iter()
            .zip(specs)
            .map(|(name, spec)| Area::new(b, name, spec))
            .collect::<Result<_>>()?;
        let linear = Linear::pytorch_default(b, "decoder.linear".into(), wit, config.num_classes)?;
        Ok(CornetRecurrent {
            reads_current_step: config.arch == Arch::R,
            times: config.times,
            areas,
            decoder: Decoder::new(linear, false),
        })
    }
}

impl Network for CornetRecurrent {
    fn forward(&self, image: &Tensor, pass: &mut Pass) -> Result<Tensor> {
        let (batch, _, h, w) = image.dims4()?;
        // The original hard-codes these shapes for 224-pixel input (56, 28, 14, 7); computing
        // them from the convolutions gives the same there and works at any size.
        let mut hw = (h, w);
        let mut outputs = Vec::with_capacity(self.areas.len());
        for (i, area) in self.areas.iter().enumerate() {
            hw = area.conv_input.output_hw(hw);
            outputs.push(if i == 0 {
                area.step(image, None, pass)?
            } else {
                area.step_without_input(batch, hw, image, pass)?
            });
        }
        for _ in 1..self.times {
            let previous = outputs.clone();
            for (i, area) in self.areas.iter().enumerate() {
                let input = match i {
                    0 => image,
                    _ if self.reads_current_step => &outputs[i - 1],
                    _ => &previous[i - 1],
                };
                outputs[i] = area.step(input, Some(&previous[i]), pass)?;
            }
        }
        self.decoder.forward(&outputs[outputs.len() - 1], pass)
    }
}
