//! Shards that do not hold what their index or manifest says are refused, naming the shard and
//! the sample, never read as other samples or other labels.

use cornet_data::pack::{pack, PackOptions};
use cornet_data::progress::NoProgress;
use cornet_data::shards::index::sidecar_path;
use cornet_data::shards::manifest::Reencode;
use cornet_data::synthetic::write_image_folder;
use cornet_data::{Dataset, ImageFolder, Shards};
use std::path::{Path, PathBuf};

/// `src` (3 classes of 2 PNGs of `side` pixels) packed into one shard,
/// `out/train-000000.tar`.
fn packed(dir: &Path, side: u32) -> PathBuf {
    let src = dir.join("src");
    write_image_folder(&src, 3, 2, side, 5).unwrap();
    let out = dir.join("shards");
    let options = PackOptions {
        out: out.clone(),
        prefix: "train".into(),
        shard_bytes: 1 << 30,
        reencode: None,
    };
    pack(&ImageFolder::open(&src).unwrap(), &options, &NoProgress).unwrap();
    out
}

/// A tar of `members` (name, data), as another tool would write it.
fn write_tar(path: &Path, members: &[(String, Vec<u8>)]) {
    let mut builder = tar::Builder::new(std::fs::File::create(path).unwrap());
    for (name, data) in members {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o444);
        builder.append_data(&mut header, name, &data[..]).unwrap();
    }
    builder.finish().unwrap();
}

/// Samples `<prefix><i>.jpg` (100 bytes) + `<prefix><i>.cls` for `labels`.
fn samples(prefix: &str, labels: &[usize]) -> Vec<(String, Vec<u8>)> {
    labels
        .iter()
        .enumerate()
        .flat_map(|(i, label)| {
            [
                (format!("{prefix}{i}.jpg"), vec![i as u8; 100]),
                (format!("{prefix}{i}.cls"), label.to_string().into_bytes()),
            ]
        })
        .collect()
}

fn open_error(dir: &Path) -> String {
    Shards::open(dir).unwrap_err().to_string()
}

#[test]
fn a_repeated_key_is_refused_naming_the_shard_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    // Sixteen samples all named `x`: read together they would be one sample.
    let shard = dir.path().join("dup-000000.tar");
    let members: Vec<_> = (0..16)
        .flat_map(|i| {
            [
                ("x.jpg".to_owned(), vec![i; 10]),
                ("x.cls".to_owned(), b"0".to_vec()),
            ]
        })
        .collect();
    write_tar(&shard, &members);
    let err = open_error(dir.path());
    assert!(
        err.contains("dup-000000.tar") && err.contains("duplicate file name x.jpg"),
        "{err}"
    );

    // A key that comes back after another sample is a second sample of the same name.
    let mut members = samples("a", &[0, 1]);
    members.extend(samples("a", &[1]));
    write_tar(&shard, &members);
    std::fs::remove_file(sidecar_path(&shard)).ok();
    let err = open_error(dir.path());
    assert!(
        err.contains("dup-000000.tar") && err.contains("duplicate key \"a0\""),
        "{err}"
    );
}

#[test]
fn an_edited_index_label_is_refused_when_the_sample_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let out = packed(dir.path(), 24);
    let idx = sidecar_path(&out.join("train-000000.tar"));
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&idx).unwrap()).unwrap();
    let key = index["samples"][0]["key"].as_str().unwrap().to_owned();
    assert_eq!(index["samples"][0]["label"], 0);
    index["samples"][0]["label"] = 2.into();
    std::fs::write(&idx, serde_json::to_vec(&index).unwrap()).unwrap();

    let shards = Shards::open(&out).unwrap();
    let err = shards.read(0).unwrap_err().to_string();
    assert!(
        err.contains("train-000000.tar")
            && err.contains(&format!("{key}.cls holds \"0\" but the index says label 2")),
        "{err}"
    );
    assert!(shards.read(1).is_ok(), "the other samples are as indexed");

    // An index pointing at another member is refused the same way.
    index["samples"][0]["label"] = 0.into();
    index["samples"][0]["offset"] = index["samples"][1]["offset"].clone();
    std::fs::write(&idx, serde_json::to_vec(&index).unwrap()).unwrap();
    let err = Shards::open(&out).unwrap().read(0).unwrap_err().to_string();
    assert!(
        err.contains("train-000000.tar") && err.contains("the member there is"),
        "{err}"
    );
}

