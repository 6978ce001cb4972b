//! A run killed with SIGKILL at any moment (checkpoint writes included) and resumed with
//! `--resume auto` ends with the same weights, bit for bit, as one never interrupted.

use candle_core::Device;
use cornet_model::testing::tensor_bytes;
use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn write_config(dir: &Path, run: &str) -> std::path::PathBuf {
    let text = format!(
        "model: {{arch: Z, num_classes: 4, widths: [16, 32, 48, 64]}}
data:
  train: {data}/train
  val: {data}/val
  workers: 2
  image_size: 64
  prefetch: 2
  synthetic: {{classes: 4, train_per_class: 24, val_per_class: 4, size: 72}}
optim: {{lr: 0.02, step_size: 2}}
train: {{epochs: 4, batch_size: 8, seed: 3}}
output:
  path: {out}
  save_val_epochs: 1
  save_model_epochs: 1
  save_model_secs: 0
  save_model_steps: 1
  keep: 2
",
        data = dir.join("data").display(),
        out = dir.join(run).display()
    );
    let path = dir.join(format!("{run}.yaml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn trainer(config: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cornet-trainer"));
    command
        .arg("--config")
        .arg(config)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

fn final_weights(run: &Path) -> HashMap<String, Vec<u8>> {
    candle_core::safetensors::load(run.join("final.safetensors"), &Device::Cpu)
        .unwrap()
        .into_iter()
        .map(|(name, t)| (name, tensor_bytes(&t)))
        .collect()
}

/// The `step` of every record of `phase` in the run's records.jsonl, in file order. (A line
/// still being written while a run goes on is skipped.)
fn recorded_steps(run: &Path, phase: &str) -> Vec<u64> {
    std::fs::read_to_string(run.join("records.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| r["phase"] == phase)
        .map(|r| r["step"].as_u64().unwrap())
        .collect()
}

fn train_steps_recorded(run: &Path) -> usize {
    recorded_steps(run, "train").len()
}

#[test]
fn sigkill_at_several_points_then_resume_gives_identical_weights() {
    let dir = tempfile::tempdir().unwrap();
    let reference = write_config(dir.path(), "reference");
    let status = trainer(&reference, &[]).status().unwrap();
    assert!(status.success());
    let expected = final_weights(&dir.path().join("reference"));

    for (i, kill_after) in [2usize, 9, 17, 30].into_iter().enumerate() {
        let name = format!("killed{i}");
        let config = write_config(dir.path(), &name);
        let run = dir.path().join(&name);
        let mut child = trainer(&config, &[]).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while train_steps_recorded(&run) < kill_after && Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        // It may have finished already on a fast machine; resuming then has nothing to do.
        let _ = child.kill();
        child.wait().unwrap();
        // Resumed (maybe more than once) until it finishes.
        let resumed = trainer(&config, &["--resume", "auto"]).output().unwrap();
        assert!(
            resumed.status.success(),
            "{}",
            String::from_utf8_lossy(&resumed.stderr)
        );
        assert!(
            final_weights(&run) == expected,
            "killed after {kill_after} steps: weights differ"
        );
        assert_eq!(
            recorded_steps(&run, "train"),
            (1..=48).collect::<Vec<u64>>(),
            "records read as one run"
        );
        let validations = recorded_steps(&run, "val");
        assert_eq!(
            validations,
            [0, 12, 24, 36, 48],
            "each validation recorded once"
        );
    }
}

#[test]
fn a_fresh_start_never_mixes_with_an_earlier_run() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "run");
    assert!(trainer(&config, &["--set", "train.epochs=1"])
        .status()
        .unwrap()
        .success());
    let again = trainer(&config, &["--set", "train.epochs=1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success());
    assert!(
        stderr.contains("already holds checkpoints of a run: continue it with --resume auto"),
        "{stderr}"
    );
}

#[test]
fn a_changed_config_is_refused_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "run");
    assert!(trainer(&config, &["--set", "train.epochs=1"])
        .status()
        .unwrap()
        .success());
    let refused = trainer(&config, &["--resume", "auto", "--set", "optim.lr=0.5"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("refusing to resume: the config changed"),
        "{stderr}"
    );
    let forced = trainer(
        &config,
        &["--resume", "auto", "--set", "optim.lr=0.5", "--force"],
    )
    .output()
    .unwrap();
    assert!(
        forced.status.success(),
        "{}",
        String::from_utf8_lossy(&forced.stderr)
    );
}

#[test]
fn sigterm_checkpoints_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "run");
    let run = dir.path().join("run");
    // Checkpoints only when stopped: by epochs and steps never, so the one found is the stop's.
    let child = trainer(
        &config,
        &[
            "--set",
            "output.save_model_steps=0",
            "--set",
            "output.save_model_epochs=0",
            "--set",
            "train.epochs=50",
        ],
    )
    .spawn()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while train_steps_recorded(&run) < 5 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("continue with --resume auto"), "{stderr}");
    let checkpoints: Vec<_> = std::fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .collect();
    assert_eq!(checkpoints.len(), 1);
    assert!(!run.join("final.safetensors").exists());
}

#[test]
fn init_starts_from_given_weights_and_refuses_other_graphs() {
    let fixtures = cornet_model::testing::fixtures();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "run");
    // z_mini: widths (16, 32, 48, 64) and 10 classes.
    let init = fixtures.join("z_mini_train_init.pth");
    let ok = trainer(
        &config,
        &[
            "--set",
            "model.num_classes=10",
            "--set",
            "train.epochs=1",
            "--init",
            init.to_str().unwrap(),
        ],
    )
    .output()
    .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    let other = fixtures.join("s_mini.pth");
    let refused = trainer(&config, &["--init", other.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        stderr.contains("s_mini.pth") && stderr.contains("not CORnet-Z"),
        "{stderr}"
    );
}
