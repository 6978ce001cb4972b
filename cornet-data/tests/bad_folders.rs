//! Class folders that would be mislabelled, hang the loader or be read without end are refused
//! when listed, naming the file or folder.

use cornet_data::dataset::MAX_IMAGE_BYTES;
use cornet_data::synthetic::write_image_folder;
use cornet_data::{check_same_classes, Dataset, ImageFolder};
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;

fn folder(dir: &Path) {
    write_image_folder(dir, 2, 2, 16, 1).unwrap();
}

fn open_error(dir: &Path) -> String {
    ImageFolder::open(dir).unwrap_err().to_string()
}

#[test]
fn an_empty_class_folder_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    folder(dir.path());
    std::fs::create_dir(dir.path().join("class_02")).unwrap();
    std::fs::write(dir.path().join("class_02/notes.txt"), "no image").unwrap();
    let err = open_error(dir.path());
    assert!(
        err.contains("class_02") && err.contains("empty class folder"),
        "{err}"
    );
}

#[test]
fn symbolic_link_loops_and_second_links_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    folder(dir.path());
    // A link back up the tree: followed, it would list class_00 again ~40 levels deep.
    symlink("..", dir.path().join("class_00/up")).unwrap();
    let err = open_error(dir.path());
    assert!(
        err.contains("class_00/up") && err.contains("already listed"),
        "{err}"
    );
    std::fs::remove_file(dir.path().join("class_00/up")).unwrap();

    // A link to another class: its images would be counted twice, under two labels.
    symlink("../class_00", dir.path().join("class_01/also")).unwrap();
    let err = open_error(dir.path());
    assert!(err.contains("class_01/also"), "{err}");
    std::fs::remove_file(dir.path().join("class_01/also")).unwrap();

    // A link to a folder outside is followed, as torchvision does.
    let outside = tempfile::tempdir().unwrap();
    write_image_folder(outside.path(), 1, 3, 16, 2).unwrap();
    symlink(
        outside.path().join("class_00"),
        dir.path().join("class_01/more"),
    )
    .unwrap();
    assert_eq!(ImageFolder::open(dir.path()).unwrap().len(), 7);
}

#[test]
fn a_fifo_or_a_device_named_as_an_image_is_refused_unopened() {
    let dir = tempfile::tempdir().unwrap();
    folder(dir.path());
    let fifo = dir.path().join("class_00/x.png");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let err = open_error(dir.path());
    assert!(err.contains("x.png") && err.contains("a FIFO"), "{err}");
    std::fs::remove_file(&fifo).unwrap();

    symlink("/dev/zero", dir.path().join("class_01/zero.jpg")).unwrap();
    let err = open_error(dir.path());
    assert!(
        err.contains("zero.jpg") && err.contains("a device"),
        "{err}"
    );
}

#[test]
fn an_image_file_larger_than_the_limit_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    folder(dir.path());
    // Sparse: no disk is used for it.
    let huge = dir.path().join("class_01/huge.png");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(MAX_IMAGE_BYTES + 1)
        .unwrap();
    let images = ImageFolder::open(dir.path()).unwrap();
    let index = (0..images.len()).find(|&i| images.path(i) == huge).unwrap();
    let err = images.read(index).unwrap_err().to_string();
    assert!(err.contains("huge.png") && err.contains("256 MiB"), "{err}");
}

#[test]
fn validation_classes_must_be_the_training_classes() {
    let dir = tempfile::tempdir().unwrap();
    let (train, val) = (dir.path().join("train"), dir.path().join("val"));
    write_image_folder(&train, 3, 1, 16, 1).unwrap();
    write_image_folder(&val, 3, 1, 16, 2).unwrap();
    let classes = |root: &Path| ImageFolder::open(root).unwrap().classes().to_vec();
    check_same_classes(&train, &classes(&train), &val, &classes(&val)).unwrap();

    // A class missing from val shifts every label after it.
    std::fs::remove_dir_all(val.join("class_01")).unwrap();
    let err = check_same_classes(&train, &classes(&train), &val, &classes(&val))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&*train.to_string_lossy())
            && err.contains(&*val.to_string_lossy())
            && err.contains("label 1: class \"class_01\" in the first, class \"class_02\""),
        "{err}"
    );
    // One class fewer at the end, or one renamed.
    let fewer = &classes(&train)[..2];
    let err = check_same_classes(&train, &classes(&train), &val, fewer)
        .unwrap_err()
        .to_string();
    assert!(err.contains("label 2") && err.contains("no class"), "{err}");
}

/// Unlabelled images are rows of features listed one per line: a name with a line break would
/// shift every name after it, and a stimulus listed twice would be two rows.
#[test]
fn stimuli_must_list_one_per_line_and_once() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    write_image_folder(&images, 1, 2, 16, 0).unwrap();
    let class = std::fs::read_dir(&images)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let names: Vec<String> = std::fs::read_dir(&class)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    ImageFolder::flat(&class).unwrap();
    let twice = [names[0].clone(), names[1].clone(), names[0].clone()];
    let err = ImageFolder::listed(&class, &twice).unwrap_err().to_string();
    assert!(
        err.contains(&format!("`{}` is listed twice (entries 1 and 3)", names[0])),
        "{err}"
    );

    std::fs::copy(class.join(&names[0]), class.join("two\nlines.png")).unwrap();
    let err = ImageFolder::flat(&class).unwrap_err().to_string();
    assert!(err.contains("a file name with a line break"), "{err}");
}
