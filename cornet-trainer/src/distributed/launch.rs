//! `cornet-trainer launch`: a torchrun-compatible agent. It serves the store (node 0), starts
//! one process per device with torchrun's worker contract, prefixes their output, watches
//! them, and when one fails or stops making progress ends the others and starts all again:
//! the restart count tells the ranks to resume from the run's newest checkpoint, and keeps
//! each attempt's store keys apart. Launchers of several nodes learn of each other's failures
//! through the store, so that every node restarts together.

use super::auth::Secret;
use super::env::{var, AgentFiles};
use super::error::{DistributedError::Launch, Explain, Result};
use super::error_file;
use super::store::{ServerLimits, StoreClient, StoreConfig, StoreServer};
use crate::error::StoppedBySignal;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::net::IpAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Lines of each rank's output kept for the failure summary.
const TAIL_LINES: usize = 20;

/// How long ranks asked to stop (SIGTERM) may take to checkpoint before they are killed, as
/// torchrun's grace period.
const STOP_GRACE: Duration = Duration::from_secs(30);

/// How often the launcher looks at its ranks (and, with several nodes, at the store).
const POLL: Duration = Duration::from_millis(100);

/// What `cornet-trainer launch` was asked to start.
#[derive(Debug, Clone)]
pub struct LaunchOptions {
    /// Processes (devices) on this node.
    pub nproc: usize,
    /// Nodes in the job.
    pub nnodes: usize,
    /// This node's index, 0-based.
    pub node_rank: usize,
    /// Address of node 0, where its launcher serves the store.
    pub master_addr: String,
    /// Port of the store.
    pub master_port: u16,
    /// The job's name in the store (`TORCHELASTIC_RUN_ID`); the same on every node.
    pub run_id: String,
    /// The address this node's ranks accept ring peers on (`CORNET_LOCAL_ADDR`).
    pub local_addr: Option<IpAddr>,
    /// Times to restart all ranks after one fails.
    pub max_restarts: usize,
    /// Start more ranks than this node has cores.
    pub oversubscribe: bool,
    /// A rank that has not beaten its heartbeat for this long is taken for hung.
    pub heartbeat_timeout: Duration,
    /// How long to wait for the store (node 0's launcher) at start-up.
    pub rendezvous_timeout: Duration,
    /// The job's secret (`CORNET_JOB_SECRET`), the same on every node; one is made when the
    /// job has a single node and none is given.
    pub secret: Option<Secret>,
    /// The trainer's own arguments, passed to every rank.
    pub trainer_args: Vec<String>,
}

/// A rank's heartbeat: the loop beats once per step, so a rank stuck in a collective (whose
/// peer died) stops beating and the launcher notices in `heartbeat_timeout`.
pub struct Heartbeat(Option<PathBuf>);

impl Heartbeat {
    /// The file the launcher names ([`AgentFiles`]), or no heartbeat outside the launcher.
    pub fn from_env() -> Self {
        Heartbeat(AgentFiles::from_env().heartbeat)
    }

    /// Marks this rank alive now.
    pub fn beat(&self) {
        if let Some(path) = &self.0 {
            // A missed beat only risks a needless restart; never fail training over it.
            let _ = std::fs::write(path, b"");
        }
    }
}

struct Rank {
    global_rank: usize,
    child: Child,
    heartbeat: PathBuf,
    error_file: PathBuf,
    tail: Arc<Mutex<VecDeque<String>>>,
}

enum Outcome {
    Finished,
    /// The launcher was asked to stop; the ranks were told to checkpoint and stop.
    Stopped,
    Failed(String),
    /// A rank reported an error before any rank took a step (a bad config, a missing data
    /// folder): a restart would fail the same way.
    FailedAtStart(String),
}

