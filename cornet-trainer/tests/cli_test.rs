//! `cornet-trainer test`: feature extraction from a preprocessed tensor, end to end.

use candle_core::{DType, Tensor};
use cornet_model::testing::{fixtures, read_npz, relative_error};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn cornet_trainer(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cornet-trainer"))
        .args(args)
        .output()
        .expect("running cornet-trainer")
}

/// Writes the fixture's input as the .npy that a user would pass.
fn input_npy(dir: &Path, fixture: &HashMap<String, Tensor>) -> PathBuf {
    let path = dir.join("input.npy");
    fixture["input"].write_npy(&path).unwrap();
    path
}

#[test]
fn all_taps_of_cornet_rt_match_pytorch() {
    let fixture = read_npz("rt_eval.npz");
    let dir = tempfile::tempdir().unwrap();
    let input = input_npy(dir.path(), &fixture);
    let weights = fixtures().join("rt.pth");
    let out = dir.path().join("out");
    let run = cornet_trainer(&[
        "test",
        "--model",
        "RT",
        "--weights",
        weights.to_str().unwrap(),
        "--input-npy",
        input.to_str().unwrap(),
        "--all-taps",
        "--batch-size",
        "1",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let taps: HashMap<String, Tensor> = Tensor::read_npz(out.join("CORnet-RT_taps.npz"))
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(
        taps.len(),
        fixture.len() - 1,
        "every tap and the logits, no input"
    );
    for (name, value) in &taps {
        let key = if name == "logits" {
            name.clone()
        } else {
            format!("tap/{name}")
        };
        let reference = &fixture[&key];
        assert_eq!(value.dims(), reference.dims(), "{name}");
        let err = relative_error(value, reference);
        assert!(err <= 1e-4, "{name}: {err:.3e}");
    }
}

#[test]
fn one_layer_at_one_time_step_is_saved_flattened() {
    let fixture = read_npz("s_mini_eval.npz");
    let dir = tempfile::tempdir().unwrap();
    let input = input_npy(dir.path(), &fixture);
    let weights = fixtures().join("s_mini.pth");
    let out = dir.path().join("out");
    let run = cornet_trainer(&[
        "test",
        "--model",
        "S",
        "--weights",
        weights.to_str().unwrap(),
        "--input-npy",
        input.to_str().unwrap(),
        "--layer",
        "V4",
        "--sublayer",
        "output",
        "--time-step",
        "3",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let feats = Tensor::read_npy(out.join("CORnet-S_V4_output_feats.npy")).unwrap();
    let reference = fixture["tap/V4.output.3"].flatten_from(1).unwrap();
    assert_eq!(feats.dims(), reference.dims());
    assert!(relative_error(&feats, &reference) <= 1e-4);
}

#[test]
fn bad_input_gives_a_clear_error_and_no_backtrace() {
    let dir = tempfile::tempdir().unwrap();
    let not_weights = fixtures().join("not_an_image.jpg");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "--weights".into(),
                dir.path().join("nope.pth").display().to_string(),
            ],
            "nope.pth",
        ),
        (
            vec!["--weights".into(), not_weights.display().to_string()],
            "not_an_image.jpg: not a checkpoint",
        ),
        (
            vec![
                "--weights".into(),
                fixtures().join("s_mini.pth").display().to_string(),
            ],
            "these are CORnet-S weights, not CORnet-Z",
        ),
    ];
    let input = dir.path().join("x.npy");
    Tensor::zeros((1, 3, 32, 32), DType::F32, &candle_core::Device::Cpu)
        .unwrap()
        .write_npy(&input)
        .unwrap();
    for (extra, expected) in cases {
        let mut args = vec![
            "test".to_string(),
            "--model".into(),
            "Z".into(),
            "--input-npy".into(),
            input.display().to_string(),
            "-o".into(),
            dir.path().display().to_string(),
        ];
        args.extend(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = cornet_trainer(&args);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success(), "{args:?} should fail");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("backtrace"),
            "{stderr}"
        );
    }

    let weights = fixtures().join("z.pth");
    let run = cornet_trainer(&[
        "test",
        "--model",
        "Z",
        "--weights",
        weights.to_str().unwrap(),
        "--input-npy",
        input.to_str().unwrap(),
        "--layer",
        "V4",
        "--sublayer",
        "output",
        "--time-step",
        "2",
        "-o",
        dir.path().to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(stderr.contains("no tap `V4.output.2`"), "{stderr}");
}

#[test]
fn features_of_an_image_folder_match_the_original_run_py_test() {
    let expected = read_npz("images_expected.npz");
    let dir = tempfile::tempdir().unwrap();
    let weights = fixtures().join("z.pth");
    let images = fixtures().join("images");
    for (layer, sublayer, key) in [
        ("decoder", "avgpool", "z/decoder_avgpool"),
        ("IT", "output", "z/IT_output"),
    ] {
        let out = dir.path().join(layer);
        let run = cornet_trainer(&[
            "test",
            "--model",
            "Z",
            "--weights",
            weights.to_str().unwrap(),
            "--data-path",
            images.to_str().unwrap(),
            "--layer",
            layer,
            "--sublayer",
            sublayer,
            "-o",
            out.to_str().unwrap(),
        ]);
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let feats =
            Tensor::read_npy(out.join(format!("CORnet-Z_{layer}_{sublayer}_feats.npy"))).unwrap();
        assert_eq!(feats.dims(), expected[key].dims(), "{key}");
        let err = relative_error(&feats, &expected[key]);
        assert!(err <= 1e-2, "{key}: {err:.3e}");
        let list = std::fs::read_to_string(out.join("file_list.txt")).unwrap();
        let names: Vec<_> = list
            .lines()
            .map(|l| {
                Path::new(l)
                    .file_name()
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(
            names,
            [
                "astronaut_png.JPEG",
                "camera_gray.png",
                "chelsea_cmyk.jpg",
                "china.jpg",
                "coffee.png"
            ]
        );
    }
}

#[test]
fn an_unreadable_image_in_the_folder_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir(&images).unwrap();
    std::fs::copy(fixtures().join("images/china.jpg"), images.join("a.jpg")).unwrap();
    std::fs::copy(fixtures().join("truncated.jpg"), images.join("b.jpg")).unwrap();
    let weights = fixtures().join("z.pth");
    let run = cornet_trainer(&[
        "test",
        "--model",
        "Z",
        "--weights",
        weights.to_str().unwrap(),
        "--data-path",
        images.to_str().unwrap(),
        "-o",
        dir.path().join("out").to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(stderr.contains("b.jpg: not a readable image"), "{stderr}");
}
