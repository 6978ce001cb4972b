//! `cornet-trainer launch`: one training process per device, torchrun's way.

use crate::cli::LaunchArgs;
use cornet_trainer::distributed::launch::launch;

pub fn run(args: LaunchArgs) -> anyhow::Result<()> {
    Ok(launch(&args.options())?)
}
