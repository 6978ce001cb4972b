//! Shards: ImageFolder -> pack -> shards -> loader gives the same samples and labels; shards
//! of Python's webdataset are read; cut or inconsistent shards are named.

use crate::util::webdataset_shard;
use cornet_data::pack::{pack, PackOptions};
use cornet_data::progress::NoProgress;
use cornet_data::shards::index::sidecar_path;
use cornet_data::shards::manifest::{Manifest, Reencode};
use cornet_data::synthetic::write_image_folder;
use cornet_data::{Batch, Dataset, ImageFolder, Loader, LoaderOptions, Sampler, Shards, Transform};
use sha2::{Digest, Sha256};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn packed(dir: &Path, shard_bytes: u64, reencode: Option<Reencode>) -> (ImageFolder, PathBuf) {
    let src = dir.join("src");
    write_image_folder(&src, 3, 5, 40, 2).unwrap();
    let folder = ImageFolder::open(&src).unwrap();
    let out = dir.join("shards");
    let options = PackOptions {
        out: out.clone(),
        prefix: "train".into(),
        shard_bytes,
        reencode,
    };
    pack(&folder, &options, &NoProgress).unwrap();
    (folder, out)
}

fn train_epoch<D: Dataset + 'static>(dataset: D) -> Vec<Batch> {
    let loader = Loader::new(
        dataset,
        LoaderOptions {
            transform: Transform::Train { size: 24 },
            workers: 2,
            prefetch: 2,
            skip_bad_images: false,
            seed: 4,
        },
    );
    let sampler = Sampler::training(loader.dataset().len(), 4, 0, 1, 1).unwrap();
    loader
        .epoch(1, sampler.batches(1, 0))
        .map(Result::unwrap)
        .collect()
}

#[test]
fn packed_shards_give_the_image_folders_samples_and_batches() {
    let dir = tempfile::tempdir().unwrap();
    // About three images per shard: several shards, samples found across them.
    let (folder, out) = packed(dir.path(), 3 * 4096, None);
    let shards = Shards::open(&out).unwrap();
    assert_eq!(shards.len(), folder.len());
    assert_eq!(shards.classes(), folder.classes());
    for i in 0..folder.len() {
        assert_eq!(
            shards.read(i).unwrap(),
            folder.read(i).unwrap(),
            "sample {i}"
        );
        assert_eq!(shards.label(i), folder.label(i), "label {i}");
    }
    assert_eq!(train_epoch(shards), train_epoch(folder));

    let manifest = Manifest::load(&out).unwrap().unwrap();
    assert!(manifest.shards.len() > 2, "{:?}", manifest.shards);
    assert_eq!(manifest.samples, 15);
    assert!(manifest.classes.iter().all(|c| c.count == 5));
    for record in &manifest.shards {
        let path = out.join(&record.file);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len() as u64, record.bytes);
        assert_eq!(hex::encode(Sha256::digest(&bytes)), record.sha256);
        assert!(
            sidecar_path(&path).is_file(),
            "index beside {}",
            record.file
        );
    }
    assert!(out.join("train-000000.tar").is_file());
}

#[test]
fn reencoding_shrinks_to_the_largest_side_as_jpeg() {
    let dir = tempfile::tempdir().unwrap();
    let reencode = Reencode {
        max_side: 24,
        quality: 80,
    };
    let (_, out) = packed(dir.path(), 1 << 30, Some(reencode));
    let shards = Shards::open(&out).unwrap();
    for i in 0..shards.len() {
        let bytes = shards.read(i).unwrap();
        assert_eq!(
            image::guess_format(&bytes).unwrap(),
            image::ImageFormat::Jpeg
        );
        let image = image::load_from_memory(&bytes).unwrap();
        assert_eq!((image.width(), image.height()), (24, 24));
    }
    let manifest = Manifest::load(&out).unwrap().unwrap();
    assert_eq!(manifest.reencode, Some(reencode));
}

/// A copy of the webdataset shard in `dir` (made), where its index may be written.
fn webdataset_copy(dir: &Path) -> PathBuf {
    let name = "webdataset-000000.tar";
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy(webdataset_shard(), dir.join(name)).unwrap();
    dir.join(name)
}

