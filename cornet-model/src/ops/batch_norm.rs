//! `nn.BatchNorm2d` in training mode: normalization by the batch's own statistics, with its
//! backward, as PyTorch's CPU kernels compute them.
//!
//! Built from candle's tensor ops this is a dozen full passes over the activation forward and
//! more backward; here the statistics are one pass (sums in f64), the affine normalization one,
//! and the backward two.

use super::contiguous_f32;
use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::sync::{Arc, OnceLock};

/// The output of a training-mode batch normalization and the statistics it used, from which
/// the caller updates the running statistics.
pub struct BatchNormTrain {
    /// The normalized, scaled and shifted `x`, `[N, C, H, W]`.
    pub output: Tensor,
    /// Per-channel mean over batch and positions, `[C]`.
    pub mean: Tensor,
    /// Per-channel biased variance, `[C]`.
    pub variance: Tensor,
}

/// `x` [N, C, H, W] normalized per channel by its batch mean and biased variance, then scaled by
/// `weight` `[C]` and shifted by `bias` `[C]`.
pub fn batch_norm_train(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
) -> Result<BatchNormTrain> {
    if !(super::on_cpu_kernels(x) && x.dtype() == DType::F32) {
        return batch_norm_train_composite(x, weight, bias, eps);
    }
    let op = BatchNorm {
        eps,
        stats: Arc::new(OnceLock::new()),
    };
    let stats = op.stats.clone();
    let output = x
        .contiguous()?
        .apply_op3(&weight.contiguous()?, &bias.contiguous()?, op)?;
    let Some(stats) = stats.get() else {
        candle_core::bail!("batch_norm: the forward kept no statistics")
    };
    let channels = stats.mean.len();
    Ok(BatchNormTrain {
        output,
        mean: Tensor::from_slice(&stats.mean, channels, x.device())?,
        variance: Tensor::from_slice(&stats.variance, channels, x.device())?,
    })
}

/// The same from candle's ops, for devices and dtypes the CPU op does not cover.
fn batch_norm_train_composite(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
) -> Result<BatchNormTrain> {
    let per_channel = |t: &Tensor| t.reshape((1, (), 1, 1));
    let mean = x.mean_keepdim((0, 2, 3))?;
    let centered = x.broadcast_sub(&mean)?;
    let variance = centered.sqr()?.mean_keepdim((0, 2, 3))?;
    let output = centered
        .broadcast_div(&(&variance + eps)?.sqrt()?)?
        .broadcast_mul(&per_channel(weight)?)?
        .broadcast_add(&per_channel(bias)?)?;
    Ok(BatchNormTrain {
        output,
        mean: mean.flatten_all()?.detach(),
        variance: variance.flatten_all()?.detach(),
    })
}

/// Per-channel statistics of one batch.
struct Stats {
    mean: Vec<f32>,
    /// Biased, as the normalization uses it.
    variance: Vec<f32>,
    /// `sqrt(variance + eps)`, for the forward.
    std: Vec<f32>,
    /// `1 / std`, for the backward (PyTorch's `save_invstd`).
    inv_std: Vec<f32>,
}

/// The sizes of a [N, C, H, W] tensor as batch normalization walks it: `planes` of `plane`
/// elements, plane `i` belonging to channel `i % channels`.
#[derive(Clone, Copy)]
struct Planes {
    batch: usize,
    channels: usize,
    plane: usize,
}

impl Planes {
    fn new(shape: &Shape) -> Result<Self> {
        let (batch, channels, h, w) = shape.dims4()?;
        Ok(Planes {
            batch,
            channels,
            plane: h * w,
        })
    }

    /// Elements per channel, over which the statistics are taken.
    fn count(&self) -> usize {
        self.batch * self.plane
    }

    /// The planes of channel `c` in `data`.
    fn channel<'a>(&self, data: &'a [f32], c: usize) -> impl Iterator<Item = &'a [f32]> {
        let (plane, channels) = (self.plane, self.channels);
        (0..self.batch).map(move |n| &data[(n * channels + c) * plane..][..plane])
    }

    /// `f(c)` for every channel, in parallel.
    fn per_channel<T: Send>(&self, f: impl Fn(usize) -> T + Sync + Send) -> Vec<T> {
        (0..self.channels).into_par_iter().map(f).collect()
    }

    /// A [N, C, H, W] buffer whose every element is `f(channel, x)` of the matching element.
    fn map(&self, data: &[f32], f: impl Fn(usize, usize) -> f32 + Sync + Send) -> Vec<f32> {
        let mut out = vec![0f32; data.len()];
        out.par_chunks_mut(self.plane)
            .enumerate()
            .for_each(|(i, plane)| {
                let (c, start) = (i % self.channels, i * self.plane);
                for (j, o) in plane.iter_mut().enumerate() {
                    *o = f(c, start + j);
                }
            });
        out
    }
}

