//! What the training loop sees of the ranks: the collectives, whichever transport carries
//! them, and the one-rank case.

use super::error::Result;
use candle_core::Tensor;

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
