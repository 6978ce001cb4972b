//! The `cornet-data` command: pack writes shards and a manifest, bench ends with its figure,
//! and bad input is a named error with no backtrace.

use crate::util::{cornet_data, stdout_of_success, text};
use cornet_data::synthetic::write_image_folder;

#[test]
fn pack_then_bench_the_shards() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("train");
    write_image_folder(&src, 2, 6, 40, 3).unwrap();
    let out = dir.path().join("shards");
    let (src, out) = (src.to_str().unwrap(), out.to_str().unwrap());

    let packed = cornet_data(&["pack", "--src", src, "--out", out, "--shard-size", "16KiB"]);
    assert!(stdout_of_success(&packed).contains("12 images of 2 classes"));
    assert!(dir.path().join("shards/train-000000.tar").is_file());
    assert!(dir.path().join("shards/manifest.json").is_file());

    for data in [src, out] {
        let bench = cornet_data(&[
            "bench",
            "--data",
            data,
            "--batch-size",
            "4",
            "--epochs",
            "1",
            "--image-size",
            "32",
        ]);
        let stdout = stdout_of_success(&bench);
        let last = stdout.lines().last().unwrap();
        let rate: f64 = last
            .strip_prefix("images_per_sec ")
            .unwrap()
            .parse()
            .unwrap();
        assert!(rate > 0.0, "{stdout}");
    }

    let again = cornet_data(&["pack", "--src", src, "--out", out]);
    assert!(!again.status.success());
    assert!(text(&again.stderr).contains("already holds shards"));
}

#[test]
fn bad_input_is_named_without_a_backtrace() {
    for (args, expected) in [
        (
            &["pack", "--src", "/no/such/folder", "--out", "/tmp/x"][..],
            "/no/such/folder",
        ),
        (&["bench", "--data", "/no/such/data"][..], "/no/such/data"),
        (
            &["pack", "--src", "a", "--out", "b", "--shard-size", "lots"][..],
            "--shard-size",
        ),
        (
            &["pack", "--src", "a", "--out", "b", "--quality", "80"][..],
            "--max-side",
        ),
    ] {
        let run = cornet_data(args);
        let stderr = text(&run.stderr);
        assert!(!run.status.success(), "{args:?}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}
