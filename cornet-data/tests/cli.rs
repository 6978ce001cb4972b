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

#[test]
fn zero_sizes_and_counts_are_refused_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("train");
    write_image_folder(&src, 2, 2, 16, 3).unwrap();
    let src = src.to_str().unwrap();
    let out = dir.path().join("shards");
    let out = out.to_str().unwrap();
    for (args, flag) in [
        (
            &["bench", "--data", src, "--batch-size", "0"][..],
            "--batch-size",
        ),
        (&["bench", "--data", src, "--epochs", "0"][..], "--epochs"),
        (
            &["pack", "--src", src, "--out", out, "--max-side", "0"][..],
            "--max-side",
        ),
    ] {
        let run = cornet_data(args);
        let stderr = text(&run.stderr);
        assert!(!run.status.success(), "{args:?}");
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(!text(&run.stdout).contains("NaN"), "{args:?}");
    }
    assert!(
        !dir.path().join("shards").exists(),
        "nothing packed at size 0"
    );
}

#[test]
fn verify_checks_the_shards_against_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("train");
    write_image_folder(&src, 2, 2, 16, 3).unwrap();
    let out = dir.path().join("shards");
    let (src, out) = (src.to_str().unwrap(), out.to_str().unwrap());
    assert!(cornet_data(&["pack", "--src", src, "--out", out])
        .status
        .success());
    let verified = cornet_data(&["verify", out]);
    assert!(verified.status.success(), "{}", text(&verified.stderr));
    assert!(
        text(&verified.stdout).contains("4 samples"),
        "{}",
        text(&verified.stdout)
    );

    let shard = dir.path().join("shards/train-000000.tar");
    let mut bytes = std::fs::read(&shard).unwrap();
    bytes[600] ^= 0xff; // in the first image's data
    std::fs::write(&shard, bytes).unwrap();
    let failed = cornet_data(&["verify", out]);
    let stderr = text(&failed.stderr);
    assert!(!failed.status.success());
    assert!(
        stderr.contains("train-000000.tar") && stderr.contains("SHA-256"),
        "{stderr}"
    );
}

#[test]
fn generate_writes_an_image_folder_of_jpegs_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("photos");
    let out_arg = out.to_str().unwrap();
    let args = [
        "generate",
        "--out",
        out_arg,
        "--classes",
        "3",
        "--per-class",
        "2",
        "--width",
        "64",
        "--height",
        "48",
    ];
    let stdout = stdout_of_success(&cornet_data(&args));
    assert!(stdout.contains("6 JPEGs of 64x48 in 3 classes"), "{stdout}");
    let first = out.join("class_02/0001.jpg");
    let image = image::open(&first).unwrap();
    assert_eq!((image.width(), image.height()), (64, 48));
    assert_eq!(
        image::ImageFormat::from_path(&first).unwrap(),
        image::ImageFormat::Jpeg
    );

    let again = cornet_data(&args);
    assert!(!again.status.success());
    assert!(text(&again.stderr).contains("already holds files"));

    // The same seed, the same bytes.
    let twin = dir.path().join("twin");
    let twin_args = args.map(|a| {
        if a == out_arg {
            twin.to_str().unwrap()
        } else {
            a
        }
    });
    stdout_of_success(&cornet_data(&twin_args));
    let relative = "class_02/0001.jpg";
    assert_eq!(
        std::fs::read(out.join(relative)).unwrap(),
        std::fs::read(twin.join(relative)).unwrap()
    );
}
