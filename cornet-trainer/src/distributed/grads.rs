//! Keeping the ranks' models identical: averaged gradients, rank 0's weights and buffers.

use super::{Communicator, DistributedError, Result};
use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor};
use cornet_model::{Entry, ParamStore, Role};

/// Gradients travel in buckets of about this many bytes, as DDP's `bucket_cap_mb` (25 MB):
/// large enough that a collective's fixed cost is amortized, small enough that the
/// concatenated copy of a bucket stays small next to the gradients.
const BUCKET_BYTES: usize = 25 << 20;

/// Replaces every gradient by its mean over ranks: gradients concatenated into buckets on
/// their device, one all-reduce per bucket, divided by the world size.
pub fn average_gradients(
    comm: &mut dyn Communicator,
    store: &ParamStore,
    grads: &mut GradStore,
) -> Result<()> {
    let world = comm.world_size();
    if world == 1 {
        return Ok(());
    }
    let present: Vec<(&Entry, Tensor)> = store
        .parameters()
        .filter_map(|e| grads.get(e.var.as_tensor()).map(|g| (e, g.clone())))
        .collect();
    for bucket in buckets(&present) {
        let parts = bucket
            .iter()
            .map(|(_, g)| g.flatten_all())
            .collect::<candle_core::Result<Vec<_>>>()?;
        let summed = comm.all_reduce_sum_tensor(&Tensor::cat(&parts, 0)?)?;
        let averaged = (summed * (1.0 / world as f64))?;
        let mut offset = 0;
        for (entry, grad) in bucket {
            let n = grad.elem_count();
            let mean = averaged.narrow(0, offset, n)?.reshape(grad.shape())?;
            grads.insert(entry.var.as_tensor(), mean);
            offset += n;
        }
    }
    Ok(())
}

/// Consecutive runs of `grads` of at most [`BUCKET_BYTES`] each (or one gradient, if larger).
fn buckets<T>(grads: &[(T, Tensor)]) -> Vec<&[(T, Tensor)]> {
    let mut buckets = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, (_, grad)) in grads.iter().enumerate() {
        let size = grad.elem_count() * grad.dtype().size_in_bytes();
        if i > start && bytes + size > BUCKET_BYTES {
            buckets.push(&grads[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < grads.len() {
        buckets.push(&grads[start..]);
    }
    buckets
}

/// Sets `entries` on every rank to rank 0's values (weights at the start, BatchNorm running
/// statistics after each step, as DDP's `broadcast_buffers` gives them to the next forward).
pub fn broadcast_from_rank0<'a>(
    comm: &mut dyn Communicator,
    entries: impl Iterator<Item = &'a Entry> + Clone,
) -> Result<()> {
    if comm.world_size() == 1 {
        return Ok(());
    }
    // Counters (num_batches_tracked) advance identically on every rank; only floats travel.
    let floats = entries.filter(|e| e.var.dtype() == DType::F32);
    let mut flat = flatten(floats.clone().map(|e| e.var.as_tensor()))?;
    comm.broadcast(&mut flat, 0)?;
    let mut offset = 0;
    for entry in floats {
        let n = entry.var.elem_count();
        let value = Tensor::from_slice(
            &flat[offset..offset + n],
            entry.var.shape(),
            entry.var.device(),
        )?;
        entry.var.set(&value)?;
        offset += n;
    }
    Ok(())
}

/// The BatchNorm running statistics.
pub fn buffers(store: &ParamStore) -> impl Iterator<Item = &Entry> + Clone {
    store.entries().iter().filter(|e| e.role == Role::Buffer)
}

/// Fails if any rank's weights differ from rank 0's: the ring gives every rank the same
/// averaged gradients bit for bit, so any difference is a bug or a hardware fault.
pub fn check_in_sync(comm: &mut dyn Communicator, store: &ParamStore) -> Result<()> {
    if comm.world_size() == 1 {
        return Ok(());
    }
    let sum = checksum(store.parameters())?;
    // Split the f64 into two f32 words so the comparison is exact.
    let bits = sum.to_bits();
    let mine = [
        f32::from_bits((bits >> 32) as u32),
        f32::from_bits(bits as u32),
    ];
    let mut root = mine;
    comm.broadcast(&mut root, 0)?;
    if root.map(f32::to_bits) != mine.map(f32::to_bits) {
        return Err(DistributedError::Diverged {
            rank: comm.rank(),
            mine: sum,
            root: f64::from_bits(((root[0].to_bits() as u64) << 32) | root[1].to_bits() as u64),
        });
    }
    Ok(())
}

/// The sum of every value of `entries`, in f64: equal on ranks whose weights are equal, and
/// finite exactly when every value is (f32 values summed in f64 cannot overflow).
pub fn checksum<'a>(entries: impl Iterator<Item = &'a Entry>) -> Result<f64> {
    let mut sum = 0f64;
    for entry in entries {
        sum += entry
            .var
            .as_tensor()
            .to_dtype(DType::F64)?
            .sum_all()?
            .to_scalar::<f64>()?;
    }
    Ok(sum)
}

fn flatten<'a>(tensors: impl Iterator<Item = &'a Tensor>) -> Result<Vec<f32>> {
    let mut flat = Vec::new();
    for t in tensors {
        flat.extend(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?);
    }
    Ok(flat)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn buckets_cover_every_gradient_once_in_order_and_stay_under_the_cap() {
        let floats = |n: usize| Tensor::zeros(n, DType::F32, &Device::Cpu).unwrap();
        let quarter = BUCKET_BYTES / 4 / 4;
        let sizes = [
            quarter,
            quarter,
            quarter,
            3 * quarter,
            5 * quarter,
            1,
            quarter,
        ];
        let grads: Vec<(usize, Tensor)> = sizes.iter().map(|&n| floats(n)).enumerate().collect();
        let buckets = buckets(&grads);
        let order: Vec<usize> = buckets
            .iter()
            .flat_map(|b| b.iter().map(|(i, _)| *i))
            .collect();
        assert_eq!(order, (0..sizes.len()).collect::<Vec<_>>());
        let bytes: Vec<usize> = buckets
            .iter()
            .map(|b| b.iter().map(|(_, g)| g.elem_count() * 4).sum())
            .collect();
        // Three quarters fill the first; the oversized one travels alone.
        assert_eq!(buckets.len(), 4);
        assert!(bytes[..2].iter().all(|&b| b <= BUCKET_BYTES));
        assert_eq!(buckets[2].len(), 1);
    }
}
