//! `nn.MaxPool2d` with padding and `nn.AdaptiveAvgPool2d(1)`.

use super::contiguous_f32;
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::sync::{Arc, OnceLock};

/// `nn.MaxPool2d(kernel, stride, padding)` with PyTorch's semantics: padding never wins, the
/// first maximum of a window wins ties, NaN propagates; `ceil_mode=False`.
///
/// On the CPU this is one pass that keeps each window's argmax for the backward (other dtypes
/// are pooled in f32, which is exact). Elsewhere it is [`max_pool2d_composite`]: candle's own
/// pooling has no backward for overlapping windows.
pub fn max_pool2d(x: &Tensor, kernel: usize, stride: usize, padding: usize) -> Result<Tensor> {
    let window = Window {
        kernel,
        stride,
        padding,
    };
    if !x.device().is_cpu() {
        return max_pool2d_composite(x, window);
    }
    if x.dtype() != DType::F32 {
        return max_pool2d(&x.to_dtype(DType::F32)?, kernel, stride, padding)?.to_dtype(x.dtype());
    }
    x.contiguous()?.apply_op1(MaxPool2d {
        window,
        argmax: OnceLock::new(),
    })
}

/// Max-pooling from candle ops that all have a backward, for any device: the elementwise
/// maximum of the `kernel²` strided views of the padded input, one per window offset.
///
/// Output `o` reads padded row `stride * o + k` for `k < kernel`, which is row `k % stride`
/// of block `o + k / stride` when the padded rows are grouped in blocks of `stride`; so each
/// view is a `narrow` of the input reshaped to [N, C, H/s, s, W/s, s]. Ties split the gradient
/// (candle's `maximum`) where PyTorch gives it to the first maximum; after a ReLU, the only
/// ties are zeros, whose gradient the ReLU stops anyway.
fn max_pool2d_composite(x: &Tensor, window: Window) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let Window {
        kernel: k,
        stride: s,
        padding: p,
    } = window;
    let (oh, ow) = (window.output_len(h)?, window.output_len(w)?);
    // Blocks needed along each axis: the last window reaches block `out - 1 + (k - 1) / s`,
    // and the whole padded input must fit.
    let blocks =
        |out: usize, input: usize| (out + k.saturating_sub(1) / s).max((input + 2 * p).div_ceil(s));
    let (bh, bw) = (blocks(oh, h), blocks(ow, w));
    let neg_inf = |dims: (usize, usize, usize, usize)| {
        Tensor::full(f32::NEG_INFINITY, dims, x.device())?.to_dtype(x.dtype())
    };
    let rows = Tensor::cat(
        &[
            &neg_inf((n, c, h, p))?,
            x,
            &neg_inf((n, c, h, bw * s - w - p))?,
        ],
        3,
    )?;
    let padded = Tensor::cat(
        &[
            &neg_inf((n, c, p, bw * s))?,
            &rows,
            &neg_inf((n, c, bh * s - h - p, bw * s))?,
        ],
        2,
    )?
    .reshape((n, c, bh, s, bw, s))?;
    let mut result: Option<Tensor> = None;
    for ky in 0..k {
        for kx in 0..k {
            let view = padded
                .narrow(2, ky / s, oh)?
                .narrow(3, ky % s, 1)?
                .narrow(4, kx / s, ow)?
                .narrow(5, kx % s, 1)?
                .reshape((n, c, oh, ow))?;
            result = Some(match result {
                None => view,
                Some(best) => best.maximum(&view)?,
            });
        }
    }
    result.ok_or_else(|| candle_core::Error::Msg("max_pool2d: kernel of size 0".into()))
}

/// `nn.AdaptiveAvgPool2d(1)`: the mean over each channel's plane, keeping [N, C, 1, 1]. The
/// sum is taken in f32 whatever the dtype (a bf16 accumulator drops small terms).
pub fn global_avg_pool(x: &Tensor) -> Result<Tensor> {
    x.to_dtype(DType::F32)?
        .mean_keepdim(3)?
        .mean_keepdim(2)?
        .to_dtype(x.dtype())
}

#[derive(Debug, Clone, Copy)]
struct Window {
    kernel: usize,
    stride: usize,
    padding: usize,
}

impl Window {
    fn output_len(&self, input: usize) -> Result<usize> {
        let padded = input + 2 * self.padding;
        if padded < self.kernel {
            candle_core::bail!(
                "max_pool2d: input size {input} with padding {} is smaller than the kernel {}",
                self.padding,
                self.kernel
            )
        }
        Ok((padded - self.kernel) / self.stride + 1)
    }

    /// The input positions covered by output position `o`, clipped to the input.
    fn span(&self, o: usize, input: usize) -> std::ops::Range<usize> {
        let start = (o * self.stride) as isize - self.padding as isize;
        let end = (start + self.kernel as isize).min(input as isize);
        start.max(0) as usize..end.max(0) as usize
    }
}

struct MaxPool2d {
    window: Window,
    /// For each output element, the flat index of its maximum within its input plane; set by
    /// the forward pass and read by the backward.
    argmax: OnceLock<Arc<Vec<u32>>>,
}

