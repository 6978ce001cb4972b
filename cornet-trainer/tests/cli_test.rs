//! `cornet-trainer test`: feature extraction from a preprocessed tensor, end to end.

use crate::util::{
    fixture, read_npz, run_test_command, stderr_of_failure, stdout_of_success, text,
};
use candle_core::{DType, Tensor};
use cornet_model::testing::relative_error;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Writes the fixture's input as the .npy that a user would pass.
fn input_npy(dir: &Path, fixture: &HashMap<String, Tensor>) -> PathBuf {
    let path = dir.join("input.npy");
    fixture["input"].write_npy(&path).unwrap();
    path
}

/// Writes one black 32 px image as `x.npy`, for runs whose input does not matter.
fn zeros_npy(dir: &Path) -> PathBuf {
    let path = dir.join("x.npy");
    Tensor::zeros((1, 3, 32, 32), DType::F32, &candle_core::Device::Cpu)
        .unwrap()
        .write_npy(&path)
        .unwrap();
    path
}

#[test]
fn all_taps_of_cornet_rt_match_pytorch() {
    let expected = read_npz("rt_eval.npz");
    let dir = tempfile::tempdir().unwrap();
    let input = input_npy(dir.path(), &expected);
    let out = dir.path().join("out");
    let run = run_test_command(
        "RT",
        &fixture("rt.pth"),
        &[
            "--input-npy",
            input.to_str().unwrap(),
            "--all-taps",
            "--batch-size",
            "1",
            "-o",
            out.to_str().unwrap(),
        ],
    );
    stdout_of_success(&run);
    let taps: HashMap<String, Tensor> = Tensor::read_npz(out.join("CORnet-RT_taps.npz"))
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(
        taps.len(),
        expected.len() - 1,
        "every tap and the logits, no input"
    );
    for (name, value) in &taps {
        let key = if name == "logits" {
            name.clone()
        } else {
            format!("tap/{name}")
        };
        let reference = &expected[&key];
        assert_eq!(value.dims(), reference.dims(), "{name}");
        let err = relative_error(value, reference);
        assert!(err <= 1e-4, "{name}: {err:.3e}");
    }
}

#[test]
fn one_layer_at_one_time_step_is_saved_flattened() {
    let expected = read_npz("s_mini_eval.npz");
    let dir = tempfile::tempdir().unwrap();
    // The input as a user writes it, and as one array of an .npz (`archive.npz:name`, the
    // fixture's own), which is read as its own .npy would be.
    let npy = input_npy(dir.path(), &expected).display().to_string();
    let entry = format!("{}:input", fixture("s_mini_eval.npz").display());
    for (k, input) in [npy, entry].iter().enumerate() {
        let out = dir.path().join(format!("out{k}"));
        let run = run_test_command(
            "S",
            &fixture("s_mini.pth"),
            &[
                "--input-npy",
                input,
                "--layer",
                "V4",
                "--sublayer",
                "output",
                "--time-step",
                "3",
                "-o",
                out.to_str().unwrap(),
            ],
        );
        stdout_of_success(&run);
        let feats = Tensor::read_npy(out.join("CORnet-S_V4_output_feats.npy")).unwrap();
        let reference = expected["tap/V4.output.3"].flatten_from(1).unwrap();
        assert_eq!(feats.dims(), reference.dims(), "{input}");
        assert!(relative_error(&feats, &reference) <= 1e-4, "{input}");
    }
}

#[test]
fn bad_input_gives_a_clear_error_and_no_backtrace() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (dir.path().join("nope.pth"), "nope.pth"),
        (
            fixture("not_an_image.jpg"),
            "not_an_image.jpg: not a checkpoint",
        ),
        (
            fixture("s_mini.pth"),
            "these are CORnet-S weights, not CORnet-Z",
        ),
    ];
    let input = zeros_npy(dir.path());
    let (input, out) = (input.to_str().unwrap(), dir.path().to_str().unwrap());
    for (weights, expected) in cases {
        let run = run_test_command("Z", &weights, &["--input-npy", input, "-o", out]);
        let stderr = text(&run.stderr);
        assert!(!run.status.success(), "{weights:?} should fail");
        assert!(stderr.contains(expected), "{weights:?}: {stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("backtrace"),
            "{stderr}"
        );
    }

    let run = run_test_command(
        "Z",
        &fixture("z.pth"),
        &[
            "--input-npy",
            input,
            "--layer",
            "V4",
            "--sublayer",
            "output",
            "--time-step",
            "2",
            "-o",
            out,
        ],
    );
    let stderr = stderr_of_failure(&run);
    assert!(stderr.contains("no tap `V4.output.2`"), "{stderr}");
}

#[test]
fn features_of_an_image_folder_match_the_original_run_py_test() {
    let expected = read_npz("images_expected.npz");
    let dir = tempfile::tempdir().unwrap();
    let images = fixture("images");
    for (layer, sublayer, key) in [
        ("decoder", "avgpool", "z/decoder_avgpool"),
        ("IT", "output", "z/IT_output"),
    ] {
        let out = dir.path().join(layer);
        let run = run_test_command(
            "Z",
            &fixture("z.pth"),
            &[
                "--data-path",
                images.to_str().unwrap(),
                "--layer",
                layer,
                "--sublayer",
                sublayer,
                "-o",
                out.to_str().unwrap(),
            ],
        );
        stdout_of_success(&run);
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

/// An unreadable image is named, and the failed extraction leaves no file_list.txt in `-o`: a
/// list of rows without the features they are rows of (it used to be written before the first
/// image was read).
#[test]
fn an_unreadable_image_in_the_folder_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir(&images).unwrap();
    std::fs::copy(fixture("images/china.jpg"), images.join("a.jpg")).unwrap();
    std::fs::copy(fixture("truncated.jpg"), images.join("b.jpg")).unwrap();
    let out = dir.path().join("out");
    let run = run_test_command(
        "Z",
        &fixture("z.pth"),
        &[
            "--data-path",
            images.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
    );
    let stderr = stderr_of_failure(&run);
    assert!(stderr.contains("b.jpg: not a readable image"), "{stderr}");
    assert!(!out.join("file_list.txt").exists());
}

#[test]
fn an_extraction_beyond_the_machine_memory_is_refused_before_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let images = fixture("images");
    // A forward pass of 100,000 px images: terabytes.
    let run = run_test_command(
        "Z",
        &fixture("z.pth"),
        &[
            "--data-path",
            images.to_str().unwrap(),
            "--imsize",
            "100000",
            "-o",
            out.to_str().unwrap(),
        ],
    );
    let stderr = stderr_of_failure(&run);
    assert!(
        stderr.contains("5 images") && stderr.contains("lower --imsize"),
        "{stderr}"
    );
    assert!(!out.exists(), "nothing is written for a refused extraction");

    // Every area output of 10^8 time steps kept for one small image: hundreds of GB.
    let input = zeros_npy(dir.path());
    let run = run_test_command(
        "RT",
        &fixture("rt.pth"),
        &[
            "--input-npy",
            input.to_str().unwrap(),
            "--all-taps",
            "--times",
            "100000000",
            "-o",
            out.to_str().unwrap(),
        ],
    );
    let stderr = stderr_of_failure(&run);
    assert!(stderr.contains("--times (100000000)"), "{stderr}");
}