/// Starts this node's ranks and watches them until all finish; restarts all (they resume
/// from the newest checkpoint) when one fails or hangs, up to `max_restarts` times.
pub fn launch(options: &LaunchOptions) -> Result<()> {
    if options.nproc == 0 || options.nnodes == 0 || options.node_rank >= options.nnodes {
        return Err(Launch(
            "--nproc and --nnodes must be positive and --node-rank below --nnodes".into(),
            None,
        ));
    }
    if !options.oversubscribe {
        check_capacity(options.nproc, cores())?;
    }
    if options.heartbeat_timeout.is_zero() {
        return Err(Launch(
            "--heartbeat-timeout must be at least 1 second".into(),
            None,
        ));
    }
    let secret = job_secret(options)?;
    let _store = match options.node_rank {
        0 => Some(StoreServer::start(&StoreConfig {
            host: options.master_addr.clone(),
            port: options.master_port,
            other_hosts: options.nnodes > 1,
            secret: Some(secret.clone()),
            limits: ServerLimits::default(),
        })?),
        _ => None,
    };
    let mut agents = Agents::connect(options, &secret)?;
    let stop = stop_on_signals()?;
    let workdir =
        tempfile::tempdir().explain(Launch, || "creating the launcher's folder".into())?;
    for attempt in 0..=options.max_restarts {
        match run_attempt(
            options,
            &secret,
            attempt,
            workdir.path(),
            &mut agents,
            &stop,
        )? {
            Outcome::Finished => return Ok(()),
            Outcome::Stopped => {
                return Err(StoppedBySignal {
                    signal: stop.load(Ordering::SeqCst) as i32,
                    what: "with its ranks, after their checkpoints".into(),
                }
                .into())
            }
            Outcome::FailedAtStart(summary) => {
                return Err(Launch(
                    format!(
                        "{summary}\nnot restarting: a rank failed with an error before the first \
                         training step, and would fail the same way again"
                    ),
                    None,
                ))
            }
            Outcome::Failed(summary) if attempt < options.max_restarts => {
                eprintln!(
                    "{summary}\nrestarting all ranks from the newest checkpoint ({} of {} restarts)",
                    attempt + 1,
                    options.max_restarts
                );
            }
            Outcome::Failed(summary) => {
                return Err(Launch(
                    format!(
                        "{summary}\nno restarts left (--max-restarts {})",
                        options.max_restarts
                    ),
                    None,
                ))
            }
        }
    }
    unreachable!("the last attempt returns")
}

/// The secret of the job: the one given, or a new one for a job of one node. The launchers of
/// several nodes cannot agree on a new one without a channel that a secret would protect: the
/// user gives them one.
fn job_secret(options: &LaunchOptions) -> Result<Secret> {
    match (&options.secret, options.nnodes) {
        (Some(secret), _) => Ok(secret.clone()),
        (None, 1) => Secret::generate(),
        (None, nnodes) => Err(Launch(
            format!(
                "--nnodes {nnodes}: the launchers of the nodes must share the job's secret, \
                 which only they and their ranks know: set {secret} to the same value on every \
                 node (e.g. `export {secret}=$(openssl rand -hex 32)` in the job's script)",
                secret = var::JOB_SECRET
            ),
            None,
        )),
    }
}

/// Refuses more ranks than `cores`: each rank keeps a core busy at least (its loop, its
/// loader, its collectives), and a thousand ranks on two cores only thrash the node.
fn check_capacity(nproc: usize, cores: usize) -> Result<()> {
    if nproc > cores {
        return Err(Launch(
            format!(
                "--nproc {nproc} is more ranks than this node has cores ({cores}), and each rank \
                 needs one at least: lower --nproc, or pass --oversubscribe to start them anyway"
            ),
            None,
        ));
    }
    Ok(())
}

/// The cores this process may run on (its CPU affinity and cgroup quota, as Slurm's and
/// Kubernetes' allocations set them).
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// SIGINT or SIGTERM to the launcher: the ranks are asked to checkpoint and stop.
/// The number of the last SIGINT or SIGTERM the launcher received (0: none yet).
fn stop_on_signals() -> Result<Arc<AtomicUsize>> {
    let stop = Arc::new(AtomicUsize::new(0));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_usize(signal, stop.clone(), signal as usize)
            .explain(Launch, || "installing the signal handlers".into())?;
    }
    Ok(stop)
}