impl CustomOp1 for MaxPool2d {
    fn name(&self) -> &'static str {
        "max-pool2d-padded"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = layout.shape().dims4()?;
        let input = contiguous_f32(storage, layout, "max_pool2d input")?;
        let (oh, ow) = (self.window.output_len(h)?, self.window.output_len(w)?);
        let mut output = vec![0f32; n * c * oh * ow];
        let mut argmax = vec![0u32; n * c * oh * ow];
        output
            .par_chunks_mut(oh * ow)
            .zip(argmax.par_chunks_mut(oh * ow))
            .zip(input.par_chunks(h * w))
            .for_each(|((out, arg), plane)| {
                for oy in 0..oh {
                    let rows = self.window.span(oy, h);
                    for ox in 0..ow {
                        let cols = self.window.span(ox, w);
                        let mut best = f32::NEG_INFINITY;
                        let mut best_at = rows.start * w + cols.start;
                        for y in rows.clone() {
                            for x in cols.clone() {
                                let v = plane[y * w + x];
                                // PyTorch's comparison, so NaN propagates as it does there.
                                if v > best || v.is_nan() {
                                    best = v;
                                    best_at = y * w + x;
                                }
                            }
                        }
                        out[oy * ow + ox] = best;
                        arg[oy * ow + ox] = best_at as u32;
                    }
                }
            });
        // A fresh op is made for every call, so the slot is always empty here.
        let _ = self.argmax.set(Arc::new(argmax));
        Ok((CpuStorage::F32(output), Shape::from((n, c, oh, ow))))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let Some(argmax) = self.argmax.get() else {
            candle_core::bail!("max_pool2d: backward before forward")
        };
        let (_, _, h, w) = arg.dims4()?;
        let grad = grad_res.contiguous()?.apply_op1_no_bwd(&ScatterToArgmax {
            argmax: argmax.clone(),
            input_hw: (h, w),
        })?;
        Ok(Some(grad))
    }
}

/// The max-pool backward: each output gradient goes to its window's maximum (summed where
/// windows overlap).
struct ScatterToArgmax {
    argmax: Arc<Vec<u32>>,
    input_hw: (usize, usize),
}

impl CustomOp1 for ScatterToArgmax {
    fn name(&self) -> &'static str {
        "max-pool2d-backward"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c, oh, ow) = layout.shape().dims4()?;
        let grad_out = contiguous_f32(storage, layout, "max_pool2d output gradient")?;
        let (h, w) = self.input_hw;
        let mut grad_in = vec![0f32; n * c * h * w];
        grad_in
            .par_chunks_mut(h * w)
            .zip(grad_out.par_chunks(oh * ow))
            .zip(self.argmax.par_chunks(oh * ow))
            .for_each(|((gin, gout), arg)| {
                for (g, &at) in gout.iter().zip(arg) {
                    gin[at as usize] += g;
                }
            });
        Ok((CpuStorage::F32(grad_in), Shape::from((n, c, h, w))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// PyTorch's MaxPool2d(3, 2, 1) on a 1x1x4x4 ramp, and its gradient for a sum.
    #[test]
    fn max_pool_matches_pytorch_on_a_small_plane() -> Result<()> {
        let x = Var::from_tensor(&Tensor::arange(0f32, 16., &Device::Cpu)?.reshape((1, 1, 4, 4))?)?;
        let y = max_pool2d(x.as_tensor(), 3, 2, 1)?;
        assert_eq!(y.flatten_all()?.to_vec1::<f32>()?, [5., 7., 13., 15.]);
        let grads = y.sum_all()?.backward()?;
        let g = grads
            .get(x.as_tensor())
            .unwrap()
            .flatten_all()?
            .to_vec1::<f32>()?;
        let mut expected = [0f32; 16];
        for i in [5, 7, 13, 15] {
            expected[i] = 1.;
        }
        assert_eq!(g, expected);
        Ok(())
    }

    /// Ties go to the first maximum in row-major order; overlapping windows add gradients.
    #[test]
    fn ties_go_to_the_first_maximum_and_overlaps_accumulate() -> Result<()> {
        let x = Var::from_tensor(&Tensor::ones((1, 1, 3, 3), DType::F32, &Device::Cpu)?)?;
        let y = max_pool2d(x.as_tensor(), 3, 2, 1)?;
        assert_eq!(y.dims(), [1, 1, 2, 2]);
        let grads = y.sum_all()?.backward()?;
        let g = grads
            .get(x.as_tensor())
            .unwrap()
            .flatten_all()?
            .to_vec1::<f32>()?;
        // Windows start at (-1,-1), (-1,1), (1,-1), (1,1): first in-bounds maxima are
        // (0,0), (0,1), (1,0), (1,1).
        assert_eq!(g, [1., 1., 0., 1., 1., 0., 0., 0., 0.]);
        Ok(())
    }

    /// The CPU op and the composite used on other devices agree on random input (no ties),
    /// forward and backward, for CORnet's pooling and an awkward one.
    #[test]
    fn cpu_op_agrees_with_the_composite_forward_and_backward() -> Result<()> {
        for (kernel, stride, padding, h, w) in [(3, 2, 1, 9, 7), (3, 2, 1, 8, 8), (2, 3, 0, 10, 11)]
        {
            let x = Var::from_tensor(&Tensor::randn(0f32, 1., (2, 3, h, w), &Device::Cpu)?)?;
            let upstream = |y: &Tensor| Tensor::randn(0f32, 1., y.dims(), &Device::Cpu);
            let ours = max_pool2d(x.as_tensor(), kernel, stride, padding)?;
            let window = Window {
                kernel,
                stride,
                padding,
            };
            let reference = max_pool2d_composite(x.as_tensor(), window)?;
            let diff = (&ours - &reference)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert_eq!(diff, 0.0, "forward {kernel}/{stride}/{padding}");
            let g = upstream(&ours)?;
            let dx = |y: Tensor| -> Result<Tensor> {
                Ok((y * &g)?
                    .sum_all()?
                    .backward()?
                    .get(x.as_tensor())
                    .unwrap()
                    .clone())
            };
            let diff = (dx(ours)? - dx(reference)?)?
                .abs()?
                .max_all()?
                .to_scalar::<f32>()?;
            assert!(diff < 1e-6, "backward {kernel}/{stride}/{padding}: {diff}");
        }
        Ok(())
    }
}
