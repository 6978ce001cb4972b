//! What `dist.ngpus` asks of this process, as `--ngpus` in the original `run.py`: `0` trains on
//! the CPU, `N` on N devices, here one rank per device (started by `launch --nproc N`,
//! torchrun or srun), each rank on the device of its local rank.

use crate::device::{auto_device, parse_device, DeviceError};
use candle_core::Device;

/// Where this rank trains, and what to tell the user when the ranks do not match `ngpus`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The device to train on: `train.device`, or `cpu` when `dist.ngpus` is 0; a bare `cuda`
    /// is the local rank's device ([`Placement::ordinal`]), and `auto` stays `auto`.
    pub device: String,
    /// The GPU this rank takes if it takes one: its local rank, or 0 where the launcher gave
    /// it a single GPU.
    pub ordinal: usize,
    /// Set when `ngpus` asks for several devices but this is a single process: one device
    /// would be used and the others idle, so say how to start the ranks.
    pub warning: Option<String>,
}

impl Placement {
    /// The placement for `ngpus` devices asked for, the configured `device`, the
    /// `world_size` of ranks actually started, this rank's `local_rank` on its node, and the
    /// number of devices `CUDA_VISIBLE_DEVICES` leaves this process, if it says.
    pub fn resolve(
        ngpus: usize,
        device: &str,
        world_size: usize,
        local_rank: usize,
        visible_devices: Option<usize>,
    ) -> Placement {
        // torchrun's contract: each rank takes the device of its local rank, unless the
        // launcher already gave it a single one (Slurm's --gpus-per-task).
        let ordinal = match world_size > 1 && visible_devices != Some(1) {
            true => local_rank,
            false => 0,
        };
        // The original moves the model to the GPU only when ngpus > 0, whatever is installed.
        let device = match (ngpus, device) {
            (0, _) => "cpu".to_string(),
            (_, "cuda") if ordinal > 0 => format!("cuda:{ordinal}"),
            (_, device) => device.to_string(),
        };
        let warning = (ngpus > 1 && world_size == 1).then(|| {
            format!(
                "dist.ngpus is {ngpus} but this is a single process: start the ranks with \
                 `cornet-trainer launch --nproc {ngpus}` or scripts/launch_2gpu.sh"
            )
        });
        Placement {
            device,
            ordinal,
            warning,
        }
    }
}

impl Placement {
    /// Opens [`Placement::device`]: `auto` is this rank's GPU when it opens, else the CPU.
    pub fn open(&self) -> Result<Device, DeviceError> {
        match self.device.as_str() {
            "auto" => Ok(auto_device(self.ordinal)),
            name => parse_device(name),
        }
    }
}

/// How many devices `CUDA_VISIBLE_DEVICES` leaves this process, if it says.
pub fn visible_cuda_devices() -> Option<usize> {
    std::env::var("CUDA_VISIBLE_DEVICES")
        .ok()
        .map(|list| list.split(',').filter(|d| !d.trim().is_empty()).count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_devices_is_the_cpu_whatever_the_configured_device() {
        for device in ["cuda", "cuda:1", "cpu"] {
            let placement = Placement::resolve(0, device, 1, 0, None);
            assert_eq!(placement.device, "cpu", "{device}");
            assert_eq!(placement.warning, None);
        }
    }

    #[test]
    fn some_devices_keep_the_configured_device() {
        assert_eq!(Placement::resolve(1, "cuda:1", 1, 0, None).device, "cuda:1");
        assert_eq!(Placement::resolve(1, "cuda", 1, 0, None).device, "cuda");
        assert_eq!(Placement::resolve(2, "cpu", 2, 1, None).device, "cpu");
    }

    #[test]
    fn each_rank_takes_its_local_ranks_device_unless_given_one() {
        assert_eq!(Placement::resolve(8, "cuda", 8, 3, None).device, "cuda:3");
        assert_eq!(
            Placement::resolve(8, "cuda", 8, 3, Some(4)).device,
            "cuda:3"
        );
        assert_eq!(Placement::resolve(8, "cuda", 8, 3, Some(1)).device, "cuda");
        assert_eq!(Placement::resolve(8, "cuda:0", 8, 3, None).device, "cuda:0");
        let auto = Placement::resolve(8, "auto", 8, 3, None);
        assert_eq!((auto.device.as_str(), auto.ordinal), ("auto", 3));
        assert_eq!(Placement::resolve(0, "auto", 8, 3, None).device, "cpu");
    }

    #[test]
    fn several_devices_in_one_process_warn_how_to_launch_the_ranks() {
        let warning = Placement::resolve(4, "cuda", 1, 0, None).warning.unwrap();
        assert!(
            warning.contains("dist.ngpus is 4 but this is a single process")
                && warning.contains("cornet-trainer launch --nproc 4"),
            "{warning}"
        );
        assert_eq!(Placement::resolve(1, "cuda", 1, 0, None).warning, None);
        assert_eq!(Placement::resolve(2, "cuda", 2, 1, None).warning, None);
    }
}
