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

pub use env::RankEnv;
pub use error::{Cause, DistributedError, Result};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// Collective operations over all ranks. Every rank must call the same operations in the same
/// order with buffers of the same length.
pub trait Communicator {
    /// This process's rank, 0-based.
    fn rank(&self) -> usize;
    /// The number of ranks.
    fn world_size(&self) -> usize;
    /// Replaces `data` on every rank by the elementwise sum over ranks.
    fn all_reduce_sum(&mut self, data: &mut [f32]) -> Result<()>;
    /// Replaces `data` on every rank by rank `root`'s.
    fn broadcast(&mut self, data: &mut [f32], root: usize) -> Result<()>;
    /// Returns once every rank has called it.
    fn barrier(&mut self) -> Result<()> {
        self.all_reduce_sum(&mut [0.0])
    }
    /// The elementwise sum over ranks of the f32 tensor `t`, on `t`'s device. NCCL reduces
    /// device memory directly; the others stage through host memory.
    fn all_reduce_sum_tensor(&mut self, t: &Tensor) -> Result<Tensor> {
        all_reduce_sum_via_host(self, t)
    }
}

/// [`Communicator::all_reduce_sum_tensor`] through a host copy of the tensor.
pub fn all_reduce_sum_via_host<C: Communicator + ?Sized>(
    comm: &mut C,
    t: &Tensor,
) -> Result<Tensor> {
    let mut host = t.flatten_all()?.to_vec1::<f32>()?;
    comm.all_reduce_sum(&mut host)?;
    Ok(Tensor::from_vec(host, t.shape(), t.device())?)
}

/// The one-rank communicator: every collective is the identity.
#[derive(Debug, Default)]
pub struct SingleRank;

impl Communicator for SingleRank {
    fn rank(&self) -> usize {
        0
    }

    fn world_size(&self) -> usize {
        1
    }

    fn all_reduce_sum(&mut self, _data: &mut [f32]) -> Result<()> {
        Ok(())
    }

    fn broadcast(&mut self, _data: &mut [f32], _root: usize) -> Result<()> {
        Ok(())
    }
}

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