/// The launchers of the other nodes, reached through the store: each announces its node's
/// failure of an attempt, and watches for the others'.
struct Agents {
    store: Option<StoreClient>,
    run_id: String,
    node_rank: usize,
}

impl Agents {
    fn connect(options: &LaunchOptions, secret: &Secret) -> Result<Self> {
        let store = match options.nnodes {
            1 => None,
            _ => Some(StoreClient::connect(
                &options.master_addr,
                options.master_port,
                options.rendezvous_timeout,
                Some(secret),
            )?),
        };
        Ok(Agents {
            store,
            run_id: options.run_id.clone(),
            node_rank: options.node_rank,
        })
    }

    fn failure_key(&self, attempt: usize) -> String {
        format!("cornet-agents/{}/attempt_{attempt}/failed", self.run_id)
    }

    /// Tells the other nodes that this node's ranks failed in `attempt`.
    fn announce_failure(&mut self, attempt: usize, summary: &str) {
        let key = self.failure_key(attempt);
        let text = format!("node {}: {summary}", self.node_rank);
        if let Some(store) = &mut self.store {
            // Node 0's launcher may be gone already; the others then fail on their own.
            let _ = store.compare_set(&key, b"", text.as_bytes());
        }
    }

    /// Another node's failure of `attempt`, if one was announced.
    fn failure_elsewhere(&mut self, attempt: usize) -> Option<String> {
        let key = self.failure_key(attempt);
        let store = self.store.as_mut()?;
        if !store.check(&[&key]).ok()? {
            return None;
        }
        let text = store.get(&key, POLL).ok()??;
        Some(String::from_utf8_lossy(&text).into_owned())
    }
}

fn run_attempt(
    options: &LaunchOptions,
    secret: &Secret,
    attempt: usize,
    workdir: &Path,
    agents: &mut Agents,
    stop: &AtomicUsize,
) -> Result<Outcome> {
    let folder = workdir.join(format!("attempt_{attempt}"));
    std::fs::create_dir_all(&folder)
        .explain(Launch, || format!("creating {}", folder.display()))?;
    let mut ranks = (0..options.nproc)
        .map(|local_rank| start_rank(options, secret, attempt, local_rank, &folder))
        .collect::<Result<Vec<_>>>()?;
    let started = Instant::now();
    let outcome = loop {
        std::thread::sleep(POLL);
        if stop.load(Ordering::SeqCst) != 0 {
            stop_ranks(&mut ranks);
            break Outcome::Stopped;
        }
        let mut finished = 0;
        let mut failed = false;
        for rank in &mut ranks {
            match rank.child.try_wait()? {
                Some(status) if status.success() => finished += 1,
                Some(_) => failed = true,
                None => {
                    let silent = since_last_beat(&rank.heartbeat, started);
                    if silent > options.heartbeat_timeout {
                        break_hung(rank, silent, options.heartbeat_timeout);
                        failed = true;
                    }
                }
            }
        }
        if failed {
            // A rank that dies takes its peers down with it (their collectives fail) within
            // moments; wait for them so the summary names the first cause, not the echoes.
            std::thread::sleep(Duration::from_millis(300));
            let cause = describe_failures(&mut ranks)?;
            agents.announce_failure(attempt, &cause);
            if options.nnodes == 1 && failed_at_start(&mut ranks) {
                break Outcome::FailedAtStart(cause);
            }
            break Outcome::Failed(cause);
        }
        if finished == ranks.len() {
            break Outcome::Finished;
        }
        if let Some(elsewhere) = agents.failure_elsewhere(attempt) {
            break Outcome::Failed(elsewhere);
        }
    };
    if let Outcome::Failed(cause) | Outcome::FailedAtStart(cause) = &outcome {
        // The others are likely blocked in a collective with the failed rank: end them now.
        for rank in &mut ranks {
            let _ = rank.child.kill();
            let _ = rank.child.wait();
        }
        let summary = summarize(cause, &ranks);
        return Ok(match outcome {
            Outcome::FailedAtStart(_) => Outcome::FailedAtStart(summary),
            _ => Outcome::Failed(summary),
        });
    }
    Ok(outcome)
}

