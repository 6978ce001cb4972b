//! `cornet-trainer score --model`: a model's every area and time step scored end to end on
//! generated images and recordings.

use crate::util::{
    fixture, run_score_command, stderr_of_failure, stdout_of_success, text, write_npy,
};
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Enough stimuli that each of the 10 folds leaves 25 for the 25 PLS components.
const STIMULI: usize = 30;
const REPETITIONS: usize = 4;
const NEUROIDS: usize = 8;

/// The taps of the CORnet-S graph: V2, V4 and IT repeat 2, 4 and 2 times.
const S_TAPS: [(&str, usize); 10] = [
    ("V1", 0),
    ("V2", 0),
    ("V2", 1),
    ("V4", 0),
    ("V4", 1),
    ("V4", 2),
    ("V4", 3),
    ("IT", 0),
    ("IT", 1),
    ("decoder.avgpool", 0),
];
const METRICS: [&str; 5] = [
    "rsa_spearman",
    "rsa_pearson",
    "cka_linear",
    "predictivity_raw",
    "predictivity_ceiled",
];

/// Generated images in `dir/images` and recordings [repetitions, stimuli, neuroids] with a
/// reliable stimulus-driven part (so the ceiling is high) plus noise per repetition.
fn inputs(dir: &Path, stimuli: usize, repetitions: usize) -> (PathBuf, PathBuf) {
    let images = dir.join("images");
    cornet_data::synthetic::write_image_folder(&images, 3, stimuli.div_ceil(3), 24, 0).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let signal: Vec<f64> = (0..stimuli * NEUROIDS)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let recorded: Vec<f64> = (0..repetitions)
        .flat_map(|_| signal.clone())
        .map(|v| v + 0.2 * rng.random_range(-1.0..1.0))
        .collect();
    let recordings = dir.join("recordings.npy");
    write_npy(
        &recordings,
        &[repetitions as u64, stimuli as u64, NEUROIDS as u64],
        &recorded,
    );
    (images, recordings)
}

fn score_model(
    images: &Path,
    recordings: &Path,
    out: &Path,
    extra: &[&str],
) -> std::process::Output {
    score_arch("S", "s_mini.pth", images, recordings, out, extra)
}

fn score_arch(
    arch: &str,
    weights: &str,
    images: &Path,
    recordings: &Path,
    out: &Path,
    extra: &[&str],
) -> std::process::Output {
    let weights = fixture(weights);
    let mut args = vec![
        "--model",
        arch,
        "--weights",
        weights.to_str().unwrap(),
        "--data-path",
        images.to_str().unwrap(),
        "--recordings",
        recordings.to_str().unwrap(),
        "--imsize",
        "32",
        "--batch-size",
        "8",
        "-j",
        "2",
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run_score_command(&args)
}

/// scores.csv as (area, time step, metric) -> value.
fn read_scores(out: &Path) -> HashMap<(String, usize, String), f64> {
    let mut reader = csv::Reader::from_path(out.join("scores.csv")).unwrap();
    assert_eq!(
        reader.headers().unwrap(),
        vec!["area", "time_step", "metric", "value"]
    );
    reader
        .records()
        .map(|row| {
            let row = row.unwrap();
            let key = (
                row[0].to_owned(),
                row[1].parse().unwrap(),
                row[2].to_owned(),
            );
            (key, row[3].parse().unwrap())
        })
        .collect()
}

#[test]
fn every_area_and_time_step_is_scored_with_every_metric() {
    let dir = tempfile::tempdir().unwrap();
    let (images, recordings) = inputs(dir.path(), STIMULI, REPETITIONS);
    let out = dir.path().join("out");
    let run = score_model(&images, &recordings, &out, &[]);
    let stdout = stdout_of_success(&run);

    let scores = read_scores(&out);
    assert_eq!(scores.len(), S_TAPS.len() * METRICS.len());
    for (area, step) in S_TAPS {
        for metric in METRICS {
            let value = scores[&(area.to_owned(), step, metric.to_owned())];
            let range = match metric {
                "cka_linear" => 0.0..=1.0,
                "predictivity_ceiled" => -2.0..=2.0,
                _ => -1.0..=1.0,
            };
            assert!(range.contains(&value), "{area} {step} {metric}: {value}");
        }
        assert!(stdout.contains(area), "table lacks {area}:\n{stdout}");
    }
    assert!(stdout.contains("noise ceiling (split-half)"), "{stdout}");

    let svg = std::fs::read_to_string(out.join("scores.svg")).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(200)]);
    for label in [
        "RSA (Spearman)",
        "linear CKA",
        "time step",
        "V4",
        "decoder.avgpool",
    ] {
        assert!(svg.contains(label), "the plot lacks `{label}`");
    }
    for written in ["folds.npy", "split_halves.npy", "file_list.txt"] {
        assert!(out.join(written).is_file(), "{written} not written");
    }
}

