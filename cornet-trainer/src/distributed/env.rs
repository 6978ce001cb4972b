//! Where a rank learns its place: torchrun's worker contract (also what our `launch` and a
//! Kubeflow PyTorchJob set), or, under `srun` with no torchrun, Slurm's task variables.
//! torchrun's variables win when both are present (torchrun inside a Slurm allocation).

use super::auth::Secret;
use super::error::{DistributedError::RankEnv as Invalid, Explain, Result};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The variables of the worker contract that our launcher sets and the ranks read, each
/// spelled here once: torchrun's, and ours for what torchrun has no word for.
pub mod var {
    /// This process among all ranks.
    pub const RANK: &str = "RANK";
    /// This process among its node's ranks.
    pub const LOCAL_RANK: &str = "LOCAL_RANK";
    /// The number of ranks.
    pub const WORLD_SIZE: &str = "WORLD_SIZE";
    /// The ranks on this node.
    pub const LOCAL_WORLD_SIZE: &str = "LOCAL_WORLD_SIZE";
    /// This node among the nodes.
    pub const GROUP_RANK: &str = "GROUP_RANK";
    /// The number of nodes.
    pub const GROUP_WORLD_SIZE: &str = "GROUP_WORLD_SIZE";
    /// This process among the ranks of its role (torchrun has one role).
    pub const ROLE_RANK: &str = "ROLE_RANK";
    /// The ranks of its role.
    pub const ROLE_WORLD_SIZE: &str = "ROLE_WORLD_SIZE";
    /// Where the store is served.
    pub const MASTER_ADDR: &str = "MASTER_ADDR";
    /// The store's port.
    pub const MASTER_PORT: &str = "MASTER_PORT";
    /// The job, in every store key.
    pub const RUN_ID: &str = "TORCHELASTIC_RUN_ID";
    /// How many times the ranks were restarted.
    pub const RESTART_COUNT: &str = "TORCHELASTIC_RESTART_COUNT";
    /// How many restarts the agent allows.
    pub const MAX_RESTARTS: &str = "TORCHELASTIC_MAX_RESTARTS";
    /// `True` when the agent serves the store.
    pub const USE_AGENT_STORE: &str = "TORCHELASTIC_USE_AGENT_STORE";
    /// Where a failing rank writes its error for the agent.
    pub const ERROR_FILE: &str = "TORCHELASTIC_ERROR_FILE";
    /// Where a rank beats its heartbeat for our launcher.
    pub const HEARTBEAT_FILE: &str = "CORNET_HEARTBEAT_FILE";
    /// The address this node's ranks listen on for their ring peers.
    pub const LOCAL_ADDR: &str = "CORNET_LOCAL_ADDR";
    /// The job's secret (see [`super::RankEnv::secret`]).
    pub const JOB_SECRET: &str = "CORNET_JOB_SECRET";
    /// Set by our `launch` for its ranks: its store asks for proof of [`JOB_SECRET`].
    pub const AGENT_STORE_AUTH: &str = "CORNET_AGENT_STORE_AUTH";
}

/// The files an agent gives a rank, read apart from [`RankEnv`], so that a rank whose other
/// variables are wrong can still say so.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentFiles {
    /// `TORCHELASTIC_ERROR_FILE`: where a failing rank writes its error for the agent.
    pub error_file: Option<PathBuf>,
    /// `CORNET_HEARTBEAT_FILE`: where the rank beats its heartbeat for our launcher.
    pub heartbeat: Option<PathBuf>,
}

impl AgentFiles {
    /// Reads the environment.
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`AgentFiles::from_env`] over any lookup of variables.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        let path = |name| get(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        AgentFiles {
            error_file: path(var::ERROR_FILE),
            heartbeat: path(var::HEARTBEAT_FILE),
        }
    }
}