struct BatchNorm {
    eps: f64,
    /// Set by the forward pass; read by the backward and by [`batch_norm_train`].
    stats: Arc<OnceLock<Stats>>,
}

impl CustomOp3 for BatchNorm {
    fn name(&self) -> &'static str {
        "batch-norm-train"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let p = Planes::new(xl.shape())?;
        let x = contiguous_f32(xs, xl, "batch_norm input")?;
        let weight = contiguous_f32(ws, wl, "batch_norm weight")?;
        let bias = contiguous_f32(bs, bl, "batch_norm bias")?;
        if weight.len() != p.channels || bias.len() != p.channels {
            candle_core::bail!(
                "batch_norm: weight and bias must have {} elements, have {} and {}",
                p.channels,
                weight.len(),
                bias.len()
            )
        }
        let count = p.count() as f64;
        // The statistics as PyTorch's CPU kernel rounds them: the sum in f64 and the mean
        // rounded to f32; squared deviations from that mean in f32, summed in f64 and rounded
        // to f32; the standard deviation from that sum in f64.
        let moments = p.per_channel(|c| {
            let sum: f64 = p
                .channel(x, c)
                .map(|plane| plane.iter().map(|&v| v as f64).sum::<f64>())
                .sum();
            let mean = (sum / count) as f32;
            let squares: f64 = p
                .channel(x, c)
                .map(|plane| {
                    plane
                        .iter()
                        .map(|&v| ((v - mean) * (v - mean)) as f64)
                        .sum::<f64>()
                })
                .sum();
            let variance = squares as f32 as f64 / count;
            (mean, variance, (variance + self.eps).sqrt())
        });
        let stats = Stats {
            mean: moments.iter().map(|&(m, _, _)| m).collect(),
            variance: moments.iter().map(|&(_, v, _)| v as f32).collect(),
            std: moments.iter().map(|&(_, _, s)| s as f32).collect(),
            inv_std: moments.iter().map(|&(_, _, s)| (1.0 / s) as f32).collect(),
        };
        // The documented formula, centred first: (x - mean) / std * weight + bias. (PyTorch's
        // kernel folds it into x * a + b, whose two terms nearly cancel when |mean| >> std;
        // through CORnet-S's small batches either rounding reaches the reference only to
        // ~1e-5, see docs/performance.md.)
        let y = p.map(x, |c, i| {
            (x[i] - stats.mean[c]) / stats.std[c] * weight[c] + bias[c]
        });
        // A fresh op is made for every call, so the slot is always empty here.
        let _ = self.stats.set(stats);
        Ok((CpuStorage::F32(y), xl.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        if self.stats.get().is_none() {
            candle_core::bail!("batch_norm: backward before forward")
        }
        let op = BatchNormBackward {
            stats: self.stats.clone(),
            input_grad: x.track_op(),
        };
        let grads = x.apply_op3_no_bwd(weight, &grad.contiguous()?, &op)?;
        let channels = weight.elem_count();
        let dx_len = if op.input_grad { x.elem_count() } else { 0 };
        let dx = op
            .input_grad
            .then(|| grads.narrow(0, 0, dx_len)?.reshape(x.shape()))
            .transpose()?;
        let dw = grads.narrow(0, dx_len, channels)?;
        let db = grads.narrow(0, dx_len + channels, channels)?;
        Ok((dx, Some(dw), Some(db)))
    }
}

/// The gradients of [`BatchNorm`] as PyTorch's `batch_norm_backward` computes them, returned as
/// one flat tensor `[dx (or nothing), dweight, dbias]`.
struct BatchNormBackward {
    stats: Arc<OnceLock<Stats>>,
    input_grad: bool,
}

impl CustomOp3 for BatchNormBackward {
    fn name(&self) -> &'static str {
        "batch-norm-train-backward"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let Some(stats) = self.stats.get() else {
            candle_core::bail!("batch_norm: backward before forward")
        };
        let p = Planes::new(xl.shape())?;
        let x = contiguous_f32(xs, xl, "batch_norm input")?;
        let weight = contiguous_f32(ws, wl, "batch_norm weight")?;
        let dy = contiguous_f32(gs, gl, "batch_norm output gradient")?;
        // Per channel: the sum of the output gradient and its dot product with x - mean (each
        // product in f32, as PyTorch forms it; the sums in f64).
        let sums = p.per_channel(|c| {
            let mean = stats.mean[c];
            p.channel(x, c)
                .zip(p.channel(dy, c))
                .map(|(x, dy)| {
                    x.iter().zip(dy).fold((0f64, 0f64), |(s, d), (&x, &g)| {
                        (s + g as f64, d + ((x - mean) * g) as f64)
                    })
                })
                .fold((0.0, 0.0), |(s, d), (ps, pd)| (s + ps, d + pd))
        });
        let count = p.count() as f64;
        let mut flat = if self.input_grad {
            // As PyTorch: k = dot * inv_std² / count and mean(dy) in f32, then per element
            // dx = (dy - mean(dy) - (x - mean) * k) * inv_std * weight.
            let per_channel: Vec<(f32, f32, f32, f32, f32)> = (0..p.channels)
                .map(|c| {
                    let inv_std = stats.inv_std[c];
                    let (sum, dot) = sums[c];
                    let k = (dot as f32) * inv_std * inv_std / count as f32;
                    (stats.mean[c], k, (sum / count) as f32, inv_std, weight[c])
                })
                .collect();
            p.map(x, |c, i| {
                let (mean, k, grad_mean, inv_std, weight) = per_channel[c];
                (dy[i] - grad_mean - (x[i] - mean) * k) * inv_std * weight
            })
        } else {
            Vec::new()
        };
        flat.extend((0..p.channels).map(|c| (sums[c].1 * stats.inv_std[c] as f64) as f32));
        flat.extend(sums.iter().map(|&(sum, _)| sum as f32));
        let len = flat.len();
        Ok((CpuStorage::F32(flat), Shape::from(len)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::max_abs_diff;
    use super::*;
    use candle_core::{Device, Var};

    /// The op against the same normalization built from candle's ops in f64, output,
    /// statistics and all three gradients, on an odd shape with an offset and scale far from 0
    /// and 1.
    #[test]
    fn matches_the_composite_in_f64_forward_and_backward() -> Result<()> {
        let dev = Device::Cpu;
        let (n, c, h, w) = (3, 5, 7, 6);
        let x = (Tensor::randn(0f32, 3., (n, c, h, w), &dev)? + 10.0)?;
        let weight = Tensor::randn(1f32, 0.5, c, &dev)?;
        let bias = Tensor::randn(0f32, 1., c, &dev)?;
        let upstream = Tensor::randn(0f32, 1., (n, c, h, w), &dev)?;

        let run = |dtype: DType| -> Result<Vec<Tensor>> {
            let var = |t: &Tensor| Var::from_tensor(&t.to_dtype(dtype)?);
            let (x, weight, bias) = (var(&x)?, var(&weight)?, var(&bias)?);
            let bn = batch_norm_train(&x, &weight, &bias, 1e-5)?;
            let loss = (&bn.output * upstream.to_dtype(dtype)?)?.sum_all()?;
            let grads = loss.backward()?;
            let mut out = vec![bn.output.clone(), bn.mean, bn.variance];
            for v in [&x, &weight, &bias] {
                out.push(grads.get(v.as_tensor()).unwrap().clone());
            }
            out.iter().map(|t| t.to_dtype(DType::F32)).collect()
        };
        let (ours, reference) = (run(DType::F32)?, run(DType::F64)?);
        let names = ["output", "mean", "variance", "dx", "dweight", "dbias"];
        for ((name, a), b) in names.iter().zip(&ours).zip(&reference) {
            let scale = b.abs()?.max_all()?.to_scalar::<f32>()?.max(1.0);
            let diff = max_abs_diff(a, b) / scale;
            assert!(diff <= 1e-6, "{name}: {diff:.2e}");
        }
        Ok(())
    }
}
