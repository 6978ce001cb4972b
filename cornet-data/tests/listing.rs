//! Listing an ImageFolder: class folders listed in parallel keep the order and labels of one
//! walk, progress is told per class folder, and a saved listing is reused only while no
//! folder listed has changed.

use crate::util::RecordedProgress;
use cornet_data::progress::{NoProgress, Unit};
use cornet_data::synthetic::write_image_folder;
use cornet_data::{Dataset, ImageFolder, Listed};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Writes an empty file (listing reads names, not contents).
fn touch(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, b"").unwrap();
}

/// Sets the modification time of `root` and every folder under it an hour back: a listing
/// of folders modified just now is never trusted again (a change could hide in the same
/// tick of the clock), and tests make their folders just now.
fn backdate(root: &Path) {
    let then = SystemTime::now() - Duration::from_secs(3600);
    let mut folders = vec![root.to_owned()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                folders.push(entry.path());
            }
        }
        std::fs::File::open(&folder)
            .unwrap()
            .set_modified(then)
            .unwrap();
    }
}

/// `dir/train`: 3 classes of 4 PNGs and one in a subfolder, its folders an hour old.
fn backdated_folder(dir: &Path) -> PathBuf {
    let root = dir.join("train");
    write_image_folder(&root, 3, 4, 16, 0).unwrap();
    touch(&root.join("class_01/nested/deeper.png"));
    backdate(&root);
    root
}

fn samples(folder: &ImageFolder) -> Vec<(PathBuf, usize)> {
    (0..folder.len())
        .map(|i| (folder.path(i).to_owned(), folder.label(i)))
        .collect()
}

#[test]
fn class_folders_listed_in_parallel_keep_the_order_of_one_walk() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let outside = dir.path().join("outside");
    for name in ["10.png", "2.png", "a/z.png", "a-b.png"] {
        touch(&root.join("a_class").join(name));
    }
    touch(&outside.join("linked/q.jpeg"));
    symlink(outside.join("linked"), root.join("a_class/link")).unwrap();
    for name in ["x.JPG", "sub/y.png", "sub/notes.txt", "a.png", "w.webp"] {
        touch(&root.join("b_class").join(name));
    }
    touch(&outside.join("c/m.bmp"));
    symlink(outside.join("c"), root.join("c_link")).unwrap();
    touch(&root.join("readme.txt"));

    let folder = ImageFolder::open(&root).unwrap();
    assert_eq!(folder.classes(), ["a_class", "b_class", "c_link"]);
    // Each folder's entries in byte order, a subfolder's images where the subfolder sorts
    // ("a" before "a-b.png", though "a-b.png" < "a/z.png" as strings).
    let expected = [
        ("a_class/10.png", 0),
        ("a_class/2.png", 0),
        ("a_class/a/z.png", 0),
        ("a_class/a-b.png", 0),
        ("a_class/link/q.jpeg", 0),
        ("b_class/a.png", 1),
        ("b_class/sub/y.png", 1),
        ("b_class/w.webp", 1),
        ("b_class/x.JPG", 1),
        ("c_link/m.bmp", 2),
    ]
    .map(|(name, label)| (root.join(name), label));
    assert_eq!(samples(&folder), expected);
}

#[test]
fn many_class_folders_are_labelled_in_name_order_with_sorted_images() {
    let dir = tempfile::tempdir().unwrap();
    let classes: Vec<String> = (0..40)
        .map(|k| format!("n{:08}", 7919 * k % 1000))
        .collect();
    for class in &classes {
        for i in [3, 1, 20, 100, 7] {
            touch(&dir.path().join(class).join(format!("{class}_{i}.JPEG")));
        }
    }
    let mut sorted = classes.clone();
    sorted.sort();
    let progress = RecordedProgress::default();
    let folder = ImageFolder::list(dir.path(), &progress).unwrap();
    assert_eq!(folder.classes(), sorted);
    let mut expected = Vec::new();
    for (label, class) in sorted.iter().enumerate() {
        let mut names: Vec<PathBuf> = std::fs::read_dir(dir.path().join(class))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        expected.extend(names.into_iter().map(|path| (path, label)));
    }
    assert_eq!(samples(&folder), expected);
    // One task, counted per class folder.
    let tasks = progress.tasks();
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_eq!(tasks[0].what, format!("listing {}", dir.path().display()));
    assert_eq!(tasks[0].unit, Unit::Items("class folders"));
    assert_eq!((tasks[0].total, tasks[0].done), (Some(40), 40));
    assert!(tasks[0].finished);
}