/// Where this process stands among the ranks, how to reach the store, and which attempt of
/// which run this is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RankEnv {
    /// `RANK` (`SLURM_PROCID`): this process among all ranks.
    pub rank: usize,
    /// `LOCAL_RANK` (`SLURM_LOCALID`): this process among its node's ranks; 0 when unset
    /// (one process per node or pod).
    pub local_rank: usize,
    /// `WORLD_SIZE` (`SLURM_NTASKS`): the number of ranks.
    pub world_size: usize,
    /// `LOCAL_WORLD_SIZE` (Slurm's tasks on this node): ranks sharing this node; 1 when unset.
    pub local_world_size: usize,
    /// `GROUP_RANK` (`SLURM_NODEID`): this node among the nodes; 0 when unset.
    pub node_rank: usize,
    /// `MASTER_ADDR` (the first host of `SLURM_JOB_NODELIST`): where the store is served.
    pub master_addr: String,
    /// `MASTER_PORT` (derived from `SLURM_JOB_ID`; 29500 when unset).
    pub master_port: u16,
    /// `TORCHELASTIC_USE_AGENT_STORE=True`: an agent (torchrun, our `launch`) serves the store
    /// and the ranks are only its clients; otherwise rank 0 serves it.
    pub agent_store: bool,
    /// `TORCHELASTIC_RUN_ID` (`SLURM_JOB_ID`): the job, in every store key.
    pub run_id: String,
    /// `TORCHELASTIC_RESTART_COUNT` (`SLURM_RESTART_COUNT`): how many times the ranks were
    /// restarted, in every store key so that an attempt never reads an earlier one's values.
    pub restart_count: usize,
    /// `CORNET_LOCAL_ADDR`: the address this node's ranks listen on for their ring peers;
    /// when unset, the interface that reaches the store.
    pub local_addr: Option<IpAddr>,
    /// `CORNET_JOB_SECRET`: the job's secret, which the ranks of a ring prove to each other,
    /// and to the store when it asks ([`RankEnv::store_secret`]). Our `launch` makes one per
    /// job; under torchrun or Slurm the user sets it.
    pub secret: Option<Secret>,
    /// `CORNET_AGENT_STORE_AUTH=True`: the agent's store (our `launch`'s) asks for proof of the
    /// secret. torchrun's store is PyTorch's, which knows no such thing.
    pub agent_store_auth: bool,
    /// How long to wait for the other ranks at start-up (`CORNET_RENDEZVOUS_TIMEOUT`, seconds).
    pub timeout: Duration,
    /// Which contract the variables came from, for messages.
    pub launcher: Launcher,
}

/// Who started the ranks, as far as the environment tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launcher {
    /// torchrun's variables (torchrun, our `launch`, a PyTorchJob, or set by hand).
    Torchrun,
    /// Slurm's task variables (`srun` with no torchrun).
    Slurm,
}

/// The job's secret from [`var::JOB_SECRET`], if set: what `launch` hands its ranks, and proves to
/// the store of node 0.
pub fn job_secret_from_env() -> Result<Option<Secret>> {
    Vars(&|name| std::env::var(name).ok()).secret()
}

/// How long ranks wait for each other at start-up unless `CORNET_RENDEZVOUS_TIMEOUT` says
/// otherwise.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// torchrun's default `MASTER_PORT`.
const DEFAULT_PORT: u16 = 29500;

/// Under Slurm without `MASTER_PORT`, the store's port is this plus the job id modulo
/// [`SLURM_PORT_SPAN`]: the same on every node of a job, different between most jobs that
/// share a node, and below Linux's ephemeral ports (32768 and up).
const SLURM_PORT_BASE: u16 = 10000;
const SLURM_PORT_SPAN: u64 = 20000;

