//! `data.format: shards`: a run on packed shards trains and validates exactly as the same run
//! on the ImageFolder they were packed from.

use crate::util::{final_weights, stderr_of_failure, stdout_of_success, train, write_config};
use cornet_data::pack::{pack, PackOptions};
use cornet_data::progress::NoProgress;
use cornet_data::synthetic::write_image_folder;
use cornet_data::ImageFolder;
use std::collections::BTreeMap;
use std::path::Path;

fn pack_folder(src: &Path, out: &Path) {
    let options = PackOptions {
        out: out.to_owned(),
        prefix: "part".into(),
        shard_bytes: 64 * 1024,
        reencode: None,
    };
    pack(&ImageFolder::open(src).unwrap(), &options, &NoProgress).unwrap();
}

/// One epoch on `$DATA/train$SUFFIX` read as `$FORMAT`, validated on `$DATA/val$SUFFIX`.
const ONE_EPOCH: &str = "\
model: {arch: Z, num_classes: 3, widths: [8, 16, 16, 16]}
data: {train: $DATA/train$SUFFIX, val: $DATA/val$SUFFIX, format: $FORMAT, workers: 2, image_size: 32, prefetch: 2}
optim: {lr: 0.02, step_size: 2}
train: {epochs: 1, batch_size: 6, seed: 5}
output: {path: $OUT, save_val_epochs: 1, save_model_epochs: 1, save_model_secs: 0, save_model_steps: 0, keep: 1}
";

/// Trains one epoch on `data/train{suffix}` with validation on `data/val{suffix}`; returns
/// the final weights.
fn train_one_epoch(dir: &Path, format: &str, suffix: &str) -> BTreeMap<String, Vec<u8>> {
    let name = format!("run-{format}");
    let yaml = ONE_EPOCH
        .replace("$FORMAT", format)
        .replace("$SUFFIX", suffix);
    stdout_of_success(&train(&write_config(dir, &name, &yaml), &[]));
    let out = dir.join(name);
    let records = std::fs::read_to_string(out.join("records.jsonl")).unwrap();
    assert!(records.contains("\"phase\":\"val\""), "{records}");
    final_weights(&out)
}

#[test]
fn training_on_shards_equals_training_on_the_image_folder() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_image_folder(&data.join("train"), 3, 6, 40, 1).unwrap();
    write_image_folder(&data.join("val"), 3, 2, 40, 2).unwrap();
    pack_folder(&data.join("train"), &data.join("train-shards"));
    pack_folder(&data.join("val"), &data.join("val-shards"));

    let from_folder = train_one_epoch(dir.path(), "imagefolder", "");
    let from_shards = train_one_epoch(dir.path(), "shards", "-shards");
    assert!(!from_folder.is_empty());
    assert_eq!(
        from_shards, from_folder,
        "the same batches, the same weights"
    );
}

#[test]
fn an_image_folder_given_as_shards_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_image_folder(&data.join("train"), 3, 2, 40, 1).unwrap();
    write_image_folder(&data.join("val"), 3, 1, 40, 2).unwrap();
    const SHARDS_THAT_ARE_NOT: &str = "\
model: {arch: Z, num_classes: 3}
data: {train: $DATA/train, format: shards}
optim: {lr: 0.1, step_size: 1}
train: {epochs: 1, batch_size: 2}
output: {path: $OUT}
";
    let config = write_config(dir.path(), "run", SHARDS_THAT_ARE_NOT);
    let run = train(&config, &[]);
    let stderr = stderr_of_failure(&run);
    assert!(
        stderr.contains("data.train") && stderr.contains("no .tar shards"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
