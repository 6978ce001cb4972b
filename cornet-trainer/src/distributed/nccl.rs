//! Ranks on GPUs: NCCL through cudarc, on candle's CUDA stream so that collectives are
//! ordered after the kernels that produced the gradients. Rank 0 creates the NCCL unique id
//! and hands it to the others through the rendezvous store.
//!
//! Gradients are reduced in device memory ([`Communicator::all_reduce_sum_tensor`], one call
//! per bucket); the slice collectives (weights at the start, running statistics, counts)
//! stage through the host, where they are small or rare.

use super::communicator::Communicator;
use super::env::RankEnv;
use super::error::{
    DistributedError::{Collective, Rendezvous, Unsupported},
    Explain, Result,
};
use super::rendezvous;
use candle_core::{CpuStorage, CudaStorage, CustomOp1, Device, Layout, Shape, Tensor};
use cudarc::nccl::safe::{Comm, Id, ReduceOp};

/// A rank's NCCL communicator on its CUDA device.
pub struct Nccl {
    comm: Comm,
    rank: usize,
    world_size: usize,
    /// Held for the life of the communicator: on rank 0 it may serve the store.
    _rendezvous: rendezvous::Rendezvous,
}

const ID_KEY: &str = "nccl/unique_id";

impl Nccl {
    /// Meets the other ranks through the store (rank 0 hands out the NCCL id there) and joins
    /// the NCCL communicator on `device`'s stream.
    pub fn connect(env: &RankEnv, device: &Device) -> Result<Self> {
        let Device::Cuda(cuda) = device else {
            return Err(Unsupported(
                "the nccl backend needs a CUDA device (train.device: cuda)".into(),
            ));
        };
        let mut rendezvous = rendezvous::Rendezvous::join(env)?;
        let id = if env.rank == 0 {
            let id = Id::new()
                .map_err(|e| Rendezvous(format!("creating the NCCL unique id: {e:?}"), None))?;
            let bytes: Vec<u8> = id.internal().iter().map(|&c| c as u8).collect();
            rendezvous.publish(ID_KEY, &bytes)?;
            id
        } else {
            let bytes = rendezvous
                .fetch(ID_KEY, env.timeout)?
                .explain(Rendezvous, || {
                    format!(
                        "rank 0 did not publish the NCCL id within {:?}",
                        env.timeout
                    )
                })?;
            let mut internal = [0 as std::ffi::c_char; 128];
            if bytes.len() != internal.len() {
                return Err(Rendezvous(
                    format!("malformed NCCL id in the store ({} bytes)", bytes.len()),
                    None,
                ));
            }
            for (dst, src) in internal.iter_mut().zip(bytes) {
                *dst = src as std::ffi::c_char;
            }
            Id::uninit(internal)
        };
        let comm =
            Comm::from_rank(cuda.cuda_stream(), env.rank, env.world_size, id).map_err(|e| {
                Rendezvous(
                    format!(
                        "NCCL init of rank {} of {}: {e:?}",
                        env.rank, env.world_size
                    ),
                    None,
                )
            })?;
        Ok(Nccl {
            comm,
            rank: env.rank,
            world_size: env.world_size,
            _rendezvous: rendezvous,
        })
    }
}

impl Communicator for Nccl {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world_size(&self) -> usize {
        self.world_size
    }

    fn all_reduce_sum(&mut self, data: &mut [f32]) -> Result<()> {
        let stream = self.comm.stream();
        let mut buffer = stream.clone_htod(data).map_err(driver)?;
        self.comm
            .all_reduce_in_place(&mut buffer, &ReduceOp::Sum)
            .map_err(|e| Collective(format!("NCCL all-reduce: {e:?}"), None))?;
        stream.memcpy_dtoh(&buffer, data).map_err(driver)?;
        stream.synchronize().map_err(driver)?;
        Ok(())
    }

    fn broadcast(&mut self, data: &mut [f32], root: usize) -> Result<()> {
        let stream = self.comm.stream();
        let mut buffer = stream.clone_htod(data).map_err(driver)?;
        self.comm
            .broadcast_in_place(&mut buffer, root as i32)
            .map_err(|e| Collective(format!("NCCL broadcast: {e:?}"), None))?;
        stream.memcpy_dtoh(&buffer, data).map_err(driver)?;
        stream.synchronize().map_err(driver)?;
        Ok(())
    }

    fn all_reduce_sum_tensor(&mut self, t: &Tensor) -> Result<Tensor> {
        if !t.device().is_cuda() {
            return super::communicator::all_reduce_sum_via_host(self, t);
        }
        Ok(t.contiguous()?
            .apply_op1_no_bwd(&AllReduceSum(&self.comm))?)
    }
}

/// A CUDA error in a collective's host-device copies, with the driver's own message.
fn driver(err: cudarc::driver::DriverError) -> super::DistributedError {
    Collective(err.to_string(), None)
}

/// NCCL's sum all-reduce of a CUDA tensor into a new one, as a candle op so that it reads and
/// writes candle's device memory on candle's stream.
struct AllReduceSum<'a>(&'a Comm);

impl CustomOp1 for AllReduceSum<'_> {
    fn name(&self) -> &'static str {
        "nccl-all-reduce-sum"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        candle_core::bail!("NCCL all-reduce needs a CUDA tensor")
    }

    fn cuda_fwd(
        &self,
        storage: &CudaStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("NCCL all-reduce needs a contiguous tensor")
        };
        let src = storage.as_cuda_slice::<f32>()?.slice(start..end);
        let device = &storage.device;
        // SAFETY: every element is written by the all-reduce before anything reads it.
        let mut dst = unsafe { device.alloc::<f32>(end - start)? };
        self.0
            .all_reduce(&src, &mut dst, &ReduceOp::Sum)
            .map_err(|e| candle_core::Error::Msg(format!("NCCL all-reduce: {e:?}")))?;
        let out = CudaStorage::wrap_cuda_slice(dst, device.clone());
        Ok((out, layout.shape().clone()))
    }
}

/// One rank on the first GPU (a single GPU cannot host two NCCL ranks): every collective must
/// leave the data as it is. Where no CUDA device is present it checks nothing, and says so.
#[cfg(test)]
mod tests {
    use super::*;
    use cornet_model::testing::cuda_device;

    #[test]
    fn one_rank_collectives_leave_the_data_unchanged() -> Result<()> {
        let Some(device) = cuda_device("NCCL") else {
            return Ok(());
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let env = RankEnv::on_this_machine(0, 1, port);
        let mut nccl = Nccl::connect(&env, &device)?;
        let values: Vec<f32> = (0..1000).map(|i| i as f32 * 0.5 - 7.0).collect();

        let reduced = nccl.all_reduce_sum_tensor(&Tensor::new(values.as_slice(), &device)?)?;
        assert_eq!(reduced.to_vec1::<f32>()?, values);
        let mut data = values.clone();
        nccl.all_reduce_sum(&mut data)?;
        assert_eq!(data, values);
        nccl.broadcast(&mut data, 0)?;
        assert_eq!(data, values);
        nccl.barrier()?;
        Ok(())
    }
}
