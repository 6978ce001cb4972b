//! Experiment configs: the shipped files, overrides, and every kind of error.

use crate::util::{run, stderr_of_failure};
use cornet_trainer::config::{Config, Override};
use std::path::{Path, PathBuf};

fn configs_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../configs")
}

fn parse(text: &str, overrides: &[&str]) -> Result<Config, String> {
    let overrides: Vec<Override> = overrides.iter().map(|s| Override::set(*s)).collect();
    Config::parse(text, Path::new("x.yaml"), &overrides).map_err(|e| e.to_string())
}

const MINIMAL: &str = "\
model:
  arch: S
data:
  train: /data/train
optim:
  lr: 0.1
  step_size: 20
train:
  epochs: 43
  batch_size: 256
output:
  path: runs/s
";

#[test]
fn every_shipped_config_loads() {
    let expected = [
        ("cornet_z.yaml", "Z", 25, 0.01, 10.0, 1),
        ("cornet_rt.yaml", "RT", 25, 0.1, 10.0, 2),
        ("cornet_r.yaml", "R", 25, 0.1, 10.0, 2),
        ("cornet_s.yaml", "S", 43, 0.1, 20.0, 2),
    ];
    for (file, arch, epochs, lr, step, ngpus) in expected {
        let c = Config::load(&configs_dir().join(file), &[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (
                c.model.arch.as_str(),
                c.train.epochs,
                c.optim.lr,
                c.optim.step_size,
                c.dist.ngpus
            ),
            (arch, epochs, lr, step, ngpus),
            "{file}"
        );
        assert_eq!(
            (c.train.batch_size, c.optim.momentum, c.optim.weight_decay),
            (256, 0.9, 1e-4)
        );
        assert_eq!((c.data.workers, c.data.image_size), (20, 224));
    }
    let smoke = Config::load(&configs_dir().join("smoke.yaml"), &[]).unwrap();
    assert!(smoke.data.synthetic.is_some());
    // CORnet-S normalizes over the original's per-replica 128 images on any number of ranks.
    let s = Config::load(&configs_dir().join("cornet_s.yaml"), &[]).unwrap();
    assert_eq!(s.model.bn_images, Some(128));
}

/// `model.bn_images` is CORnet-S's alone, and its groups must tile the global batch; unset,
/// it leaves the resolved config (and so the hash of existing runs) as it was.
#[test]
fn batch_norm_groups_are_checked_against_the_batch_and_the_model() {
    assert_eq!(parse(MINIMAL, &[]).unwrap().model.bn_images, None);
    assert!(!parse(MINIMAL, &[]).unwrap().to_yaml().contains("bn_images"));
    let c = parse(MINIMAL, &["model.bn_images=64"]).unwrap();
    assert_eq!(c.model.bn_images, Some(64));
    assert_eq!(
        parse(MINIMAL, &["model.bn_images=96"]).unwrap_err(),
        "--set model.bn_images: must divide train.batch_size (256): groups of 96 images \
         cannot tile it"
    );
    let z = MINIMAL.replace("arch: S", "arch: Z\n  bn_images: 128");
    assert_eq!(
        parse(&z, &[]).unwrap_err(),
        "x.yaml:3: model.bn_images: applies to CORnet-S only, the one CORnet with BatchNorm"
    );
}

#[test]
fn defaults_fill_what_is_left_out() {
    let c = parse(MINIMAL, &[]).unwrap();
    assert_eq!(c.model.widths, [64, 128, 256, 512]);
    assert_eq!((c.model.times, c.model.num_classes), (5, 1000));
    assert_eq!((c.optim.momentum, c.optim.gamma), (0.9, 0.1));
    assert_eq!((c.output.save_val_epochs, c.output.keep), (0.5, 3));
    assert!(c.data.skip_bad_images);
}

#[test]
fn set_overrides_any_field() {
    let c = parse(
        MINIMAL,
        &[
            "optim.lr=0.05",
            "model.widths=[8, 16, 32, 64]",
            "dist.ngpus=2",
        ],
    )
    .unwrap();
    assert_eq!(c.optim.lr, 0.05);
    assert_eq!(c.model.widths, [8, 16, 32, 64]);
    assert_eq!(c.dist.ngpus, 2);
}

#[test]
fn errors_name_the_file_line_and_key() {
    let typo = MINIMAL.replace("  lr: 0.1", "  lr: 0.1\n  momentun: 0.9");
    let err = parse(&typo, &[]).unwrap_err();
    assert!(
        err.starts_with("x.yaml:7: optim.momentun: unknown field `momentun`"),
        "{err}"
    );

    let wrong_type = MINIMAL.replace("epochs: 43", "epochs: many");
    let err = parse(&wrong_type, &[]).unwrap_err();
    assert!(
        err.starts_with("x.yaml:9: train.epochs: invalid type"),
        "{err}"
    );

    let impossible = MINIMAL.replace("lr: 0.1", "lr: -1");
    assert_eq!(
        parse(&impossible, &[]).unwrap_err(),
        "x.yaml:6: optim.lr: must be a positive number"
    );

    let huge_synthetic = parse(
        MINIMAL,
        &["data.synthetic={classes: 100000000, train_per_class: 1, val_per_class: 0, size: 32}"],
    )
    .unwrap_err();
    assert!(
        huge_synthetic.starts_with("--set data.synthetic: generates at most 100000 images")
            && huge_synthetic.contains("here 100000000"),
        "{huge_synthetic}"
    );

    let zero_batch = MINIMAL.replace("batch_size: 256", "batch_size: 0");
    assert_eq!(
        parse(&zero_batch, &[]).unwrap_err(),
        "x.yaml:10: train.batch_size: must be at least 1"
    );

    let widths = MINIMAL.replace("arch: S", "arch: S\n  widths: [1, 2]");
    assert_eq!(
        parse(&widths, &[]).unwrap_err(),
        "x.yaml:3: model.widths: must be 4 positive channel counts (V1, V2, V4, IT)"
    );

    let arch = MINIMAL.replace("arch: S", "arch: Q");
    assert!(parse(&arch, &[])
        .unwrap_err()
        .starts_with("x.yaml:2: model.arch: unknown CORnet model `Q`"));

    let missing = MINIMAL.replace("  train: /data/train\n", "");
    let err = parse(&missing, &[]).unwrap_err();
    assert!(err.contains("missing field `train`"), "{err}");

    let err = parse("model:\n  arch: Z\n widths: [1\n", &[]).unwrap_err();
    assert!(err.starts_with("x.yaml:3: not valid YAML"), "{err}");

    let err = Config::load(Path::new("/nonexistent/c.yaml"), &[])
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("/nonexistent/c.yaml: "), "{err}");
}