/// In RT only V1 sees the image at step 0 and each area one step after the one below it, so
/// V2, V4 and IT start out the same for every stimulus: named, not scored.
#[test]
fn taps_the_image_has_not_reached_are_named_not_scored() {
    let dir = tempfile::tempdir().unwrap();
    let (images, recordings) = inputs(dir.path(), STIMULI, REPETITIONS);
    let out = dir.path().join("out");
    let extra = ["--times", "2", "--metric", "cka"];
    let run = score_arch("RT", "rt.pth", &images, &recordings, &out, &extra);
    let stdout = stdout_of_success(&run);
    let mut scored: Vec<(String, usize)> = read_scores(&out)
        .into_keys()
        .map(|(area, step, _)| (area, step))
        .collect();
    scored.sort();
    assert_eq!(
        scored,
        [("V1".into(), 0), ("V1".into(), 1), ("V2".into(), 1)]
    );
    let expected = "not scored, the same for every stimulus: V2.output.0, V4.output.0, \
                    IT.output.0, V4.output.1, IT.output.1, decoder.avgpool.0";
    assert!(stdout.contains(expected), "{stdout}");
}

/// Naming the images in the recordings' order: the same stimuli listed in reverse against the
/// reversed recordings give the same RSA and CKA (PLS folds follow positions, so they differ).
#[test]
fn the_stimulus_list_sets_the_row_order() {
    let dir = tempfile::tempdir().unwrap();
    let (images, recordings) = inputs(dir.path(), STIMULI, REPETITIONS);
    let sorted = score_model(
        &images,
        &recordings,
        &dir.path().join("sorted"),
        &["--metric", "rsa"],
    );
    stdout_of_success(&sorted);

    let list = std::fs::read_to_string(dir.path().join("sorted/file_list.txt")).unwrap();
    let mut names: Vec<String> = list
        .lines()
        .map(|path| {
            Path::new(path)
                .strip_prefix(&images)
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    names.reverse();
    let order = dir.path().join("order.txt");
    std::fs::write(&order, names.join("\n")).unwrap();
    let reversed_recordings = reversed(&recordings, dir.path());
    let listed = score_model(
        &images,
        &reversed_recordings,
        &dir.path().join("listed"),
        &["--metric", "rsa", "--stimuli", order.to_str().unwrap()],
    );
    stdout_of_success(&listed);

    let (a, b) = (
        read_scores(&dir.path().join("sorted")),
        read_scores(&dir.path().join("listed")),
    );
    assert_eq!(a.len(), S_TAPS.len() * 2);
    for (key, value) in &a {
        assert!(
            (value - b[key]).abs() < 1e-5,
            "{key:?}: {value} vs {}",
            b[key]
        );
    }
}

/// The recordings with their stimulus axis reversed.
fn reversed(recordings: &Path, dir: &Path) -> PathBuf {
    let bytes = std::fs::read(recordings).unwrap();
    let values = npyz::NpyFile::new(&bytes[..])
        .unwrap()
        .into_vec::<f64>()
        .unwrap();
    let reversed: Vec<f64> = values
        .chunks(STIMULI * NEUROIDS)
        .flat_map(|repetition| repetition.chunks(NEUROIDS).rev().flatten())
        .copied()
        .collect();
    let path = dir.join("reversed.npy");
    write_npy(
        &path,
        &[REPETITIONS as u64, STIMULI as u64, NEUROIDS as u64],
        &reversed,
    );
    path
}

#[test]
fn bad_inputs_are_named_before_the_model_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (images, recordings) = inputs(dir.path(), STIMULI, REPETITIONS);
    let out = dir.path().join("out");
    let shorter = dir.path().join("shorter.npy");
    write_npy(&shorter, &[2, 29, 1], &vec![0.5; 2 * 29]);
    let single = dir.path().join("single.npy");
    write_npy(&single, &[1, STIMULI as u64, 1], &vec![0.5; STIMULI]);
    let nan = dir.path().join("nan.npy");
    let mut values = vec![0.5; 2 * STIMULI];
    values[3] = f64::NAN;
    write_npy(&nan, &[2, STIMULI as u64, 1], &values);
    let typo = dir.path().join("typo.txt");
    std::fs::write(&typo, "class_00/0000.png\nclass_00/000l.png\n").unwrap();
    let few = tempfile::tempdir().unwrap();
    let (few_images, few_recordings) = inputs(few.path(), 21, 2);

    let cases: [(&Path, &Path, &[&str], &str); 5] = [
        (&images, &shorter, &[], "holds 30 images but"),
        (
            &images,
            &single,
            &[],
            "a ceiling needs at least 2 repetitions",
        ),
        (&images, &nan, &[], "element 3 is NaN"),
        (
            &images,
            &recordings,
            &["--stimuli", typo.to_str().unwrap()],
            "no image `class_00/000l.png`",
        ),
        (
            &few_images,
            &few_recordings,
            &[],
            "fewer than the 25 PLS components",
        ),
    ];
    for (images, recordings, extra, expected) in cases {
        let run = score_model(images, recordings, &out, extra);
        let stderr = stderr_of_failure(&run);
        assert!(stderr.contains(expected), "{expected}: {stderr}");
    }
    assert!(
        !out.join("file_list.txt").exists(),
        "the model ran on bad inputs"
    );
}

#[test]
fn the_model_flags_come_together() {
    let run = run_score_command(&["--model", "S", "--recordings", "r.npy"]);
    let stderr = stderr_of_failure(&run);
    assert!(stderr.contains("--weights"), "{stderr}");
    let both = run_score_command(&[
        "--features",
        "f.npy",
        "--model",
        "S",
        "--recordings",
        "r.npy",
    ]);
    assert!(text(&both.stderr).contains("cannot be used with"));
}
