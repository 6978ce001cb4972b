//! `cornet-trainer launch` with two CPU ranks over TCP: a killed or hung rank brings the other
//! down within seconds, both restart from the newest checkpoint, and the run ends with the
//! weights of an uninterrupted one.

use crate::util::{
    final_weights, free_port, run, start, stderr_of_failure, wait_for_success,
    wait_for_train_steps, write_config,
};
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Two ranks, 8 epochs of 6 steps, checkpointed every 2 steps.
const CONFIG: &str = "\
model: {arch: Z, num_classes: 4, widths: [16, 32, 48, 64]}
data:
  train: $DATA/train
  workers: 1
  image_size: 64
  synthetic: {classes: 4, train_per_class: 24, val_per_class: 4, size: 72}
optim: {lr: 0.02, step_size: 2}
train: {epochs: 8, batch_size: 8, seed: 3}
dist: {ngpus: 2, backend: tcp}
output: {path: $OUT, save_val_epochs: 0, save_model_steps: 2, save_model_secs: 0, keep: 2}
";

/// `cornet-trainer launch` of two ranks of the run `run` in `dir`.
fn launch(dir: &Path, run: &str, heartbeat_timeout_secs: u64) -> Child {
    let config = write_config(dir, run, CONFIG);
    let (timeout, port) = (heartbeat_timeout_secs.to_string(), free_port().to_string());
    start(&[
        "launch",
        "--nproc",
        "2",
        "--max-restarts",
        "2",
        "--heartbeat-timeout",
        &timeout,
        "--master-port",
        &port,
        "--",
        "--config",
        config.to_str().unwrap(),
    ])
}

fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| !stat.contains(") Z "))
}

/// Runs the job uninterrupted, then again sending signal `interrupt` to rank 1 once 12 steps
/// are recorded; checks that the launcher restarts it to the uninterrupted run's final weights.
/// Returns how many seconds rank 0 lived on after the signal, and the launcher's stderr.
fn interrupted_run(dir: &Path, heartbeat_timeout_secs: u64, interrupt: &str) -> (u64, String) {
    wait_for_success(launch(dir, "reference", heartbeat_timeout_secs));

    let run = dir.join("interrupted");
    let mut launcher = launch(dir, "interrupted", heartbeat_timeout_secs);
    wait_for_train_steps(&run, 12, &mut launcher);
    let ranks = children(launcher.id());
    assert_eq!(ranks.len(), 2, "two ranks running");
    Command::new("kill")
        .args([interrupt, &ranks[1].to_string()])
        .status()
        .unwrap();
    let interrupted_at = Instant::now();
    while alive(ranks[0]) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let survivor_ended_after = interrupted_at.elapsed();

    let stderr = wait_for_success(launcher);
    assert!(
        stderr.contains("restarting all ranks from the newest checkpoint"),
        "{stderr}"
    );
    assert!(
        final_weights(&run) == final_weights(&dir.join("reference")),
        "weights differ"
    );
    (survivor_ended_after.as_secs(), stderr)
}

#[test]
fn a_killed_rank_restarts_the_job_from_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (survivor_secs, stderr) = interrupted_run(dir.path(), 60, "-KILL");
    assert!(
        survivor_secs < 10,
        "the surviving rank ran {survivor_secs} s after its peer was killed"
    );
    assert!(stderr.contains("rank 1 exited with signal: 9"), "{stderr}");
}

/// A stopped rank neither exits nor beats: its peer blocks in the next all-reduce, and only the
/// heartbeat shows that the job is stuck.
#[test]
fn a_hung_rank_is_caught_by_its_heartbeat_and_the_job_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let timeout = 5;
    let (survivor_secs, stderr) = interrupted_run(dir.path(), timeout, "-STOP");
    assert!(
        survivor_secs < timeout + 10,
        "the job stayed stuck {survivor_secs} s with a --heartbeat-timeout of {timeout} s"
    );
    assert!(stderr.contains("ended as hung"), "{stderr}");
}

#[test]
fn a_rank_that_cannot_start_ends_the_job_with_its_last_lines() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("missing.yaml");
    let output = run(&[
        "launch",
        "--nproc",
        "2",
        "--max-restarts",
        "0",
        "--master-port",
        &free_port().to_string(),
        "--",
        "--config",
        config.to_str().unwrap(),
    ]);
    let stderr = stderr_of_failure(&output);
    assert!(
        stderr.contains("exited with exit status: 1") && stderr.contains("missing.yaml"),
        "{stderr}"
    );
    assert!(stderr.contains("no restarts left"), "{stderr}");
}
