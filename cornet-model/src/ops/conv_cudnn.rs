//! `nn.Conv2d` (dilation 1, groups 1, no bias) on CUDA: the forward, the input gradient and
//! the weight gradient each one cuDNN call.
//!
//! candle uses cuDNN for the forward only; its backward computes the input gradient with a
//! direct `conv_transpose2d` kernel and the weight gradient as a convolution with batch and
//! channels swapped, several times slower than cuDNN's kernels for the shapes of CORnet.
//! Each pass picks its algorithm once per shape (cuDNN's heuristics: what PyTorch does with
//! `cudnn.benchmark` off) and all passes on a device share one workspace that only grows, so
//! that a training step allocates nothing for cuDNN after its first iteration.
//!
//! Math modes: f32 runs on FMA units only, keeping it the parity reference (TF32 tensor cores
//! round inputs to a 10-bit mantissa, ~1e-3 relative, which PyTorch allows by default through
//! `torch.backends.cudnn.allow_tf32`); bf16 runs on tensor cores and accumulates in f32.

use candle_core::cuda::cudarc::cudnn::{
    sys, ConvBackwardData, ConvBackwardFilter, ConvForward, Cudnn, CudnnDataType,
};
use candle_core::cuda::cudarc::driver::{CudaSlice, CudaView, DeviceRepr};
use candle_core::cuda::{CudaDType, DeviceId};
use candle_core::{
    CpuStorage, CudaDevice, CudaStorage, CustomOp2, DType, Layout, Result, Shape, Tensor, WithDType,
};
use half::bf16;
use std::cell::RefCell;
use std::collections::hash_map::{Entry, HashMap};
use std::sync::Arc;

/// `x` [N, C, H, W] convolved with `weight` [O, C, k, k] at `stride` with zero `padding`, both
/// on one CUDA device in f32 or bf16.
pub(super) fn conv2d(x: &Tensor, weight: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    let conv = Convolution::new(x, weight, stride, padding)?;
    let forward = Pass {
        conv,
        direction: Direction::Forward,
    };
    x.contiguous()?.apply_op2(&weight.contiguous()?, forward)
}

/// Everything that fixes a convolution's descriptors, algorithms and workspace sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Convolution {
    input: [usize; 4],
    weight: [usize; 4],
    stride: usize,
    padding: usize,
    dtype: DType,
}

impl Convolution {
    fn new(x: &Tensor, weight: &Tensor, stride: usize, padding: usize) -> Result<Self> {
        let (n, c, h, w) = x.dims4()?;
        let (o, wc, kh, kw) = weight.dims4()?;
        if wc != c || kh != kw || h + 2 * padding < kh || w + 2 * padding < kw {
            candle_core::bail!(
                "conv2d: input {:?} does not fit square kernel {:?} with padding {padding}",
                x.shape(),
                weight.shape()
            )
        }
        if x.dtype() != weight.dtype() || !matches!(x.dtype(), DType::F32 | DType::BF16) {
            candle_core::bail!(
                "conv2d on cuDNN takes f32 or bf16 input and weight of one dtype, not {:?} and {:?}",
                x.dtype(),
                weight.dtype()
            )
        }
        Ok(Convolution {
            input: [n, c, h, w],
            weight: [o, c, kh, kw],
            stride,
            padding,
            dtype: x.dtype(),
        })
    }

    fn output(&self) -> [usize; 4] {
        let [n, _, h, w] = self.input;
        let [o, _, k, _] = self.weight;
        let out = |len: usize| (len + 2 * self.padding - k) / self.stride + 1;
        [n, o, out(h), out(w)]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Direction {
    /// (x, w) -> y
    Forward,
    /// (dy, w) -> dx
    InputGrad,
    /// (x, dy) -> dw
    WeightGrad,
}

/// One cuDNN call of a convolution, as a candle op over its two tensor operands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Pass {
    conv: Convolution,
    direction: Direction,
}

impl Pass {
    fn output_dims(&self) -> [usize; 4] {
        match self.direction {
            Direction::Forward => self.conv.output(),
            Direction::InputGrad => self.conv.input,
            Direction::WeightGrad => self.conv.weight,
        }
    }

