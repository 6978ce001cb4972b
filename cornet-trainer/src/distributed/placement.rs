//! What `dist.ngpus` asks of this process, as `--ngpus` in the original `run.py`: `0` trains on
//! the CPU, `N` on N devices, here one rank per device (started by `launch --nproc N`).

/// Where this rank trains, and what to tell the user when the ranks do not match `ngpus`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The device to train on: `train.device`, or `cpu` when `dist.ngpus` is 0.
    pub device: String,
    /// Set when `ngpus` asks for several devices but this is a single process: one device
    /// would be used and the others idle, so say how to start the ranks.
    pub warning: Option<String>,
}

impl Placement {
    /// The placement for `ngpus` devices asked for, the configured `device` and the
    /// `world_size` of ranks actually started.
    pub fn resolve(ngpus: usize, device: &str, world_size: usize) -> Placement {
        // The original moves the model to the GPU only when ngpus > 0, whatever is installed.
        let device = match ngpus {
            0 => "cpu".to_string(),
            _ => device.to_string(),
        };
        let warning = (ngpus > 1 && world_size == 1).then(|| {
            format!(
                "dist.ngpus is {ngpus} but this is a single process: start the ranks with \
                 `cornet-trainer launch --nproc {ngpus}` or scripts/launch_2gpu.sh"
            )
        });
        Placement { device, warning }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_devices_is_the_cpu_whatever_the_configured_device() {
        for device in ["cuda", "cuda:1", "cpu"] {
            let placement = Placement::resolve(0, device, 1);
            assert_eq!(placement.device, "cpu", "{device}");
            assert_eq!(placement.warning, None);
        }
    }

    #[test]
    fn some_devices_keep_the_configured_device() {
        assert_eq!(Placement::resolve(1, "cuda:1", 1).device, "cuda:1");
        assert_eq!(Placement::resolve(2, "cuda", 2).device, "cuda");
        assert_eq!(Placement::resolve(2, "cpu", 2).device, "cpu");
    }

    #[test]
    fn several_devices_in_one_process_warn_how_to_launch_the_ranks() {
        let warning = Placement::resolve(4, "cuda", 1).warning.unwrap();
        assert!(
            warning.contains("dist.ngpus is 4 but this is a single process")
                && warning.contains("cornet-trainer launch --nproc 4"),
            "{warning}"
        );
        assert_eq!(Placement::resolve(1, "cuda", 1).warning, None);
        assert_eq!(Placement::resolve(2, "cuda", 2).warning, None);
    }
}
