//! A run watched from a batch job's log (stderr not a terminal, as under Slurm, nohup or a
//! pipe; a test's piped stderr is one): progress lines at the pace asked, validations that say
//! where they are, the validation at step 0 skipped on request, the peak memory in the
//! records; and the commands that tell a newcomer what to do.

use crate::util::{recorded_steps, run, stderr_of_failure, text, train, write_config};

/// 2 epochs of 8 steps of 4 images, validated every epoch over 4 batches; a progress line
/// every 3 steps (or validation batches), none by time.
const CONFIG: &str = "\
model: {arch: Z, num_classes: 4, widths: [8, 8, 8, 8]}
data:
  train: $DATA/train
  val: $DATA/val
  workers: 1
  image_size: 32
  synthetic: {classes: 4, train_per_class: 8, val_per_class: 4, size: 32}
optim: {lr: 0.01, step_size: 8}
train: {epochs: 2, batch_size: 4}
output:
  path: $OUT
  save_val_epochs: 1
  log_every_steps: 3
  log_every_secs: 0
";

/// The lines of `stderr` that start with `prefix`.
fn lines_starting<'a>(stderr: &'a str, prefix: &str) -> Vec<&'a str> {
    stderr.lines().filter(|l| l.starts_with(prefix)).collect()
}

#[test]
fn a_log_gets_a_progress_line_every_so_many_steps_and_validations_say_where_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "run", CONFIG);
    let output = train(&config, &[]);
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");

    let steps = lines_starting(&stderr, "step ");
    let numbers: Vec<&str> = steps.iter().map(|l| l.split(' ').nth(1).unwrap()).collect();
    assert_eq!(
        numbers,
        ["3/16", "6/16", "9/16", "12/16", "15/16"],
        "{stderr}"
    );
    for line in &steps {
        let fields: Vec<&str> = line.split(" | ").collect();
        let starts = [
            "step ",
            "epoch ",
            "loss ",
            "top-1 ",
            "lr ",
            "",
            "data wait ",
            "",
        ];
        assert_eq!(fields.len(), starts.len(), "{line}");
        for (field, start) in fields.iter().zip(starts) {
            assert!(field.starts_with(start), "{line}");
        }
        assert!(
            fields[1].ends_with("/2") && fields[5].ends_with(" img/s"),
            "{line}"
        );
        assert!(fields[7].ends_with(" left"), "{line}");
        assert!(!line.contains(['\r', '\x1b']), "a plain line: {line:?}");
    }
    assert_eq!(steps[0].split(" | ").nth(1), Some("epoch 0.38/2"));

    // Each validation announces itself, then its batches at the same pace.
    for step in [0, 8, 16] {
        let said = lines_starting(&stderr, &format!("validation at step {step}: "));
        assert_eq!(said.len(), 2, "{stderr}");
        assert!(said[0].ends_with(": 4 batches"), "{said:?}");
        assert!(said[1].contains(": batch 3/4 | "), "{said:?}");
    }
    assert_eq!(
        lines_starting(&stderr, "training from step 0 to 16 (2 epochs of 8 steps)").len(),
        1
    );

    // Every record holds the peak resident memory of its step or validation.
    let records = std::fs::read_to_string(dir.path().join("run/records.jsonl")).unwrap();
    for line in records.lines() {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        let mib = record["peak_rss_mib"].as_f64().unwrap_or(0.0);
        assert!(mib > 1.0, "{line}");
    }
}

#[test]
fn the_validation_at_step_0_is_skipped_on_request_and_the_others_kept() {
    let dir = tempfile::tempdir().unwrap();
    let by_config = CONFIG.replace(
        "  log_every_secs: 0",
        "  log_every_secs: 0\n  val_at_start: false",
    );
    let runs = [
        (
            write_config(dir.path(), "by_flag", CONFIG),
            vec!["--val-at-start", "false"],
        ),
        (write_config(dir.path(), "by_config", &by_config), vec![]),
    ];
    for (config, flags) in runs {
        let output = train(&config, &flags);
        let stderr = text(&output.stderr);
        assert!(output.status.success(), "{stderr}");
        let run = config.with_extension("");
        assert_eq!(recorded_steps(&run, "val"), [8, 16], "{}", run.display());
        assert_eq!(recorded_steps(&run, "train").len(), 16);
        assert!(!stderr.contains("validation at step 0"), "{stderr}");
    }
}

/// The original's habit without a config is told the config to start from; bare, the
/// command lists the commands.
#[test]
fn a_newcomer_is_told_what_to_run() {
    let bare = run(&[]);
    assert_eq!(bare.status.code(), Some(2));
    let help = text(&bare.stderr);
    for command in ["test", "eval", "score", "bench", "launch", "plot"] {
        assert!(
            help.contains(&format!("\n  {command} ")),
            "{command}: {help}"
        );
    }
    let stderr = stderr_of_failure(&run(&["--model", "S", "--data-path", "/imagenet"]));
    assert!(
        stderr.contains("--config is required to train")
            && stderr.contains("--config configs/cornet_s.yaml"),
        "{stderr}"
    );
}

/// `bench` tells of each step as it goes (seconds each at full size on a CPU), then prints
/// its one JSON line, with the train step's peak memory.
#[test]
fn bench_tells_of_its_steps_before_its_result() {
    let output = run(&[
        "bench",
        "--model",
        "Z",
        "--batch-size",
        "2",
        "--image-size",
        "32",
        "--steps",
        "1",
        "--warmup",
        "1",
    ]);
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    for step in [
        "train step 1/2 (warm-up): ",
        "train step 2/2: ",
        "inference 2/2: ",
    ] {
        assert_eq!(lines_starting(&stderr, step).len(), 1, "{step}: {stderr}");
    }
    let stdout = text(&output.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let timings: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(timings["peak_rss_mib"].as_f64().unwrap() > 1.0, "{timings}");
}
