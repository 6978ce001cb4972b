//! Neural-similarity metrics against scikit-learn / scipy / numpy (`metrics_expected.npz`).

use crate::util::{
    fixture, read_npz, run_score_command, stderr_of_failure, stdout_of_success, text, write_npy,
};
use candle_core::DType;
use cornet_trainer::score::{
    centred_gram, cka_from_grams, cka_linear, cross_validated_predictivity, mean_over_repetitions,
    rdm, rsa, split_half_ceiling, LayerFeatures,
};
use nalgebra::DMatrix;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;

struct Array {
    shape: Vec<usize>,
    values: Vec<f64>,
}

/// The arrays of `metrics_expected.npz` by name, in f64 (its integer arrays, folds and
/// split halves, too).
fn expected() -> HashMap<String, Array> {
    read_npz("metrics_expected.npz")
        .into_iter()
        .map(|(name, array)| {
            let shape = array.dims().to_vec();
            let values = array
                .flatten_all()
                .and_then(|a| a.to_dtype(DType::F64))
                .and_then(|a| a.to_vec1())
                .unwrap();
            (name, Array { shape, values })
        })
        .collect()
}

/// A row-major [rows x cols] block of `values` as a matrix.
fn matrix(values: &[f64], rows: usize, cols: usize) -> DMatrix<f64> {
    DMatrix::from_row_slice(rows, cols, values)
}

fn close(what: &str, ours: &[f64], theirs: &[f64], absolute: f64, relative: f64) {
    assert_eq!(ours.len(), theirs.len(), "{what}: length");
    for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
        let allowed = absolute.max(relative * b.abs());
        assert!((a - b).abs() <= allowed, "{what}[{i}]: {a} vs {b}");
    }
}

#[test]
fn every_metric_matches_the_reference() {
    let f = expected();
    let (stimuli, units) = (f["features"].shape[0], f["features"].shape[1]);
    let (reps, neuroids) = (f["recordings"].shape[0], f["recordings"].shape[2]);
    let features = matrix(&f["features"].values, stimuli, units);
    let recordings: Vec<DMatrix<f64>> = (0..reps)
        .map(|r| {
            matrix(
                &f["recordings"].values[r * stimuli * neuroids..(r + 1) * stimuli * neuroids],
                stimuli,
                neuroids,
            )
        })
        .collect();
    let neural = mean_over_repetitions(&recordings);

    let rdm_model = rdm(&features);
    let rdm_neural = rdm(&neural);
    let row_major = |m: &DMatrix<f64>| m.transpose().iter().copied().collect::<Vec<f64>>();
    close(
        "rdm_model",
        &row_major(&rdm_model),
        &f["rdm_model"].values,
        1e-9,
        0.0,
    );
    close(
        "rdm_neural",
        &row_major(&rdm_neural),
        &f["rdm_neural"].values,
        1e-9,
        0.0,
    );
    let (spearman, pearson) = rsa(&rdm_model, &rdm_neural);
    close(
        "rsa_spearman",
        &[spearman],
        &f["rsa_spearman"].values,
        1e-9,
        0.0,
    );
    close(
        "rsa_pearson",
        &[pearson],
        &f["rsa_pearson"].values,
        1e-9,
        0.0,
    );
    close(
        "cka_linear",
        &[cka_linear(&features, &neural)],
        &f["cka_linear"].values,
        1e-9,
        0.0,
    );

    let folds: Vec<usize> = f["folds"].values.iter().map(|&v| v as usize).collect();
    let p = cross_validated_predictivity(&features, &neural, &folds, 25).unwrap();
    close(
        "pls_pred_fold0",
        &row_major(&p.fold0_prediction),
        &f["pls_pred_fold0"].values,
        0.0,
        1e-4,
    );
    let r_fold: Vec<f64> = p.r_fold.concat();
    close("r_fold", &r_fold, &f["r_fold"].values, 0.0, 1e-4);
    close("r_neuroid", &p.r_neuroid, &f["r_neuroid"].values, 0.0, 1e-4);
    close(
        "predictivity_raw",
        &[p.raw],
        &f["predictivity_raw"].values,
        0.0,
        1e-4,
    );

    let splits_shape = &f["split_halves"].shape;
    let splits: Vec<Vec<usize>> = f["split_halves"]
        .values
        .chunks(splits_shape[1])
        .map(|row| row.iter().map(|&v| v as usize).collect())
        .collect();
    let (per_neuroid, ceiling) = split_half_ceiling(&recordings, &splits).unwrap();
    close(
        "ceiling_neuroid",
        &per_neuroid,
        &f["ceiling_neuroid"].values,
        1e-9,
        0.0,
    );
    close("ceiling", &[ceiling], &f["ceiling"].values, 1e-9, 0.0);
    close(
        "predictivity_ceiled",
        &[p.raw / ceiling],
        &f["predictivity_ceiled"].values,
        0.0,
        1e-4,
    );
}

