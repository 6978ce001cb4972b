//! What a run leaves to look at: TensorBoard event files that read as records.jsonl, even
//! after a kill and a resume, `curves.svg`, and `cornet-trainer plot` over several runs.

use crate::util::{
    run, start, start_training, stderr_of_failure, stdout_of_success, train, wait_for_train_steps,
    write_config,
};
use cornet_trainer::tfevents::{self, What};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// 3 epochs of 12 steps; validated every half epoch, checkpointed every epoch.
const CONFIG: &str = "\
model: {arch: Z, num_classes: 4, widths: [8, 8, 16, 16]}
data:
  train: $DATA/train
  val: $DATA/val
  workers: 2
  image_size: 32
  prefetch: 2
  synthetic: {classes: 4, train_per_class: 24, val_per_class: 4, size: 40}
optim: {lr: 0.02, step_size: 2}
train: {epochs: 3, batch_size: 8, seed: 3}
output:
  path: $OUT
  save_val_epochs: 0.5
  save_model_epochs: 1
  save_model_secs: 0
  tensorboard: true
";

/// Each tag's (step, value) points.
type Points = BTreeMap<String, Vec<(i64, f32)>>;

/// Each tag's (step, value) points as TensorBoard shows them: files in name order, a
/// `SessionLog` START at step s dropping every point at s or after
/// (`event_accumulator.py`'s `_CheckForRestartAndMaybePurge`). Also the steps of every
/// `val/loss` written, dropped or not, and the number of STARTs.
fn as_tensorboard_shows(dir: &Path) -> (Points, Vec<i64>, usize) {
    let mut tags: Points = BTreeMap::new();
    let (mut val_steps, mut starts) = (Vec::new(), 0);
    let files = tfevents::event_files(dir).unwrap();
    for path in &files {
        let events = tfevents::read_events(path).unwrap();
        assert!(
            matches!(&events[0].what, Some(What::FileVersion(v)) if v == tfevents::FILE_VERSION),
            "{}",
            path.display()
        );
        for event in events {
            match event.what {
                Some(What::SessionLog(_)) => {
                    starts += 1;
                    for points in tags.values_mut() {
                        points.retain(|&(step, _)| step < event.step);
                    }
                }
                Some(What::Summary(summary)) => {
                    for value in summary.value {
                        if value.tag == "val/loss" {
                            val_steps.push(event.step);
                        }
                        let point = (event.step, value.simple_value.unwrap());
                        tags.entry(value.tag).or_default().push(point);
                    }
                }
                _ => {}
            }
        }
    }
    (tags, val_steps, starts)
}

/// The points TensorBoard should show, from records.jsonl (as 32-bit floats).
fn expected_from_records(run: &Path, batch: f64) -> Points {
    let text = std::fs::read_to_string(run.join("records.jsonl")).unwrap();
    let mut tags: Points = BTreeMap::new();
    for line in text.lines() {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        let phase = record["phase"].as_str().unwrap();
        let step = record["step"].as_i64().unwrap();
        let number = |key: &str| record[key].as_f64().unwrap();
        let mut values = vec![
            ("loss", number("loss")),
            ("top1", number("top1")),
            ("top5", number("top5")),
        ];
        if phase == "train" {
            values.push(("lr", number("lr")));
            values.push(("images_per_sec", batch / number("dur")));
            values.push(("data_wait_secs", number("data_load_dur")));
        }
        values.push(("peak_rss_mib", number("peak_rss_mib")));
        for (tag, value) in values {
            let points = tags.entry(format!("{phase}/{tag}")).or_default();
            points.push((step, value as f32));
        }
    }
    tags
}

/// A valid SVG document (it parses as XML, an `svg` root) and its text.
fn svg_text(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let document = roxmltree::Document::parse(&text).unwrap();
    assert_eq!(document.root_element().tag_name().name(), "svg");
    text
}

