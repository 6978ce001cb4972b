//! `nn.BatchNorm2d` in training mode: normalization by the batch's own statistics, with its
//! backward, as PyTorch's CPU kernels compute them; the batch's images may be split into groups
//! normalized apart, or be part of a group spread over several ranks (see
//! [`BatchGroups`](crate::batch_groups::BatchGroups)).
//!
//! Built from candle's tensor ops this is a dozen full passes over the activation forward and
//! more backward; here the statistics are one pass (sums in f64), the affine normalization one,
//! and the backward two, whatever the grouping.

use super::contiguous_f32;
use crate::batch_groups::{BatchGroups, BatchStatsGroup};
use candle_core::{CpuStorage, CustomOp1, CustomOp3, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::sync::{Arc, OnceLock};

/// The output of a training-mode batch normalization and the statistics of its first group,
/// from which the caller updates the running statistics.
pub struct BatchNormTrain {
    /// The normalized, scaled and shifted `x`, `[N, C, H, W]`.
    pub output: Tensor,
    /// Per-channel mean of the first group over its images and positions, `[C]`.
    pub mean: Tensor,
    /// Per-channel biased variance of the first group, `[C]`.
    pub variance: Tensor,
    /// Values per channel the first group's statistics cover (over all its ranks).
    pub count: usize,
}

/// `x` [N, C, H, W] normalized per channel by its batch mean and biased variance (per group of
/// images as `groups` says), then scaled by `weight` `[C]` and shifted by `bias` `[C]`.
pub fn batch_norm_train(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
    groups: &BatchGroups,
) -> Result<BatchNormTrain> {
    let batch = x.dim(0)?;
    let (local_groups, shared) = match groups {
        BatchGroups::WholeBatch => (1, None),
        BatchGroups::Ghost { images } => {
            if *images == 0 || !batch.is_multiple_of(*images) {
                candle_core::bail!(
                    "batch_norm: groups of {images} images do not divide the batch of {batch}"
                )
            }
            (batch / images, None)
        }
        BatchGroups::AcrossRanks(group) => (1, Some(group.clone())),
    };
    let shared = Shared(shared);
    if !(super::on_cpu_kernels(x) && x.dtype() == DType::F32) {
        return batch_norm_train_composite(x, weight, bias, eps, local_groups, &shared);
    }
    let op = BatchNorm {
        eps,
        groups: local_groups,
        shared,
        stats: Arc::new(OnceLock::new()),
    };
    let stats = op.stats.clone();
    let output = x
        .contiguous()?
        .apply_op3(&weight.contiguous()?, &bias.contiguous()?, op)?;
    let Some(stats) = stats.get() else {
        candle_core::bail!("batch_norm: the forward kept no statistics")
    };
    let channels = weight.elem_count();
    Ok(BatchNormTrain {
        output,
        mean: Tensor::from_slice(&stats.mean[..channels], channels, x.device())?,
        variance: Tensor::from_slice(&stats.variance[..channels], channels, x.device())?,
        count: stats.count as usize,
    })
}

/// The same from candle's ops, for devices and dtypes the CPU op does not cover: `x` seen as
/// `[groups, N / groups, C, H, W]`, each group normalized by its own statistics. A group
/// across ranks adds its sums over them through [`SumOverRanks`], whose backward adds the
/// gradient likewise, which is SyncBatchNorm's backward.
fn batch_norm_train_composite(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
    groups: usize,
    shared: &Shared,
) -> Result<BatchNormTrain> {
    let (n, c, h, w) = x.dims4()?;
    let per_channel = |t: &Tensor| t.reshape((1, 1, (), 1, 1));
    let grouped = x.reshape((groups, n / groups, c, h, w))?;
    let mut count = [(n / groups * h * w) as f64];
    shared.all_reduce_sum(&mut count)?;
    let [count] = count;
    let mean = (shared.sum_over_ranks(&grouped.sum_keepdim((1, 3, 4))?)? / count)?;
    let centered = grouped.broadcast_sub(&mean)?;
    let squares = centered.sqr()?.sum_keepdim((1, 3, 4))?;
    let variance = (shared.sum_over_ranks(&squares)? / count)?;
    let output = centered
        .broadcast_div(&(&variance + eps)?.sqrt()?)?
        .broadcast_mul(&per_channel(weight)?)?
        .broadcast_add(&per_channel(bias)?)?
        .reshape((n, c, h, w))?;
    let first = |t: &Tensor| t.narrow(0, 0, 1)?.flatten_all()?.detach().contiguous();
    Ok(BatchNormTrain {
        output,
        mean: first(&mean)?,
        variance: first(&variance)?,
        count: count as usize,
    })
}

/// The ranks a group's sums are added over, if any.
#[derive(Clone)]
struct Shared(Option<Arc<dyn BatchStatsGroup>>);

impl Shared {
    /// `values` summed over the group's ranks (unchanged for a group on this rank alone).
    fn all_reduce_sum(&self, values: &mut [f64]) -> Result<()> {
        match &self.0 {
            None => Ok(()),
            Some(group) => sum_over_group(group.as_ref(), values),
        }
    }

    /// `t` summed over the group's ranks, differentiably, on `t`'s device and in its dtype
    /// (the sum itself in f64 on the host: a BatchNorm's statistics are a few values).
    fn sum_over_ranks(&self, t: &Tensor) -> Result<Tensor> {
        let Some(group) = &self.0 else {
            return Ok(t.clone());
        };
        t.to_dtype(DType::F64)?
            .to_device(&candle_core::Device::Cpu)?
            .contiguous()?
            .apply_op1(SumOverRanks(group.clone()))?
            .to_device(t.device())?
            .to_dtype(t.dtype())
    }
}

/// `values` summed over `group`'s ranks, its transport's error carried as candle's.
fn sum_over_group(group: &dyn BatchStatsGroup, values: &mut [f64]) -> Result<()> {
    group.all_reduce_sum(values).map_err(|e| {
        candle_core::Error::Msg(format!(
            "batch_norm: summing statistics over the ranks of the group: {e}"
        ))
    })
}

/// A tensor summed elementwise over a group's ranks; its gradient is the gradient summed over
/// them too (every rank's sum depends on every rank's input).
struct SumOverRanks(Arc<dyn BatchStatsGroup>);

impl CustomOp1 for SumOverRanks {
    fn name(&self) -> &'static str {
        "sum-over-ranks"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (CpuStorage::F64(data), Some((start, end))) = (storage, layout.contiguous_offsets())
        else {
            candle_core::bail!("sum-over-ranks: expects a contiguous f64 tensor")
        };
        let mut values = data[start..end].to_vec();
        sum_over_group(self.0.as_ref(), &mut values)?;
        Ok((CpuStorage::F64(values), layout.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        grad_res.contiguous()?.apply_op1_no_bwd(self).map(Some)
    }
}

/// Per-channel statistics of each group, indexed by slot `group * channels + channel`.
struct Stats {
    mean: Vec<f32>,
    /// Biased, as the normalization uses it.
    variance: Vec<f32>,
    /// `sqrt(variance + eps)`, for the forward.
    std: Vec<f32>,
    /// `1 / std`, for the backward (PyTorch's `save_invstd`).
    inv_std: Vec<f32>,
    /// Values per slot, over all the group's ranks.
    count: f64,
}

/// The sizes of a [N, C, H, W] tensor as batch normalization walks it: `planes` of `plane`
/// elements, plane `i` belonging to image `i / channels` and channel `i % channels`; the
/// images in `groups` consecutive groups, each with its own statistics. A statistic's slot
/// is `group * channels + channel`.
#[derive(Clone, Copy)]
struct Planes {
    batch: usize,
    channels: usize,
    plane: usize,
    groups: usize,
}

impl Planes {
    fn new(shape: &Shape, groups: usize) -> Result<Self> {
        let (batch, channels, h, w) = shape.dims4()?;
        if groups == 0 || !batch.is_multiple_of(groups) {
            candle_core::bail!("batch_norm: {groups} groups do not divide the batch of {batch}")
        }
        Ok(Planes {
            batch,
            channels,
            plane: h * w,
            groups,
        })
    }

    fn images_per_group(&self) -> usize {
        self.batch / self.groups
    }

    /// Elements per slot on this rank, over which the statistics are taken.
    fn count(&self) -> usize {
        self.images_per_group() * self.plane
    }

    /// The slot of plane `i`.
    fn slot_of_plane(&self, i: usize) -> usize {
        let (image, channel) = (i / self.channels, i % self.channels);
        image / self.images_per_group() * self.channels + channel
    }

    /// The planes of slot `s` in `data`.
    fn planes_of<'a>(&self, data: &'a [f32], s: usize) -> impl Iterator<Item = &'a [f32]> {
        let (plane, channels) = (self.plane, self.channels);
        let (group, c) = (s / channels, s % channels);
        let images = group * self.images_per_group()..(group + 1) * self.images_per_group();
        images.map(move |n| &data[(n * channels + c) * plane..][..plane])
    }

    /// `f(slot)` for every slot, in parallel.
    fn per_slot<T: Send>(&self, f: impl Fn(usize) -> T + Sync + Send) -> Vec<T> {
        (0..self.groups * self.channels)
            .into_par_iter()
            .map(f)
            .collect()
    }

    /// A [N, C, H, W] buffer whose every element is `f(slot, x)` of the matching element.
    fn map(&self, data: &[f32], f: impl Fn(usize, usize) -> f32 + Sync + Send) -> Vec<f32> {
        let mut out = vec![0f32; data.len()];
        out.par_chunks_mut(self.plane)
            .enumerate()
            .for_each(|(i, plane)| {
                let (s, start) = (self.slot_of_plane(i), i * self.plane);
                for (j, o) in plane.iter_mut().enumerate() {
                    *o = f(s, start + j);
                }
            });
        out
    }
}

