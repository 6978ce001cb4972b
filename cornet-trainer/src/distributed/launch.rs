//! `cornet-trainer launch`: torchrun's job. Starts one process per device with the rank
//! environment, prefixes their output, watches them, and when one dies or stops making
//! progress ends the others and starts all again from the newest checkpoint.

use super::error::{DistributedError::Launch, Explain, Result};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// The variable through which a rank learns where to beat its heartbeat.
pub const HEARTBEAT_ENV: &str = "CORNET_HEARTBEAT_FILE";

/// Lines of each rank's output kept for the failure summary.
const TAIL_LINES: usize = 20;

/// What `cornet-trainer launch` was asked to start.
#[derive(Debug, Clone)]
pub struct LaunchOptions {
    /// Processes (devices) on this node.
    pub nproc: usize,
    /// Nodes in the job.
    pub nnodes: usize,
    /// This node's index, 0-based.
    pub node_rank: usize,
    /// Address of node 0, where rank 0 serves the rendezvous store.
    pub master_addr: String,
    /// Port of the rendezvous store.
    pub master_port: u16,
    /// Times to restart all ranks (with `--resume auto`) after one fails.
    pub max_restarts: usize,
    /// A rank that has not beaten its heartbeat for this long is taken for hung.
    pub heartbeat_timeout: Duration,
    /// The trainer's own arguments, passed to every rank.
    pub trainer_args: Vec<String>,
}

/// A rank's heartbeat: the loop beats once per step, so a rank stuck in a collective (whose
/// peer died) stops beating and the launcher notices in `heartbeat_timeout`.
pub struct Heartbeat(Option<PathBuf>);

impl Heartbeat {
    /// The file [`HEARTBEAT_ENV`] names, or no heartbeat outside the launcher.
    pub fn from_env() -> Self {
        Heartbeat(std::env::var_os(HEARTBEAT_ENV).map(PathBuf::from))
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
    tail: Arc<Mutex<VecDeque<String>>>,
}

enum Outcome {
    Finished,
    Failed(String),
}

/// Starts the ranks of this node and watches them until all finish; restarts all (resuming
/// from the newest checkpoint) when one fails or hangs, up to `max_restarts` times.
pub fn launch(options: &LaunchOptions) -> Result<()> {
    if options.nproc == 0 || options.nnodes == 0 || options.node_rank >= options.nnodes {
        return Err(Launch(
            "--nproc and --nnodes must be positive and --node-rank below --nnodes".into(),
            None,
        ));
    }
    let mut args = options.trainer_args.clone();
    for attempt in 0..=options.max_restarts {
        match run_once(options, &args)? {
            Outcome::Finished => return Ok(()),
            Outcome::Failed(summary) if attempt < options.max_restarts => {
                eprintln!("{summary}\nrestarting all ranks from the newest checkpoint ({} of {} restarts)", attempt + 1, options.max_restarts);
                if !args.iter().any(|a| a == "--resume") {
                    args.extend(["--resume".to_string(), "auto".to_string()]);
                }
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

fn run_once(options: &LaunchOptions, args: &[String]) -> Result<Outcome> {
    let exe = std::env::current_exe()
        .explain(Launch, || "finding the cornet-trainer executable".into())?;
    let beats = tempfile::tempdir().explain(Launch, || "creating the heartbeat folder".into())?;
    let world_size = options.nproc * options.nnodes;
    let mut ranks = Vec::with_capacity(options.nproc);
    for local_rank in 0..options.nproc {
        let global_rank = options.node_rank * options.nproc + local_rank;
        let heartbeat = beats.path().join(format!("rank{global_rank}"));
        let mut child = Command::new(&exe)
            .args(args)
            .env("RANK", global_rank.to_string())
            .env("LOCAL_RANK", local_rank.to_string())
            .env("WORLD_SIZE", world_size.to_string())
            .env("MASTER_ADDR", &options.master_addr)
            .env("MASTER_PORT", options.master_port.to_string())
            .env("CUDA_VISIBLE_DEVICES", local_rank.to_string())
            .env(HEARTBEAT_ENV, &heartbeat)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .explain(Launch, || format!("starting rank {global_rank}"))?;
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        forward_output(global_rank, child.stdout.take(), tail.clone(), false);
        forward_output(global_rank, child.stderr.take(), tail.clone(), true);
        ranks.push(Rank {
            global_rank,
            child,
            heartbeat,
            tail,
        });
    }
    let started = Instant::now();
    let outcome = loop {
        std::thread::sleep(Duration::from_millis(100));
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
            break Outcome::Failed(describe_failures(&mut ranks)?);
        }
        if finished == ranks.len() {
            break Outcome::Finished;
        }
    };
    if let Outcome::Failed(cause) = outcome {
        // The others are likely blocked in a collective with the failed rank: end them now.
        for rank in &mut ranks {
            let _ = rank.child.kill();
            let _ = rank.child.wait();
        }
        let mut summary = format!("launch: {cause}; all ranks ended.");
        for rank in &ranks {
            let tail = rank.tail.lock().unwrap();
            summary.push_str(&format!("\nlast lines of rank {}:", rank.global_rank));
            for line in tail.iter() {
                summary.push_str(&format!("\n  {line}"));
            }
        }
        return Ok(Outcome::Failed(summary));
    }
    Ok(outcome)
}

/// Ends a rank that stopped beating, noting why in its output tail.
fn break_hung(rank: &mut Rank, silent: Duration, timeout: Duration) {
    rank.tail.lock().unwrap().push_back(format!(
        "(launcher: no progress for {silent:.0?}, over --heartbeat-timeout {timeout:?}; ended as hung)"
    ));
    let _ = rank.child.kill();
    let _ = rank.child.wait();
}

/// What went wrong: every rank that has failed, those killed by a signal (the likely first
/// cause) first.
fn describe_failures(ranks: &mut [Rank]) -> Result<String> {
    let mut failures = Vec::new();
    for rank in ranks.iter_mut() {
        if let Some(status) = rank.child.try_wait()? {
            if !status.success() {
                let by_signal = status.code().is_none();
                failures.push((
                    !by_signal,
                    format!("rank {} exited with {status}", rank.global_rank),
                ));
            }
        }
    }
    failures.sort();
    Ok(failures
        .into_iter()
        .map(|(_, text)| text)
        .collect::<Vec<_>>()
        .join("; "))
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

/// Copies a rank's output to ours line by line, prefixed with its rank, keeping the tail.
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
                println!("[rank {rank}] {line}");
            }
            let mut tail = tail.lock().unwrap();
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line);
        }
    });
}