/// Random [rows x cols] values in [-1, 1) with a different offset per column, as units of a
/// layer have.
fn random_matrix(rng: &mut impl Rng, rows: usize, cols: usize) -> DMatrix<f64> {
    let offsets: Vec<f64> = (0..cols).map(|_| rng.random_range(0.0..5.0)).collect();
    DMatrix::from_fn(rows, cols, |_, j| offsets[j] + rng.random_range(-1.0..1.0))
}

fn max_difference(a: &DMatrix<f64>, b: &DMatrix<f64>) -> f64 {
    assert_eq!(a.shape(), b.shape());
    (a - b).amax()
}

/// Wider layers than stimuli are scored through the stimulus Gram (PLS on Z = U S with
/// G = U S² U'), which must give what the features themselves give, not an approximation
/// (the gaps are ~1e-14).
#[test]
fn wide_features_score_exactly_through_the_stimulus_gram() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(6);
    let (stimuli, units, neuroids) = (40, 300, 6);
    let x = random_matrix(&mut rng, stimuli, units);
    let y = random_matrix(&mut rng, stimuli, neuroids);
    let folds: Vec<usize> = (0..stimuli).map(|i| i % 10).collect();
    let row_major: Vec<f64> = x.transpose().iter().copied().collect();
    let tensor =
        candle_core::Tensor::from_vec(row_major, (stimuli, units), &candle_core::Device::Cpu)
            .unwrap();
    let reduced = LayerFeatures::new(&tensor)
        .unwrap()
        .expect("features that vary");
    assert!(
        reduced.pls_input.ncols() < stimuli,
        "Z has rank(Xc) <= n - 1 columns, got {}",
        reduced.pls_input.ncols()
    );

    let direct = cross_validated_predictivity(&x, &y, &folds, 25).unwrap();
    let through_z = cross_validated_predictivity(&reduced.pls_input, &y, &folds, 25).unwrap();
    let prediction_gap = max_difference(&direct.fold0_prediction, &through_z.fold0_prediction);
    assert!(
        prediction_gap < 1e-9,
        "fold-0 predictions differ by {prediction_gap}"
    );
    for (f, (a, b)) in direct.r_fold.iter().zip(&through_z.r_fold).enumerate() {
        for (n, (a, b)) in a.iter().zip(b).enumerate() {
            assert!((a - b).abs() < 1e-9, "r_fold[{f}, {n}]: {a} vs {b}");
        }
    }
    assert!((direct.raw - through_z.raw).abs() < 1e-9);

    let rdm_gap = max_difference(&reduced.rdm, &rdm(&x));
    assert!(rdm_gap < 1e-12, "RDMs differ by {rdm_gap}");
    let cka = cka_from_grams(&reduced.centred_gram, &centred_gram(&y));
    assert!((cka - cka_linear(&x, &y)).abs() < 1e-12);
}

/// The fixture's features and recordings as .npy files in `dir`, for the score command.
fn write_fixture_inputs(
    f: &HashMap<String, Array>,
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let (features, recordings) = (dir.join("feats.npy"), dir.join("rec.npy"));
    for (path, name) in [(&features, "features"), (&recordings, "recordings")] {
        let shape: Vec<u64> = f[name].shape.iter().map(|&d| d as u64).collect();
        write_npy(path, &shape, &f[name].values);
    }
    (features, recordings)
}

#[test]
fn the_score_command_reports_json_and_writes_its_folds() {
    let f = expected();
    let dir = tempfile::tempdir().unwrap();
    let (features, recordings) = write_fixture_inputs(&f, dir.path());
    let out = run_score_command(&[
        "--features",
        features.to_str().unwrap(),
        "--recordings",
        recordings.to_str().unwrap(),
        "--json",
        "--save-draws",
        dir.path().to_str().unwrap(),
    ]);
    stdout_of_success(&out);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!((json["cka_linear"].as_f64().unwrap() - f["cka_linear"].values[0]).abs() < 1e-9);
    assert_eq!(json["r_neuroid"].as_array().unwrap().len(), 30);
    assert!(json["ceiling"].as_f64().unwrap() > 0.5);
    assert!(
        dir.path().join("folds.npy").is_file() && dir.path().join("split_halves.npy").is_file()
    );

    // The written folds reproduce the score.
    let again = run_score_command(&[
        "--features",
        features.to_str().unwrap(),
        "--recordings",
        recordings.to_str().unwrap(),
        "--json",
        "--folds",
        dir.path().join("folds.npy").to_str().unwrap(),
        "--split-halves",
        dir.path().join("split_halves.npy").to_str().unwrap(),
    ]);
    assert_eq!(again.stdout, out.stdout);
}

