//! `nn.ReLU` with PyTorch's gradient.
//!
//! PyTorch passes the output gradient where the output is positive and zero elsewhere
//! (`threshold_backward`); candle's own ReLU also passes it at exactly zero and builds the
//! mask from four full-size temporaries. Here forward and backward are one pass each.

use super::contiguous_f32;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Elements per parallel task: large enough that scheduling costs nothing next to the pass.
const CHUNK: usize = 1 << 15;

/// `max(x, 0)`, NaN kept, as `torch.relu`, with its gradient: on the CPU the one-pass op
/// below, elsewhere `relu_composite` (candle's ops, which every device has).
pub fn relu(x: &Tensor) -> Result<Tensor> {
    if !super::on_cpu_kernels(x) {
        return relu_composite(x);
    }
    if x.dtype() != DType::F32 {
        // Exact in f32, and keeps PyTorch's gradient at 0.
        return relu(&x.to_dtype(DType::F32)?)?.to_dtype(x.dtype());
    }
    x.contiguous()?.apply_op1(Relu)
}

/// ReLU from candle ops that have a backward on every device: zero where `x <= 0`, `x`
/// elsewhere (NaN included), so that the gradient reaches only `x > 0` (and NaN), as in
/// PyTorch. candle's own `relu` passes the gradient at exactly 0, and exact zeros are common
/// where it matters: CORnet-R/RT's first time step feeds zeros through GroupNorms whose bias
/// starts at zero, so the ReLU sees 0 across whole areas.
fn relu_composite(x: &Tensor) -> Result<Tensor> {
    let zeros = Tensor::zeros((), x.dtype(), x.device())?.broadcast_as(x.shape())?;
    x.le(0.0)?.where_cond(&zeros, x)
}

struct Relu;

impl CustomOp1 for Relu {
    fn name(&self) -> &'static str {
        "relu"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(storage, layout, "relu input")?;
        // `v < 0` is false for NaN, which therefore passes through.
        let y = x
            .par_iter()
            .with_min_len(CHUNK)
            .map(|&v| if v < 0.0 { 0.0 } else { v })
            .collect();
        Ok((CpuStorage::F32(y), layout.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(
            y.apply_op2_no_bwd(&grad.contiguous()?, &ReluBackward)?,
        ))
    }
}

/// The output gradient where the ReLU's output is positive (or NaN), zero elsewhere.
struct ReluBackward;

impl CustomOp2 for ReluBackward {
    fn name(&self) -> &'static str {
        "relu-backward"
    }

    fn cpu_fwd(
        &self,
        ys: &CpuStorage,
        yl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let y = contiguous_f32(ys, yl, "relu output")?;
        let grad = contiguous_f32(gs, gl, "relu output gradient")?;
        let dx = y
            .par_iter()
            .zip(grad)
            .with_min_len(CHUNK)
            .map(|(&y, &g)| if y <= 0.0 { 0.0 } else { g })
            .collect();
        Ok((CpuStorage::F32(dx), yl.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// The CPU op and the composite used on other devices, both against PyTorch.
    #[test]
    fn forward_and_gradient_are_pytorchs() -> Result<()> {
        type Op = fn(&Tensor) -> Result<Tensor>;
        for (name, op) in [("cpu op", relu as Op), ("composite", relu_composite)] {
            let values = [-2.0, -0.0, 0.0, 0.5, 3.0, f32::NAN, f32::NEG_INFINITY];
            let x = Var::from_slice(&values, values.len(), &Device::Cpu)?;
            let y = op(x.as_tensor())?;
            let got = y.to_vec1::<f32>()?;
            assert_eq!(&got[..5], &[0.0, 0.0, 0.0, 0.5, 3.0], "{name}");
            assert!(got[5].is_nan(), "{name}: NaN propagates");
            assert_eq!(got[6], 0.0, "{name}");

            let upstream = Tensor::new(&[1f32, 2., 3., 4., 5., 6., 7.], &Device::Cpu)?;
            let grads = (y * &upstream)?.sum_all()?.backward()?;
            let dx = grads.get(x.as_tensor()).unwrap().to_vec1::<f32>()?;
            // Zero at and below 0 (candle's own ReLU would pass 2 and 3 here); passed at NaN,
            // as PyTorch's `threshold_backward` does.
            assert_eq!(dx, [0.0, 0.0, 0.0, 4.0, 5.0, 6.0, 0.0], "{name}");
        }
        Ok(())
    }

    #[test]
    fn large_inputs_split_across_tasks_agree_with_candle() -> Result<()> {
        let x = Tensor::randn(0f32, 1., (3, 5, 67, 71), &Device::Cpu)?;
        let ours = relu(&x)?.flatten_all()?.to_vec1::<f32>()?;
        let reference = x.relu()?.flatten_all()?.to_vec1::<f32>()?;
        assert_eq!(ours, reference);
        Ok(())
    }
}
