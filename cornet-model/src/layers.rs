//! The PyTorch modules CORnet is made of, each recording its output as a tap under its name.

use crate::batch_groups::BatchGroups;
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
    /// Which images each BatchNorm's statistics cover in training; every call uses the same.
    pub batch_groups: &'a BatchGroups,
}

impl Pass<'_> {
    fn tap(&mut self, module: &str, value: Tensor) -> Tensor {
        // Nothing is differentiated in evaluation: cutting the autograd graph at each module's
        // output lets an unrolled recurrence free each step's intermediates (the weights are
        // variables, so every result would otherwise keep its inputs alive to the end).
        let value = match self.mode {
            Mode::Eval => value.detach(),
            Mode::Train => value,
        };
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

/// `param` in the dtype of the activation `x`: weights are kept in f32 (the master copy that
/// the optimizer updates) and cast for a reduced-precision forward, as autocast does; the cast's
/// backward brings their gradients back to f32.
fn in_dtype_of(x: &Tensor, param: &Tensor) -> Result<Tensor> {
    Ok(param.to_dtype(x.dtype())?)
}

/// Runs a normalization on `x` in f32 and returns its output in `x`'s dtype: statistics in
/// reduced precision lose too much (autocast keeps norms in f32 too).
fn normalized_in_f32(x: &Tensor, norm: impl FnOnce(&Tensor) -> Result<Tensor>) -> Result<Tensor> {
    if x.dtype() == DType::F32 {
        return norm(x);
    }
    Ok(norm(&x.to_dtype(DType::F32)?)?.to_dtype(x.dtype())?)
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
        let weight = in_dtype_of(x, &self.weight)?;
        let bias = self.bias.as_ref().map(|b| in_dtype_of(x, b)).transpose()?;
        let y = ops::conv2d(x, &weight, bias.as_ref(), stride, self.spec.padding)?;
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
        let y = if x.dtype() == self.inner.weight().dtype() {
            self.inner.forward(x)?
        } else {
            let bias = self.inner.bias().map(|b| in_dtype_of(x, b)).transpose()?;
            candle_nn::Linear::new(in_dtype_of(x, self.inner.weight())?, bias).forward(x)?
        };
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
        let y = normalized_in_f32(x, |x| Ok(self.inner.forward(x)?))?;
        Ok(pass.tap(&self.name, y))
    }
}

/// `nn.BatchNorm2d(channels)`: momentum 0.1, running variance updated with the unbiased batch
/// variance, `num_batches_tracked` counted in train mode.
pub(crate) struct BatchNorm2d {
    name: String,
    weight: Tensor,
    bias: Tensor,
    running_mean: Var,
    running_var: Var,
    num_batches_tracked: Var,
}

/// PyTorch's default BatchNorm momentum: the weight of the newest batch in the running
/// statistics.
const BATCH_NORM_MOMENTUM: f64 = 0.1;

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
        Ok(BatchNorm2d {
            name,
            weight,
            bias,
            running_mean,
            running_var,
            num_batches_tracked,
        })
    }

    pub fn forward(&self, x: &Tensor, pass: &mut Pass) -> Result<Tensor> {
        let y = normalized_in_f32(x, |x| match pass.mode {
            Mode::Train => self.forward_train(x, pass.batch_groups),
            Mode::Eval => self.forward_eval(x),
        })?;
        Ok(pass.tap(&self.name, y))
    }

    /// Normalizes by the statistics of each group of the batch and folds the first group's
    /// into the running ones (the store shares these variables, so the state dict sees the
    /// update), as `nn.DataParallel` keeps its first replica's.
    fn forward_train(&self, x: &Tensor, groups: &BatchGroups) -> Result<Tensor> {
        let bn = ops::batch_norm_train(x, &self.weight, &self.bias, NORM_EPS, groups)?;
        let count = bn.count as f64;
        if count < 2.0 {
            return Err(crate::error::Error::InvalidInput(format!(
                "{}: batch normalization in train mode needs more than one value per channel, got input {:?} in groups of {count} values",
                self.name,
                x.dims()
            )));
        }
        let unbiased = (bn.variance * (count / (count - 1.0)))?;
        let blend = |running: &Var, batch: &Tensor| -> Result<()> {
            let updated = ((running.as_detached_tensor() * (1.0 - BATCH_NORM_MOMENTUM))?
                + (batch * BATCH_NORM_MOMENTUM)?)?;
            running.set(&updated)?;
            Ok(())
        };
        blend(&self.running_mean, &bn.mean)?;
        blend(&self.running_var, &unbiased)?;
        let tracked = (self.num_batches_tracked.as_detached_tensor() + 1.0)?;
        self.num_batches_tracked.set(&tracked)?;
        Ok(bn.output)
    }

    /// Normalizes by the running statistics: `x * scale + shift` per channel, as PyTorch folds
    /// them.
    fn forward_eval(&self, x: &Tensor) -> Result<Tensor> {
        let per_channel = |t: Tensor| t.reshape((1, (), 1, 1));
        let scale = (&self.weight / (self.running_var.as_tensor() + NORM_EPS)?.sqrt()?)?;
        let shift = (&self.bias - (self.running_mean.as_tensor() * &scale)?)?;
        Ok(x.broadcast_mul(&per_channel(scale)?)?
            .broadcast_add(&per_channel(shift)?)?)
    }
}

/// `nn.ReLU`.
pub(crate) struct Relu(pub String);

impl Relu {
    pub fn forward(&self, x: &Tensor, pass: &mut Pass) -> Result<Tensor> {
        Ok(pass.tap(&self.0, ops::relu(x)?))
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
