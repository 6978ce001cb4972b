//! A run killed with SIGKILL at any moment (checkpoint writes included) and resumed with
//! `--resume auto` ends with the same weights, bit for bit, as one never interrupted.

use crate::util::{
    final_weights, fixture, recorded_steps, start_training, stderr_of_failure, stdout_of_success,
    text, train, wait_for_train_steps, write_config,
};
use std::path::{Path, PathBuf};
use std::process::Command;

/// 4 epochs of 12 steps, validated and checkpointed every epoch and checkpointed every step.
const CONFIG: &str = "\
model: {arch: Z, num_classes: 4, widths: [16, 32, 48, 64]}
data:
  train: $DATA/train
  val: $DATA/val
  workers: 2
  image_size: 64
  prefetch: 2
  synthetic: {classes: 4, train_per_class: 24, val_per_class: 4, size: 72}
optim: {lr: 0.02, step_size: 2}
train: {epochs: 4, batch_size: 8, seed: 3}
output:
  path: $OUT
  save_val_epochs: 1
  save_model_epochs: 1
  save_model_secs: 0
  save_model_steps: 1
  keep: 2
";

#[test]
fn sigkill_at_several_points_then_resume_gives_identical_weights() {
    let dir = tempfile::tempdir().unwrap();
    let reference = write_config(dir.path(), "reference", CONFIG);
    stdout_of_success(&train(&reference, &[]));
    let expected = final_weights(&dir.path().join("reference"));

    for (i, kill_after) in [2usize, 9, 17, 30].into_iter().enumerate() {
        let name = format!("killed{i}");
        let config = write_config(dir.path(), &name, CONFIG);
        let run = dir.path().join(&name);
        let mut child = start_training(&config, &[]);
        wait_for_train_steps(&run, kill_after, &mut child);
        // It may have finished already on a fast machine; resuming then has nothing to do.
        let _ = child.kill();
        child.wait().unwrap();
        // Resumed (maybe more than once) until it finishes.
        stdout_of_success(&train(&config, &["--resume", "auto"]));
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

/// Writes the config of the run `run` in `dir` and trains it to its end with one epoch;
/// returns the config.
fn one_epoch_trained(dir: &Path) -> PathBuf {
    let config = write_config(dir, "run", CONFIG);
    stdout_of_success(&train(&config, &["--set", "train.epochs=1"]));
    config
}

/// Every file under `dir`, with its bytes and modification time.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>, std::time::SystemTime)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(snapshot(&path));
        } else {
            let modified = path.metadata().unwrap().modified().unwrap();
            files.push((path.clone(), std::fs::read(&path).unwrap(), modified));
        }
    }
    files.sort();
    files
}

/// `--resume auto` in a finished run's folder says it is finished and changes nothing of the
/// run (the lock file names the process holding the folder, and the data sets' listings are a
/// cache, listed again here since the images were written moments before the first listing):
/// it used to write the final weights and config.yaml again.
#[test]
fn a_finished_run_resumed_says_so_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = one_epoch_trained(dir.path());
    let run = dir.path().join("run");
    let run_data = |files: Vec<(PathBuf, Vec<u8>, std::time::SystemTime)>| -> Vec<_> {
        let of_the_run = |p: &Path| {
            let name = p.file_name().unwrap().to_string_lossy();
            name != ".lock" && !name.starts_with("listing-")
        };
        files.into_iter().filter(|(p, ..)| of_the_run(p)).collect()
    };
    let before = run_data(snapshot(&run));
    let resumed = train(&config, &["--set", "train.epochs=1", "--resume", "auto"]);
    let said = stdout_of_success(&resumed);
    assert!(said.contains("already finished"), "{said}");
    let after = run_data(snapshot(&run));
    let changed: Vec<_> = after
        .iter()
        .filter(|file| !before.contains(file))
        .map(|(path, ..)| path)
        .collect();
    assert!(
        changed.is_empty() && after.len() == before.len(),
        "the finished run's files changed: {changed:?}"
    );
}

/// A config.yaml edited by hand in the run folder is kept aside on resume, and said so, not
/// overwritten without a word.
#[test]
fn an_edited_config_yaml_is_kept_aside_on_resume() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "run", CONFIG);
    let run = dir.path().join("run");
    let mut child = start_training(&config, &[]);
    wait_for_train_steps(&run, 3, &mut child);
    let _ = child.kill();
    child.wait().unwrap();
    let edited = "# my notes\nmodel: {arch: Z}\n";
    std::fs::write(run.join("config.yaml"), edited).unwrap();
    let resumed = train(&config, &["--resume", "auto"]);
    stdout_of_success(&resumed);
    let stderr = text(&resumed.stderr);
    assert!(
        stderr.contains("kept as") && stderr.contains("config.yaml.1"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(run.join("config.yaml.1")).unwrap(),
        edited
    );
    assert!(std::fs::read_to_string(run.join("config.yaml"))
        .unwrap()
        .contains("widths"));
}

