//! Data-parallel communication between ranks: one process per device, torchrun's contract.
//!
//! [`Communicator`] is what the training loop sees; backends are a no-op for one rank, a TCP
//! ring for CPU ranks ([`tcp`]), and NCCL for GPUs (feature `nccl`). Ranks meet through a small
//! key-value [`store`] served by rank 0 at `MASTER_ADDR:MASTER_PORT`.

pub mod env;
#[cfg(feature = "nccl")]
pub mod nccl;
pub mod store;
pub mod tcp;

use anyhow::Result;
use candle_core::{Device, Tensor};

/// Collective operations over all ranks. Every rank must call the same operations in the same
/// order with buffers of the same length.
pub trait Communicator {
    fn rank(&self) -> usize;
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

/// Which transport carries the collectives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// NCCL for CUDA devices, TCP otherwise.
    Auto,
    Nccl,
    Tcp,
}

/// The communicator this process should use: one rank without `WORLD_SIZE`, else the
/// transport asked for, meeting the other ranks through rank 0's store.
pub fn connect(transport: Transport, device: &Device) -> Result<Box<dyn Communicator>> {
    let Some(env) = env::RankEnv::from_env()? else {
        return Ok(Box::new(SingleRank));
    };
    let use_nccl = match transport {
        Transport::Nccl => true,
        Transport::Tcp => false,
        Transport::Auto => device.is_cuda(),
    };
    if use_nccl {
        return connect_nccl(&env, device);
    }
    Ok(Box::new(tcp::TcpRing::connect(&env)?))
}

#[cfg(feature = "nccl")]
fn connect_nccl(env: &env::RankEnv, device: &Device) -> Result<Box<dyn Communicator>> {
    Ok(Box::new(nccl::Nccl::connect(env, device)?))
}

#[cfg(not(feature = "nccl"))]
fn connect_nccl(_env: &env::RankEnv, _device: &Device) -> Result<Box<dyn Communicator>> {
    anyhow::bail!(
        "the nccl backend needs a build with the `nccl` feature (cargo build --features nccl)"
    )
}
