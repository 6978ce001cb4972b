//! Data parallelism in one place: one process per device, torchrun's contract.
//!
//! Whoever starts the ranks (torchrun, Slurm's `srun`, a PyTorchJob, or our [`launch`]er, a
//! torchrun-compatible agent) tells each its place through the environment ([`env`](mod@env));
//! they meet ([`rendezvous`]) through PyTorch's TCPStore ([`store`]) at
//! `MASTER_ADDR:MASTER_PORT`, served by the agent or else by rank 0.
//! [`Communicator`] is what the training loop sees; transports are a no-op for one rank, a
//! TCP ring for CPU ranks ([`tcp`]), and NCCL for GPUs (feature `nccl`). [`grads`] keeps the
//! ranks' models identical, [`placement`] says what `dist.ngpus` asks of this process, and
//! [`batch_groups`] which ranks share a BatchNorm group (`model.bn_images`).

pub mod auth;
pub mod batch_groups;
mod communicator;
pub mod env;
mod error;
pub mod error_file;
pub mod grads;
pub mod launch;
#[cfg(feature = "nccl")]
pub mod nccl;
pub mod placement;
pub mod rendezvous;
pub mod store;
pub mod tcp;

pub use communicator::{all_reduce_sum_via_host, Communicator, SingleRank};
pub use env::RankEnv;
pub use error::{Cause, DistributedError, Result};

use candle_core::Device;
use serde::{Deserialize, Serialize};

/// Which transport carries the collectives (`dist.backend` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// NCCL on GPUs, TCP on CPUs.
    Auto,
    /// NCCL (a build with the `nccl` feature, CUDA devices).
    Nccl,
    /// The TCP ring, on any device (tensors stage through host memory).
    Tcp,
}

/// The communicator this process should use: one rank without a rank environment (`env` is
/// `None`, no `WORLD_SIZE`), else the transport asked for, meeting the other ranks through
/// the store.
pub fn connect(
    backend: Backend,
    device: &Device,
    env: Option<&RankEnv>,
) -> Result<Box<dyn Communicator>> {
    let Some(env) = env else {
        return Ok(Box::new(SingleRank));
    };
    let use_nccl = match backend {
        Backend::Nccl => true,
        Backend::Tcp => false,
        Backend::Auto => device.is_cuda(),
    };
    if use_nccl {
        return connect_nccl(env, device);
    }
    Ok(Box::new(tcp::TcpRing::connect(env)?))
}

#[cfg(feature = "nccl")]
fn connect_nccl(env: &RankEnv, device: &Device) -> Result<Box<dyn Communicator>> {
    Ok(Box::new(nccl::Nccl::connect(env, device)?))
}

#[cfg(not(feature = "nccl"))]
fn connect_nccl(_env: &RankEnv, _device: &Device) -> Result<Box<dyn Communicator>> {
    Err(DistributedError::Unsupported(
        "the nccl backend needs a build with the `nccl` feature (cargo build --features nccl)"
            .into(),
    ))
}
