//! The PyTorch modules CORnet is made of, each recording its output as a tap under its name.

use crate::error::Result;
use crate::ops;
use crate::store::{Builder, Init};
use crate::taps::Taps;
use candle_core::{DType, Module, Tensor, Var};

/// BatchNorm's behaviour, as PyTorch's `model.train()` / `model.eval()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Batch statistics; running statistics are updated.
    Train,
    /// Running statistics.
    Eval,
}

/// What one forward pass carries through the network.
pub struct Pass<'a> {
    pub mode: Mode,
    pub taps: &'a mut Taps,
}

impl Pass<'_> {
    fn tap(&mut self, module: &str, value: Tensor) -> Tensor {
        self.taps.record(module, &value);
        value
    }
}

/// Joins a module path and a child name the way PyTorch's state dict does.
pub(crate) fn child(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// The bound 1/sqrt(fan_in) of PyTorch's default `kaiming_uniform_(a=sqrt(5))` and bias init.
pub(crate) fn default_bound(fan_in: usize) -> f64 {
    1.0 / (fan_in as f64).sqrt()
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct ConvSpec {
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub bias: bool,
}

impl ConvSpec {
    /// A `kernel x kernel` convolution with `kernel / 2` padding, as CORnet writes them.
    pub fn same(in_channels: usize, out_channels: usize, kernel: usize, stride: usize) -> Self {
        ConvSpec {
            in_channels,
            out_channels,
            kernel,
            stride,
            padding: kernel / 2,
            bias: true,
        }
    }

    pub fn without_bias(self) -> Self {
        ConvSpec {
            bias: false,
            ..self
        }
    }

    pub fn fan_in(&self) -> usize {
        self.in_channels * self.kernel * self.kernel
    }

    pub fn fan_out(&self) -> usize {
        self.out_channels * self.kernel * self.kernel
    }
}

/// `nn.Conv2d` (dilation 1, groups 1).
pub(crate) struct Conv2d {
    name: String,
    spec: ConvSpec,
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Conv2d {
    pub fn new(
        b: &mut Builder,
        name: String,
        spec: ConvSpec,
        weight_init: Init,
        bias_init: Init,
    ) -> Result<Self> {
        let shape = [
            spec.out_channels,
            spec.in_channels,
            spec.kernel,
            spec.kernel,
        ];
        let weight = b.param(child(&name, "weight"), &shape, weight_init)?;
        let bias = if spec.bias {
            Some(b.param(child(&name, "bias"), &[spec.out_channels], bias_init)?)
        } else {
            None
        };
        Ok(Conv2d {
            name,
            spec,
            weight,
            bias,
        })
    }

    pub fn forward(&self, x: &Tensor, pass: &mut Pass) -> Result<Tensor> {
        self.forward_with_stride(x, self.spec.stride, pass)
    }

    /// CORnet-S changes its `conv2` stride between time steps.
    pub fn forward_with_stride(
        &self,
        x: &Tensor,
        stride: usize,
        pass: &mut Pass,
    ) -> Result<Tensor> {
        let y = ops::conv2d(x, &self.weight, stride, self.spec.padding)?;
        let y = match &self.bias {
            Some(bias) => y.broadcast_add(&bias.reshape((1, (), 1, 1))?)?,
            None => y,
        };
        Ok(pass.tap(&self.name, y))
    }

    /// The spatial size of this convolution's output for an `h x w` input.
    pub fn output_hw(&self, (h, w): (usize, usize)) -> (usize, usize) {
        let out = |n: usize| (n + 2 * self.spec.padding - self.spec.kernel) / self.spec.stride + 1;
        (out(h), out(w))
    }
}

/// `nn.Linear`.
pub(crate) struct Linear {
    name: String,
    inner: candle_nn::Linear,
}

impl Linear {
    pub fn new(
        b: &mut Builder,
        name: String,
        in_features: usize,
        out_features: usize,
        weight_init: Init,
        bias_init: Init,
    ) -> Result<Self> {
        let weight = b.param(
            child(&name, "weight"),
            &[out_features, in_features],
            weight_init,
        )?;
        let bias = b.param(child(&name, "bias"), &[out_features], bias_init)?;
        Ok(Linear {
            name,
            inner: candle_nn::Linear::new(weight, Some(bias)),
        })
    }

    /// PyTorch's default initialisation of `nn.Linear`.
    pub fn pytorch_default(
        b: &mut Builder,
        name: String,
        in_features: usize,
        out_features: usize,
    ) -> Result<Self> {
        let bound = default_bound(in_features);
        Self::new(
            b,
            name,
            in_features,
            out_features,
            Init::Uniform(bound),
            Init::Uniform(bound),
        )
    }

    pub fn forward(&self, x: &Tensor, pass: &mut Pass) -> Result<Tensor> {
        let y = self.inner.forward(x)?;
        Ok(pass.tap(&self.name, y))
    }
}

/// PyTorch's default eps of GroupNorm and BatchNorm.
const NORM_EPS: f64 = 1e-5;

/// `nn.GroupNorm(groups, channels)`.
pub(crate) struct GroupNorm {
    name: String,
    inner: candle_nn::GroupNorm,
}

impl GroupNorm {
    pub fn new(b: &mut Builder, name: String, groups: usize, channels: usize) -> Result<Self> {
        let weight = b.param(child(&name, "weight"), &[channels], Init::Const(1.0))?;
        let bias = b.param(child(&name, "bias"), &[channels], Init::Const(0.0))?;
        let inner = candle_nn::GroupNorm::new(weight, bias, channels, groups, NORM_EPS)?;
        Ok(GroupNorm { name, inner })
    }

    pub fn forward(&self, x: &Tensor, pass: &mut Pass) -> Result<Tensor> {
        let y = self.inner.forward(x)?;
        Ok(pass.tap(&self.name, y))
    }
}

/// `nn.BatchNorm2d(channels)`: momentum 0.1, running variance updated with the unbiased batch
/// variance, `num_batches_tracked` counted in train mode.
pub(crate) struct BatchNorm2d {
    name: String,
    inner: candle_nn::BatchNorm,
    num_batches_tracked: Var,
}

impl BatchNorm2d {
    pub fn new(b: &mut Builder, name: String, channels: usize) -> Result<Self> {
        let weight = b.param(child(&name, "weight"), &[channels], Init::Const(1.0))?;
        let bias = b.param(child(&name, "bias"), &[channels], Init::Const(0.0))?;
        let running_mean = b.buffer(
            child(&name, "running_mean"),
            Tensor::zeros(channels, DType::F32, b.device())?,
        )?;
        let running_var = b.buffer(
            child(&name, "running_var"),
            Tensor::ones(channels, DType::F32, b.device())?,
        )?;
        let num_batches_tracked = b.buffer(
            child(&name, "num_batches_tracked"),
            Tensor::zeros((), DType::I64, b.device())?,
        )?;
        // The running statistics are shared with the store (same storage), so the updates that
        // candle's BatchNorm makes in train mode land in the state dict.
        let inner = candle_nn::BatchNorm::new(
            channels,
            running_mean.as_tensor().clone(),
            running_var.as_tensor().clone(),
            weight,
            bias,
            NORM_EPS,
        )?;
        Ok(BatchNorm2d {
            name,
            inner,
            num_batches_tracked,
        })
    }

    pub fn forward(&self, x: &Tensor, pass: &mut Pass) -> Result<Tensor> {
        let y = match pass.mode {
            Mode::Train => {
                let y = self.inner.forward_train(x)?;
                let count = (self.num_batches_tracked.as_detached_tensor() + 1.0)?;
                self.num_batches_tracked.set(&count)?;
                y
            }
            Mode::Eval => candle_nn::ModuleT::forward_t(&self.inner, x, false)?,
        };
        Ok(pass.tap(&self.name, y))
    }
}

/// `nn.ReLU`.
pub(crate) struct Relu(pub String);

impl Relu {
    pub fn forward(&self, x: &Tensor, pass: &mut Pass) -> Result<Tensor> {
        Ok(pass.tap(&self.0, x.relu()?))
    }
}

/// `nn.MaxPool2d(3, 2, 1)`, the only pooling CORnet uses.
pub(crate) struct MaxPool(pub String);

impl MaxPool {
    pub fn forward(&self, x: &Tensor, pass: &mut Pass) -> Result<Tensor> {
        Ok(pass.tap(&self.0, ops::max_pool2d(x, 3, 2, 1)?))
    }
}

/// CORnet's `Identity` modules (`<area>.output`, `decoder.output`), there to be tapped.
pub(crate) struct Output(pub String);

impl Output {
    pub fn forward(&self, x: Tensor, pass: &mut Pass) -> Tensor {
        pass.tap(&self.0, x)
    }
}

/// The decoder: `avgpool` (AdaptiveAvgPool2d(1)), `flatten`, `linear` and, in Z and S, an
/// `output` identity.
pub(crate) struct Decoder {
    linear: Linear,
    output: Option<Output>,
}

impl Decoder {
    pub fn new(linear: Linear, has_output: bool) -> Self {
        Decoder {
            linear,
            output: has_output.then(|| Output("decoder.output".into())),
        }
    }

    pub fn forward(&self, x: &Tensor, pass: &mut Pass) -> Result<Tensor> {
        let pooled = pass.tap("decoder.avgpool", ops::global_avg_pool(x)?);
        let flat = pass.tap("decoder.flatten", pooled.flatten_from(1)?);
        let logits = self.linear.forward(&flat, pass)?;
        Ok(match &self.output {
            Some(output) => output.forward(logits, pass),
            None => logits,
        })
    }
}
