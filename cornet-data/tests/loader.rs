//! The loader on a generated ImageFolder: order, determinism, bad files.

use cornet_data::synthetic::write_image_folder;
use cornet_data::{Batch, Dataset, ImageFolder, Loader, LoaderOptions, Sampler, Transform};
use std::path::Path;

fn options(workers: usize, skip_bad_images: bool) -> LoaderOptions {
    LoaderOptions {
        transform: Transform::Train { size: 32 },
        workers,
        prefetch: 3,
        skip_bad_images,
        seed: 9,
    }
}

fn epoch(
    root: &Path,
    workers: usize,
    skip: bool,
    epoch: u64,
    start: usize,
) -> Vec<Result<Batch, String>> {
    let loader = Loader::new(ImageFolder::open(root).unwrap(), options(workers, skip));
    let sampler = Sampler::training(loader.dataset().len(), 4, 0, 1, 3).unwrap();
    loader
        .epoch(epoch, sampler.batches(epoch, start))
        .map(|b| b.map_err(|e| e.to_string()))
        .collect()
}

#[test]
fn batches_are_the_same_for_any_number_of_workers_and_resume_as_a_tail() {
    let dir = tempfile::tempdir().unwrap();
    write_image_folder(dir.path(), 3, 8, 40, 1).unwrap();
    let reference = epoch(dir.path(), 1, false, 1, 0);
    assert_eq!(reference.len(), 6);
    for workers in [2, 4] {
        assert_eq!(
            epoch(dir.path(), workers, false, 1, 0),
            reference,
            "{workers} workers"
        );
    }
    assert_eq!(epoch(dir.path(), 2, false, 1, 4), reference[4..]);
    assert_ne!(
        epoch(dir.path(), 2, false, 2, 0),
        reference,
        "a new epoch, new draws"
    );
    let batch = reference[0].as_ref().unwrap();
    assert_eq!(batch.shape, [4, 3, 32, 32]);
    assert_eq!(batch.images.len(), 4 * 3 * 32 * 32);
}

#[test]
fn bad_images_are_skipped_and_counted_or_named() {
    let dir = tempfile::tempdir().unwrap();
    write_image_folder(dir.path(), 2, 4, 40, 1).unwrap();
    let broken = dir.path().join("class_00").join("0001.png");
    std::fs::write(&broken, b"not an image").unwrap();

    let loader = Loader::new(ImageFolder::open(dir.path()).unwrap(), options(2, true));
    let sampler = Sampler::validation(loader.dataset().len(), 8, 0, 1).unwrap();
    let batches: Vec<Batch> = loader
        .epoch(0, sampler.batches(0, 0))
        .map(Result::unwrap)
        .collect();
    assert_eq!(batches[0].shape[0], 7, "the broken image is left out");
    let (count, examples) = loader.bad_images();
    assert_eq!(count, 1);
    assert!(examples[0].contains("0001.png"), "{examples:?}");

    let failed = epoch(dir.path(), 2, false, 0, 0);
    let err = failed
        .iter()
        .find_map(|b| b.as_ref().err())
        .expect("an error");
    assert!(
        err.contains("0001.png") && err.contains("not a readable image"),
        "{err}"
    );
}

#[test]
fn a_folder_without_classes_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = ImageFolder::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("no class folders"), "{err}");
    let err = ImageFolder::open(&dir.path().join("missing"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing"), "{err}");
}

#[test]
fn a_batch_of_only_bad_images_is_filled_from_the_next_samples_when_skipping() {
    let dir = tempfile::tempdir().unwrap();
    write_image_folder(dir.path(), 2, 4, 40, 1).unwrap();
    for i in 0..4 {
        let broken = dir.path().join(format!("class_00/{i:04}.png"));
        std::fs::write(broken, b"not an image").unwrap();
    }
    let batches = |workers| {
        let loader = Loader::new(
            ImageFolder::open(dir.path()).unwrap(),
            options(workers, true),
        );
        let sampler = Sampler::validation(loader.dataset().len(), 4, 0, 1).unwrap();
        let batches: Vec<Batch> = loader
            .epoch(0, sampler.batches(0, 0))
            .map(Result::unwrap)
            .collect();
        (batches, loader.bad_images().0)
    };
    let (filled, bad) = batches(1);
    assert_eq!(bad, 4, "the bad images are counted");
    assert_eq!(filled.len(), 2, "every step still has its batch");
    assert_eq!(
        filled[0].indices,
        [4, 5, 6, 7],
        "filled from the next samples"
    );
    assert_eq!(filled[0].labels, [1, 1, 1, 1]);
    assert_eq!(batches(3).0, filled, "the same for any number of workers");
}
