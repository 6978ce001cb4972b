//! `cornet-trainer launch`: one training process per device, torchrun's way.

use clap::Args;
use cornet_trainer::distributed::env::job_secret_from_env;
use cornet_trainer::distributed::launch::LaunchOptions;
use std::time::Duration;

/// `launch`: this node's ranks, the job's nodes, and how to watch and restart them.
#[derive(Debug, Args)]
pub struct LaunchArgs {
    /// Processes (devices) on this node (torchrun's --nproc-per-node).
    #[arg(long, visible_alias = "nproc-per-node")]
    pub nproc: usize,

    /// Nodes in the job; start one launcher per node, each with its --node-rank and the same
    /// CORNET_JOB_SECRET in its environment (a job of one node makes its own).
    #[arg(long, default_value_t = 1)]
    pub nnodes: usize,

    /// This node's index, 0-based. Node 0's launcher serves the store.
    #[arg(long, default_value_t = 0)]
    pub node_rank: usize,

    /// Address of node 0, where its launcher serves the store (a PyTorch TCPStore, on this
    /// address's interface, to clients that prove the job's secret).
    #[arg(long, default_value = "127.0.0.1")]
    pub master_addr: String,

    /// Port of the store on node 0.
    #[arg(long, default_value_t = 29500)]
    pub master_port: u16,

    /// The job's id, the same on every node (TORCHELASTIC_RUN_ID); keeps jobs sharing a store
    /// apart.
    #[arg(long, default_value = "none")]
    pub run_id: String,

    /// The address this node's ranks listen on for their ring peers (default: the interface
    /// that reaches node 0). Set it where a node has several networks.
    #[arg(long)]
    pub local_addr: Option<std::net::IpAddr>,

    /// Times to restart all ranks after one fails; restarted ranks resume from the newest
    /// checkpoint of the run.
    #[arg(long, default_value_t = 3)]
    pub max_restarts: usize,

    /// Start more ranks than this node has cores (refused without it: each rank needs a core
    /// at least).
    #[arg(long)]
    pub oversubscribe: bool,

    /// Seconds without a training step after which a rank counts as hung (at least 1).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub heartbeat_timeout: u64,

    /// Seconds to wait for node 0's launcher at start-up (several nodes only).
    #[arg(long, default_value_t = 300)]
    pub rendezvous_timeout: u64,

    /// The trainer's arguments for every rank, after `--`.
    #[arg(last = true, required = true)]
    pub trainer_args: Vec<String>,
}

impl LaunchArgs {
    /// The launch these flags ask for, with the job's secret from the environment.
    pub fn options(self) -> anyhow::Result<LaunchOptions> {
        Ok(LaunchOptions {
            nproc: self.nproc,
            nnodes: self.nnodes,
            node_rank: self.node_rank,
            master_addr: self.master_addr,
            master_port: self.master_port,
            run_id: self.run_id,
            local_addr: self.local_addr,
            max_restarts: self.max_restarts,
            oversubscribe: self.oversubscribe,
            heartbeat_timeout: Duration::from_secs(self.heartbeat_timeout),
            rendezvous_timeout: Duration::from_secs(self.rendezvous_timeout),
            secret: job_secret_from_env()?,
            trainer_args: self.trainer_args,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::cli::tests::{args_of, parse};
    use std::time::Duration;

    #[test]
    fn every_flag_reaches_the_options() {
        let args = args_of!(
            Launch,
            "launch --nproc-per-node 4 --nnodes 2 --node-rank 1 --master-addr node0 \
             --master-port 29600 --run-id job --local-addr 10.0.0.2 --max-restarts 1 \
             --oversubscribe --heartbeat-timeout 60 --rendezvous-timeout 90 -- --config c.yaml \
             --lr 0.1"
        )
        .unwrap();
        let options = args.options().unwrap();
        assert_eq!(
            (options.nproc, options.nnodes, options.node_rank),
            (4, 2, 1)
        );
        assert_eq!(
            (options.master_addr.as_str(), options.master_port),
            ("node0", 29600)
        );
        assert_eq!(options.run_id, "job");
        assert_eq!(options.local_addr, Some("10.0.0.2".parse().unwrap()));
        assert_eq!(options.max_restarts, 1);
        assert!(options.oversubscribe);
        assert_eq!(options.heartbeat_timeout, Duration::from_secs(60));
        assert_eq!(options.rendezvous_timeout, Duration::from_secs(90));
        assert_eq!(options.trainer_args, ["--config", "c.yaml", "--lr", "0.1"]);
        assert!(parse("launch --nproc 2 --heartbeat-timeout 0 -- x").is_err());
    }
}
