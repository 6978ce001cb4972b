//! `data.format: shards`: a run on packed shards trains and validates exactly as the same run
//! on the ImageFolder they were packed from.

use candle_core::Device;
use cornet_data::pack::{pack, PackOptions};
use cornet_data::synthetic::write_image_folder;
use cornet_data::ImageFolder;
use cornet_model::testing::tensor_bytes;
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

fn pack_folder(src: &Path, out: &Path) {
    let options = PackOptions {
        out: out.to_owned(),
        prefix: "part".into(),
        shard_bytes: 64 * 1024,
        reencode: None,
    };
    pack(&ImageFolder::open(src).unwrap(), &options, |_| {}).unwrap();
}

/// Trains one epoch on `data/train{suffix}` with validation on `data/val{suffix}`.
fn train(dir: &Path, format: &str, suffix: &str) -> HashMap<String, Vec<u8>> {
    let data = dir.join("data");
    let out = dir.join(format!("run-{format}"));
    let config = dir.join(format!("{format}.yaml"));
    std::fs::write(
        &config,
        format!(
            "model: {{arch: Z, num_classes: 3, widths: [8, 16, 16, 16]}}
data: {{train: {train}, val: {val}, format: {format}, workers: 2, image_size: 32, prefetch: 2}}
optim: {{lr: 0.02, step_size: 2}}
train: {{epochs: 1, batch_size: 6, seed: 5}}
output: {{path: {out}, save_val_epochs: 1, save_model_epochs: 1, save_model_secs: 0, save_model_steps: 0, keep: 1}}
",
            train = data.join(format!("train{suffix}")).display(),
            val = data.join(format!("val{suffix}")).display(),
            out = out.display()
        ),
    )
    .unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_cornet-trainer"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let records = std::fs::read_to_string(out.join("records.jsonl")).unwrap();
    assert!(records.contains("\"phase\":\"val\""), "{records}");
    candle_core::safetensors::load(out.join("final.safetensors"), &Device::Cpu)
        .unwrap()
        .into_iter()
        .map(|(name, t)| (name, tensor_bytes(&t)))
        .collect()
}

#[test]
fn training_on_shards_equals_training_on_the_image_folder() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_image_folder(&data.join("train"), 3, 6, 40, 1).unwrap();
    write_image_folder(&data.join("val"), 3, 2, 40, 2).unwrap();
    pack_folder(&data.join("train"), &data.join("train-shards"));
    pack_folder(&data.join("val"), &data.join("val-shards"));

    let from_folder = train(dir.path(), "imagefolder", "");
    let from_shards = train(dir.path(), "shards", "-shards");
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
    let config = dir.path().join("c.yaml");
    std::fs::write(
        &config,
        format!(
            "model: {{arch: Z, num_classes: 3}}
data: {{train: {}, format: shards}}
optim: {{lr: 0.1, step_size: 1}}
train: {{epochs: 1, batch_size: 2}}
output: {{path: {}}}
",
            data.join("train").display(),
            dir.path().join("run").display()
        ),
    )
    .unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_cornet-trainer"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(
        stderr.contains("data.train") && stderr.contains("no .tar shards"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