/// Starts local rank `local_rank` of `attempt` with torchrun's worker contract, and the job's
/// secret in its environment (never in its arguments, which every user of the host can read).
fn start_rank(
    options: &LaunchOptions,
    secret: &Secret,
    attempt: usize,
    local_rank: usize,
    folder: &Path,
) -> Result<Rank> {
    let exe = std::env::current_exe()
        .explain(Launch, || "finding the cornet-trainer executable".into())?;
    let global_rank = options.node_rank * options.nproc + local_rank;
    let world_size = options.nproc * options.nnodes;
    let heartbeat = folder.join(format!("rank_{global_rank}.beat"));
    let error_file = folder.join(format!("rank_{global_rank}.error.json"));
    let mut command = Command::new(&exe);
    command
        .args(&options.trainer_args)
        .env(var::RANK, global_rank.to_string())
        .env(var::LOCAL_RANK, local_rank.to_string())
        .env(var::WORLD_SIZE, world_size.to_string())
        .env(var::LOCAL_WORLD_SIZE, options.nproc.to_string())
        .env(var::GROUP_RANK, options.node_rank.to_string())
        .env(var::GROUP_WORLD_SIZE, options.nnodes.to_string())
        .env(var::ROLE_RANK, global_rank.to_string())
        .env(var::ROLE_WORLD_SIZE, world_size.to_string())
        .env(var::MASTER_ADDR, &options.master_addr)
        .env(var::MASTER_PORT, options.master_port.to_string())
        .env(var::RUN_ID, &options.run_id)
        .env(var::RESTART_COUNT, attempt.to_string())
        .env(var::MAX_RESTARTS, options.max_restarts.to_string())
        .env(var::USE_AGENT_STORE, "True")
        .env(var::JOB_SECRET, secret.expose())
        .env(var::AGENT_STORE_AUTH, "True")
        .env(var::ERROR_FILE, &error_file)
        .env(var::HEARTBEAT_FILE, &heartbeat)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Ctrl-C in the terminal reaches the launcher alone, which asks each rank once: a
        // second SIGINT straight from the terminal would end a rank without its checkpoint.
        .process_group(0);
    if let Some(addr) = options.local_addr {
        command.env(var::LOCAL_ADDR, addr.to_string());
    }
    // SAFETY: between fork and exec only prctl(2) runs, which is async-signal-safe.
    unsafe {
        // A rank outlives no launcher, even one killed with SIGKILL.
        command.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).map_err(std::io::Error::from)
        });
    }
    let mut child = command
        .spawn()
        .explain(Launch, || format!("starting rank {global_rank}"))?;
    let tail = Arc::new(Mutex::new(VecDeque::new()));
    forward_output(global_rank, child.stdout.take(), tail.clone(), false);
    forward_output(global_rank, child.stderr.take(), tail.clone(), true);
    Ok(Rank {
        global_rank,
        child,
        heartbeat,
        error_file,
        tail,
    })
}

/// Asks every rank to checkpoint and stop (SIGTERM), and kills those still running after
/// [`STOP_GRACE`].
fn stop_ranks(ranks: &mut [Rank]) {
    eprintln!("launch: stopping; the ranks checkpoint first");
    for rank in ranks.iter() {
        let _ = kill(Pid::from_raw(rank.child.id() as i32), Signal::SIGTERM);
    }
    let deadline = Instant::now() + STOP_GRACE;
    for rank in ranks.iter_mut() {
        while matches!(rank.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
        let _ = rank.child.kill();
        let _ = rank.child.wait();
    }
}

/// Whether no rank took a training step (none has beaten its heartbeat) and one reported an
/// error of its own (its error file), rather than dying of a signal or a crash.
fn failed_at_start(ranks: &mut [Rank]) -> bool {
    let stepped = ranks.iter().any(|rank| rank.heartbeat.exists());
    let reported = ranks.iter_mut().any(|rank| {
        matches!(rank.child.try_wait(), Ok(Some(status)) if status.code().is_some())
            && rank.error_file.exists()
    });
    !stepped && reported
}

/// Ends a rank that stopped beating, noting why in its output tail.
fn break_hung(rank: &mut Rank, silent: Duration, timeout: Duration) {
    rank.tail.lock().unwrap().push_back(format!(
        "(launcher: no progress for {silent:.0?}, over --heartbeat-timeout {timeout:?}; ended as hung)"
    ));
    let _ = rank.child.kill();
    let _ = rank.child.wait();
}

/// How a rank failed: ranks that failed alike are named together.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Failure {
    /// Exited by itself, rather than killed by a signal (the likely first cause).
    exited: bool,
    /// Its exit status, as shown.
    status: String,
    /// The error it reported, if it left one.
    message: Option<String>,
}