struct BatchNorm {
    eps: f64,
    /// Groups of images on this rank.
    groups: usize,
    shared: Shared,
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
        let p = Planes::new(xl.shape(), self.groups)?;
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
        // The statistics as PyTorch's CPU kernel rounds them: the sum in f64 and the mean
        // rounded to f32; squared deviations from that mean in f32, summed in f64 and rounded
        // to f32; the standard deviation from that sum in f64. A group spread over ranks adds
        // its ranks' counts and sums, then their squared deviations from the common mean.
        let mut sums: Vec<f64> = p.per_slot(|s| {
            p.planes_of(x, s)
                .map(|plane| plane.iter().map(|&v| v as f64).sum::<f64>())
                .sum()
        });
        sums.push(p.count() as f64);
        self.shared.all_reduce_sum(&mut sums)?;
        let count = sums.pop().unwrap_or_default();
        let mean: Vec<f32> = sums.iter().map(|&sum| (sum / count) as f32).collect();
        let mut squares: Vec<f64> = p.per_slot(|s| {
            let m = mean[s];
            p.planes_of(x, s)
                .map(|plane| {
                    plane
                        .iter()
                        .map(|&v| ((v - m) * (v - m)) as f64)
                        .sum::<f64>()
                })
                .sum()
        });
        self.shared.all_reduce_sum(&mut squares)?;
        let variance: Vec<f64> = squares.iter().map(|&q| q as f32 as f64 / count).collect();
        let std: Vec<f64> = variance.iter().map(|&v| (v + self.eps).sqrt()).collect();
        let stats = Stats {
            mean,
            variance: variance.iter().map(|&v| v as f32).collect(),
            std: std.iter().map(|&s| s as f32).collect(),
            inv_std: std.iter().map(|&s| (1.0 / s) as f32).collect(),
            count,
        };
        // The documented formula, centred first: (x - mean) / std * weight + bias. (PyTorch's
        // kernel folds it into x * a + b, whose two terms nearly cancel when |mean| >> std;
        // through CORnet-S's small batches either rounding reaches the reference only to
        // ~1e-5, see docs/performance.md.)
        let channels = p.channels;
        let y = p.map(x, |s, i| {
            let c = s % channels;
            (x[i] - stats.mean[s]) / stats.std[s] * weight[c] + bias[c]
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
            groups: self.groups,
            shared: self.shared.clone(),
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

/// The gradients of [`BatchNorm`] as PyTorch's `batch_norm_backward` computes them (and, for a
/// group spread over ranks, `SyncBatchNorm`'s: the two sums added over the group's ranks),
/// returned as one flat tensor `[dx (or nothing), dweight, dbias]`.
struct BatchNormBackward {
    stats: Arc<OnceLock<Stats>>,
    groups: usize,
    shared: Shared,
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
        let p = Planes::new(xl.shape(), self.groups)?;
        let x = contiguous_f32(xs, xl, "batch_norm input")?;
        let weight = contiguous_f32(ws, wl, "batch_norm weight")?;
        let dy = contiguous_f32(gs, gl, "batch_norm output gradient")?;
        // Per slot: the sum of the output gradient and its dot product with x - mean (each
        // product in f32, as PyTorch forms it; the sums in f64), as [sum, dot] pairs.
        let mut sums: Vec<f64> = p
            .per_slot(|s| {
                let mean = stats.mean[s];
                p.planes_of(x, s)
                    .zip(p.planes_of(dy, s))
                    .map(|(x, dy)| {
                        x.iter().zip(dy).fold((0f64, 0f64), |(s, d), (&x, &g)| {
                            (s + g as f64, d + ((x - mean) * g) as f64)
                        })
                    })
                    .fold([0.0, 0.0], |[s, d], (ps, pd)| [s + ps, d + pd])
            })
            .concat();
        // The parameters' gradients take this rank's share (the ranks' are averaged with all
        // the other gradients), the input's the whole group's, as SyncBatchNorm's.
        let local = sums.clone();
        self.shared.all_reduce_sum(&mut sums)?;
        let sum = |s: usize| sums[2 * s];
        let dot = |s: usize| sums[2 * s + 1];
        let count = stats.count;
        let mut flat = if self.input_grad {
            // As PyTorch: k = dot * inv_std² / count and mean(dy) in f32, then per element
            // dx = (dy - mean(dy) - (x - mean) * k) * inv_std * weight.
            let per_slot: Vec<(f32, f32, f32, f32, f32)> = (0..p.groups * p.channels)
                .map(|s| {
                    let inv_std = stats.inv_std[s];
                    let k = (dot(s) as f32) * inv_std * inv_std / count as f32;
                    let weight = weight[s % p.channels];
                    (stats.mean[s], k, (sum(s) / count) as f32, inv_std, weight)
                })
                .collect();
            p.map(x, |s, i| {
                let (mean, k, grad_mean, inv_std, weight) = per_slot[s];
                (dy[i] - grad_mean - (x[i] - mean) * k) * inv_std * weight
            })
        } else {
            Vec::new()
        };
        // Summed over the groups of this rank.
        let over_groups = |f: &dyn Fn(usize) -> f64| -> Vec<f32> {
            (0..p.channels)
                .map(|c| (0..p.groups).map(|g| f(g * p.channels + c)).sum::<f64>() as f32)
                .collect()
        };
        flat.extend(over_groups(&|s: usize| {
            local[2 * s + 1] * stats.inv_std[s] as f64
        }));
        flat.extend(over_groups(&|s: usize| local[2 * s]));
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
            let bn = batch_norm_train(&x, &weight, &bias, 1e-5, &BatchGroups::WholeBatch)?;
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

#[cfg(test)]
mod grouping_tests {
    use super::super::max_abs_diff;
    use super::*;
    use crate::batch_groups::GroupError;
    use candle_core::{Device, Var};
    use std::sync::{Barrier, Mutex};

    /// Output, mean, variance, count, then the gradients of x, weight and bias, of `x`
    /// normalized as `groups` says, against the upstream gradient `upstream`.
    fn run(
        x: &Tensor,
        weight: &Tensor,
        bias: &Tensor,
        upstream: &Tensor,
        groups: &BatchGroups,
    ) -> Result<(Vec<Tensor>, usize)> {
        let (x, weight, bias) = (
            Var::from_tensor(x)?,
            Var::from_tensor(weight)?,
            Var::from_tensor(bias)?,
        );
        let bn = batch_norm_train(&x, &weight, &bias, 1e-5, groups)?;
        let grads = (&bn.output * upstream)?.sum_all()?.backward()?;
        let mut out = vec![bn.output.clone(), bn.mean, bn.variance];
        for v in [&x, &weight, &bias] {
            out.push(grads.get(v.as_tensor()).unwrap().clone());
        }
        Ok((out, bn.count))
    }

    /// Drawn on the CPU, then moved to `device` in `dtype`.
    fn inputs(n: usize, dtype: DType, device: &Device) -> Result<[Tensor; 4]> {
        let dev = Device::Cpu;
        let (c, h, w) = (5, 7, 6);
        let x = (Tensor::randn(0f32, 3., (n, c, h, w), &dev)? + 10.0)?;
        let weight = Tensor::randn(1f32, 0.5, c, &dev)?;
        let bias = Tensor::randn(0f32, 1., c, &dev)?;
        let upstream = Tensor::randn(0f32, 1., (n, c, h, w), &dev)?;
        let all = [x, weight, bias, upstream];
        Ok(all.map(|t| t.to_dtype(dtype).unwrap().to_device(device).unwrap()))
    }

    /// `a` within `tolerance` of `b`, relative to b's largest magnitude (at least 1).
    fn assert_close(what: &str, a: &Tensor, b: &Tensor, tolerance: f32) {
        let b = b.to_dtype(DType::F32).unwrap();
        let a = a.to_dtype(DType::F32).unwrap();
        let scale = b
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let diff = max_abs_diff(&a, &b) / scale.max(1.0);
        assert!(diff <= tolerance, "{what}: {diff:.2e}");
    }

    /// Ghost batch norm: groups of 3 of a batch of 6 give what two batches of 3 give (outputs
    /// and input gradients side by side, parameter gradients summed, the first group's
    /// statistics), on the CPU op (f32) and on the composite (f64).
    #[test]
    fn ghost_groups_equal_separate_batches() -> Result<()> {
        for dtype in [DType::F32, DType::F64] {
            ghost_groups_equal_separate_batches_on(&Device::Cpu, dtype)?;
        }
        Ok(())
    }

    fn ghost_groups_equal_separate_batches_on(device: &Device, dtype: DType) -> Result<()> {
        let [x, weight, bias, upstream] = inputs(6, dtype, device)?;
        let (grouped, count) = run(
            &x,
            &weight,
            &bias,
            &upstream,
            &BatchGroups::Ghost { images: 3 },
        )?;
        let half = |t: &Tensor, i: usize| t.narrow(0, 3 * i, 3).unwrap();
        let (first, first_count) = run(
            &half(&x, 0),
            &weight,
            &bias,
            &half(&upstream, 0),
            &BatchGroups::WholeBatch,
        )?;
        let (second, _) = run(
            &half(&x, 1),
            &weight,
            &bias,
            &half(&upstream, 1),
            &BatchGroups::WholeBatch,
        )?;
        assert_eq!(count, first_count);
        let side_by_side = |i: usize| Tensor::cat(&[&first[i], &second[i]], 0).unwrap();
        let summed = |i: usize| (&first[i] + &second[i]).unwrap();
        let tolerance = 1e-6;
        assert_close("output", &grouped[0], &side_by_side(0), tolerance);
        assert_close("mean", &grouped[1], &first[1], tolerance);
        assert_close("variance", &grouped[2], &first[2], tolerance);
        assert_close("dx", &grouped[3], &side_by_side(3), tolerance);
        assert_close("dweight", &grouped[4], &summed(4), tolerance);
        assert_close("dbias", &grouped[5], &summed(5), tolerance);
        Ok(())
    }

    /// Ranks as threads: each adds its values into a shared buffer, all wait, each reads the
    /// total, all wait again before the buffer is reused.
    struct Threads {
        barrier: Barrier,
        total: Mutex<Vec<f64>>,
    }

    impl BatchStatsGroup for Threads {
        fn all_reduce_sum(&self, values: &mut [f64]) -> std::result::Result<(), GroupError> {
            {
                let mut total = self.total.lock().unwrap();
                total.resize(values.len(), 0.0);
                total.iter_mut().zip(&*values).for_each(|(t, v)| *t += v);
            }
            self.barrier.wait();
            values.copy_from_slice(&self.total.lock().unwrap());
            if self.barrier.wait().is_leader() {
                self.total.lock().unwrap().clear();
            }
            self.barrier.wait();
            Ok(())
        }
    }

    /// Two ranks, each with half the batch in one group across both (SyncBatchNorm), give
    /// one rank's whole batch: outputs and input gradients side by side, statistics and count
    /// the whole batch's, parameter gradients that sum to the whole batch's; on the CPU op
    /// (f32) and on the composite the GPU runs (f64: in f32 the composite's own sums round
    /// to ~1e-6, more than the comparison's tolerance).
    #[test]
    fn a_group_across_ranks_equals_the_whole_batch() -> Result<()> {
        for dtype in [DType::F32, DType::F64] {
            a_group_across_ranks_equals_the_whole_batch_on(&Device::Cpu, dtype)?;
        }
        Ok(())
    }

    /// What `run` gives on each of two ranks (threads) that hold half of `inputs`' batch
    /// each, in one group across both.
    fn across_two_ranks(inputs: &[Tensor; 4]) -> Vec<(Vec<Tensor>, usize)> {
        let group: Arc<dyn BatchStatsGroup> = Arc::new(Threads {
            barrier: Barrier::new(2),
            total: Mutex::new(Vec::new()),
        });
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..2)
                .map(|rank| {
                    let groups = BatchGroups::AcrossRanks(group.clone());
                    let [x, weight, bias, upstream] = inputs;
                    s.spawn(move || {
                        let half = |t: &Tensor| t.narrow(0, 3 * rank, 3).unwrap();
                        run(&half(x), weight, bias, &half(upstream), &groups).unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    }

    fn a_group_across_ranks_equals_the_whole_batch_on(device: &Device, dtype: DType) -> Result<()> {
        let all = inputs(6, dtype, device)?;
        let [x, weight, bias, upstream] = &all;
        let (whole, whole_count) = run(x, weight, bias, upstream, &BatchGroups::WholeBatch)?;
        let ranks = across_two_ranks(&all);
        let side_by_side = |i: usize| Tensor::cat(&[&ranks[0].0[i], &ranks[1].0[i]], 0).unwrap();
        let summed = |i: usize| (&ranks[0].0[i] + &ranks[1].0[i]).unwrap();
        let tolerance = 1e-6;
        for (rank, (out, count)) in ranks.iter().enumerate() {
            assert_eq!(*count, whole_count, "rank {rank}");
            assert_close("mean", &out[1], &whole[1], tolerance);
            assert_close("variance", &out[2], &whole[2], tolerance);
        }
        assert_close("output", &side_by_side(0), &whole[0], tolerance);
        assert_close("dx", &side_by_side(3), &whole[3], tolerance);
        assert_close("dweight", &summed(4), &whole[4], tolerance);
        assert_close("dbias", &summed(5), &whole[5], tolerance);
        Ok(())
    }

    /// On a GPU, where the composite is the only path: both properties above in f64, and a
    /// group across two ranks in f32, as training runs it, against the CPU op's. Where no CUDA
    /// device is present this checks nothing, and says so.
    #[test]
    fn groups_on_cuda() -> Result<()> {
        let Some(gpu) = crate::testing::cuda_device("BatchNorm groups") else {
            return Ok(());
        };
        ghost_groups_equal_separate_batches_on(&gpu, DType::F64)?;
        a_group_across_ranks_equals_the_whole_batch_on(&gpu, DType::F64)?;
        let on_cpu = inputs(6, DType::F32, &Device::Cpu)?;
        let on_gpu = on_cpu.clone().map(|t| t.to_device(&gpu).unwrap());
        let (gpu_ranks, cpu_ranks) = (across_two_ranks(&on_gpu), across_two_ranks(&on_cpu));
        // f32 sums of 126 values per channel, in another order on each side: ~1e-6 apart.
        let tolerance = 1e-5;
        for ((gpu_out, gpu_count), (cpu_out, cpu_count)) in gpu_ranks.iter().zip(&cpu_ranks) {
            assert_eq!(gpu_count, cpu_count);
            let names = ["output", "mean", "variance", "dx", "dweight", "dbias"];
            for ((name, a), b) in names.iter().zip(gpu_out).zip(cpu_out) {
                assert_close(name, &a.to_device(&Device::Cpu)?, b, tolerance);
            }
        }
        Ok(())
    }
}