/// Drawn folds and halves go only where `--save-draws` says, never beside the features, and a
/// different draw already there is refused by name, not replaced; the same draw is kept.
#[test]
fn drawn_folds_are_saved_only_where_asked_and_never_replaced() {
    let f = expected();
    let dir = tempfile::tempdir().unwrap();
    let (features, recordings) = write_fixture_inputs(&f, dir.path());
    let score = |extra: &[&str]| {
        let args = [
            &[
                "--features",
                features.to_str().unwrap(),
                "--recordings",
                recordings.to_str().unwrap(),
                "--metric",
                "pls",
            ][..],
            extra,
        ]
        .concat();
        run_score_command(&args)
    };
    stdout_of_success(&score(&[]));
    let beside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(beside.len(), 2, "written beside the features: {beside:?}");

    let draws = dir.path().join("draws");
    let save = ["--save-draws", draws.to_str().unwrap()];
    stdout_of_success(&score(&save));
    let folds = std::fs::read(draws.join("folds.npy")).unwrap();
    assert!(draws.join("split_halves.npy").is_file());
    // The same seed draws the same folds: kept as they are.
    stdout_of_success(&score(&save));
    // Another seed's folds would replace them: refused, naming the file.
    let stderr = stderr_of_failure(&score(&[&save[..], &["--seed", "7"]].concat()));
    assert!(
        stderr.contains(&format!(
            "{} already exists",
            draws.join("folds.npy").display()
        )),
        "{stderr}"
    );
    assert_eq!(std::fs::read(draws.join("folds.npy")).unwrap(), folds);
}