#[test]
fn a_saved_listing_is_reused_while_no_folder_changed() {
    let dir = tempfile::tempdir().unwrap();
    let root = backdated_folder(dir.path());
    let file = dir.path().join("run/train-listing.json");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();

    let listed = ImageFolder::open(&root).unwrap();
    listed.save_listing(&file).unwrap();
    let (reopened, how) = ImageFolder::reopen_or_list(&root, &file, &NoProgress).unwrap();
    assert_eq!(how, Listed::Reused);
    assert_eq!(samples(&reopened), samples(&listed));
    assert_eq!(reopened.classes(), listed.classes());
    assert_eq!(reopened.fingerprint(), listed.fingerprint());
    assert_eq!(reopened.root(), listed.root());
    assert_eq!(reopened.read(5).unwrap(), listed.read(5).unwrap());

    // Reused, not listed: an image slipped in with its folder's time put back is not seen.
    let class = root.join("class_02");
    let time = std::fs::metadata(&class).unwrap().modified().unwrap();
    touch(&class.join("slipped_in.png"));
    std::fs::File::open(&class)
        .unwrap()
        .set_modified(time)
        .unwrap();
    let (reopened, how) = ImageFolder::reopen_or_list(&root, &file, &NoProgress).unwrap();
    assert_eq!(how, Listed::Reused);
    assert_eq!(reopened.len(), listed.len());
    // The same folder reached through another path is another root: listed afresh.
    let link = dir.path().join("link");
    symlink(&root, &link).unwrap();
    let (_, how) = ImageFolder::reopen_or_list(&link, &file, &NoProgress).unwrap();
    assert!(matches!(how, Listed::Afresh(why) if why.contains("a listing of")));
}

/// How `reopen_or_list` finds the saved listing of `root` after `change`, and the images it
/// then has.
fn after_change(change: impl FnOnce(&Path)) -> (Listed, usize) {
    let dir = tempfile::tempdir().unwrap();
    let root = backdated_folder(dir.path());
    let file = dir.path().join("listing.json");
    ImageFolder::open(&root)
        .unwrap()
        .save_listing(&file)
        .unwrap();
    change(&root);
    let (folder, how) = ImageFolder::reopen_or_list(&root, &file, &NoProgress).unwrap();
    let fresh = ImageFolder::open(&root).unwrap();
    assert_eq!(samples(&folder), samples(&fresh));
    (how, folder.len())
}

fn afresh_because(how: Listed, reason: &str) {
    match how {
        Listed::Afresh(why) => assert!(why.contains(reason), "{why}"),
        Listed::Reused => panic!("reused, expected a listing afresh because {reason}"),
    }
}

#[test]
fn any_change_to_a_listed_folder_lists_afresh() {
    let (how, len) = after_change(|_| {});
    assert_eq!((how, len), (Listed::Reused, 13));

    let (how, len) = after_change(|root| touch(&root.join("class_00/new.png")));
    afresh_because(how, "class_00 was modified since");
    assert_eq!(len, 14);
    let (how, len) =
        after_change(|root| std::fs::remove_file(root.join("class_01/nested/deeper.png")).unwrap());
    afresh_because(how, "nested was modified since");
    assert_eq!(len, 12);
    let (how, len) = after_change(|root| touch(&root.join("class_03/0000.png")));
    afresh_because(how, "was modified since");
    assert_eq!(len, 14);
    let (how, _) =
        after_change(|root| std::fs::rename(root.join("class_02"), root.join("class_2")).unwrap());
    afresh_because(how, "was modified since");
}

#[test]
fn a_missing_or_damaged_listing_file_lists_afresh() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("train");
    write_image_folder(&root, 2, 2, 16, 0).unwrap();
    let file = dir.path().join("listing.json");
    let (folder, how) = ImageFolder::reopen_or_list(&root, &file, &NoProgress).unwrap();
    afresh_because(how, "no listing saved");
    assert_eq!(folder.len(), 4);

    // Saved just after the folders were made: their times are too close to trust.
    folder.save_listing(&file).unwrap();
    let (_, how) = ImageFolder::reopen_or_list(&root, &file, &NoProgress).unwrap();
    afresh_because(how, "modified as it was listed");

    std::fs::write(&file, b"{\"format\": ").unwrap();
    let (folder, how) = ImageFolder::reopen_or_list(&root, &file, &NoProgress).unwrap();
    afresh_because(how, "unreadable");
    assert_eq!(folder.len(), 4);

    let flat = ImageFolder::flat(&root).unwrap();
    let err = flat.save_listing(&file).unwrap_err().to_string();
    assert!(err.contains("by class folders"), "{err}");
}
