//! `cornet-trainer launch`: one training process per device, torchrun's way.

use crate::cli::LaunchArgs;
use cornet_trainer::distributed::env::job_secret_from_env;
use cornet_trainer::distributed::launch::{launch, LaunchOptions};
use std::time::Duration;

pub fn run(args: LaunchArgs) -> anyhow::Result<()> {
    Ok(launch(&LaunchOptions {
        nproc: args.nproc,
        nnodes: args.nnodes,
        node_rank: args.node_rank,
        master_addr: args.master_addr,
        master_port: args.master_port,
        run_id: args.run_id,
        local_addr: args.local_addr,
        max_restarts: args.max_restarts,
        oversubscribe: args.oversubscribe,
        heartbeat_timeout: Duration::from_secs(args.heartbeat_timeout),
        rendezvous_timeout: Duration::from_secs(args.rendezvous_timeout),
        secret: job_secret_from_env()?,
        trainer_args: args.trainer_args,
    })?)
}