    fn run<T>(
        &self,
        a: &CudaStorage,
        al: &Layout,
        b: &CudaStorage,
        bl: &Layout,
    ) -> Result<CudaStorage>
    where
        T: CudaDType + CudnnDataType + DeviceRepr + WithDType,
    {
        let device = &a.device;
        let a = contiguous_view::<T>(a, al)?;
        let b = contiguous_view::<T>(b, bl)?;
        let len = self.output_dims().iter().product();
        // SAFETY: cuDNN writes every output element; with beta = 0 it reads none of them.
        let mut out = unsafe { device.alloc::<T>(len)? };
        ENGINES.with(|engines| {
            let mut engines = engines.borrow_mut();
            let engine = match engines.entry(device.id()) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => e.insert(Engine::new(device)?),
            };
            engine.launch(self, &a, &b, &mut out)
        })?;
        Ok(CudaStorage::wrap_cuda_slice(out, device.clone()))
    }
}

fn contiguous_view<'a, T: CudaDType>(s: &'a CudaStorage, l: &Layout) -> Result<CudaView<'a, T>> {
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(s.as_cuda_slice::<T>()?.slice(start..end)),
        None => candle_core::bail!("conv2d on cuDNN takes contiguous tensors"),
    }
}

impl CustomOp2 for Pass {
    fn name(&self) -> &'static str {
        "conv2d-cudnn"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        candle_core::bail!("conv2d on cuDNN takes CUDA tensors")
    }

    fn cuda_fwd(
        &self,
        a: &CudaStorage,
        al: &Layout,
        b: &CudaStorage,
        bl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let out = match self.conv.dtype {
            DType::F32 => self.run::<f32>(a, al, b, bl)?,
            DType::BF16 => self.run::<bf16>(a, al, b, bl)?,
            other => candle_core::bail!("conv2d on cuDNN: no {other:?} kernels"),
        };
        Ok((out, Shape::from(self.output_dims().to_vec())))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        if self.direction != Direction::Forward {
            candle_core::bail!("conv2d on cuDNN has no second derivatives")
        }
        let dy = dy.to_dtype(self.conv.dtype)?.contiguous()?;
        let pass = |direction| Pass {
            conv: self.conv,
            direction,
        };
        // The image (a leaf that no variable produced) needs no gradient: skip that call.
        let dx = x
            .track_op()
            .then(|| dy.apply_op2_no_bwd(w, &pass(Direction::InputGrad)))
            .transpose()?;
        let dw = x.apply_op2_no_bwd(&dy, &pass(Direction::WeightGrad))?;
        Ok((dx, Some(dw)))
    }
}

// cuDNN handles are neither Send nor Sync, so each thread keeps its own per device (as candle
// does for its forward convolution).
thread_local! {
    static ENGINES: RefCell<HashMap<DeviceId, Engine>> = RefCell::new(HashMap::new());
}

/// A device's cuDNN handle (on candle's stream, so that cuDNN's kernels are ordered with
/// candle's), the algorithm chosen for each pass seen, and the shared workspace.
struct Engine {
    cudnn: Arc<Cudnn>,
    device: CudaDevice,
    chosen: HashMap<Pass, (Algorithm, usize)>,
    workspace: Option<CudaSlice<u8>>,
}

#[derive(Debug, Clone, Copy)]
enum Algorithm {
    Forward(sys::cudnnConvolutionFwdAlgo_t),
    InputGrad(sys::cudnnConvolutionBwdDataAlgo_t),
    WeightGrad(sys::cudnnConvolutionBwdFilterAlgo_t),
}

impl Engine {
    fn new(device: &CudaDevice) -> Result<Self> {
        Ok(Engine {
            cudnn: Cudnn::new(device.cuda_stream())?,
            device: device.clone(),
            chosen: HashMap::new(),
            workspace: None,
        })
    }