#[test]
fn a_killed_and_resumed_run_shows_in_tensorboard_as_its_records_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "run", CONFIG);
    let run_dir = dir.path().join("run");
    let mut child = start_training(&config, &[]);
    // Past the checkpoint of step 12 and the validation of step 18 (which flushes the log).
    wait_for_train_steps(&run_dir, 20, &mut child);
    // It may have finished already on a fast machine; resuming then has nothing to do.
    let _ = child.kill();
    let killed = !child.wait().unwrap().success();
    stdout_of_success(&train(&config, &["--resume", "auto"]));

    let (shown, val_steps, starts) = as_tensorboard_shows(&run_dir.join("tensorboard"));
    let expected = expected_from_records(&run_dir, 8.0);
    assert_eq!(expected["train/loss"].len(), 36);
    assert_eq!(expected["val/loss"].len(), 7);
    assert_eq!(shown, expected);
    if killed {
        // The killed run logged past its checkpoint (at least the validation that follows
        // it, which the resumed run redid): TensorBoard shows that once, thanks to the START.
        assert_eq!(starts, 1);
        assert!(val_steps.len() > 7, "{val_steps:?}");
    }
    let text = svg_text(&run_dir.join("curves.svg"));
    assert!(text.contains(">\nrun\n</text>"), "the legend names the run");
    assert!(!run_dir.join("curves.svg.partial").exists());
}

/// Writes `lines` as the records of the run folder `dir/name`.
fn run_folder(dir: &Path, name: &str, lines: &[&str]) -> String {
    let run = dir.join(name);
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("records.jsonl"), lines.concat()).unwrap();
    run.display().to_string()
}

const TRAIN_1: &str = r#"{"phase":"train","epoch":0.5,"step":1,"loss":2.0,"top1":0.25,"top5":1.0,"lr":0.1,"dur":0.1,"data_load_dur":0.0,"comm_dur":0.0}
"#;
const TRAIN_2: &str = r#"{"phase":"train","epoch":1.0,"step":2,"loss":null,"top1":0.5,"top5":1.0,"lr":0.01,"dur":0.1,"data_load_dur":0.0,"comm_dur":0.0}
"#;
const VAL_2: &str = r#"{"phase":"val","epoch":1.0,"step":2,"loss":1.5,"top1":0.5,"top5":1.0,"lr":0.0,"dur":0.3,"data_load_dur":0.0,"comm_dur":0.0}
"#;

#[test]
fn plot_overlays_runs_and_names_what_it_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    let first = run_folder(dir.path(), "lr_high", &[TRAIN_1, TRAIN_2, VAL_2]);
    let second = run_folder(dir.path(), "lr_low", &[TRAIN_1, VAL_2]);
    let out = dir.path().join("both.svg");
    let out_arg = out.to_str().unwrap();
    stdout_of_success(&run(&[
        "plot",
        first.as_str(),
        second.as_str(),
        "-o",
        out_arg,
    ]));
    let text = svg_text(&out);
    assert!(
        text.contains(">\nlr_high\n</text>") && text.contains(">\nlr_low\n</text>"),
        "{text}"
    );

    let no_records = dir.path().join("nothing");
    std::fs::create_dir_all(&no_records).unwrap();
    let stderr = stderr_of_failure(&run(&["plot", no_records.to_str().unwrap(), "-o", out_arg]));
    assert!(
        stderr.contains("nothing holds no records.jsonl"),
        "{stderr}"
    );

    let empty = run_folder(dir.path(), "empty", &[]);
    let stderr = stderr_of_failure(&run(&[
        "plot",
        first.as_str(),
        empty.as_str(),
        "-o",
        out_arg,
    ]));
    assert!(
        stderr.contains("empty/records.jsonl: no records yet"),
        "{stderr}"
    );

    let damaged = run_folder(dir.path(), "damaged", &[TRAIN_1, "{\"phase\": 3}\n", VAL_2]);
    let stderr = stderr_of_failure(&run(&["plot", damaged.as_str(), "-o", out_arg]));
    assert!(
        stderr.contains("damaged/records.jsonl:2: not a record"),
        "{stderr}"
    );

    // What was drawn before stays whole.
    svg_text(&out);
}

/// A diverging run writes values near f64::MAX (a learning rate of 1e308, a loss of 1e308):
/// `plot` (and curves.svg, drawn by the same code) draws them, where its axis used to reach
/// infinity and spin forever.
#[test]
fn plot_draws_a_diverging_runs_huge_values_and_ends() {
    let dir = tempfile::tempdir().unwrap();
    let huge = TRAIN_1
        .replace("\"loss\":2.0", "\"loss\":1e308")
        .replace("\"lr\":0.1", "\"lr\":1e308");
    let run_dir = run_folder(dir.path(), "diverged", &[TRAIN_1, &huge, VAL_2]);
    let out = dir.path().join("diverged.svg");
    let mut plot = start(&["plot", run_dir.as_str(), "-o", out.to_str().unwrap()]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while plot.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            plot.kill().unwrap();
            panic!("plot still drawing after a minute");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    stdout_of_success(&plot.wait_with_output().unwrap());
    svg_text(&out);
}
