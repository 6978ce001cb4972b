//! `launch` among hostile peers: its store under a flood of idle connections in a process short
//! of file descriptors, and the job's secret, which its ranks get in their environment only
//! and which the launchers of several nodes must share. The jobs here time the all-reduce
//! (`bench-allreduce`): they meet as training does, in a moment.

use crate::util::{
    children, free_port, launch_node_of_two, run_with_env, stderr_of_failure, text,
    wait_for_success,
};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SECRET: &str = "CORNET_JOB_SECRET";

/// `cornet-trainer launch` of node `node` of a two-node job of one rank per node, its store on
/// 127.0.0.1:`port`, the launcher limited to `max_files` open files if given; the job's
/// secret is `secret`.
fn start_node(node: usize, port: u16, secret: &str, max_files: Option<u32>) -> Child {
    let job = ["--run-id", "hostile", "--", "bench-allreduce"];
    let launch = launch_node_of_two(
        node,
        port,
        &[&job[..], &["--floats", "1000", "--iters", "3"]].concat(),
    );
    let trainer = env!("CARGO_BIN_EXE_cornet-trainer");
    let mut command = match max_files {
        // The limit set by the shell that then becomes the launcher, as `ulimit -n` in a job
        // script would.
        Some(max) => {
            let mut shell = Command::new("sh");
            let script = format!("ulimit -n {max} && exec \"$0\" \"$@\"");
            shell.args(["-c", &script, trainer]);
            shell
        }
        None => Command::new(trainer),
    };
    command
        .args(launch)
        .env(SECRET, secret)
        .env("OMP_NUM_THREADS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until something accepts connections on 127.0.0.1:`port`.
fn wait_for_port(port: u16, process: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(process.try_wait().unwrap().is_none(), "the launcher ended");
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// #24: 1100 idle connections under `ulimit -n 1024` stopped the store for good, and every
/// later rendezvous hung. Here 150 under 64: the store holds at most half the descriptors its
/// launcher has left, so the launcher keeps its own (the pipes to its rank); the store lets the
/// oldest idle connections go to make room, says so once, and the second node's launcher and
/// both ranks still meet.
#[test]
fn a_flood_of_idle_connections_does_not_stop_launchs_store() {
    let port = free_port();
    let secret = "the-secret-of-the-flooded-job";
    let mut node_0 = start_node(0, port, secret, Some(64));
    wait_for_port(port, &mut node_0);
    let _flood: Vec<TcpStream> = (0..150)
        .filter_map(|_| {
            let addr = ([127, 0, 0, 1], port).into();
            TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()
        })
        .collect();

    let node_1 = start_node(1, port, secret, None);
    wait_for_success(node_1);
    let stderr = wait_for_success(node_0);
    let let_go = "was let go before its handshake ended, to make room for others";
    assert_eq!(stderr.matches(let_go).count(), 1, "{stderr}");
    assert!(!stderr.contains("out of file descriptors"), "{stderr}");
}

/// The launchers of several nodes cannot make a secret up each: without one given, a job of
/// two nodes is refused, naming the variable; a node with another secret is refused by node
/// 0's store, which it finds cannot prove the secret it was given.
#[test]
fn the_launchers_of_a_job_must_share_its_secret() {
    let args = [
        "launch", "--nproc", "1", "--nnodes", "2", "--", "--config", "x",
    ];
    let stderr = stderr_of_failure(&run_with_env(&args, &[(SECRET, "")]));
    assert!(
        stderr.contains("set CORNET_JOB_SECRET to the same value on every node"),
        "{stderr}"
    );

    let port = free_port();
    let mut node_0 = start_node(0, port, "the-secret-of-node-0-job", None);
    wait_for_port(port, &mut node_0);
    let node_1 = start_node(1, port, "the-secret-of-another-job", None);
    let output = node_1.wait_with_output().unwrap();
    let stderr = text(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("could not prove it knows CORNET_JOB_SECRET"),
        "{stderr}"
    );
    node_0.kill().unwrap();
    node_0.wait().unwrap();
}

/// `launch` makes a secret per job and hands it to its ranks in their environment, where only
/// their user can read it, never in their arguments, which every user of the host can.
#[test]
fn launch_hands_each_job_a_secret_of_its_own_in_the_environment_only() {
    let secrets: Vec<String> = (0..2)
        .map(|_| {
            let port = free_port().to_string();
            let mut launcher = Command::new(env!("CARGO_BIN_EXE_cornet-trainer"))
                .args(["launch", "--nproc", "2", "--master-port", &port, "--"])
                .args([
                    "bench-allreduce",
                    "--floats",
                    "1000",
                    "--iters",
                    "100000000",
                ])
                .env_remove(SECRET)
                .env("OMP_NUM_THREADS", "1")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let ranks = wait_for_ranks(&mut launcher, 2);
            let secrets: Vec<String> = ranks.iter().map(|&rank| secret_of(rank)).collect();
            for &process in ranks.iter().chain([&launcher.id()]) {
                let cmdline = std::fs::read(format!("/proc/{process}/cmdline")).unwrap();
                assert!(!text(&cmdline).contains(&secrets[0]));
            }
            launcher.kill().unwrap();
            launcher.wait().unwrap();
            assert_eq!(secrets[0], secrets[1], "one secret per job");
            assert_eq!(secrets[0].len(), 64, "{}", secrets[0]);
            secrets[0].clone()
        })
        .collect();
    assert_ne!(secrets[0], secrets[1], "a secret of its own per job");
}

/// The ranks `launcher` started, once there are `count` running the trainer (until its exec,
/// a child is a copy of the launcher, with its environment).
fn wait_for_ranks(launcher: &mut Child, count: usize) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ranks = children(launcher.id());
        let trainer = |rank: &u32| {
            let cmdline = std::fs::read(format!("/proc/{rank}/cmdline")).unwrap_or_default();
            text(&cmdline).split('\0').nth(1) == Some("bench-allreduce")
        };
        if ranks.len() == count && ranks.iter().all(trainer) {
            return ranks;
        }
        assert!(launcher.try_wait().unwrap().is_none(), "the launcher ended");
        assert!(Instant::now() < deadline, "no {count} ranks: {ranks:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The job's secret in the environment of `process`, which must also say that the agent's
/// store asks for it.
fn secret_of(process: u32) -> String {
    let environ = text(&std::fs::read(format!("/proc/{process}/environ")).unwrap());
    let vars: Vec<&str> = environ.split('\0').collect();
    assert!(vars.contains(&"CORNET_AGENT_STORE_AUTH=True"), "{vars:?}");
    vars.iter()
        .find_map(|var| var.strip_prefix("CORNET_JOB_SECRET="))
        .expect("CORNET_JOB_SECRET in the rank's environment")
        .to_owned()
}