#[test]
fn the_index_of_another_shard_of_the_same_size_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        dir.path().join("s-000000.tar"),
        dir.path().join("s-000001.tar"),
    );
    write_tar(&a, &samples("a", &[0, 1, 2]));
    write_tar(&b, &samples("b", &[2, 1, 0]));
    assert_eq!(
        std::fs::metadata(&a).unwrap().len(),
        std::fs::metadata(&b).unwrap().len()
    );
    Shards::open(dir.path()).unwrap();
    std::fs::copy(sidecar_path(&a), sidecar_path(&b)).unwrap();
    let err = open_error(dir.path());
    assert!(
        err.contains("s-000001.tar") && err.contains("the index of another shard"),
        "{err}"
    );
}

#[test]
fn a_tar_the_manifest_does_not_list_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = packed(dir.path(), 24);
    write_tar(&out.join("stray-000000.tar"), &samples("s", &[0]));
    let err = open_error(&out);
    assert!(
        err.contains("stray-000000.tar") && err.contains("not listed in manifest.json"),
        "{err}"
    );
}

#[test]
fn shards_differing_from_the_manifest_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    // Large images, so that the middle one lies beyond the 64 KiB at either end.
    let out = packed(dir.path(), 256);
    let shard = out.join("train-000000.tar");
    let bytes = std::fs::read(&shard).unwrap();
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sidecar_path(&shard)).unwrap()).unwrap();
    let middle = &index["samples"][3];
    let middle =
        (middle["offset"].as_u64().unwrap() + middle["len"].as_u64().unwrap() / 2) as usize;
    assert!(
        (64 << 10..bytes.len() - (64 << 10)).contains(&middle),
        "{middle} of {}",
        bytes.len()
    );

    // One byte changed in an image in the middle: the size and both ends are intact, so the
    // index (made at packing) is still trusted at open...
    let mut damaged = bytes.clone();
    damaged[middle] ^= 0xff;
    std::fs::write(&shard, &damaged).unwrap();
    Shards::open(&out).unwrap();
    // ... until a verification hashes the shard whole, and remembers it in the index.
    let err = Shards::verify(&out, &NoProgress).unwrap_err().to_string();
    assert!(
        err.contains("train-000000.tar") && err.contains("SHA-256"),
        "{err}"
    );
    let err = open_error(&out);
    assert!(err.contains("SHA-256"), "{err}");
    // An index made at open (the shard copied without its index) hashes the shard too.
    std::fs::remove_file(sidecar_path(&shard)).unwrap();
    let err = open_error(&out);
    assert!(err.contains("SHA-256"), "{err}");

    // A shard of another size than the manifest says is refused without reading it.
    std::fs::write(&shard, &bytes[..bytes.len() - 512]).unwrap();
    let err = open_error(&out);
    assert!(
        err.contains("train-000000.tar") && err.contains("manifest.json lists"),
        "{err}"
    );

    std::fs::write(&shard, &bytes).unwrap();
    std::fs::remove_file(sidecar_path(&shard)).unwrap();
    let verified = Shards::verify(&out, &NoProgress).unwrap();
    assert_eq!(verified.len(), 6);
}

#[test]
fn packed_images_are_named_by_their_format() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    write_image_folder(&src, 1, 2, 16, 1).unwrap();
    // A PNG under a JPEG name, as ImageNet has.
    let class = src.join("class_00");
    std::fs::rename(class.join("0001.png"), class.join("0001.JPEG")).unwrap();
    let out = dir.path().join("shards");
    let options = PackOptions {
        out: out.clone(),
        prefix: "p".into(),
        shard_bytes: 1 << 30,
        reencode: None,
    };
    pack(&ImageFolder::open(&src).unwrap(), &options, &NoProgress).unwrap();
    let mut archive = tar::Archive::new(std::fs::File::open(out.join("p-000000.tar")).unwrap());
    let names: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "class_00/0000.png",
            "class_00/0000.cls",
            "class_00/0001.png",
            "class_00/0001.cls"
        ]
    );

    let zero = PackOptions {
        out: dir.path().join("zero"),
        reencode: Some(Reencode {
            max_side: 0,
            quality: 90,
        }),
        ..options
    };
    let err = pack(&ImageFolder::open(&src).unwrap(), &zero, &NoProgress)
        .unwrap_err()
        .to_string();
    assert!(err.contains("1x1"), "{err}");
}