    /// The algorithm and workspace size of `pass`: chosen by `pick` the first time a pass of
    /// this shape runs, remembered after.
    fn choose(
        &mut self,
        pass: &Pass,
        pick: impl FnOnce() -> Result<(Algorithm, usize)>,
    ) -> Result<(Algorithm, usize)> {
        if let Some(chosen) = self.chosen.get(pass) {
            return Ok(*chosen);
        }
        let chosen = pick()?;
        self.chosen.insert(*pass, chosen);
        Ok(chosen)
    }

    /// A workspace of at least `bytes`, grown (never shrunk) when a pass needs more.
    fn workspace(&mut self, bytes: usize) -> Result<Option<&mut CudaSlice<u8>>> {
        if bytes == 0 {
            return Ok(None);
        }
        if self.workspace.as_ref().is_none_or(|w| w.len() < bytes) {
            // Release the old one first so that both are never held at once.
            self.workspace = None;
            // SAFETY: a workspace is scratch space; cuDNN never reads what it did not write.
            self.workspace = Some(unsafe { self.device.alloc::<u8>(bytes)? });
        }
        Ok(self.workspace.as_mut())
    }

    /// Runs `pass` from operands `a` and `b` into `out` (see [`Direction`] for which is which).
    fn launch<T>(
        &mut self,
        pass: &Pass,
        a: &CudaView<T>,
        b: &CudaView<T>,
        out: &mut CudaSlice<T>,
    ) -> Result<()>
    where
        T: CudnnDataType + DeviceRepr + WithDType,
    {
        use sys::cudnnTensorFormat_t::CUDNN_TENSOR_NCHW as NCHW;
        let conv = &pass.conv;
        let dims = |d: [usize; 4]| d.map(|v| v as i32);
        let (p, s) = (conv.padding as i32, conv.stride as i32);
        // The compute type is f32 for both dtypes: bf16 data accumulates in f32.
        let mut desc = self.cudnn.create_conv2d::<f32>(
            [p, p],
            [s, s],
            [1, 1],
            sys::cudnnConvolutionMode_t::CUDNN_CROSS_CORRELATION,
        )?;
        desc.set_math_type(match conv.dtype {
            DType::F32 => sys::cudnnMathType_t::CUDNN_FMA_MATH,
            _ => sys::cudnnMathType_t::CUDNN_TENSOR_OP_MATH,
        })?;
        let x = self.cudnn.create_4d_tensor::<T>(NCHW, dims(conv.input))?;
        let w = self.cudnn.create_4d_filter::<T>(NCHW, dims(conv.weight))?;
        let y = self
            .cudnn
            .create_4d_tensor::<T>(NCHW, dims(conv.output()))?;
        let scale = (T::from_f64(1.0), T::from_f64(0.0));
        // SAFETY (each launch): the descriptors above describe the operands' contiguous NCHW
        // layouts and dtype, which `Pass::run` checked against the convolution.
        match pass.direction {
            Direction::Forward => {
                let op = ConvForward {
                    conv: &desc,
                    x: &x,
                    w: &w,
                    y: &y,
                };
                let (algo, bytes) = self.choose(pass, || {
                    let algo = op.pick_algorithm()?;
                    Ok((Algorithm::Forward(algo), op.get_workspace_size(algo)?))
                })?;
                let Algorithm::Forward(algo) = algo else {
                    unreachable!("{pass:?} has a forward algorithm")
                };
                let workspace = self.workspace(bytes)?;
                unsafe { op.launch(algo, workspace, scale, a, b, out)? }
            }
            Direction::InputGrad => {
                let op = ConvBackwardData {
                    conv: &desc,
                    dx: &x,
                    w: &w,
                    dy: &y,
                };
                let (algo, bytes) = self.choose(pass, || {
                    let algo = op.pick_algorithm()?;
                    Ok((Algorithm::InputGrad(algo), op.get_workspace_size(algo)?))
                })?;
                let Algorithm::InputGrad(algo) = algo else {
                    unreachable!("{pass:?} has an input-gradient algorithm")
                };
                let workspace = self.workspace(bytes)?;
                unsafe { op.launch(algo, workspace, scale, out, b, a)? }
            }
            Direction::WeightGrad => {
                let op = ConvBackwardFilter {
                    conv: &desc,
                    x: &x,
                    dw: &w,
                    dy: &y,
                };
                let (algo, bytes) = self.choose(pass, || {
                    let algo = op.pick_algorithm()?;
                    Ok((Algorithm::WeightGrad(algo), op.get_workspace_size(algo)?))
                })?;
                let Algorithm::WeightGrad(algo) = algo else {
                    unreachable!("{pass:?} has a weight-gradient algorithm")
                };
                let workspace = self.workspace(bytes)?;
                unsafe { op.launch(algo, workspace, scale, a, out, b)? }
            }
        }
        Ok(())
    }
}

