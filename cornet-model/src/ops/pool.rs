//! `nn.MaxPool2d` with padding and `nn.AdaptiveAvgPool2d(1)`.

use super::contiguous_f32;
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::sync::{Arc, OnceLock};

/// `nn.MaxPool2d(kernel, stride, padding)` with PyTorch's semantics: padding never wins, the
/// first maximum of a window wins ties, NaN propagates; `ceil_mode=False`.
///
/// On the CPU this is a separable pass (see `RowMaxima`) that keeps each window's argmax for
/// the backward (other dtypes are pooled in f32, which is exact). Elsewhere it is
/// `max_pool2d_composite`: candle's own pooling has no backward for overlapping windows.
pub fn max_pool2d(x: &Tensor, kernel: usize, stride: usize, padding: usize) -> Result<Tensor> {
    let window = Window {
        kernel,
        stride,
        padding,
    };
    if !super::on_cpu_kernels(x) {
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
        // PyTorch's limits, which also keep every window over at least one input element.
        if self.kernel == 0 || self.stride == 0 || 2 * self.padding > self.kernel {
            candle_core::bail!(
                "max_pool2d: kernel {} stride {} padding {}: kernel and stride must be positive \
                 and padding at most half the kernel",
                self.kernel,
                self.stride,
                self.padding
            )
        }
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
        let columns = ColumnTaps::new(self.window, w, ow);
        output
            .par_chunks_mut(oh * ow)
            .zip(argmax.par_chunks_mut(oh * ow))
            .zip(input.par_chunks(h * w))
            .for_each_init(
                || RowMaxima::new(h * ow),
                |row_max, ((out, arg), plane)| {
                    row_max.fill(plane, w, &columns);
                    for oy in 0..oh {
                        let out = &mut out[oy * ow..(oy + 1) * ow];
                        let arg = &mut arg[oy * ow..(oy + 1) * ow];
                        let mut rows = self.window.span(oy, h);
                        let first = rows.next().expect("output_len keeps windows non-empty");
                        out.copy_from_slice(row_max.values(first, ow));
                        arg.copy_from_slice(row_max.indices(first, ow));
                        for y in rows {
                            let candidates = row_max.values(y, ow).iter();
                            let at = row_max.indices(y, ow);
                            for (((best, best_at), &v), &i) in
                                out.iter_mut().zip(arg.iter_mut()).zip(candidates).zip(at)
                            {
                                // Written as selects so that the loop vectorizes.
                                let wins = v > *best || v.is_nan();
                                *best = if wins { v } else { *best };
                                *best_at = if wins { i } else { *best_at };
                            }
                        }
                    }
                },
            );
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

/// The first pass of the separable max-pool forward: for every input row, the maximum over
/// each output column's window and its flat index in the plane.
///
/// Taking the first strict maximum along each row and then the first strict maximum down the
/// rows finds the first maximum of the window in row-major order, PyTorch's winner of ties;
/// NaN replaces the best in both passes (PyTorch's `val > max || isnan(val)`), so the last NaN
/// wins in both. Per output, `kernel` comparisons of each row plus `kernel` down the rows
/// replace `kernel²` comparisons, and all of them are selects, not branches (a branch on
/// `v > best` mispredicts about every other time on real activations).
struct RowMaxima {
    values: Vec<f32>,
    indices: Vec<u32>,
}

impl RowMaxima {
    fn new(len: usize) -> Self {
        RowMaxima {
            values: vec![0.0; len],
            indices: vec![0; len],
        }
    }

    /// Fills every row's window maxima, tap by tap along the window (so each comparison runs
    /// over a strided row without branches) rather than window by window.
    fn fill(&mut self, plane: &[f32], width: usize, columns: &ColumnTaps) {
        let ow = columns.first_in_bounds.len();
        let rows = plane.chunks(width).enumerate();
        let out = self.values.chunks_mut(ow).zip(self.indices.chunks_mut(ow));
        for ((y, row), (values, indices)) in rows.zip(out) {
            let row_start = y * width;
            values.fill(f32::NEG_INFINITY);
            for (index, &x) in indices.iter_mut().zip(&columns.first_in_bounds) {
                *index = (row_start + x) as u32;
            }
            for tap in &columns.taps {
                let reads = row[tap.first_column..].iter().step_by(columns.stride);
                let at = (row_start + tap.first_column..).step_by(columns.stride);
                let outputs = values[tap.outputs.clone()]
                    .iter_mut()
                    .zip(&mut indices[tap.outputs.clone()]);
                for (((best, best_at), &v), i) in outputs.zip(reads).zip(at) {
                    let wins = v > *best || v.is_nan();
                    *best = if wins { v } else { *best };
                    *best_at = if wins { i as u32 } else { *best_at };
                }
            }
        }
    }

    fn values(&self, row: usize, ow: usize) -> &[f32] {
        &self.values[row * ow..(row + 1) * ow]
    }

    fn indices(&self, row: usize, ow: usize) -> &[u32] {
        &self.indices[row * ow..(row + 1) * ow]
    }
}

/// Where the windows of one row fall: per output column the first input column inside the
/// input (PyTorch's index when nothing beats -inf), and per kernel column the outputs whose
/// window reads inside the input at that tap and the input column the first of them reads.
struct ColumnTaps {
    first_in_bounds: Vec<usize>,
    taps: Vec<ColumnTap>,
    stride: usize,
}

struct ColumnTap {
    outputs: std::ops::Range<usize>,
    first_column: usize,
}

impl ColumnTaps {
    fn new(window: Window, width: usize, out_width: usize) -> Self {
        let first_in_bounds = (0..out_width)
            .map(|o| window.span(o, width).start)
            .collect();
        let taps = (0..window.kernel)
            .filter_map(|tap| {
                // Output o reads column o * stride + tap - padding.
                let inside = |o: &usize| {
                    (o * window.stride + tap)
                        .checked_sub(window.padding)
                        .is_some_and(|x| x < width)
                };
                let first = (0..out_width).find(inside)?;
                let end = (first..out_width).find(|o| !inside(o)).unwrap_or(out_width);
                Some(ColumnTap {
                    outputs: first..end,
                    first_column: first * window.stride + tap - window.padding,
                })
            })
            .collect();
        ColumnTaps {
            first_in_bounds,
            taps,
            stride: window.stride,
        }
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

    /// PyTorch's loop, window by window: the first maximum in row-major order, the last NaN,
    /// and the first in-bounds index where nothing beats -inf.
    fn direct_max_pool(plane: &[f32], (h, w): (usize, usize), window: Window) -> Vec<(f32, u32)> {
        let (oh, ow) = (window.output_len(h).unwrap(), window.output_len(w).unwrap());
        let mut out = Vec::new();
        for oy in 0..oh {
            for ox in 0..ow {
                let (rows, cols) = (window.span(oy, h), window.span(ox, w));
                let (mut best, mut at) = (f32::NEG_INFINITY, rows.start * w + cols.start);
                for y in rows {
                    for x in cols.clone() {
                        let v = plane[y * w + x];
                        if v > best || v.is_nan() {
                            (best, at) = (v, y * w + x);
                        }
                    }
                }
                out.push((best, at as u32));
            }
        }
        out
    }

    /// The separable forward picks the same value and the same index as the direct loop, on
    /// planes full of ties (a few small integers), NaNs and -inf (windows where nothing beats
    /// the starting -inf keep their first in-bounds index).
    #[test]
    fn separable_forward_picks_pytorchs_winner_among_ties_and_nans() -> Result<()> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for (kernel, stride, padding, h, w) in [
            (3, 2, 1, 9, 7),
            (3, 2, 1, 8, 8),
            (2, 3, 0, 10, 11),
            (3, 1, 1, 5, 6),
            (1, 1, 0, 3, 4),
        ] {
            let window = Window {
                kernel,
                stride,
                padding,
            };
            let values: Vec<f32> = (0..2 * h * w)
                .map(|_| match rng.random_range(0..10) {
                    0 => f32::NAN,
                    1 | 2 => f32::NEG_INFINITY,
                    v => (v % 3) as f32,
                })
                .collect();
            let x = Tensor::from_vec(values.clone(), (2, 1, h, w), &Device::Cpu)?;
            let op = MaxPool2d {
                window,
                argmax: OnceLock::new(),
            };
            let y = x.apply_op1_no_bwd(&op)?.flatten_all()?.to_vec1::<f32>()?;
            let argmax = op.argmax.get().unwrap();
            let expected: Vec<_> = values
                .chunks(h * w)
                .flat_map(|plane| direct_max_pool(plane, (h, w), window))
                .collect();
            let ours: Vec<_> = y.into_iter().zip(argmax.iter().copied()).collect();
            let same = |(a, i): &(f32, u32), (b, j): &(f32, u32)| {
                i == j && (a == b || (a.is_nan() && b.is_nan()))
            };
            assert_eq!(ours.len(), expected.len());
            for (k, (o, e)) in ours.iter().zip(&expected).enumerate() {
                assert!(
                    same(o, e),
                    "{kernel}/{stride}/{padding} output {k}: {o:?} vs {e:?}"
                );
            }
        }
        Ok(())
    }

    #[test]
    fn padding_over_half_the_kernel_is_refused() {
        let x = Tensor::zeros((1, 1, 4, 4), DType::F32, &Device::Cpu).unwrap();
        let err = max_pool2d(&x, 3, 2, 2).unwrap_err().to_string();
        assert!(err.contains("padding at most half the kernel"), "{err}");
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
