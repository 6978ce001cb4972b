//! Choosing where tensors live.

use anyhow::{bail, Result};
use candle_core::Device;

/// `cpu`, or `cuda` / `cuda:N` in a build with the `cuda` feature.
pub fn parse_device(name: &str) -> Result<Device> {
    match name {
        "cpu" => Ok(Device::Cpu),
        cuda if cuda == "cuda" || cuda.starts_with("cuda:") => cuda_device(cuda),
        other => bail!("unknown device `{other}`: expected `cpu`, `cuda` or `cuda:N`"),
    }
}

#[cfg(feature = "cuda")]
fn cuda_device(name: &str) -> Result<Device> {
    let ordinal = match name.strip_prefix("cuda:") {
        Some(n) => n
            .parse()
            .map_err(|_| anyhow::anyhow!("bad device ordinal in `{name}`"))?,
        None => 0,
    };
    Device::new_cuda(ordinal).map_err(|e| {
        // The driver's verdict alone (CUDA_ERROR_NO_DEVICE, ...), without candle's backtrace.
        let cause = match e {
            candle_core::Error::WithBacktrace { inner, .. } => *inner,
            e => e,
        };
        anyhow::anyhow!(
            "cannot open CUDA device {ordinal}: {cause} (`nvidia-smi` lists the GPUs this \
             machine sees; CUDA_VISIBLE_DEVICES narrows them)"
        )
    })
}

#[cfg(not(feature = "cuda"))]
fn cuda_device(name: &str) -> Result<Device> {
    bail!("device `{name}` needs a build with the `cuda` feature (cargo build --features cuda)")
}