/// These run only where a CUDA device is present; elsewhere they pass without checking
/// anything, and say so.
#[cfg(test)]
mod tests {
    use super::super::{conv::conv2d as cpu_conv2d, max_abs_diff};
    use crate::testing::cuda_device;
    use candle_core::{DType, Device, Result, Tensor, Var};

    /// The output and both gradients of `sum(conv(x, w) * y)` on `device` in `dtype`, in f32.
    fn conv_and_grads(
        device: &Device,
        dtype: DType,
        tensors: [&Tensor; 3],
        stride: usize,
        padding: usize,
    ) -> Result<[Tensor; 3]> {
        let on = |t: &Tensor| t.to_device(device)?.to_dtype(dtype);
        let x = Var::from_tensor(&on(tensors[0])?)?;
        let w = Var::from_tensor(&on(tensors[1])?)?;
        let out = super::super::conv2d(x.as_tensor(), w.as_tensor(), None, stride, padding)?;
        let grads = (&out * on(tensors[2])?)?.sum_all()?.backward()?;
        let f32_cpu = |t: &Tensor| t.to_dtype(DType::F32)?.to_device(&Device::Cpu);
        Ok([
            f32_cpu(&out)?,
            f32_cpu(grads.get(x.as_tensor()).expect("input gradient"))?,
            f32_cpu(grads.get(w.as_tensor()).expect("weight gradient"))?,
        ])
    }

    /// cuDNN against the CPU GEMM op on the same (for bf16: the same rounded) operands.
    #[test]
    fn cudnn_matches_the_cpu_op_forward_and_backward() -> Result<()> {
        let Some(gpu) = cuda_device("cuDNN convolution") else {
            return Ok(());
        };
        let cases = [
            // (batch, in, out, h, w, kernel, stride, padding)
            (2, 3, 8, 17, 13, 7, 2, 3),
            (3, 6, 4, 8, 11, 1, 1, 0),
            (2, 5, 7, 10, 7, 3, 2, 1),
            (4, 8, 16, 7, 7, 3, 1, 1),
        ];
        for (dtype, tolerance) in [(DType::F32, 1e-4), (DType::BF16, 1e-2)] {
            for (n, c, o, h, w, k, s, p) in cases {
                let randn = |shape: &[usize]| Tensor::randn(0f32, 1., shape, &Device::Cpu);
                let x = randn(&[n, c, h, w])?;
                let weight = randn(&[o, c, k, k])?;
                let (_, _, oh, ow) = cpu_conv2d(&x, &weight, None, s, p)?.dims4()?;
                let y = randn(&[n, o, oh, ow])?;
                let ours = conv_and_grads(&gpu, dtype, [&x, &weight, &y], s, p)?;
                let reference = conv_and_grads(&Device::Cpu, dtype, [&x, &weight, &y], s, p)?;
                for (name, a, b) in [
                    ("output", &ours[0], &reference[0]),
                    ("input gradient", &ours[1], &reference[1]),
                    ("weight gradient", &ours[2], &reference[2]),
                ] {
                    let scale = b.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?.max(1.0);
                    let diff = max_abs_diff(a, b);
                    assert!(
                        diff <= tolerance * scale,
                        "{dtype:?} case {:?} {name}: {diff} at scale {scale}",
                        (n, c, o, h, w, k, s, p)
                    );
                }
            }
        }
        Ok(())
    }
}
