//! `cornet-trainer bench` and `bench-allreduce`: one JSON line of timings.

use crate::cli::{BenchAllreduceArgs, BenchArgs};
use cornet_trainer::bench::{self, BenchOptions};
use cornet_trainer::device::parse_device;
use cornet_trainer::distributed::{self, Backend, RankEnv};

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let device = parse_device(&args.device)?;
    let options = BenchOptions {
        arch: args.model,
        batch_size: args.batch_size as usize,
        image_size: args.image_size as usize,
        steps: args.steps as usize,
        warmup: args.warmup as usize,
        precision: args.precision.into(),
        bn_images: args.bn_images.map(|n| n as usize),
    };
    let report = bench::run(&options, &device)?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// The TCP ring on the CPU, whatever the devices: it times the transport's all-reduce.
pub fn run_all_reduce(args: &BenchAllreduceArgs) -> anyhow::Result<()> {
    let rank_env = RankEnv::from_env()?;
    let mut comm =
        distributed::connect(Backend::Tcp, &candle_core::Device::Cpu, rank_env.as_ref())?;
    let report = bench::all_reduce(comm.as_mut(), args.floats, args.iters.max(1))?;
    if comm.rank() == 0 {
        println!("{}", serde_json::to_string(&report)?);
    }
    Ok(())
}
