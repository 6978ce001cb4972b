//! `cornet-trainer bench` and `bench-allreduce`: one JSON line of timings.

use crate::cli::{BenchAllreduceArgs, BenchArgs};
use crate::display;
use cornet_trainer::bench;
use cornet_trainer::distributed::{self, Backend, RankEnv};

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let device = args.device.open()?;
    let timings = bench::run(&args.options(), &device, display::on_stderr().as_mut())?;
    println!("{}", serde_json::to_string(&timings)?);
    Ok(())
}

/// The TCP ring on the CPU, whatever the devices: it times the transport's all-reduce.
pub fn run_all_reduce(args: &BenchAllreduceArgs) -> anyhow::Result<()> {
    let rank_env = RankEnv::from_env()?;
    let mut comm =
        distributed::connect(Backend::Tcp, &candle_core::Device::Cpu, rank_env.as_ref())?;
    let timings = bench::all_reduce(comm.as_mut(), args.floats, args.iters.max(1))?;
    if comm.rank() == 0 {
        println!("{}", serde_json::to_string(&timings)?);
    }
    Ok(())
}
