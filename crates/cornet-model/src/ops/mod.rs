//! Operations candle lacks or computes slowly on the CPU, each with the backward training
//! needs and tests against a reference.

mod batch_norm;
mod conv;
#[cfg(feature = "cudnn")]
mod conv_cudnn;
mod pool;
mod relu;

pub use batch_norm::{batch_norm_train, BatchNormTrain};
pub use conv::conv2d;
pub use pool::{global_avg_pool, max_pool2d};
pub use relu::relu;

use candle_core::{CpuStorage, Layout, Result};

/// The f32 elements of a contiguous CPU tensor; `what` names it in the error otherwise.
fn contiguous_f32<'a>(storage: &'a CpuStorage, layout: &Layout, what: &str) -> Result<&'a [f32]> {
    match (storage, layout.contiguous_offsets()) {
        (CpuStorage::F32(data), Some((start, end))) => Ok(&data[start..end]),
        _ => candle_core::bail!("{what} must be a contiguous f32 tensor"),
    }
}

/// The largest absolute elementwise difference of two tensors of one shape.
#[cfg(test)]
fn max_abs_diff(a: &candle_core::Tensor, b: &candle_core::Tensor) -> f32 {
    (a - b)
        .and_then(|d| d.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>())
        .expect("tensors of one shape")
}