#[test]
fn a_fresh_start_never_mixes_with_an_earlier_run() {
    let dir = tempfile::tempdir().unwrap();
    let config = one_epoch_trained(dir.path());
    let stderr = stderr_of_failure(&train(&config, &["--set", "train.epochs=1"]));
    assert!(
        stderr.contains("already holds checkpoints of a run: continue it with --resume auto"),
        "{stderr}"
    );
}

/// What an earlier run left is never replaced by a start that did not ask to resume, nor
/// started over by a resume that has nothing to resume from.
#[test]
fn a_finished_or_damaged_run_is_never_started_over() {
    let dir = tempfile::tempdir().unwrap();
    let config = one_epoch_trained(dir.path());
    let run = dir.path().join("run");
    let final_weights_before = std::fs::read(run.join("final.safetensors")).unwrap();

    // Every checkpoint damaged: --resume auto refuses, naming them, and touches nothing.
    let checkpoints: Vec<PathBuf> = std::fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    for checkpoint in &checkpoints {
        std::fs::write(checkpoint.join("model.safetensors"), b"").unwrap();
    }
    let records_before = std::fs::read(run.join("records.jsonl")).unwrap();
    let stderr = stderr_of_failure(&train(&config, &["--resume", "auto"]));
    assert!(
        stderr.contains("--resume auto: no checkpoint in"),
        "{stderr}"
    );
    let name = checkpoints[0].file_name().unwrap().to_string_lossy();
    assert!(stderr.contains(name.as_ref()), "{stderr}");
    assert_eq!(
        std::fs::read(run.join("records.jsonl")).unwrap(),
        records_before
    );

    // The checkpoints gone: a fresh start is refused for the final weights, a resume too.
    std::fs::remove_dir_all(run.join("checkpoints")).unwrap();
    let stderr = stderr_of_failure(&train(&config, &["--set", "train.epochs=1"]));
    assert!(
        stderr.contains("already holds the final weights (final.safetensors) of a run"),
        "{stderr}"
    );
    let stderr = stderr_of_failure(&train(&config, &["--resume", "auto"]));
    assert!(
        stderr.contains("holds a finished run's final weights"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(run.join("final.safetensors")).unwrap(),
        final_weights_before
    );
    assert_eq!(
        std::fs::read(run.join("records.jsonl")).unwrap(),
        records_before
    );
}

/// Two trainers never write into one folder: the second is refused, naming the first's PID,
/// whether it starts afresh or resumes.
#[test]
fn a_second_trainer_in_a_running_runs_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "busy", CONFIG);
    let run = dir.path().join("busy");
    let mut first = start_training(&config, &["--set", "train.epochs=40"]);
    wait_for_train_steps(&run, 2, &mut first);
    for extra in [&[][..], &["--resume", "auto"][..]] {
        let stderr = stderr_of_failure(&train(&config, extra));
        assert!(
            stderr.contains(&format!("its lock is held by process {}", first.id())),
            "{stderr}"
        );
    }
    first.kill().unwrap();
    first.wait().unwrap();
}

/// A checkpoint's place in its epoch means nothing at another epoch length: resuming with
/// another batch size is refused even with --force (it used to run epochs backwards).
#[test]
fn another_batch_size_cannot_resume_even_forced() {
    let dir = tempfile::tempdir().unwrap();
    let config = one_epoch_trained(dir.path());
    let extra = [
        "--resume",
        "auto",
        "--force",
        "--set",
        "train.batch_size=4",
        "--set",
        "train.epochs=2",
    ];
    let stderr = stderr_of_failure(&train(&config, &extra));
    assert!(
        stderr.contains("taken at 12 steps per epoch and this run has 24"),
        "{stderr}"
    );
}

/// A config that cannot fit in memory is refused before anything is allocated, naming the
/// fields that drive it, where it used to grow until the OOM killer came.
#[test]
fn a_run_too_big_for_the_machine_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    for (key, value) in [
        ("data.image_size", "100000"),
        ("model.widths", "[100000, 100000, 100000, 100000]"),
        ("model.num_classes", "10000000000"),
    ] {
        let config = write_config(dir.path(), "huge", CONFIG);
        let set = format!("{key}={value}");
        let stderr = stderr_of_failure(&train(&config, &["--set", &set]));
        assert!(
            stderr.contains("this run needs at least") && stderr.contains(key),
            "{stderr}"
        );
        assert!(!dir.path().join("huge").join("records.jsonl").exists());
    }
}

/// The summary line says when its validation ran: with validations farther apart than the run
/// is long, the only one ran before the first step, and is not passed off as the final one.
#[test]
fn the_summary_names_the_step_of_an_early_validation() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "rare", CONFIG);
    let extra = [
        "--set",
        "train.epochs=1",
        "--set",
        "output.save_val_epochs=1e308",
    ];
    let stdout = stdout_of_success(&train(&config, &extra));
    assert!(
        stdout.contains("done: 12 steps; validation at step 0 loss"),
        "{stdout}"
    );
    let stdout = stdout_of_success(&train(
        &write_config(dir.path(), "usual", CONFIG),
        &["--set", "train.epochs=1"],
    ));
    assert!(
        stdout.contains("done: 12 steps; validation loss"),
        "{stdout}"
    );
}