#[test]
fn bad_overrides_name_the_flag() {
    assert_eq!(
        parse(MINIMAL, &["optim.lr"]).unwrap_err(),
        "--set optim.lr: expected key.path=value"
    );
    let err = parse(MINIMAL, &["optim.lrr=1"]).unwrap_err();
    assert!(
        err.starts_with("--set optim.lrr: unknown field `lrr`"),
        "{err}"
    );
    let err = parse(MINIMAL, &["train.epochs=x"]).unwrap_err();
    assert!(err.starts_with("--set train.epochs: invalid type"), "{err}");
    let err = parse(MINIMAL, &["model.arch.x=1"]).unwrap_err();
    assert_eq!(err, "--set model.arch.x: `model.arch` is not a section");
    // An impossible value from a flag (`--lr 0` sets optim.lr) is the flag's, not a line's.
    let err = parse(MINIMAL, &["optim.lr=0"]).unwrap_err();
    assert!(err.starts_with("--set optim.lr: "), "{err}");
    // One of the original's flags is named itself, with the key it sets; the last flag to
    // set a key takes the blame.
    let overrides = [
        Override::set("optim.lr=0.1"),
        Override::by_flag("--lr", "optim.lr", -1),
    ];
    let err = Config::parse(MINIMAL, Path::new("x.yaml"), &overrides)
        .unwrap_err()
        .to_string();
    assert_eq!(err, "--lr: optim.lr: must be a positive number");
}

#[test]
fn the_resolved_config_round_trips_and_hashes_stably() {
    let c = parse(MINIMAL, &[]).unwrap();
    let again = parse(&c.to_yaml(), &[]).unwrap();
    assert_eq!(c, again);
    assert_eq!(c.hash(), again.hash());
    let other = parse(MINIMAL, &["optim.lr=0.2"]).unwrap();
    assert_ne!(c.hash(), other.hash());
    // A run folder moved elsewhere is the same run.
    let moved = parse(MINIMAL, &["output.path=/elsewhere/run"]).unwrap();
    assert_eq!(c.hash(), moved.hash());
}

