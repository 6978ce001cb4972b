//! `cornet-trainer eval`: top-1, top-5 and loss of weights on labelled images, one JSON line.

use crate::bars::Bars;
use crate::cli::EvalArgs;
use crate::commands::train::share_cores;
use cornet_trainer::distributed::RankEnv;
use cornet_trainer::evaluate::request::{self, EvalRequest};

pub fn run(args: &EvalArgs) -> anyhow::Result<()> {
    let rank_env = RankEnv::from_env()?;
    share_cores(rank_env.as_ref())?;
    let rank = rank_env.as_ref().map_or(0, |env| env.rank);
    let request = EvalRequest {
        network: args.network.resolve()?,
        data: args.data_path.clone(),
        format: args.data_format.into(),
        classes_from: args.classes_from.clone(),
        image_size: args.image_size as usize,
        batch_size: args.batch_size as usize,
        workers: args.workers,
        device: args.device.clone(),
        precision: args.precision.into(),
        rank_env,
    };
    let evaluation = request::run(&request, &mut Bars::default())?;
    if rank == 0 {
        println!("{}", serde_json::to_string(&evaluation)?);
    }
    Ok(())
}
