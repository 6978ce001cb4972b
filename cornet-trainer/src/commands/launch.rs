//! `cornet-trainer launch`: one training process per device, torchrun's way.

use crate::cli::LaunchArgs;
use cornet_trainer::distributed::launch::launch;
use cornet_trainer::distributed::DistributedError;

pub fn run(args: LaunchArgs) -> anyhow::Result<()> {
    launch(&args.options()?).map_err(|e| match e {
        // Itself, not a cause: main exits with the status a stop by a signal has.
        DistributedError::Stopped(stopped) => anyhow::Error::new(stopped),
        other => other.into(),
    })
}
