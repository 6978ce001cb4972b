//! Two CPU ranks over TCP, started by `cornet-trainer launch` (a killed or hung rank brings the
//! other down within seconds, both restart from the newest checkpoint, and the run ends with
//! the weights of an uninterrupted one), by Slurm's variables alone, or as two nodes on two
//! loopback addresses: every way ends with the weights of `launch --nproc 2`.

use crate::util::{
    children, final_weights, free_port, launch_node_of_two, recorded_steps, run, start_with_env,
    stderr_of_failure, wait_for_success, wait_for_train_steps, write_config,
};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// One thread per rank in every run here, whatever the machine and however the ranks are
/// placed: sums split over other thread counts round differently, and the runs are compared
/// bit for bit.
const ONE_THREAD: (&str, &str) = ("OMP_NUM_THREADS", "1");

/// Two ranks, 8 epochs of 12 steps, checkpointed every 2 steps (shared with
/// scripts/check_torchrun.sh).
const CONFIG: &str = include_str!("configs/two_ranks.yaml");

/// `cornet-trainer launch` of two ranks of the run `run` in `dir`, the trainer given `extra`.
fn launch(dir: &Path, run: &str, heartbeat_timeout_secs: u64, extra: &[&str]) -> Child {
    let config = write_config(dir, run, CONFIG);
    let (timeout, port) = (heartbeat_timeout_secs.to_string(), free_port().to_string());
    let mut args = vec![
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
    ];
    args.extend(extra);
    start_with_env(&args, &[ONE_THREAD])
}

/// The final weights of the run uninterrupted under `launch --nproc 2`, trained once for all
/// the tests here.
fn reference() -> &'static BTreeMap<String, Vec<u8>> {
    static REFERENCE: OnceLock<BTreeMap<String, Vec<u8>>> = OnceLock::new();
    REFERENCE.get_or_init(|| {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        wait_for_success(launch(dir.path(), "reference", 60, &[]));
        final_weights(&dir.path().join("reference"))
    })
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| !stat.contains(") Z "))
}

