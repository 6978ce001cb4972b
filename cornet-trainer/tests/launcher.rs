//! `cornet-trainer launch` with two CPU ranks over TCP: a killed or hung rank brings the other
//! down within seconds, both restart from the newest checkpoint, and the run ends with the
//! weights of an uninterrupted one.

use candle_core::Device;
use cornet_model::testing::tensor_bytes;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn write_config(dir: &Path, run: &str) -> std::path::PathBuf {
    let text = format!(
        "model: {{arch: Z, num_classes: 4, widths: [16, 32, 48, 64]}}
data:
  train: {data}/train
  workers: 1
  image_size: 64
  synthetic: {{classes: 4, train_per_class: 24, val_per_class: 4, size: 72}}
optim: {{lr: 0.02, step_size: 2}}
train: {{epochs: 8, batch_size: 8, seed: 3}}
dist: {{ngpus: 2, backend: tcp}}
output: {{path: {out}, save_val_epochs: 0, save_model_steps: 2, save_model_secs: 0, keep: 2}}
",
        data = dir.join("data").display(),
        out = dir.join(run).display()
    );
    let path = dir.join(format!("{run}.yaml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn launch(config: &Path, heartbeat_timeout_secs: u64) -> Child {
    Command::new(env!("CARGO_BIN_EXE_cornet-trainer"))
        .args(["launch", "--nproc", "2", "--max-restarts", "2"])
        .args(["--heartbeat-timeout", &heartbeat_timeout_secs.to_string()])
        .args(["--master-port", &free_port().to_string(), "--", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
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

fn final_weights(run: &Path) -> Vec<(String, Vec<u8>)> {
    let mut tensors: Vec<_> =
        candle_core::safetensors::load(run.join("final.safetensors"), &Device::Cpu)
            .unwrap()
            .into_iter()
            .map(|(name, t)| (name, tensor_bytes(&t)))
            .collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    tensors
}

fn steps_recorded(run: &Path) -> usize {
    std::fs::read_to_string(run.join("records.jsonl"))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

/// Runs the job uninterrupted, then again sending signal `interrupt` to rank 1 once 12 steps
/// are recorded; checks that the launcher restarts it to the uninterrupted run's final weights.
/// Returns how many seconds rank 0 lived on after the signal, and the launcher's stderr.
fn interrupted_run(dir: &Path, heartbeat_timeout_secs: u64, interrupt: &str) -> (u64, String) {
    let reference = launch(&write_config(dir, "reference"), heartbeat_timeout_secs)
        .wait_with_output()
        .unwrap();
    assert!(
        reference.status.success(),
        "{}",
        String::from_utf8_lossy(&reference.stderr)
    );

    let run = dir.join("interrupted");
    let launcher = launch(&write_config(dir, "interrupted"), heartbeat_timeout_secs);
    let deadline = Instant::now() + Duration::from_secs(60);
    while steps_recorded(&run) < 12 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
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

    let output = launcher.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
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
    let output = Command::new(env!("CARGO_BIN_EXE_cornet-trainer"))
        .args([
            "launch",
            "--nproc",
            "2",
            "--max-restarts",
            "0",
            "--master-port",
            &free_port().to_string(),
        ])
        .args(["--", "--config"])
        .arg(dir.path().join("missing.yaml"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("exited with exit status: 1") && stderr.contains("missing.yaml"),
        "{stderr}"
    );
    assert!(stderr.contains("no restarts left"), "{stderr}");
}
