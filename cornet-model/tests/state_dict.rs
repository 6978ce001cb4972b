//! Names, shapes and dtypes of the state dict, and weight I/O with its errors.

use crate::util::{checkpoint, fixture, read_weights};
use candle_core::{DType, Device, Tensor};
use cornet_model::{weights, Arch, Error, Model, ModelConfig};
use std::collections::HashMap;

/// A full-size model of each variant has exactly the keys, shapes and dtypes of the manifest
/// written from the PyTorch original, in the same order.
#[test]
fn full_size_models_match_the_manifest() {
    let manifest = std::fs::read_to_string(fixture("state_dict_manifest.tsv")).unwrap();
    let mut expected: HashMap<&str, Vec<String>> = HashMap::new();
    for line in manifest.lines().skip(1) {
        let fields: Vec<_> = line.split('\t').collect();
        let key = fields[1].strip_prefix("module.").unwrap();
        expected
            .entry(fields[0])
            .or_default()
            .push(format!("{key}\t{}\t{}", fields[2], fields[3]));
    }
    for arch in Arch::ALL {
        let model = Model::new(&ModelConfig::full(arch), &Device::Cpu, 0).unwrap();
        let ours: Vec<String> = model
            .store()
            .entries()
            .iter()
            .map(|e| {
                let shape: Vec<String> = e.var.dims().iter().map(|d| d.to_string()).collect();
                let shape = if shape.is_empty() {
                    "scalar".to_string()
                } else {
                    shape.join("x")
                };
                let dtype = match e.var.dtype() {
                    DType::F32 => "float32",
                    DType::I64 => "int64",
                    other => panic!("unexpected dtype {other:?}"),
                };
                format!("{}\t{shape}\t{dtype}", e.name)
            })
            .collect();
        let theirs = &expected[arch.name()];
        for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
            assert_eq!(a, b, "CORnet-{arch}, entry {i}");
        }
        assert_eq!(ours.len(), theirs.len(), "CORnet-{arch}: number of entries");
    }
}

#[test]
fn config_is_inferred_from_shapes() {
    let s = read_weights("s_mini.pth");
    let config = weights::infer_config(&s, None).unwrap();
    assert_eq!(config.arch, Arch::S);
    assert_eq!(config.widths, [8, 12, 16, 32]);
    assert_eq!(config.num_classes, 10);
    assert_eq!(config.s_times, [2, 4, 2]);

    let z = read_weights("z_mini_train_init.pth");
    let config = weights::infer_config(&z, None).unwrap();
    assert_eq!((config.arch, config.widths), (Arch::Z, [16, 32, 48, 64]));

    let rt = read_weights("rt.pth");
    assert_eq!(weights::infer_config(&rt, None).unwrap().arch, Arch::RT);
    assert_eq!(
        weights::infer_config(&rt, Some(Arch::R)).unwrap().arch,
        Arch::R
    );
    let err = weights::infer_config(&rt, Some(Arch::S))
        .unwrap_err()
        .to_string();
    assert!(err.contains("CORnet-RT weights, not CORnet-S"), "{err}");
}

#[test]
fn legacy_and_zip_checkpoints_hold_the_same_tensors() {
    let zip = read_weights("z.pth");
    let legacy = read_weights("z_legacy.pth");
    assert_eq!(zip.arch.as_deref(), Some("CORnet-Z"));
    assert_eq!(zip.tensors.len(), legacy.tensors.len());
    for (name, t) in &zip.tensors {
        let diff = (t - &legacy.tensors[name])
            .unwrap()
            .abs()
            .unwrap()
            .sum_all()
            .unwrap();
        assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0, "{name}");
    }
}