/// What a run shows (`output.log_every_*`, `output.val_at_start`) is checked like any key,
/// and left out of the resolved config at its default and of the hash always: a run written
/// before these keys existed, or shown otherwise, resumes.
#[test]
fn what_a_run_shows_is_checked_and_not_part_of_what_it_trains() {
    let c = parse(MINIMAL, &[]).unwrap();
    let output = &c.output;
    assert_eq!(
        (
            output.log_every_steps,
            output.log_every_secs,
            output.val_at_start
        ),
        (100, 60, true)
    );
    let yaml = c.to_yaml();
    assert!(
        !yaml.contains("log_every") && !yaml.contains("val_at_start"),
        "{yaml}"
    );
    let shown = [
        "output.log_every_steps=10",
        "output.log_every_secs=0",
        "output.val_at_start=false",
    ];
    let shown = parse(MINIMAL, &shown).unwrap();
    assert_eq!(parse(&shown.to_yaml(), &[]).unwrap(), shown);
    assert_eq!(shown.hash(), c.hash());
    for (assignment, blamed) in [
        (
            "output.log_every_steps=-1",
            "--set output.log_every_steps: ",
        ),
        (
            "output.log_every_secs=often",
            "--set output.log_every_secs: ",
        ),
        ("output.val_at_start=maybe", "--set output.val_at_start: "),
    ] {
        let err = parse(MINIMAL, &[assignment]).unwrap_err();
        assert!(err.starts_with(blamed), "{assignment}: {err}");
    }
    let typo = MINIMAL.replace("  path: runs/s", "  path: runs/s\n  log_every_step: 5");
    let err = parse(&typo, &[]).unwrap_err();
    assert!(err.contains("log_every_step"), "{err}");
}

/// A single process on the CPU takes the whole batch: the shipped ImageNet configs' training
/// bounds against the 24 GiB machine where CORnet-S (batch 256, 224 px) was killed near 24 GB
/// after its first validation instead of being refused at the start. R, RT and S cannot fit
/// there; Z (measured at 8.25 GB) can.
#[test]
fn the_shipped_configs_bounds_refuse_what_a_24_gib_machine_cannot_train() {
    for (file, fits) in [
        ("cornet_z.yaml", true),
        ("cornet_r.yaml", false),
        ("cornet_rt.yaml", false),
        ("cornet_s.yaml", false),
    ] {
        let c = Config::load(&configs_dir().join(file), &[]).unwrap_or_else(|e| panic!("{e}"));
        let floats = c
            .model_config()
            .min_training_floats(c.data.image_size, c.train.batch_size);
        let gib = 4.0 * floats / f64::from(1u32 << 30);
        assert_eq!(gib < 24.0, fits, "{file}: {gib:.1} GiB");
    }
}

/// A data folder named on the command line must hold the user's data: with `--data-path` (or
/// `--set data.train=...`) a config's `data.synthetic` generates nothing, where it used to
/// write a generated image set into the folder the user named.
#[test]
fn a_data_folder_named_on_the_command_line_is_never_generated_into() {
    let smoke = configs_dir().join("smoke.yaml");
    for overrides in [
        vec![
            Override::by_flag("--data-path", "data.train", "/nope/train"),
            Override::by_flag("--data-path", "data.val", "/nope/val"),
        ],
        vec![Override::set("data.train=/nope/train")],
    ] {
        let c = Config::load(&smoke, &overrides).unwrap_or_else(|e| panic!("{e}"));
        assert!(c.data.synthetic.is_none(), "{overrides:?}");
    }
    let unchanged = Config::load(&smoke, &[Override::set("train.epochs=1")]).unwrap();
    assert!(unchanged.data.synthetic.is_some());
}

/// `--data-path` with a config that generates its data (smoke.yaml) names the user's data: a
/// missing folder is an error naming it, and nothing is generated there.
#[test]
fn a_missing_data_path_is_an_error_not_a_place_to_generate_into() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let smoke = configs_dir().join("smoke.yaml");
    let out = dir.path().join("run");
    let run = run(&[
        "--config",
        smoke.to_str().unwrap(),
        "--data-path",
        missing.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    let stderr = stderr_of_failure(&run);
    assert!(
        stderr.contains(&format!("{}", missing.join("train").display())),
        "{stderr}"
    );
    assert!(
        !missing.exists(),
        "generated into the folder the user named"
    );
}