#[test]
fn a_changed_config_is_refused_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let config = one_epoch_trained(dir.path());
    // (0.03, not more: a rate that makes the run diverge now stops it with an error.)
    let refused = train(&config, &["--resume", "auto", "--set", "optim.lr=0.03"]);
    let stderr = stderr_of_failure(&refused);
    assert!(
        stderr.contains("refusing to resume: the config changed"),
        "{stderr}"
    );
    let forced = train(
        &config,
        &["--resume", "auto", "--set", "optim.lr=0.03", "--force"],
    );
    stdout_of_success(&forced);
}

/// SIGTERM or SIGINT stops a run after the current step with a checkpoint (the only one here),
/// and the process exits 128 + the signal, as a process the signal ended would (never 0: the
/// run did not finish), saying how to go on; `--resume auto` then finishes it.
#[test]
fn a_signal_stops_the_run_with_a_checkpoint_and_exits_as_the_signal_would() {
    let dir = tempfile::tempdir().unwrap();
    for (signal, status) in [("TERM", 143), ("INT", 130)] {
        let name = format!("stopped-by-{signal}");
        let config = write_config(dir.path(), &name, CONFIG);
        let run = dir.path().join(&name);
        // Checkpoints only when stopped: by epochs and steps never, so the one found is the
        // stop's.
        let never = [
            "--set",
            "output.save_model_steps=0",
            "--set",
            "output.save_model_epochs=0",
        ];
        let mut child = start_training(&config, &never);
        wait_for_train_steps(&run, 5, &mut child);
        let kill = Command::new("kill")
            .args([format!("-{signal}"), child.id().to_string()])
            .status();
        assert!(kill.unwrap().success());
        let output = child.wait_with_output().unwrap();
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(status), "{stderr}");
        assert!(
            stderr.contains(&format!("stopped by SIG{signal} at step"))
                && stderr.contains("continue with --resume auto"),
            "{stderr}"
        );
        let checkpoints = std::fs::read_dir(run.join("checkpoints")).unwrap();
        assert_eq!(checkpoints.count(), 1);
        assert!(!run.join("final.safetensors").exists());
        stdout_of_success(&train(
            &config,
            &[&never[..], &["--resume", "auto"]].concat(),
        ));
        assert!(run.join("final.safetensors").is_file());
    }
}

#[test]
fn init_starts_from_given_weights_and_refuses_other_graphs() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "run", CONFIG);
    // z_mini: widths (16, 32, 48, 64) and 10 classes.
    let init = fixture("z_mini_train_init.pth");
    let ok = train(
        &config,
        &[
            "--set",
            "model.num_classes=10",
            "--set",
            "train.epochs=1",
            "--init",
            init.to_str().unwrap(),
        ],
    );
    stdout_of_success(&ok);

    let other = fixture("s_mini.pth");
    let refused = train(&config, &["--init", other.to_str().unwrap()]);
    let stderr = stderr_of_failure(&refused);
    assert!(
        stderr.contains("s_mini.pth") && stderr.contains("not CORnet-Z"),
        "{stderr}"
    );
}

/// The data sets' listings are kept beside the run: a second start over folders unchanged since
/// reads the listing instead of listing the folders again (16-25 s for ImageNet at every
/// resume), and one over a changed folder lists it again.
#[test]
fn a_resume_reads_the_kept_listing_of_unchanged_data() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for (split, per_class) in [("train", 24), ("val", 4)] {
        cornet_data::synthetic::write_image_folder(&data.join(split), 4, per_class, 72, 3).unwrap();
    }
    // Written an hour ago: a listing taken moments after a write is not trusted later.
    let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    let set_back = |path: &Path| {
        let folder = std::fs::File::open(path).unwrap();
        folder.set_modified(an_hour_ago).unwrap();
    };
    for split in ["train", "val"] {
        for class in std::fs::read_dir(data.join(split)).unwrap() {
            set_back(&class.unwrap().path());
        }
        set_back(&data.join(split));
    }
    let config = write_config(dir.path(), "run", CONFIG);
    let one_epoch = ["--set", "train.epochs=1"];
    let first = train(&config, &one_epoch);
    stdout_of_success(&first);
    assert!(
        text(&first.stderr).contains("data.train: listed"),
        "{}",
        text(&first.stderr)
    );
    assert!(dir.path().join("run/listing-train.json").is_file());

    let resumed = train(&config, &[&one_epoch[..], &["--resume", "auto"]].concat());
    let stderr = text(&resumed.stderr);
    assert!(stderr.contains("as listed in"), "{stderr}");
    assert!(!stderr.contains("data.train: listed"), "{stderr}");

    std::fs::copy(
        data.join("train/class_00/0000.png"),
        data.join("train/class_00/9999.png"),
    )
    .unwrap();
    let changed = train(&config, &[&one_epoch[..], &["--resume", "auto"]].concat());
    assert!(
        text(&changed.stderr).contains("data.train: listed"),
        "{}",
        text(&changed.stderr)
    );
}