impl RankEnv {
    /// Reads the environment; `None` for a single process (no `WORLD_SIZE`, and not one task
    /// of several under `srun`).
    pub fn from_env() -> Result<Option<Self>> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`RankEnv::from_env`] over any lookup of variables.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Option<Self>> {
        let vars = Vars(&get);
        if get(var::WORLD_SIZE).is_some() {
            return Self::torchrun(&vars).map(Some);
        }
        if get("SLURM_NTASKS").is_some() && get("SLURM_PROCID").is_some() {
            return Self::slurm(&vars);
        }
        Ok(None)
    }

    fn torchrun(vars: &Vars) -> Result<Self> {
        let world_size = vars.number(var::WORLD_SIZE)?.unwrap_or_default();
        let rank = vars.number(var::RANK)?.explain(Invalid, || {
            format!("{} is set but {} is not", var::WORLD_SIZE, var::RANK)
        })?;
        check_rank(rank, world_size, var::RANK, var::WORLD_SIZE)?;
        Ok(RankEnv {
            rank,
            local_rank: vars.number(var::LOCAL_RANK)?.unwrap_or(0),
            world_size,
            local_world_size: vars.number(var::LOCAL_WORLD_SIZE)?.unwrap_or(1),
            node_rank: vars.number(var::GROUP_RANK)?.unwrap_or(0),
            master_addr: vars
                .text(var::MASTER_ADDR)
                .unwrap_or_else(|| "127.0.0.1".into()),
            master_port: vars.port(var::MASTER_PORT)?.unwrap_or(DEFAULT_PORT),
            agent_store: vars.flag(var::USE_AGENT_STORE),
            run_id: vars.text(var::RUN_ID).unwrap_or_else(|| "none".into()),
            restart_count: vars.number(var::RESTART_COUNT)?.unwrap_or(0),
            local_addr: vars.address(var::LOCAL_ADDR)?,
            secret: vars.secret()?,
            agent_store_auth: vars.agent_store_auth()?,
            timeout: vars.timeout()?,
            launcher: Launcher::Torchrun,
        })
    }

    fn slurm(vars: &Vars) -> Result<Option<Self>> {
        let world_size = vars.number("SLURM_NTASKS")?.unwrap_or_default();
        if world_size == 1 {
            return Ok(None);
        }
        let rank = vars.number("SLURM_PROCID")?.unwrap_or_default();
        check_rank(rank, world_size, "SLURM_PROCID", "SLURM_NTASKS")?;
        let node_rank = vars.number("SLURM_NODEID")?.unwrap_or(0);
        let job_id = vars.text("SLURM_JOB_ID").unwrap_or_else(|| "none".into());
        let master_addr = match vars.text(var::MASTER_ADDR) {
            Some(addr) => addr,
            None => first_host(vars)?,
        };
        let master_port = match vars.port(var::MASTER_PORT)? {
            Some(port) => port,
            None => slurm_port(&job_id)?,
        };
        Ok(Some(RankEnv {
            rank,
            local_rank: vars.number("SLURM_LOCALID")?.unwrap_or(0),
            world_size,
            local_world_size: tasks_on_node(vars, node_rank)?,
            node_rank,
            master_addr,
            master_port,
            agent_store: false,
            run_id: job_id,
            restart_count: vars.number("SLURM_RESTART_COUNT")?.unwrap_or(0),
            local_addr: vars.address(var::LOCAL_ADDR)?,
            secret: vars.secret()?,
            agent_store_auth: false,
            timeout: vars.timeout()?,
            launcher: Launcher::Slurm,
        }))
    }

    /// Rank `rank` of `world_size` ranks on this machine, rank 0 serving the store on
    /// `master_port` of 127.0.0.1: what a test or a benchmark starts without a launcher.
    pub fn on_this_machine(rank: usize, world_size: usize, master_port: u16) -> Self {
        RankEnv {
            rank,
            local_rank: rank,
            world_size,
            local_world_size: world_size,
            node_rank: 0,
            master_addr: "127.0.0.1".into(),
            master_port,
            agent_store: false,
            run_id: "none".into(),
            restart_count: 0,
            local_addr: None,
            secret: None,
            agent_store_auth: false,
            timeout: Duration::from_secs(10),
            launcher: Launcher::Torchrun,
        }
    }

    /// The secret to prove to the store, where it asks for one: rank 0's own store asks when
    /// the job has a secret, an agent's store only when the agent says so (torchrun's never).
    pub fn store_secret(&self) -> Option<&Secret> {
        match self.agent_store && !self.agent_store_auth {
            true => None,
            false => self.secret.as_ref(),
        }
    }

    /// Whether ranks of this job run on other hosts than this one: a store served here must
    /// then listen where they reach it.
    pub fn spans_hosts(&self) -> bool {
        self.world_size > self.local_world_size
    }

    /// The prefix of this attempt's store keys. The store of an agent outlives the ranks it
    /// restarts, so each attempt keeps to its own keys (else a restarted rank would read the
    /// previous attempt's ring addresses or NCCL id, pytorch/pytorch#135712).
    pub fn key_prefix(&self) -> String {
        format!("cornet/{}/attempt_{}/", self.run_id, self.restart_count)
    }
}