fn assert_reads_the_webdataset_samples(shards: &Shards) {
    let sizes: Vec<(u32, u32)> = (0..shards.len())
        .map(|i| {
            let image = image::load_from_memory(&shards.read(i).unwrap()).unwrap();
            (image.width(), image.height())
        })
        .collect();
    assert_eq!(sizes, [(16, 12), (10, 20), (8, 8)]);
    let labels: Vec<usize> = (0..shards.len()).map(|i| shards.label(i)).collect();
    assert_eq!(labels, [2, 0, 1]);
    assert_eq!(shards.num_classes(), 3);
    assert!(shards
        .path(1)
        .ends_with("webdataset-000000.tar/sample0001.jpg"));
}

#[test]
fn shards_of_python_webdataset_are_indexed_on_first_open() {
    let dir = tempfile::tempdir().unwrap();
    let shard = webdataset_copy(&dir.path().join("writable"));
    assert_reads_the_webdataset_samples(&Shards::open(shard.parent().unwrap()).unwrap());
    assert!(sidecar_path(&shard).is_file(), "the index is kept");
    // The second open reads the index.
    assert_reads_the_webdataset_samples(&Shards::open(shard.parent().unwrap()).unwrap());

    let shard = webdataset_copy(&dir.path().join("read-only"));
    let folder = shard.parent().unwrap();
    // (Root ignores the mode; the reading must work either way.)
    std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o555)).unwrap();
    let opened = Shards::open(folder);
    std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_reads_the_webdataset_samples(&opened.unwrap());
}

fn open_error(dir: &Path) -> String {
    Shards::open(dir).unwrap_err().to_string()
}

#[test]
fn cut_or_inconsistent_shards_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let (_, out) = packed(dir.path(), 1 << 30, None);
    let shard = out.join("train-000000.tar");
    let bytes = std::fs::read(&shard).unwrap();
    // The index's own checks, without the manifest's (tests/bad_shards.rs has those).
    let manifest = out.join("manifest.json");
    let manifest_text = std::fs::read(&manifest).unwrap();
    std::fs::remove_file(&manifest).unwrap();

    // Cut in the middle of the last image: the index no longer fits the shard.
    std::fs::write(&shard, &bytes[..bytes.len() - 3000]).unwrap();
    let err = open_error(&out);
    assert!(
        err.contains("train-000000.tar") && err.contains("cut or rewritten"),
        "{err}"
    );
    // Indexed afresh, the cut image is found.
    std::fs::remove_file(sidecar_path(&shard)).unwrap();
    let err = open_error(&out);
    assert!(
        err.contains("train-000000.tar") && err.contains("truncated"),
        "{err}"
    );

    std::fs::write(&shard, &bytes).unwrap();
    std::fs::write(sidecar_path(&shard), b"{not json").unwrap();
    let err = open_error(&out);
    assert!(
        err.contains("train-000000.idx") && err.contains("unreadable"),
        "{err}"
    );

    std::fs::remove_file(sidecar_path(&shard)).unwrap();
    std::fs::write(&shard, b"this is no tar archive, nor anything else").unwrap();
    let err = open_error(&out);
    assert!(err.contains("train-000000.tar"), "{err}");

    std::fs::write(&manifest, manifest_text).unwrap();
    std::fs::remove_file(&shard).unwrap();
    std::fs::copy(webdataset_shard(), out.join("other-000000.tar")).unwrap();
    let err = open_error(&out);
    assert!(
        err.contains("train-000000.tar") && err.contains("missing"),
        "{err}"
    );
}

#[test]
fn a_sample_without_its_label_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let shard = dir.path().join("x-000000.tar");
    let mut builder = tar::Builder::new(std::fs::File::create(&shard).unwrap());
    let mut header = tar::Header::new_gnu();
    header.set_size(4);
    header.set_mode(0o444);
    builder
        .append_data(&mut header, "lonely.jpg", &b"abcd"[..])
        .unwrap();
    builder.finish().unwrap();
    drop(builder);
    let err = open_error(dir.path());
    assert!(
        err.contains("x-000000.tar") && err.contains("\"lonely\" has no .cls label"),
        "{err}"
    );
    let err = open_error(&dir.path().join("nothing-here"));
    assert!(err.contains("nothing-here"), "{err}");
}
