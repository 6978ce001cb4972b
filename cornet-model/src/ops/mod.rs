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

use candle_core::{CpuStorage, Layout, Result, Tensor};
use std::cell::Cell;

thread_local! {
    /// Set only inside [`with_portable_ops`]: the CPU takes the other devices' code paths.
    static PORTABLE: Cell<bool> = const { Cell::new(false) };
}

/// Whether `x` goes through this module's CPU kernels: on the CPU, except inside
/// [`with_portable_ops`].
fn on_cpu_kernels(x: &Tensor) -> bool {
    x.device().is_cpu() && !PORTABLE.with(Cell::get)
}

/// Runs `f` (forward and backward) with every op on the code path that devices other than
/// the CPU take: candle's convolution and the composites of max-pool, ReLU and BatchNorm. On
/// the CPU this checks the GPU's formulas against the fixtures without a GPU. (bf16
/// convolutions still run in f32 on the CPU, rounded as cuDNN's bf16 kernels round.)
#[cfg(feature = "testing")]
pub fn with_portable_ops<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            PORTABLE.with(|p| p.set(self.0));
        }
    }
    let _restore = Restore(PORTABLE.with(|p| p.replace(true)));
    f()
}

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