/// CPU threads for a rank's tensor work: `omp_num_threads` (`OMP_NUM_THREADS`) when set, else
/// the `cores` shared evenly by the `local_world_size` ranks of this node, so that co-located
/// ranks do not oversubscribe them.
pub fn cpu_threads(
    omp_num_threads: Option<&str>,
    local_world_size: usize,
    cores: usize,
) -> Result<usize> {
    if let Some(text) = omp_num_threads {
        return match text.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(Invalid(
                format!("OMP_NUM_THREADS={text:?} is not a positive integer"),
                None,
            )),
        };
    }
    Ok((cores / local_world_size.max(1)).max(1))
}

fn check_rank(rank: usize, world_size: usize, rank_name: &str, world_name: &str) -> Result<()> {
    if world_size == 0 || rank >= world_size {
        return Err(Invalid(
            format!("{rank_name}={rank} is not below {world_name}={world_size}"),
            None,
        ));
    }
    Ok(())
}

/// The first host of the job's compressed node list (`gpu[01-04,07]`, `a1,b[2-3]`).
fn first_host(vars: &Vars) -> Result<String> {
    let (name, list) = ["SLURM_JOB_NODELIST", "SLURM_NODELIST"]
        .iter()
        .find_map(|name| vars.text(name).map(|list| (*name, list)))
        .explain(Invalid, || {
            "under Slurm, MASTER_ADDR or SLURM_JOB_NODELIST must be set".to_string()
        })?;
    let hosts = hostlist_parser::parse(&list).map_err(|e| {
        Invalid(
            format!("{name}={list:?} is not a Slurm node list: {e}"),
            None,
        )
    })?;
    hosts
        .into_iter()
        .next()
        .explain(Invalid, || format!("{name}={list:?} names no host"))
}

fn slurm_port(job_id: &str) -> Result<u16> {
    let id: u64 = job_id.parse().explain(Invalid, || {
        format!("SLURM_JOB_ID={job_id:?} is not a number; set MASTER_PORT")
    })?;
    Ok(SLURM_PORT_BASE + (id % SLURM_PORT_SPAN) as u16)
}

/// The tasks on node `node`: `SLURM_NTASKS_PER_NODE` when the job set it, else this node's
/// entry in `SLURM_TASKS_PER_NODE` (`2(x3),1`: two tasks on each of three nodes, then one).
fn tasks_on_node(vars: &Vars, node: usize) -> Result<usize> {
    if let Some(n) = vars.number("SLURM_NTASKS_PER_NODE")? {
        return Ok(n.max(1));
    }
    let Some(list) = vars.text("SLURM_TASKS_PER_NODE") else {
        return Ok(1);
    };
    let malformed = || Invalid(format!("SLURM_TASKS_PER_NODE={list:?} is malformed"), None);
    let mut seen = 0;
    for entry in list.split(',') {
        let (tasks, nodes) = match entry.split_once("(x") {
            Some((tasks, rest)) => (tasks, rest.strip_suffix(')').ok_or_else(malformed)?),
            None => (entry, "1"),
        };
        let tasks: usize = tasks.parse().map_err(|_| malformed())?;
        seen += nodes.parse::<usize>().map_err(|_| malformed())?;
        if node < seen {
            return Ok(tasks.max(1));
        }
    }
    Err(Invalid(
        format!("SLURM_TASKS_PER_NODE={list:?} has no entry for SLURM_NODEID={node}"),
        None,
    ))
}

