//! `cornet-trainer bench` and `bench-allreduce`: timings on synthetic input.

use super::shared::{at_least, DeviceArgs, PrecisionArgs};
use clap::Args;
use cornet_trainer::bench::BenchOptions;

/// `bench`: which model, and the step to time. The input is generated, not decoded: no
/// workers, and the batch of a quick timing rather than of feature extraction.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Which CORnet: Z, R, RT or S (full size, 1000 classes).
    #[arg(long)]
    pub model: cornet_model::Arch,

    /// Images per step.
    #[arg(long, default_value_t = 16, value_parser = at_least(1))]
    pub batch_size: usize,

    /// Image side: at least 32, the smallest every CORnet's pooling takes.
    #[arg(long, default_value_t = 224, value_parser = at_least(32))]
    pub image_size: usize,

    /// Timed steps; the median is reported.
    #[arg(long, default_value_t = 7, value_parser = at_least(1))]
    pub steps: usize,

    /// Untimed steps first.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,

    #[command(flatten)]
    pub device: DeviceArgs,

    #[command(flatten)]
    pub precision: PrecisionArgs,

    /// BatchNorm (CORnet-S) over groups of this many images, as model.bn_images does on one
    /// rank (a divisor of --batch-size); the whole batch if left out.
    #[arg(long, value_parser = at_least(1))]
    pub bn_images: Option<usize>,
}

impl BenchArgs {
    /// What these flags ask to time.
    pub fn options(&self) -> BenchOptions {
        BenchOptions {
            arch: self.model,
            batch_size: self.batch_size,
            image_size: self.image_size,
            steps: self.steps,
            warmup: self.warmup,
            precision: self.precision.precision.into(),
            bn_images: self.bn_images,
        }
    }
}

/// `bench-allreduce`: the size and number of the all-reduces to time.
#[derive(Debug, Args)]
pub struct BenchAllreduceArgs {
    /// Floats per all-reduce (CORnet-S has 53M parameters).
    #[arg(long, default_value_t = 53_000_000)]
    pub floats: usize,

    /// Timed all-reduces; the median is reported.
    #[arg(long, default_value_t = 5)]
    pub iters: usize,
}

#[cfg(test)]
mod tests {
    use crate::cli::tests::{args_of, parse};
    use cornet_trainer::config::Precision;

    #[test]
    fn every_flag_reaches_the_options() {
        let args = args_of!(
            Bench,
            "bench --model S --batch-size 8 --image-size 64 --steps 3 --warmup 1 --device cpu \
             --precision bf16 --bn-images 4"
        )
        .unwrap();
        let options = args.options();
        assert_eq!(options.arch, cornet_model::Arch::S);
        assert_eq!((options.batch_size, options.image_size), (8, 64));
        assert_eq!((options.steps, options.warmup), (3, 1));
        assert_eq!(options.precision, Precision::Bf16);
        assert_eq!(options.bn_images, Some(4));
        assert!(args.device.open().unwrap().is_cpu());
        for line in [
            "--image-size 16",
            "--batch-size 0",
            "--steps 0",
            "--bn-images 0",
        ] {
            assert!(parse(&format!("bench --model Z {line}")).is_err(), "{line}");
        }
        let args = args_of!(BenchAllreduce, "bench-allreduce --floats 100 --iters 2").unwrap();
        assert_eq!((args.floats, args.iters), (100, 2));
    }
}