#[test]
fn safetensors_round_trip_keeps_every_entry() {
    let model = checkpoint("s_mini.pth", None);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.safetensors");
    weights::write_safetensors(&path, &model.store().state_dict().unwrap()).unwrap();
    let reloaded = Model::from_checkpoint(&path, None, None, &Device::Cpu).unwrap();
    assert_eq!(reloaded.config(), model.config());
    for (a, b) in model
        .store()
        .entries()
        .iter()
        .zip(reloaded.store().entries())
    {
        assert_eq!(a.name, b.name);
        assert_eq!(a.var.dtype(), b.var.dtype(), "{}", a.name);
        let a = a.var.as_tensor().to_dtype(DType::F64).unwrap();
        let b = b.var.as_tensor().to_dtype(DType::F64).unwrap();
        let diff = (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert_eq!(diff, 0.0);
    }
}

/// The fixtures' CORnet-Z (`z.pth`): widths (16, 32, 48, 64), 10 classes.
fn z_mini_config() -> ModelConfig {
    ModelConfig {
        widths: [16, 32, 48, 64],
        num_classes: 10,
        ..ModelConfig::full(Arch::Z)
    }
}

fn z_state() -> HashMap<String, Tensor> {
    read_weights("z.pth").tensors
}

fn load_error(tensors: HashMap<String, Tensor>) -> String {
    let model = Model::new(&z_mini_config(), &Device::Cpu, 0).unwrap();
    model.store().load(&tensors).unwrap_err().to_string()
}

#[test]
fn load_errors_name_the_key_and_both_shapes() {
    let mut missing = z_state();
    missing.remove("V4.conv.bias");
    assert_eq!(
        load_error(missing),
        "missing key `V4.conv.bias` (the model expects shape [48])"
    );

    let mut extra = z_state();
    extra.insert(
        "V4.conv.scale".into(),
        Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap(),
    );
    assert_eq!(
        load_error(extra),
        "unexpected key `V4.conv.scale` with shape [3]: the model has no such parameter or buffer"
    );

    let mut wrong = z_state();
    wrong.insert(
        "V2.conv.weight".into(),
        Tensor::zeros((32, 16, 5, 5), DType::F32, &Device::Cpu).unwrap(),
    );
    assert_eq!(
        load_error(wrong),
        "key `V2.conv.weight`: the model expects shape [32, 16, 3, 3], the weights have [32, 16, 5, 5]"
    );
}

#[test]
fn files_that_are_not_checkpoints_give_clear_errors() {
    let err = weights::read(&fixture("not_an_image.jpg")).unwrap_err();
    assert!(matches!(err, Error::NotACheckpoint { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("not_an_image.jpg: not a checkpoint"),
        "{err}"
    );

    let err = weights::read(&fixture("missing.pth")).unwrap_err();
    assert!(err.to_string().contains("missing.pth"), "{err}");
}

#[test]
fn truncated_checkpoints_are_refused_not_misread() {
    let dir = tempfile::tempdir().unwrap();
    for source in ["z.pth", "z_legacy.pth", "s_mini.pth"] {
        let bytes = std::fs::read(fixture(source)).unwrap();
        for keep in [bytes.len() / 3, bytes.len() - 100] {
            let path = dir.path().join(format!("cut_{keep}_{source}"));
            std::fs::write(&path, &bytes[..keep]).unwrap();
            let err = weights::read(&path).unwrap_err();
            assert!(
                matches!(err, Error::DamagedCheckpoint { .. }),
                "{source} cut to {keep} bytes: {err}"
            );
            assert!(err.to_string().contains(path.to_str().unwrap()), "{err}");
        }
    }
}

#[test]
fn module_prefix_is_stripped_from_any_format() {
    // `nn.DataParallel` names every key `module.<name>`; a bare (unnested) safetensors file
    // written that way loads like the published nested `.pth`.
    let state = read_weights("z.pth");
    let prefixed: Vec<_> = state
        .tensors
        .iter()
        .map(|(name, t)| (format!("module.{name}"), t.clone()))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("prefixed.safetensors");
    weights::write_safetensors(&path, &prefixed).unwrap();
    let model = Model::from_checkpoint(&path, None, None, &Device::Cpu).unwrap();
    assert_eq!(model.config(), &z_mini_config());
}
