//! CORnet-S: a V1 of two convolutions and recurrent bottleneck blocks for V2, V4 and IT.

use crate::arch::{ModelConfig, AREAS};
use crate::error::Result;
use crate::layers::{
    child, BatchNorm2d, Conv2d, ConvSpec, Decoder, Linear, MaxPool, Output, Pass, Relu,
};
use crate::nets::Network;
use crate::store::{Builder, Init};
use candle_core::Tensor;

/// The original: every conv weight ~ N(0, sqrt(2 / (k * k * out_channels))); BatchNorm weight 1,
/// bias 0; the linear layer keeps PyTorch's default ("originally forgot", says the source).
fn conv(b: &mut Builder, name: String, spec: ConvSpec) -> Result<Conv2d> {
    let std = (2.0 / spec.fan_out() as f64).sqrt();
    Conv2d::new(
        b,
        name,
        spec.without_bias(),
        Init::Normal(std),
        Init::Const(0.0),
    )
}

/// V1 is a plain sequence, "custom to save GPU memory".
struct V1 {
    conv1: Conv2d,
    norm1: BatchNorm2d,
    nonlin1: Relu,
    pool: MaxPool,
    conv2: Conv2d,
    norm2: BatchNorm2d,
    nonlin2: Relu,
    output: Output,
}

impl V1 {
    fn new(b: &mut Builder, width: usize) -> Result<Self> {
        Ok(V1 {
            conv1: conv(b, "V1.conv1".into(), ConvSpec::same(3, width, 7, 2))?,
            norm1: BatchNorm2d::new(b, "V1.norm1".into(), width)?,
            nonlin1: Relu("V1.nonlin1".into()),
            pool: MaxPool("V1.pool".into()),
            conv2: conv(b, "V1.conv2".into(), ConvSpec::same(width, width, 3, 1))?,
            norm2: BatchNorm2d::new(b, "V1.norm2".into(), width)?,
            nonlin2: Relu("V1.nonlin2".into()),
            output: Output("V1.output".into()),
        })
    }

    fn forward(&self, x: &Tensor, pass: &mut Pass) -> Result<Tensor> {
        let x = self.conv1.forward(x, pass)?;
        let x = self.norm1.forward(&x, pass)?;
        let x = self.nonlin1.forward(&x, pass)?;
        let x = self.pool.forward(&x, pass)?;
        let x = self.conv2.forward(&x, pass)?;
        let x = self.norm2.forward(&x, pass)?;
        let x = self.nonlin2.forward(&x, pass)?;
        Ok(self.output.forward(x, pass))
    }
}

/// The bottleneck's channel expansion.
const SCALE: usize = 4;

/// The BatchNorms of one recurrent step: "need BatchNorm for each time step for training to
/// work well".
struct StepNorms {
    norm1: BatchNorm2d,
    norm2: BatchNorm2d,
    norm3: BatchNorm2d,
}

/// `CORblock_S`.
struct Block {
    conv_input: Conv2d,
    skip: Conv2d,
    norm_skip: BatchNorm2d,
    conv1: Conv2d,
    nonlin1: Relu,
    conv2: Conv2d,
    nonlin2: Relu,
    conv3: Conv2d,
    nonlin3: Relu,
    output: Output,
    steps: Vec<StepNorms>,
}

impl Block {
    fn new(
        b: &mut Builder,
        name: &str,
        in_channels: usize,
        width: usize,
        times: usize,
    ) -> Result<Self> {
        let wide = width * SCALE;
        let n = |child_name: &str| child(name, child_name);
        // Registration order is the state dict's: convs first, then the norms step by step.
        let conv_input = conv(b, n("conv_input"), ConvSpec::same(in_channels, width, 1, 1))?;
        let skip = conv(b, n("skip"), ConvSpec::same(width, width, 1, 2))?;
        let norm_skip = BatchNorm2d::new(b, n("norm_skip"), width)?;
        let conv1 = conv(b, n("conv1"), ConvSpec::same(width, wide, 1, 1))?;
        let conv2 = conv(b, n("conv2"), ConvSpec::same(wide, wide, 3, 2))?;
        let conv3 = conv(b, n("conv3"), ConvSpec::same(wide, width, 1, 1))?;
        let steps = (0..times)
            .map(|t| {
                Ok(StepNorms {
                    norm1: BatchNorm2d::new(b, n(&format!("norm1_{t}")), wide)?,
                    norm2: BatchNorm2d::new(b, n(&format!("norm2_{t}")), wide)?,
                    norm3: BatchNorm2d::new(b, n(&format!("norm3_{t}")), width)?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Block {
            conv_input,
            skip,
            norm_skip,
            conv1,
            nonlin1: Relu(n("nonlin1")),
            conv2,
            nonlin2: Relu(n("nonlin2")),
            conv3,
            nonlin3: Relu(n("nonlin3")),
            output: Output(n("output")),
            steps,
        })
    }

    fn forward(&self, input: &Tensor, pass: &mut Pass) -> Result<Tensor> {
        let mut x = self.conv_input.forward(input, pass)?;
        for (t, norms) in self.steps.iter().enumerate() {
            // Step 0 halves the resolution, in the skip path and in conv2; later steps keep it.
            let (skip, stride) = if t == 0 {
                let skip = self.skip.forward(&x, pass)?;
                (self.norm_skip.forward(&skip, pass)?, 2)
            } else {
                (x.clone(), 1)
            };
            let y = self.conv1.forward(&x, pass)?;
            let y = norms.norm1.forward(&y, pass)?;
            let y = self.nonlin1.forward(&y, pass)?;
            let y = self.conv2.forward_with_stride(&y, stride, pass)?;
            let y = norms.norm2.forward(&y, pass)?;
            let y = self.nonlin2.forward(&y, pass)?;
            let y = self.conv3.forward(&y, pass)?;
            let y = norms.norm3.forward(&y, pass)?;
            let y = self.nonlin3.forward(&(y + skip)?, pass)?;
            x = self.output.forward(y, pass);
        }
        Ok(x)
    }
}

pub(crate) struct CornetS {
    v1: V1,
    blocks: Vec<Block>,
    decoder: Decoder,
}

impl CornetS {
    pub fn new(b: &mut Builder, config: &ModelConfig) -> Result<Self> {
        let widths = config.widths;
        let v1 = V1::new(b, widths[0])?;
        let blocks = (0..3)
            .map(|i| Block::new(b, AREAS[i + 1], widths[i], widths[i + 1], config.s_times[i]))
            .collect::<Result<_>>()?;
        let linear =
            Linear::pytorch_default(b, "decoder.linear".into(), widths[3], config.num_classes)?;
        Ok(CornetS {
            v1,
            blocks,
            decoder: Decoder::new(linear, true),
        })
    }
}

impl Network for CornetS {
    fn forward(&self, image: &Tensor, pass: &mut Pass) -> Result<Tensor> {
        let mut x = self.v1.forward(image, pass)?;
        for block in &self.blocks {
            x = block.forward(&x, pass)?;
        }
        self.decoder.forward(&x, pass)
    }
}