#[test]
fn bad_inputs_are_named() {
    let f = expected();
    let dir = tempfile::tempdir().unwrap();
    let features = dir.path().join("feats.npy");
    write_npy(&features, &[120, 64], &f["features"].values);
    let short = dir.path().join("short.npy");
    write_npy(
        &short,
        &[4, 100, 30],
        &f["recordings"].values[..4 * 100 * 30],
    );
    let nan = dir.path().join("nan.npy");
    let mut values = f["features"].values.clone();
    values[7] = f64::NAN;
    write_npy(&nan, &[120, 64], &values);
    let one_rep = dir.path().join("one.npy");
    write_npy(&one_rep, &[1, 120, 30], &f["recordings"].values[..120 * 30]);
    let few = dir.path().join("few.npy");
    write_npy(&few, &[20, 64], &f["features"].values[..20 * 64]);
    let few_rec = dir.path().join("few_rec.npy");
    write_npy(
        &few_rec,
        &[2, 20, 30],
        &f["recordings"].values[..2 * 20 * 30],
    );
    // Empty axes: nothing to score, and no divisions by zero either.
    let empty = |name: &str, shape: &[u64]| {
        let path = dir.path().join(name);
        write_npy::<f64>(&path, shape, &[]);
        path
    };
    let no_neuroids = empty("no_neuroids.npy", &[4, 120, 0]);
    let no_stimuli = empty("no_stimuli.npy", &[4, 0, 30]);
    let no_repetitions = empty("no_repetitions.npy", &[0, 120, 30]);
    let no_units = empty("no_units.npy", &[120, 0]);
    // numpy's Python objects (`np.save` of an object array): the header says `|O`.
    let objects = dir.path().join("objects.npy");
    let header = "{'descr': '|O', 'fortran_order': False, 'shape': (120, 64), }";
    let mut npy = b"\x93NUMPY\x01\x00".to_vec();
    let padded = format!("{header:<117}\n");
    npy.extend((padded.len() as u16).to_le_bytes());
    npy.extend(padded.as_bytes());
    std::fs::write(&objects, npy).unwrap();
    let hold_no_values = "hold no values: every axis needs at least one entry";
    let cases = [
        (&features, &no_neuroids, hold_no_values),
        (&features, &no_stimuli, hold_no_values),
        (&features, &no_repetitions, hold_no_values),
        (&no_units, &one_rep, hold_no_values),
        (
            &objects,
            &one_rep,
            "expected float32 or float64, got numpy dtype '|O'",
        ),
        (&features, &short, "has 120 stimuli but"),
        (&nan, &one_rep, "element 7 is NaN"),
        (
            &features,
            &one_rep,
            "a ceiling needs at least 2 repetitions",
        ),
        (&few, &few_rec, "fewer than the 25 PLS components"),
    ];
    for (feats, rec, expected) in cases {
        let out = run_score_command(&[
            "--features",
            feats.to_str().unwrap(),
            "--recordings",
            rec.to_str().unwrap(),
        ]);
        let stderr = stderr_of_failure(&out);
        assert!(stderr.contains(expected), "{expected}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// Inputs for which a score is undefined are refused with the flag or file and the reason,
/// never printed as NaN, and never left to loop.
#[test]
fn undefined_scores_are_refused_with_their_cause() {
    let f = expected();
    let dir = tempfile::tempdir().unwrap();
    let (stimuli, neuroids) = (f["features"].shape[0], f["recordings"].shape[2]);
    let reps = f["recordings"].shape[0];
    let recordings = dir.path().join("rec.npy");
    write_npy(
        &recordings,
        &[reps as u64, stimuli as u64, neuroids as u64],
        &f["recordings"].values,
    );
    let units = |n: usize| {
        let path = dir.path().join(format!("units{n}.npy"));
        let values: Vec<f64> = f["features"]
            .values
            .chunks(f["features"].shape[1])
            .flat_map(|row| row[..n].to_vec())
            .collect();
        write_npy(&path, &[stimuli as u64, n as u64], &values);
        path
    };
    let (one, three) = (units(1), units(3));
    let leave_one_out = dir.path().join("loo.npy");
    write_npy(
        &leave_one_out,
        &[stimuli as u64],
        &(0..stimuli as i64).collect::<Vec<_>>(),
    );
    let no_halves = dir.path().join("no_halves.npy");
    write_npy::<i64>(&no_halves, &[0, reps as u64], &[]);
    let constant = dir.path().join("constant.npy");
    write_npy(
        &constant,
        &[reps as u64, stimuli as u64, neuroids as u64],
        &vec![0.5; reps * stimuli * neuroids],
    );
    let path = |p: &std::path::Path| p.to_str().unwrap().to_owned();
    let cases: [(Vec<String>, &str); 6] = [
        (
            vec!["--features".into(), path(&three), "--metric".into(), "pls".into()],
            "--components 25: PLS fits at most as many components as the features have units, and they have 3",
        ),
        (
            vec!["--features".into(), path(&one), "--metric".into(), "rsa".into()],
            "RSA needs at least 2 units",
        ),
        (
            vec!["--features".into(), path(&three), "--folds".into(), path(&leave_one_out), "--components".into(), "3".into()],
            "leave-one-out folds cannot be scored",
        ),
        (
            vec!["--features".into(), path(&three), "--split-halves".into(), path(&no_halves), "--components".into(), "3".into()],
            "no split halves (0 rows)",
        ),
        (
            vec!["--features".into(), path(&three), "--recordings".into(), path(&constant), "--components".into(), "3".into()],
            "the mean responses are the same for every stimulus",
        ),
        (
            vec!["--features".into(), path(&three), "--recordings".into(), path(&constant), "--metric".into(), "pls".into(), "--components".into(), "1".into()],
            "the mean responses are the same for every stimulus",
        ),
    ];
    for (args, expected) in cases {
        let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
        if !all.contains(&"--recordings") {
            all.extend(["--recordings", recordings.to_str().unwrap()]);
        }
        let stderr = stderr_of_failure(&run_score_command(&all));
        assert!(stderr.contains(expected), "{expected}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    // As many components as units is allowed, and every score is a number.
    let out = run_score_command(&[
        "--features",
        three.to_str().unwrap(),
        "--recordings",
        recordings.to_str().unwrap(),
        "--components",
        "3",
        "--json",
    ]);
    let json: serde_json::Value = serde_json::from_str(&stdout_of_success(&out)).unwrap();
    for key in [
        "rsa_spearman",
        "cka_linear",
        "predictivity_raw",
        "ceiling",
        "predictivity_ceiled",
    ] {
        assert!(
            json[key].as_f64().is_some_and(f64::is_finite),
            "{key}: {json}"
        );
    }
}

#[test]
fn arrays_can_be_named_inside_an_npz() {
    let archive = fixture("metrics_expected.npz");
    let entry = |name: &str| format!("{}:{name}", archive.display());
    let out = run_score_command(&[
        "--features",
        &entry("features"),
        "--recordings",
        &entry("recordings"),
        "--folds",
        &entry("folds"),
        "--split-halves",
        &entry("split_halves"),
        "--json",
    ]);
    stdout_of_success(&out);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let f = expected();
    for key in ["rsa_spearman", "rsa_pearson", "cka_linear", "ceiling"] {
        assert!(
            (json[key].as_f64().unwrap() - f[key].values[0]).abs() <= 1e-9,
            "{key}"
        );
    }
    for key in ["predictivity_raw", "predictivity_ceiled"] {
        let (ours, theirs) = (json[key].as_f64().unwrap(), f[key].values[0]);
        assert!((ours - theirs).abs() <= 1e-4 * theirs.abs(), "{key}");
    }
    let missing = run_score_command(&[
        "--features",
        &entry("nope"),
        "--recordings",
        &entry("recordings"),
    ]);
    assert!(text(&missing.stderr).contains("has no array `nope`"));
}
