//! `cornet-trainer eval`: a run's final weights score what the run's own last validation
//! recorded, two ranks under `launch` score each image once as one rank does, and bad input
//! is named.

use crate::util::{
    fixture, free_port, run_with_env, stderr_of_failure, stdout_of_success, write_config,
};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// One thread everywhere: the run's validation and `eval` must sum in the same order to give
/// the same bits.
const ONE_THREAD: (&str, &str) = ("OMP_NUM_THREADS", "1");

/// Two epochs of 4 steps, validated after each; 15 validation images (odd: two ranks get 8
/// and 7), in batches of 6 (6, 6, 3 on one rank).
const RUN: &str = "\
model: {arch: Z, num_classes: 3, widths: [8, 16, 16, 16]}
data:
  train: $DATA/train
  val: $DATA/val
  workers: 1
  image_size: 32
  synthetic: {classes: 3, train_per_class: 8, val_per_class: 5, size: 40}
optim: {lr: 0.05, step_size: 2}
train: {epochs: 2, batch_size: 6, seed: 7}
output: {path: $OUT, save_val_epochs: 1, save_model_epochs: 0, save_model_secs: 0, save_model_steps: 0, keep: 1}
";

/// The trained run, once for all the tests here: its folder and its data's.
struct TrainedRun {
    _dir: tempfile::TempDir,
    out: PathBuf,
    val: PathBuf,
}

fn trained_run() -> &'static TrainedRun {
    static RUN_ONCE: OnceLock<TrainedRun> = OnceLock::new();
    RUN_ONCE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), "run", RUN);
        let config = config.to_str().unwrap();
        stdout_of_success(&run_with_env(&["--config", config], &[ONE_THREAD]));
        TrainedRun {
            out: dir.path().join("run"),
            val: dir.path().join("data/val"),
            _dir: dir,
        }
    })
}

/// `eval --model Z` of `weights` on `data` in batches of 6, with `extra` flags.
fn eval_args<'a>(weights: &'a Path, data: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let head = [
        "eval",
        "--model",
        "Z",
        "--weights",
        weights.to_str().unwrap(),
        "--data-path",
        data.to_str().unwrap(),
        "--image-size",
        "32",
        "--batch-size",
        "6",
        "-j",
        "1",
    ];
    [&head[..], extra].concat()
}

/// The one JSON line of a successful `eval`.
fn json_line(stdout: &str) -> Value {
    let lines: Vec<&str> = stdout.lines().filter(|l| l.contains('{')).collect();
    assert_eq!(lines.len(), 1, "one JSON line expected:\n{stdout}");
    let json = &lines[0][lines[0].find('{').unwrap()..];
    serde_json::from_str(json).unwrap()
}

#[test]
fn eval_of_a_runs_final_weights_equals_its_last_validation() {
    let run = trained_run();
    let records = std::fs::read_to_string(run.out.join("records.jsonl")).unwrap();
    let last_val: Value = records
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .rfind(|r| r["phase"] == "val")
        .unwrap();
    assert_eq!(last_val["step"], 8, "{records}");

    let weights = run.out.join("final.safetensors");
    let out = run_with_env(&eval_args(&weights, &run.val, &[]), &[ONE_THREAD]);
    let scores = json_line(&stdout_of_success(&out));
    assert_eq!(scores["images"], 15);
    // The same code on the same batches of the same weights: the same bits.
    for key in ["top1", "top5", "loss"] {
        assert_eq!(scores[key], last_val[key], "{key}: {scores} vs {last_val}");
    }
    let loss = scores["loss"].as_f64().unwrap();
    assert!(loss.is_finite() && loss > 0.0, "{scores}");
}

#[test]
fn two_ranks_score_each_image_once_as_one_rank_does() {
    let run = trained_run();
    let weights = run.out.join("final.safetensors");
    let one = run_with_env(&eval_args(&weights, &run.val, &[]), &[ONE_THREAD]);
    let one = json_line(&stdout_of_success(&one));

    let port = free_port().to_string();
    let launch = ["launch", "--nproc", "2", "--master-port", &port, "--"];
    let args = [&launch[..], &eval_args(&weights, &run.val, &[])].concat();
    let two = run_with_env(&args, &[ONE_THREAD]);
    let stdout = stdout_of_success(&two);
    // Only rank 0 prints, its result as one JSON line, as a single process prints it: the
    // launcher prefixes the ranks' logs (stderr), never their results.
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let two: Value = serde_json::from_str(&stdout).unwrap();

    assert_eq!(two["images"], 15, "8 + 7 images, none twice, none padded");
    assert_eq!(two["top1"], one["top1"]);
    assert_eq!(two["top5"], one["top5"]);
    // Other batches (8 and 7 images per rank, not 6, 6, 3) sum the per-image losses in
    // another order.
    let (a, b) = (one["loss"].as_f64().unwrap(), two["loss"].as_f64().unwrap());
    assert!((a - b).abs() <= 1e-6 * a.abs(), "{a} vs {b}");
}

#[test]
fn bad_input_is_named_and_exits_nonzero() {
    let run = trained_run();
    let weights = run.out.join("final.safetensors");
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-folder");
    let five_classes = dir.path().join("five");
    cornet_data::synthetic::write_image_folder(&five_classes, 5, 1, 40, 0).unwrap();
    let s_weights = fixture("s_mini.pth");
    let nan_weights = dir.path().join("nan.safetensors");
    write_with_nan_bias(&weights, &nan_weights);
    let cases: [(Vec<&str>, &str); 6] = [
        (eval_args(&weights, &missing, &[]), "--data-path: "),
        (
            eval_args(&s_weights, &run.val, &[]),
            "these are CORnet-S weights, not CORnet-Z",
        ),
        (
            eval_args(&weights, &run.val, &["--batch-size", "0"]),
            "--batch-size",
        ),
        (
            eval_args(&weights, &five_classes, &[]),
            "has 5 classes but the weights have 3 outputs",
        ),
        (
            eval_args(
                &weights,
                &run.val,
                &["--classes-from", five_classes.to_str().unwrap()],
            ),
            "differ at label 3",
        ),
        (
            eval_args(&nan_weights, &run.val, &[]),
            "15 of 15 images got NaN or infinite logits",
        ),
    ];
    for (args, expected) in cases {
        let stderr = stderr_of_failure(&run_with_env(&args, &[ONE_THREAD]));
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("backtrace"),
            "{stderr}"
        );
    }
    let stderr = stderr_of_failure(&run_with_env(&eval_args(&weights, &missing, &[]), &[]));
    assert!(stderr.contains(&missing.display().to_string()), "{stderr}");
}

/// `weights` with the decoder's bias NaN, at `out`: every logit NaN.
fn write_with_nan_bias(weights: &Path, out: &Path) {
    let mut tensors = candle_core::safetensors::load(weights, &candle_core::Device::Cpu).unwrap();
    let bias = tensors.get_mut("decoder.linear.bias").unwrap();
    *bias = (bias.ones_like().unwrap() * f64::NAN).unwrap();
    candle_core::safetensors::save(&tensors, out).unwrap();
}