/// Runs the job uninterrupted, then again sending signal `interrupt` to rank 1 once 12 steps
/// are recorded; checks that the launcher restarts it to the uninterrupted run's final weights.
/// Returns how many seconds rank 0 lived on after the signal, and the launcher's stderr.
fn interrupted_run(dir: &Path, heartbeat_timeout_secs: u64, interrupt: &str) -> (u64, String) {
    let run = dir.join("interrupted");
    let mut launcher = launch(dir, "interrupted", heartbeat_timeout_secs, &[]);
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
    assert!(final_weights(&run) == *reference(), "weights differ");
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

/// SIGTERM to a rank alone, not to its launcher: it and its peer checkpoint, stop and exit 143
/// (not 0: the run did not finish), so the launcher restarts the job, which ends as an
/// uninterrupted run. It used to take them for finished and return 0 with no final weights.
#[test]
fn a_rank_stopped_by_sigterm_is_restarted_not_taken_for_finished() {
    let dir = tempfile::tempdir().unwrap();
    let (_, stderr) = interrupted_run(dir.path(), 60, "-TERM");
    assert!(stderr.contains("exited with exit status: 143"), "{stderr}");
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

/// SIGTERM to the launcher (a cluster's stop) reaches the ranks, which checkpoint and stop
/// well within torchrun's 30 s grace; the run then continues to an uninterrupted run's weights.
#[test]
fn a_stopped_launcher_has_its_ranks_checkpoint_and_the_run_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("stopped");
    let mut launcher = launch(dir.path(), "stopped", 60, &[]);
    wait_for_train_steps(&run, 12, &mut launcher);
    let ranks = children(launcher.id());
    Command::new("kill")
        .args(["-TERM", &launcher.id().to_string()])
        .status()
        .unwrap();
    let stopped_at = Instant::now();
    let output = launcher.wait_with_output().unwrap();
    let stderr = stderr_of_failure(&output);
    assert!(
        stopped_at.elapsed() < Duration::from_secs(15),
        "took {:?} to stop",
        stopped_at.elapsed()
    );
    assert!(
        stderr.contains("stopped by SIGTERM with its ranks"),
        "{stderr}"
    );
    // As a process SIGTERM had ended: the run did not finish.
    assert_eq!(output.status.code(), Some(143), "{stderr}");
    assert!(
        ranks.iter().all(|&pid| !alive(pid)),
        "a rank outlived its launcher"
    );
    wait_for_success(launch(dir.path(), "stopped", 60, &["--resume", "auto"]));
    assert!(final_weights(&run) == *reference(), "weights differ");
}

/// A launcher killed outright (SIGKILL: nothing of it runs) takes its ranks with it: they get
/// the parent-death signal and stop, where they used to train on, orphaned.
#[test]
fn ranks_die_with_a_killed_launcher() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("orphans");
    let mut launcher = launch(dir.path(), "orphans", 60, &[]);
    wait_for_train_steps(&run, 4, &mut launcher);
    let ranks = children(launcher.id());
    assert_eq!(ranks.len(), 2, "two ranks running");
    launcher.kill().unwrap();
    launcher.wait().unwrap();
    let killed_at = Instant::now();
    while ranks.iter().any(|&pid| alive(pid)) {
        assert!(
            killed_at.elapsed() < Duration::from_secs(15),
            "ranks still alive 15 s after their launcher was killed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A rank that fails with an error before the first step (here a config that does not exist)
/// ends the job with its message at once: restarting would fail the same way.
#[test]
fn a_rank_that_cannot_start_ends_the_job_with_its_last_lines() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("missing.yaml");
    let output = run(&[
        "launch",
        "--nproc",
        "2",
        "--max-restarts",
        "2",
        "--master-port",
        &free_port().to_string(),
        "--",
        "--config",
        config.to_str().unwrap(),
    ]);
    let stderr = stderr_of_failure(&output);
    // The rank's own message, from the error file it left for the agent.
    assert!(
        stderr.contains("exited with exit status: 1 (") && stderr.contains("missing.yaml"),
        "{stderr}"
    );
    assert!(stderr.contains("not restarting"), "{stderr}");
    assert!(!stderr.contains("restarting all ranks"), "{stderr}");
    // Both ranks failed alike: their message once, where each rank's own line, its tail in
    // the summary and the summary's cause showed it six times.
    assert_eq!(stderr.matches("missing.yaml").count(), 1, "{stderr}");
    assert!(stderr.contains("ranks 0, 1 exited with"), "{stderr}");
}

/// Timing the all-reduce of one process would time nothing: refused, saying how to start ranks.
#[test]
fn the_all_reduce_benchmark_outside_a_launcher_is_refused() {
    let stderr = stderr_of_failure(&run(&["bench-allreduce", "--floats", "1000"]));
    assert!(
        stderr.contains("this is a single process") && stderr.contains("launch --nproc 2"),
        "{stderr}"
    );
}

/// A thousand ranks on a node of a few cores are refused before any starts, naming the flag
/// that would start them anyway.
#[test]
fn more_ranks_than_the_node_has_cores_are_refused_unless_oversubscribed() {
    let started = Instant::now();
    let stderr = stderr_of_failure(&run(&[
        "launch", "--nproc", "100000", "--", "--config", "x.yaml",
    ]));
    assert!(
        stderr.contains("--nproc 100000") && stderr.contains("--oversubscribe"),
        "{stderr}"
    );
    assert!(!stderr.contains("[rank"), "no rank started: {stderr}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// `srun --ntasks 2 cornet-trainer --config ...` with no wrapper: the tasks know their place
/// from Slurm's variables, the store's port from the job id, its host from the node list.
#[test]
fn two_tasks_with_only_slurms_variables_train_as_launch_does() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "slurm", CONFIG);
    let job_id = job_id_of_a_free_port();
    let ranks: Vec<Child> = (0..2)
        .map(|rank| {
            let (procid, job) = (rank.to_string(), job_id.to_string());
            let vars = [
                ("SLURM_NTASKS", "2"),
                ("SLURM_PROCID", procid.as_str()),
                ("SLURM_LOCALID", procid.as_str()),
                ("SLURM_NODEID", "0"),
                ("SLURM_JOB_ID", job.as_str()),
                ("SLURM_JOB_NODELIST", "localhost"),
                ("SLURM_TASKS_PER_NODE", "2"),
                ONE_THREAD,
            ];
            start_with_env(&["--config", config.to_str().unwrap()], &vars)
        })
        .collect();
    for rank in ranks {
        wait_for_success(rank);
    }
    assert!(
        final_weights(&dir.path().join("slurm")) == *reference(),
        "weights differ"
    );
}

/// A job id whose derived store port (10000 + id mod 20000) is free now.
fn job_id_of_a_free_port() -> u64 {
    (1_000_000..)
        .step_by(7919)
        .find(|id| {
            let port = 10_000 + (id % 20_000) as u16;
            std::net::TcpListener::bind(("0.0.0.0", port)).is_ok()
        })
        .unwrap()
}

/// The secret that the launchers of the two-node tests share (set on every node, as a job
/// script exports it).
const TWO_NODES_SECRET: (&str, &str) = ("CORNET_JOB_SECRET", "the-secret-both-nodes-share");

/// Two launchers as two nodes of one rank each, on 127.0.0.2 and 127.0.0.3: node 1's rank
/// reaches the store on node 0's address and accepts its ring peer on its own. Their output,
/// piped, carries no colour codes.
#[test]
fn two_nodes_on_two_loopback_addresses_train_as_one_node_does() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "two_nodes", CONFIG);
    let port = free_port();
    let nodes: Vec<Child> = ["127.0.0.2", "127.0.0.3"]
        .iter()
        .enumerate()
        .map(|(node, addr)| {
            let rest = [
                "--master-addr",
                "127.0.0.2",
                "--local-addr",
                addr,
                "--run-id",
                "two-nodes",
                "--",
                "--config",
                config.to_str().unwrap(),
            ];
            let args = launch_node_of_two(node, port, &rest);
            let vars = [
                ("RUST_LOG", "info,cornet_trainer::distributed=debug"),
                ONE_THREAD,
                TWO_NODES_SECRET,
            ];
            start_with_env(&args, &vars)
        })
        .collect();
    let stderrs: Vec<String> = nodes.into_iter().map(wait_for_success).collect();
    assert!(
        stderrs[1].contains("rank 1 accepts its ring peer on 127.0.0.3:"),
        "{}",
        stderrs[1]
    );
    assert!(!stderrs.concat().contains('\x1b'), "{stderrs:?}");
    assert!(
        final_weights(&dir.path().join("two_nodes")) == *reference(),
        "weights differ"
    );
}

