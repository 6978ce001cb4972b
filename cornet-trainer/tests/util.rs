//! What the integration tests share: running the `cornet-trainer` binary, writing a run's
//! config and reading what the run wrote, the parity fixtures (found through
//! [`cornet_model::testing`]) and .npy files.

use candle_core::{Device, Tensor};
use cornet_model::testing::tensor_bytes;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub use cornet_model::testing::{fixture, read_npz};

fn cornet_trainer(args: &[impl AsRef<OsStr>]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cornet-trainer"));
    command.args(args);
    command
}

/// `cornet-trainer` with `args`, run to its end.
pub fn run(args: &[&str]) -> Output {
    cornet_trainer(args)
        .output()
        .expect("running cornet-trainer")
}

/// `cornet-trainer` with `args`, run to its end in the folder `dir` with these variables added
/// to the environment.
pub fn run_in(dir: &Path, args: &[&str], vars: &[(&str, &str)]) -> Output {
    cornet_trainer(args)
        .current_dir(dir)
        .envs(vars.iter().copied())
        .output()
        .expect("running cornet-trainer")
}

/// [`run`] with these variables added to the environment.
pub fn run_with_env(args: &[&str], vars: &[(&str, &str)]) -> Output {
    run_in(Path::new("."), args, vars)
}

/// `cornet-trainer` with `args`, started for a test that signals it or watches it work: its
/// stdout is dropped, its stderr kept for [`Child::wait_with_output`].
pub fn start(args: &[&str]) -> Child {
    start_with_env(args, &[])
}

/// [`start`] with these variables added to the environment (a rank's, as a launcher sets).
pub fn start_with_env(args: &[impl AsRef<OsStr>], vars: &[(&str, &str)]) -> Child {
    cornet_trainer(args)
        .envs(vars.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting cornet-trainer")
}

/// A run's stdout, after asserting that it succeeded (showing its stderr if not).
pub fn stdout_of_success(run: &Output) -> String {
    assert!(run.status.success(), "{}", text(&run.stderr));
    text(&run.stdout)
}

/// The stderr of a [`start`]ed run, after waiting for its end and asserting that it succeeded.
pub fn wait_for_success(process: Child) -> String {
    let output = process.wait_with_output().unwrap();
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    stderr
}

/// A run's stderr, after asserting that it failed.
pub fn stderr_of_failure(run: &Output) -> String {
    let stderr = text(&run.stderr);
    assert!(
        !run.status.success(),
        "succeeded where it should fail:\n{stderr}"
    );
    stderr
}

/// Process output as text (lossy: a test reads it for messages only).
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `cornet-trainer test --model <arch> --weights <weights>` and `args`, run to its end.
pub fn run_test_command(arch: &str, weights: &Path, args: &[&str]) -> Output {
    let weights = weights.to_str().unwrap();
    run(&[&["test", "--model", arch, "--weights", weights], args].concat())
}

/// `cornet-trainer score` with `args`, run to its end.
pub fn run_score_command(args: &[&str]) -> Output {
    run(&[&["score"], args].concat())
}

/// Writes the config of the run `name` to `dir/<name>.yaml` and returns its path: `yaml` with
/// `$DATA` standing for `dir/data` (the run's images, or where it makes synthetic ones) and
/// `$OUT` for the run's output folder, `dir/<name>`.
pub fn write_config(dir: &Path, name: &str, yaml: &str) -> PathBuf {
    let text = yaml
        .replace("$DATA", &dir.join("data").display().to_string())
        .replace("$OUT", &dir.join(name).display().to_string());
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// `cornet-trainer --config <config>` and `extra`: a training run, run to its end.
pub fn train(config: &Path, extra: &[&str]) -> Output {
    run(&training_args(config, extra))
}

/// A training run, started as [`start`] does.
pub fn start_training(config: &Path, extra: &[&str]) -> Child {
    start(&training_args(config, extra))
}

fn training_args<'a>(config: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    [&["--config", config.to_str().unwrap()], extra].concat()
}

/// The `step` of every record of `phase` (`train` or `val`) in the run's records.jsonl, in
/// file order. A line still being written while the run goes on is skipped.
pub fn recorded_steps(run: &Path, phase: &str) -> Vec<u64> {
    std::fs::read_to_string(run.join("records.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| r["phase"] == phase)
        .map(|r| r["step"].as_u64().unwrap())
        .collect()
}

/// Waits until the run in `run` (the output folder of `process`) has recorded `steps` training
/// steps, or `process` has ended; gives up after a minute rather than hang the test on a run
/// that stalls.
pub fn wait_for_train_steps(run: &Path, steps: usize, process: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while recorded_steps(run, "train").len() < steps && Instant::now() < deadline {
        if process.try_wait().unwrap().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The bytes of each named tensor, for bit-exact comparisons of weights.
pub fn tensor_bytes_by_name(
    tensors: impl IntoIterator<Item = (String, Tensor)>,
) -> BTreeMap<String, Vec<u8>> {
    tensors
        .into_iter()
        .map(|(name, t)| (name, tensor_bytes(&t)))
        .collect()
}

/// The final weights of the run in `run`, bit for bit.
pub fn final_weights(run: &Path) -> BTreeMap<String, Vec<u8>> {
    let path = run.join("final.safetensors");
    let tensors = candle_core::safetensors::load(&path, &Device::Cpu)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    tensor_bytes_by_name(tensors)
}

/// A port that was free a moment ago, for a test's rendezvous on localhost.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `launch` as node `node` of a job of two nodes of one rank each, its store on `port`; then
/// `rest`: more of launch's flags, `--` and the trainer's.
pub fn launch_node_of_two(node: usize, port: u16, rest: &[&str]) -> Vec<String> {
    let (node, port) = (node.to_string(), port.to_string());
    let head = [
        "launch",
        "--nproc",
        "1",
        "--nnodes",
        "2",
        "--node-rank",
        &node,
    ];
    let head = head.into_iter().chain(["--master-port", &port]);
    head.chain(rest.iter().copied())
        .map(str::to_owned)
        .collect()
}

/// The processes `pid` started (a launcher's ranks).
pub fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Writes a row-major f64 array as .npy.
pub fn write_npy<T: npyz::AutoSerialize + Copy>(path: &Path, shape: &[u64], values: &[T]) {
    use npyz::WriterBuilder;
    let mut bytes = Vec::new();
    let mut w = npyz::WriteOptions::<T>::new()
        .default_dtype()
        .shape(shape)
        .writer(&mut bytes)
        .begin_nd()
        .unwrap();
    w.extend(values.iter().copied()).unwrap();
    w.finish().unwrap();
    std::fs::write(path, bytes).unwrap();
}