/// Typed reads of the environment, each error naming the variable.
struct Vars<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Vars<'_> {
    fn text(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|v| !v.is_empty())
    }

    fn number(&self, name: &str) -> Result<Option<usize>> {
        self.text(name)
            .map(|v| {
                v.trim().parse().explain(Invalid, || {
                    format!("{name}={v:?} is not a non-negative integer")
                })
            })
            .transpose()
    }

    fn port(&self, name: &str) -> Result<Option<u16>> {
        self.text(name)
            .map(|v| {
                v.trim()
                    .parse()
                    .explain(Invalid, || format!("{name}={v:?} is not a port number"))
            })
            .transpose()
    }

    fn address(&self, name: &str) -> Result<Option<IpAddr>> {
        self.text(name)
            .map(|v| {
                v.parse()
                    .explain(Invalid, || format!("{name}={v:?} is not an IP address"))
            })
            .transpose()
    }

    fn secret(&self) -> Result<Option<Secret>> {
        self.text(var::JOB_SECRET)
            .map(|text| Secret::from_user(var::JOB_SECRET, text))
            .transpose()
    }

    /// [`var::AGENT_STORE_AUTH`], which needs the secret it asks for.
    fn agent_store_auth(&self) -> Result<bool> {
        let asks = self.flag(var::AGENT_STORE_AUTH);
        if asks && self.text(var::JOB_SECRET).is_none() {
            return Err(Invalid(
                format!(
                    "{} is set but {} is not",
                    var::AGENT_STORE_AUTH,
                    var::JOB_SECRET
                ),
                None,
            ));
        }
        Ok(asks)
    }

    /// PyTorch sets its flags as Python's `str(True)`.
    fn flag(&self, name: &str) -> bool {
        self.text(name)
            .is_some_and(|v| matches!(v.as_str(), "True" | "true" | "1"))
    }

    fn timeout(&self) -> Result<Duration> {
        Ok(self
            .number("CORNET_RENDEZVOUS_TIMEOUT")?
            .map_or(DEFAULT_TIMEOUT, |s| Duration::from_secs(s as u64)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(vars: &[(&str, &str)]) -> Result<Option<RankEnv>> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        RankEnv::from_lookup(|name| map.get(name).cloned())
    }

    /// Rank, local rank, world size, local world size and node.
    fn place(env: &RankEnv) -> (usize, usize, usize, usize, usize) {
        let e = env;
        (
            e.rank,
            e.local_rank,
            e.world_size,
            e.local_world_size,
            e.node_rank,
        )
    }

    fn err(vars: &[(&str, &str)]) -> String {
        parse(vars).unwrap_err().to_string()
    }

    #[test]
    fn reads_torchruns_worker_contract() {
        assert_eq!(parse(&[]).unwrap(), None);
        let env = parse(&[
            ("WORLD_SIZE", "8"),
            ("RANK", "5"),
            ("LOCAL_RANK", "1"),
            ("LOCAL_WORLD_SIZE", "4"),
            ("GROUP_RANK", "1"),
            ("MASTER_ADDR", "node0"),
            ("MASTER_PORT", "1234"),
            ("TORCHELASTIC_USE_AGENT_STORE", "True"),
            ("TORCHELASTIC_RUN_ID", "job7"),
            ("TORCHELASTIC_RESTART_COUNT", "2"),
            ("TORCHELASTIC_ERROR_FILE", "/tmp/err.json"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(place(&env), (5, 1, 8, 4, 1));
        assert_eq!((env.master_addr.as_str(), env.master_port), ("node0", 1234));
        assert!(env.agent_store);
        assert_eq!(env.key_prefix(), "cornet/job7/attempt_2/");
        let files = AgentFiles::from_lookup(|name| {
            (name == "TORCHELASTIC_ERROR_FILE").then(|| "/tmp/err.json".to_string())
        });
        assert_eq!(files.error_file, Some(PathBuf::from("/tmp/err.json")));
        assert_eq!(files.heartbeat, None);
        assert_eq!(env.launcher, Launcher::Torchrun);
    }

    #[test]
    fn a_pytorchjob_pod_sets_only_four_variables() {
        let env = parse(&[
            ("WORLD_SIZE", "3"),
            ("RANK", "2"),
            ("MASTER_ADDR", "job-master-0"),
            ("MASTER_PORT", "23456"),
        ])
        .unwrap()
        .unwrap();
        // One process per pod: the pod's only device, its only rank, rank 0 serves the store.
        assert_eq!(
            (env.local_rank, env.local_world_size, env.node_rank),
            (0, 1, 0)
        );
        assert!(!env.agent_store);
        assert_eq!(env.key_prefix(), "cornet/none/attempt_0/");
    }

    #[test]
    fn reads_slurms_task_variables_under_srun() {
        let slurm = [
            ("SLURM_NTASKS", "8"),
            ("SLURM_PROCID", "6"),
            ("SLURM_LOCALID", "2"),
            ("SLURM_NODEID", "1"),
            ("SLURM_JOB_ID", "123456"),
            ("SLURM_JOB_NODELIST", "gpu[01-04,07]"),
            ("SLURM_TASKS_PER_NODE", "4(x2)"),
        ];
        let env = parse(&slurm).unwrap().unwrap();
        assert_eq!(place(&env), (6, 2, 8, 4, 1));
        assert_eq!(env.master_addr, "gpu01");
        assert_eq!(env.master_port, 10000 + (123456 % 20000) as u16);
        assert!(!env.agent_store);
        assert_eq!(env.key_prefix(), "cornet/123456/attempt_0/");
        assert_eq!(env.launcher, Launcher::Slurm);

        // Set variables win over derived ones; a requeued job counts as a restart.
        let mut more = slurm.to_vec();
        more.extend([
            ("MASTER_ADDR", "10.0.0.9"),
            ("MASTER_PORT", "4242"),
            ("SLURM_RESTART_COUNT", "1"),
        ]);
        let env = parse(&more).unwrap().unwrap();
        assert_eq!(
            (env.master_addr.as_str(), env.master_port),
            ("10.0.0.9", 4242)
        );
        assert_eq!(env.restart_count, 1);

        // torchrun inside the allocation: its variables win.
        let mut both = slurm.to_vec();
        both.extend([("WORLD_SIZE", "2"), ("RANK", "1"), ("LOCAL_RANK", "1")]);
        let env = parse(&both).unwrap().unwrap();
        assert_eq!(
            (env.rank, env.world_size, env.launcher),
            (1, 2, Launcher::Torchrun)
        );

        // One task is a single process.
        assert_eq!(
            parse(&[("SLURM_NTASKS", "1"), ("SLURM_PROCID", "0")]).unwrap(),
            None
        );
    }

    #[test]
    fn the_master_is_the_first_host_of_the_compressed_node_list() {
        let cases = [
            ("gpu[01-04,07]", "gpu01"),
            ("a1,b[2-3]", "a1"),
            ("node-[009-012]", "node-009"),
            ("c[1-2]-ib,d", "c1-ib"),
            ("single", "single"),
        ];
        for (list, first) in cases {
            let env = parse(&[
                ("SLURM_NTASKS", "2"),
                ("SLURM_PROCID", "0"),
                ("SLURM_JOB_ID", "1"),
                ("SLURM_JOB_NODELIST", list),
            ])
            .unwrap()
            .unwrap();
            assert_eq!(env.master_addr, first, "{list}");
        }
    }

    #[test]
    fn tasks_per_node_follow_slurms_repeat_notation() {
        let cases = [
            ("4", 0, 4),
            ("2(x3),1", 0, 2),
            ("2(x3),1", 2, 2),
            ("2(x3),1", 3, 1),
            ("3,1(x2)", 2, 1),
        ];
        for (list, node, tasks) in cases {
            let node_id = node.to_string();
            let env = parse(&[
                ("SLURM_NTASKS", "9"),
                ("SLURM_PROCID", "0"),
                ("SLURM_NODEID", &node_id),
                ("SLURM_JOB_ID", "1"),
                ("SLURM_JOB_NODELIST", "n[1-4]"),
                ("SLURM_TASKS_PER_NODE", list),
            ])
            .unwrap()
            .unwrap();
            assert_eq!(env.local_world_size, tasks, "{list} node {node}");
        }
    }

    #[test]
    fn inconsistent_variables_are_named() {
        assert_eq!(
            err(&[("WORLD_SIZE", "2")]),
            "WORLD_SIZE is set but RANK is not"
        );
        assert_eq!(
            err(&[("WORLD_SIZE", "2"), ("RANK", "2")]),
            "RANK=2 is not below WORLD_SIZE=2"
        );
        assert!(err(&[("WORLD_SIZE", "two"), ("RANK", "0")]).starts_with("WORLD_SIZE=\"two\""));
        assert!(
            err(&[("WORLD_SIZE", "1"), ("RANK", "0"), ("MASTER_PORT", "99999")])
                .starts_with("MASTER_PORT")
        );
        assert_eq!(
            err(&[("SLURM_NTASKS", "2"), ("SLURM_PROCID", "2")]),
            "SLURM_PROCID=2 is not below SLURM_NTASKS=2"
        );
        assert_eq!(
            err(&[("SLURM_NTASKS", "2"), ("SLURM_PROCID", "0")]),
            "under Slurm, MASTER_ADDR or SLURM_JOB_NODELIST must be set"
        );
        let slurm = [
            ("SLURM_NTASKS", "2"),
            ("SLURM_PROCID", "0"),
            ("SLURM_JOB_NODELIST", "n1"),
        ];
        let mut bad_list = slurm.to_vec();
        bad_list.push(("SLURM_JOB_ID", "7"));
        bad_list.push(("SLURM_TASKS_PER_NODE", "2(x"));
        assert!(err(&bad_list).starts_with("SLURM_TASKS_PER_NODE=\"2(x\" is malformed"));
        let mut no_job = slurm.to_vec();
        no_job.push(("SLURM_JOB_ID", "abc"));
        assert!(err(&no_job).contains("set MASTER_PORT"));
        assert!(err(&[
            ("WORLD_SIZE", "1"),
            ("RANK", "0"),
            ("CORNET_LOCAL_ADDR", "node3")
        ])
        .starts_with("CORNET_LOCAL_ADDR=\"node3\" is not an IP address"));
    }

    #[test]
    fn the_secret_is_proved_to_our_stores_and_never_to_torchruns() {
        let secret = ("CORNET_JOB_SECRET", "0123456789abcdef0123");
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut vars = vec![("WORLD_SIZE", "2"), ("RANK", "1")];
            vars.extend_from_slice(extra);
            parse(&vars).unwrap().unwrap()
        };
        let agent = ("TORCHELASTIC_USE_AGENT_STORE", "True");

        // torchrun's store is PyTorch's: the secret is for the ring alone.
        let torchrun = with(&[agent, secret]);
        assert_eq!(torchrun.secret.as_ref().unwrap().expose(), secret.1);
        assert_eq!(torchrun.store_secret(), None);
        // Our launch says that its store asks.
        let launch = with(&[agent, secret, ("CORNET_AGENT_STORE_AUTH", "True")]);
        assert_eq!(launch.store_secret(), launch.secret.as_ref());
        // Rank 0's own store asks whenever the job has a secret.
        let own = with(&[secret]);
        assert_eq!(own.store_secret(), own.secret.as_ref());
        assert_eq!(with(&[]).store_secret(), None);
        let slurm = parse(&[
            ("SLURM_NTASKS", "2"),
            ("SLURM_PROCID", "0"),
            ("SLURM_JOB_ID", "7"),
            ("SLURM_JOB_NODELIST", "n1"),
            secret,
        ])
        .unwrap()
        .unwrap();
        assert_eq!(slurm.store_secret(), slurm.secret.as_ref());

        assert_eq!(
            err(&[
                ("WORLD_SIZE", "2"),
                ("RANK", "1"),
                ("CORNET_AGENT_STORE_AUTH", "True")
            ]),
            "CORNET_AGENT_STORE_AUTH is set but CORNET_JOB_SECRET is not"
        );
        let short = err(&[
            ("WORLD_SIZE", "2"),
            ("RANK", "1"),
            ("CORNET_JOB_SECRET", "x"),
        ]);
        assert!(
            short.starts_with("CORNET_JOB_SECRET is too short"),
            "{short}"
        );
    }

    #[test]
    fn threads_follow_omp_num_threads_else_share_the_cores() {
        assert_eq!(cpu_threads(None, 2, 16).unwrap(), 8);
        assert_eq!(cpu_threads(None, 1, 16).unwrap(), 16);
        assert_eq!(cpu_threads(None, 2, 1).unwrap(), 1);
        assert_eq!(cpu_threads(Some("3"), 2, 16).unwrap(), 3);
        let err = cpu_threads(Some("0"), 2, 16).unwrap_err().to_string();
        assert_eq!(err, "OMP_NUM_THREADS=\"0\" is not a positive integer");
    }
}
