//! `cornet-trainer --config X`: training.

use crate::cli::TrainArgs;
use cornet_trainer::experiment::{self, Launch};

pub fn run(args: &TrainArgs) -> anyhow::Result<()> {
    let Some(config) = args.config.clone() else {
        anyhow::bail!("--config is required to train (see --help)");
    };
    experiment::train(&Launch {
        config,
        overrides: args.overrides(),
        resume: args.resume.clone(),
        force: args.force,
        init: args.init.clone(),
    })?;
    Ok(())
}
