//! `cornet-trainer launch`: one training process per device, torchrun's way.

use clap::Args;
use cornet_trainer::distributed::launch::LaunchOptions;
use std::time::Duration;

/// `launch`: this node's ranks, the job's nodes, and how to watch and restart them.
#[derive(Debug, Args)]
pub struct LaunchArgs {
    /// Processes (devices) on this node (torchrun's --nproc-per-node).
    #[arg(long, visible_alias = "nproc-per-node")]
    pub nproc: usize,

    /// Nodes in the job; start one launcher per node, each with its --node-rank.
    #[arg(long, default_value_t = 1)]
    pub nnodes: usize,

    /// This node's index, 0-based. Node 0's launcher serves the store.
    #[arg(long, default_value_t = 0)]
    pub node_rank: usize,

    /// Address of node 0, where its launcher serves the store (a PyTorch TCPStore).
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
    /// The launch these flags ask for.
    pub fn options(self) -> LaunchOptions {
        LaunchOptions {
            nproc: self.nproc,
            nnodes: self.nnodes,
            node_rank: self.node_rank,
            master_addr: self.master_addr,
            master_port: self.master_port,
            run_id: self.run_id,
            local_addr: self.local_addr,
            max_restarts: self.max_restarts,
            heartbeat_timeout: Duration::from_secs(self.heartbeat_timeout),
            rendezvous_timeout: Duration::from_secs(self.rendezvous_timeout),
            trainer_args: self.trainer_args,
        }
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
             --heartbeat-timeout 60 --rendezvous-timeout 90 -- --config c.yaml --lr 0.1"
        )
        .unwrap();
        let options = args.options();
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
        assert_eq!(options.heartbeat_timeout, Duration::from_secs(60));
        assert_eq!(options.rendezvous_timeout, Duration::from_secs(90));
        assert_eq!(options.trainer_args, ["--config", "c.yaml", "--lr", "0.1"]);
        assert!(parse("launch --nproc 2 --heartbeat-timeout 0 -- x").is_err());
    }
}
