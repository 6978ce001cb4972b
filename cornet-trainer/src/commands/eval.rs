//! `cornet-trainer eval`: top-1, top-5 and loss of weights on labelled images, one JSON line.

use crate::cli::EvalArgs;
use crate::commands::train::share_cores;
use crate::display;
use cornet_trainer::distributed::RankEnv;
use cornet_trainer::evaluate::request;

pub fn run(args: &EvalArgs) -> anyhow::Result<()> {
    let rank_env = RankEnv::from_env()?;
    share_cores(rank_env.as_ref())?;
    let rank = rank_env.as_ref().map_or(0, |env| env.rank);
    let evaluation = request::run(&args.request(rank_env)?, display::on_stderr().as_mut())?;
    if rank == 0 {
        println!("{}", serde_json::to_string(&evaluation)?);
    }
    Ok(())
}