/// `world_size` ranks as torchrun starts them for the elastic job `job`, its restart count 0,
/// training `config`.
fn elastic_ranks(config: &Path, job: &str, world_size: usize) -> Vec<Child> {
    let (port, world) = (free_port().to_string(), world_size.to_string());
    (0..world_size)
        .map(|rank| {
            let rank = rank.to_string();
            let vars = [
                ("WORLD_SIZE", world.as_str()),
                ("RANK", rank.as_str()),
                ("LOCAL_RANK", rank.as_str()),
                ("LOCAL_WORLD_SIZE", world.as_str()),
                ("MASTER_ADDR", "127.0.0.1"),
                ("MASTER_PORT", port.as_str()),
                ("TORCHELASTIC_RUN_ID", job),
                ("TORCHELASTIC_RESTART_COUNT", "0"),
                ONE_THREAD,
            ];
            start_with_env(&["--config", config.to_str().unwrap()], &vars)
        })
        .collect()
}

/// A node joins an elastic job: torchrun stops the single worker (it checkpoints) and starts
/// two at WORLD_SIZE=2 without counting a restart. They continue from the checkpoint by
/// themselves, the global batch kept, every step once; they used to refuse their own folder.
/// Another job's workers are still refused it.
#[test]
fn a_node_that_joins_an_elastic_job_continues_its_run() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "elastic", CONFIG);
    let run = dir.path().join("elastic");
    let mut alone = elastic_ranks(&config, "elastic-job", 1).remove(0);
    wait_for_train_steps(&run, 7, &mut alone);
    Command::new("kill")
        .args(["-TERM", &alone.id().to_string()])
        .status()
        .unwrap();
    alone.wait().unwrap();

    let other_job = elastic_ranks(&config, "another-job", 1).remove(0);
    let stderr = stderr_of_failure(&other_job.wait_with_output().unwrap());
    assert!(stderr.contains("already holds checkpoints"), "{stderr}");

    for rank in elastic_ranks(&config, "elastic-job", 2) {
        wait_for_success(rank);
    }
    // 96 images in batches of 8 over 8 epochs, on one rank or two.
    assert_eq!(
        recorded_steps(&run, "train"),
        (1..=96).collect::<Vec<u64>>(),
        "every step once"
    );
}
