//! Choosing where tensors live.

use candle_core::Device;

/// A device name that this build or this machine cannot give a device for.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// Neither `cpu` nor `cuda[:N]`.
    #[error("unknown device `{0}`: expected `cpu`, `cuda` or `cuda:N`")]
    Unknown(String),
    /// `cuda:N` whose `N` is not a number.
    #[error("bad device ordinal in `{0}`")]
    BadOrdinal(String),
    /// The CUDA device could not be opened (no such GPU, no driver, ...).
    #[error(
        "cannot open CUDA device {ordinal}: {cause} (`nvidia-smi` lists the GPUs this machine \
         sees; CUDA_VISIBLE_DEVICES narrows them)"
    )]
    Unavailable {
        /// The device's ordinal.
        ordinal: usize,
        /// The driver's verdict (`CUDA_ERROR_NO_DEVICE`, ...), shown in the message.
        cause: candle_core::Error,
    },
    /// A CUDA device asked of a build without the `cuda` feature.
    #[error("device `{0}` needs a build with the `cuda` feature (cargo build --features cuda)")]
    NoCuda(String),
}

/// `cpu`, `auto` (see [`auto_device`]), or `cuda` / `cuda:N` in a build with the `cuda`
/// feature.
pub fn parse_device(name: &str) -> Result<Device, DeviceError> {
    match name {
        "cpu" => Ok(Device::Cpu),
        "auto" => Ok(auto_device(0)),
        cuda if cuda == "cuda" || cuda.starts_with("cuda:") => cuda_device(cuda),
        other => Err(DeviceError::Unknown(other.to_owned())),
    }
}

/// `auto`: GPU `ordinal` when this build has CUDA and the GPU opens, else the CPU, saying
/// why in one line.
pub fn auto_device(ordinal: usize) -> Device {
    match cuda_device(&format!("cuda:{ordinal}")) {
        Ok(device) => device,
        Err(why) => {
            tracing::info!("train.device auto: training on the CPU ({why})");
            Device::Cpu
        }
    }
}

#[cfg(feature = "cuda")]
fn cuda_device(name: &str) -> Result<Device, DeviceError> {
    let ordinal = match name.strip_prefix("cuda:") {
        Some(n) => n
            .parse()
            .map_err(|_| DeviceError::BadOrdinal(name.to_owned()))?,
        None => 0,
    };
    Device::new_cuda(ordinal).map_err(|e| DeviceError::Unavailable {
        ordinal,
        // The driver's verdict alone, without candle's backtrace.
        cause: match e {
            candle_core::Error::WithBacktrace { inner, .. } => *inner,
            e => e,
        },
    })
}

#[cfg(not(feature = "cuda"))]
fn cuda_device(name: &str) -> Result<Device, DeviceError> {
    Err(DeviceError::NoCuda(name.to_owned()))
}

/// Where `needed` bytes exceed a `1 / sharing` share of the memory available now: that share
/// and the need, in GiB, for the caller's message; `None` where it fits or nothing is known.
pub fn memory_shortfall(needed: f64, sharing: usize) -> Option<Shortfall> {
    let share = available_memory()? as f64 / sharing.max(1) as f64;
    let gib = |bytes: f64| bytes / f64::from(1u32 << 30);
    (needed > share).then(|| Shortfall {
        needed_gib: gib(needed),
        available_gib: gib(share),
    })
}

/// Memory asked beyond what is available, in GiB.
#[derive(Debug, Clone, Copy)]
pub struct Shortfall {
    /// The lower bound of what the work needs.
    pub needed_gib: f64,
    /// What is available to it.
    pub available_gib: f64,
}

/// Bytes of memory the kernel says can be allocated without swapping (`MemAvailable` in
/// `/proc/meminfo`); `None` where that is not known.
pub fn available_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_is_the_cpu_where_no_gpu_opens() {
        // In a build without `cuda` (or on a machine without a GPU): the CPU, not an error.
        if !cfg!(feature = "cuda") || !candle_core::utils::cuda_is_available() {
            assert!(parse_device("auto").unwrap().is_cpu());
            assert!(auto_device(3).is_cpu());
        }
        assert!(matches!(parse_device("gpu"), Err(DeviceError::Unknown(_))));
    }
}
