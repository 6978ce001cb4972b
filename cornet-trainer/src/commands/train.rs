//! `cornet-trainer --config X`: training.

use crate::cli::TrainArgs;
use crate::display;
use cornet_trainer::distributed::env::{cpu_threads, RankEnv};
use cornet_trainer::experiment;
use cornet_trainer::train::TrainError;

pub fn run(args: &TrainArgs) -> anyhow::Result<()> {
    let rank_env = RankEnv::from_env()?;
    share_cores(rank_env.as_ref())?;
    experiment::train(&args.request(rank_env)?, display::on_stderr().as_mut()).map_err(
        |e| match e {
            // Itself, not a cause: main exits with the status a stop by a signal has.
            TrainError::Stopped(stopped) => anyhow::Error::new(stopped),
            other => other.into(),
        },
    )
}

/// Sets this rank's share of the CPU cores (training and `eval`) (see [`cpu_threads`]) unless `RAYON_NUM_THREADS`
/// already says. candle and gemm size their thread pools from that variable when first used,
/// so this runs first, while the process has a single thread (setting a variable is only
/// sound then).
pub fn share_cores(rank_env: Option<&RankEnv>) -> anyhow::Result<()> {
    if std::env::var_os("RAYON_NUM_THREADS").is_some() {
        return Ok(());
    }
    let local_world_size = rank_env.map_or(1, |env| env.local_world_size);
    let omp = std::env::var("OMP_NUM_THREADS").ok();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = cpu_threads(omp.as_deref(), local_world_size, cores)?;
    if omp.is_some() || local_world_size > 1 {
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    }
    Ok(())
}
