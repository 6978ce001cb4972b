//! The `cornet-data` command: pack writes shards and a manifest (and finishes an interrupted
//! one), bench times a bounded while and ends with its figure, progress is told in plain lines
//! where stderr is no terminal, and bad input is a named error with no backtrace.

use crate::util::{cornet_data, files, stdout_of_success, text, train_folder};
use cornet_data::shards::manifest::{Manifest, UNFINISHED_MANIFEST_FILE};
use std::path::Path;

#[test]
fn pack_then_bench_the_shards() {
    let dir = tempfile::tempdir().unwrap();
    let (src, out) = train_folder(dir.path(), 2, 6, 40);
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
    let (src, out) = train_folder(dir.path(), 2, 2, 16);
    let src = src.to_str().unwrap();
    let out = out.to_str().unwrap();
    for (args, flag) in [
        (
            &["bench", "--data", src, "--batch-size", "0"][..],
            "--batch-size",
        ),
        (&["bench", "--data", src, "--epochs", "0"][..], "--epochs"),
        (&["bench", "--data", src, "--batches", "0"][..], "--batches"),
        (
            &["bench", "--data", src, "--seconds", "soon"][..],
            "--seconds",
        ),
        (
            &["bench", "--data", src, "--batches", "5", "--epochs", "1"][..],
            "--epochs",
        ),
        (
            &[
                "pack",
                "--src",
                src,
                "--out",
                out,
                "--progress-every",
                "never",
            ][..],
            "--progress-every",
        ),
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
    let (src, out) = train_folder(dir.path(), 2, 2, 16);
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

#[test]
fn bench_times_a_bounded_while_by_default_and_says_what() {
    let dir = tempfile::tempdir().unwrap();
    // 240 images: 120 batches of 2 a pass, more than the 100 timed by default.
    let (src, _) = train_folder(dir.path(), 3, 80, 16);
    let src = src.to_str().unwrap();
    let args = [
        "bench",
        "--data",
        src,
        "--batch-size",
        "2",
        "--image-size",
        "8",
    ];
    let run = cornet_data(&[&args[..], &["--progress-every", "0"]].concat());
    let stdout = stdout_of_success(&run);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines[0].starts_with("timed 200 images in 100 batches of 2 over ")
            && lines[0].contains("after 4 warm-up batches")
            && lines[0].contains("the training (random resized crop, flip) pipeline at 8 px")
            && lines[0].contains("2 workers")
            && lines[0].ends_with(&format!("ImageFolder {src} (240 images)")),
        "{}",
        lines[0]
    );
    let rate: f64 = lines[1]
        .strip_prefix("images_per_sec ")
        .unwrap()
        .parse()
        .unwrap();
    assert!(rate > 0.0);
    // The running figure, in lines: stderr is a pipe here.
    let stderr = text(&run.stderr);
    let timing: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("timing: "))
        .collect();
    assert_eq!(timing[0], "timing: 0/200 images", "{stderr}");
    assert!(timing.len() > 3, "{stderr}");
    for running in &timing[1..timing.len() - 1] {
        assert!(
            running.contains("/200 images (") && running.contains(" images/s, "),
            "{running}"
        );
    }
    assert!(
        timing.last().unwrap().starts_with("timing: 200 images in "),
        "{stderr}"
    );

    let seconds = cornet_data(&[&args[..], &["--seconds", "0.2", "--val"]].concat());
    let stdout = stdout_of_success(&seconds);
    assert!(stdout.contains(" over 0.2"), "{stdout}");
    assert!(stdout.contains("the validation (resize, center crop) pipeline"));
}

/// Whether `line` is `<what>: <count> <unit> in <seconds> s (<rate>/s)`, a task's last line.
fn is_summary(line: &str, what: &str, count: &str) -> bool {
    line.strip_prefix(&format!("{what}: {count} in "))
        .and_then(|rest| rest.split_once(" s ("))
        .is_some_and(|(seconds, rate)| seconds.parse::<f64>().is_ok() && rate.ends_with("/s)"))
}

#[test]
fn progress_is_told_in_lines_where_stderr_is_no_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let (src, out) = train_folder(dir.path(), 2, 6, 40);
    let (src, out) = (src.to_str().unwrap(), out.to_str().unwrap());

    // A long interval: a line when each task begins and one when it ends.
    let packed = cornet_data(&[
        "pack",
        "--src",
        src,
        "--out",
        out,
        "--progress-every",
        "600",
    ]);
    stdout_of_success(&packed);
    let stderr = text(&packed.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 4, "{stderr}");
    assert_eq!(lines[0], format!("listing {src}: 0/2 class folders"));
    assert!(
        is_summary(lines[1], &format!("listing {src}"), "2 class folders"),
        "{stderr}"
    );
    assert_eq!(lines[2], format!("packing into {out}: 0/12 images"));
    assert!(
        is_summary(lines[3], &format!("packing into {out}"), "12 images"),
        "{stderr}"
    );

    let verified = cornet_data(&["verify", out]);
    stdout_of_success(&verified);
    let stderr = text(&verified.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    let bytes = std::fs::metadata(Path::new(out).join("train-000000.tar"))
        .unwrap()
        .len();
    let size = format!("{:.1} KiB", bytes as f64 / 1024.0);
    assert_eq!(lines.len(), 2, "{stderr}");
    assert_eq!(lines[0], format!("verifying {out}: 0/{size}"));
    assert!(
        is_summary(lines[1], &format!("verifying {out}"), &size),
        "{stderr}"
    );
}

#[test]
fn the_same_pack_command_finishes_an_interrupted_pack() {
    let dir = tempfile::tempdir().unwrap();
    let (src, out) = train_folder(dir.path(), 2, 6, 40);
    let args = [
        "pack",
        "--src",
        src.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--shard-size",
        "16KiB",
    ];
    stdout_of_success(&cornet_data(&args));
    let whole = files(&out);

    // What a pack killed while writing the third shard leaves: two shards listed as finished
    // in the unfinished manifest, the third cut short, no manifest.
    let manifest = Manifest::load(&out).unwrap().unwrap();
    assert!(manifest.shards.len() > 3, "{:?}", manifest.shards);
    let unfinished = Manifest {
        shards: manifest.shards[..2].to_vec(),
        ..manifest.clone()
    };
    unfinished.save_unfinished(&out).unwrap();
    std::fs::remove_file(out.join("manifest.json")).unwrap();
    let third = out.join(&manifest.shards[2].file);
    std::fs::write(&third, &std::fs::read(&third).unwrap()[..3000]).unwrap();
    std::fs::remove_file(third.with_extension("idx")).unwrap();
    for later in &manifest.shards[3..] {
        std::fs::remove_file(out.join(&later.file)).unwrap();
        std::fs::remove_file(out.join(&later.file).with_extension("idx")).unwrap();
    }

    let resumed = stdout_of_success(&cornet_data(&args));
    assert!(
        resumed.contains("12 images of 2 classes")
            && resumed.contains("(2 of them kept from an interrupted run)"),
        "{resumed}"
    );
    assert_eq!(files(&out), whole);
    assert!(!out.join(UNFINISHED_MANIFEST_FILE).exists());

    let again = stdout_of_success(&cornet_data(&args));
    assert!(again.starts_with("already packed: 12 images"), "{again}");
    assert_eq!(files(&out), whole);
}