/// What went wrong: every rank that has failed, those killed by a signal first, each with the
/// error it reported; ranks that failed alike (every rank refusing the same config) are named
/// together, their message once.
fn describe_failures(ranks: &mut [Rank]) -> Result<String> {
    let mut failures: Vec<(Failure, Vec<String>)> = Vec::new();
    for rank in ranks.iter_mut() {
        let Some(status) = rank.child.try_wait()? else {
            continue;
        };
        if status.success() {
            continue;
        }
        let failure = Failure {
            exited: status.code().is_some(),
            status: status.to_string(),
            message: error_file::read(&rank.error_file),
        };
        let name = rank.global_rank.to_string();
        match failures.iter_mut().find(|(seen, _)| *seen == failure) {
            Some((_, alike)) => alike.push(name),
            None => failures.push((failure, vec![name])),
        }
    }
    failures.sort();
    Ok(failures
        .into_iter()
        .map(|(failure, alike)| {
            let who = match alike.len() {
                1 => format!("rank {}", alike[0]),
                _ => format!("ranks {}", alike.join(", ")),
            };
            let said = failure
                .message
                .map_or_else(String::new, |m| format!(" ({m})"));
            format!("{who} exited with {}{said}", failure.status)
        })
        .collect::<Vec<_>>()
        .join("; "))
}

/// The failure summary: its cause, then the last lines of every rank.
fn summarize(cause: &str, ranks: &[Rank]) -> String {
    let mut summary = format!("launch: {cause}; all ranks ended.");
    for rank in ranks {
        let tail = rank.tail.lock().unwrap();
        if tail.is_empty() {
            continue;
        }
        summary.push_str(&format!("\nlast lines of rank {}:", rank.global_rank));
        for line in tail.iter() {
            summary.push_str(&format!("\n  {line}"));
        }
    }
    summary
}

/// How long since a rank's last heartbeat, or since the start if it has not beaten yet.
fn since_last_beat(path: &Path, started: Instant) -> Duration {
    let since_start = started.elapsed();
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .map_or(since_start, |since_beat| since_beat.min(since_start))
}

/// Copies a rank's output to ours line by line, keeping the tail: its log (stderr) prefixed
/// with its rank, its results (stdout: `eval`'s JSON line) as they are, for whatever reads
/// them.
fn forward_output(
    rank: usize,
    stream: Option<impl Read + Send + 'static>,
    tail: Arc<Mutex<VecDeque<String>>>,
    is_stderr: bool,
) {
    let Some(stream) = stream else { return };
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(|l| l.ok()) {
            if is_stderr {
                eprintln!("[rank {rank}] {line}");
            } else {
                println!("{line}");
            }
            let mut tail = tail.lock().unwrap();
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_ranks_than_cores_are_refused_naming_the_flag_that_allows_them() {
        assert!(check_capacity(2, 2).is_ok());
        assert!(check_capacity(1, 64).is_ok());
        let err = check_capacity(1000, 2).unwrap_err().to_string();
        assert!(
            err.contains("--nproc 1000") && err.contains("(2)") && err.contains("--oversubscribe"),
            "{err}"
        );
    }
}
