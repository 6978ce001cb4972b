//! An interrupted pack, run again, finishes with the very bytes of a pack that was never
//! interrupted; a rerun with other settings or another source is refused, naming the flag.

use crate::util::files;
use cornet_data::pack::{pack, PackOptions, Packed};
use cornet_data::progress::{NoProgress, Progress, Unit};
use cornet_data::shards::manifest::{Manifest, Reencode, UNFINISHED_MANIFEST_FILE};
use cornet_data::synthetic::write_image_folder;
use cornet_data::{ImageFolder, Shards};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Mutex;
use std::time::Duration;

/// 15 images of 40x40 in 3 classes, about three to a shard.
fn source(dir: &Path) -> PathBuf {
    let src = dir.join("src");
    write_image_folder(&src, 3, 5, 40, 2).unwrap();
    src
}

fn options(out: &Path) -> PackOptions {
    PackOptions {
        out: out.to_owned(),
        prefix: "train".into(),
        shard_bytes: 3 * 4096,
        reencode: None,
    }
}

fn pack_into(src: &Path, options: &PackOptions) -> cornet_data::Result<Packed> {
    pack(&ImageFolder::open(src).unwrap(), options, &NoProgress)
}

/// The source in `dir`, and a pack of it never interrupted (in `dir/whole`).
fn packed_whole(dir: &Path) -> (PathBuf, PathBuf, Packed) {
    let src = source(dir);
    let out = dir.join("whole");
    let whole = pack_into(&src, &options(&out)).unwrap();
    (src, out, whole)
}

/// Holds the pack's writer after it wrote image `at` (of the images task) until the test has
/// copied the folder: a copy of what a pack killed at about that point leaves (the writer's
/// buffered bytes never reach the file; the sealing thread may be halfway through a shard).
struct PauseAt {
    at: u64,
    written: AtomicU64,
    paused: Mutex<Sender<()>>,
    /// Ends the pause when its sender is dropped, by the test or as the test fails.
    released: Mutex<Receiver<()>>,
}

impl Progress for PauseAt {
    fn begin(&self, _: &str, _: Unit, _: Option<u64>) {}

    fn advance(&self, n: u64) {
        if self.written.fetch_add(n, Ordering::SeqCst) + n == self.at {
            let _ = self.paused.lock().unwrap().send(());
            let _ = self.released.lock().unwrap().recv();
        }
    }

    fn finish(&self) {}
}

/// Packs `src` into `out`, copying `out` into `snapshot` while the writer is held after image
/// `at`: `snapshot` then holds an interrupted pack, `out` a finished one.
fn pack_copying_midway(src: &Path, out: &Path, snapshot: &Path, at: u64) {
    let (paused, pause_seen) = channel();
    let (release, released) = channel::<()>();
    let pause = PauseAt {
        at,
        written: AtomicU64::new(0),
        paused: Mutex::new(paused),
        released: Mutex::new(released),
    };
    let folder = ImageFolder::open(src).unwrap();
    std::thread::scope(|scope| {
        let packing = scope.spawn(|| pack(&folder, &options(out), &pause));
        pause_seen
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|_| panic!("the pack never wrote image {at}"));
        std::fs::create_dir(snapshot).unwrap();
        for entry in std::fs::read_dir(out).unwrap() {
            let path = entry.unwrap().path();
            // A file written aside may be renamed in between, as when a run is killed.
            if let Ok(bytes) = std::fs::read(&path) {
                std::fs::write(snapshot.join(path.file_name().unwrap()), bytes).unwrap();
            }
        }
        drop(release);
        packing.join().unwrap().unwrap();
    });
}

#[test]
fn an_interrupted_pack_resumes_to_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (src, out, whole) = packed_whole(dir.path());
    let shards = whole.manifest.shards.len();
    assert!(shards >= 4, "{:?}", whole.manifest.shards);
    assert_eq!(whole.kept, 0);

    // Paused after the first image, in the middle, and after the last (its shard not closed).
    for at in [1, 8, 15] {
        let run = dir.path().join(format!("run-{at}"));
        let snapshot = dir.path().join(format!("interrupted-{at}"));
        pack_copying_midway(&src, &run, &snapshot, at);
        assert_eq!(files(&run), files(&out), "uninterrupted, paused at {at}");

        let unfinished = Manifest::load_unfinished(&snapshot).unwrap().unwrap();
        assert!(Manifest::load(&snapshot).unwrap().is_none());
        let err = Shards::open(&snapshot).unwrap_err().to_string();
        assert!(err.contains("unfinished pack"), "{err}");

        let resumed = pack_into(&src, &options(&snapshot)).unwrap();
        assert_eq!(resumed.kept, unfinished.shards.len(), "paused at {at}");
        assert!(resumed.kept < shards);
        assert_eq!(files(&snapshot), files(&out), "resumed from image {at}");
    }
    let kept_midway = Manifest::load(&dir.path().join("interrupted-8"))
        .unwrap()
        .unwrap();
    assert_eq!(kept_midway, whole.manifest);
}

#[test]
fn a_damaged_shard_is_written_again_with_those_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let (src, out, _) = packed_whole(dir.path());
    let snapshot = dir.path().join("interrupted");
    pack_copying_midway(&src, &dir.path().join("run"), &snapshot, 11);
    let unfinished = Manifest::load_unfinished(&snapshot).unwrap().unwrap();
    assert!(unfinished.shards.len() >= 3, "{:?}", unfinished.shards);

    // One byte of the second shard's first image changed: the same size, another SHA-256.
    let second = snapshot.join(&unfinished.shards[1].file);
    let mut bytes = std::fs::read(&second).unwrap();
    bytes[600] ^= 0xff;
    std::fs::write(&second, bytes).unwrap();
    let resumed = pack_into(&src, &options(&snapshot)).unwrap();
    assert_eq!(resumed.kept, 1);
    assert_eq!(files(&snapshot), files(&out));
}

#[test]
fn a_rerun_with_other_settings_or_another_source_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    let snapshot = dir.path().join("interrupted");
    pack_copying_midway(&src, &dir.path().join("run"), &snapshot, 8);
    let before = files(&snapshot);

    let refused =
        |src: &Path, options: PackOptions| pack_into(src, &options).unwrap_err().to_string();
    let bigger = PackOptions {
        shard_bytes: 1 << 20,
        ..options(&snapshot)
    };
    let err = refused(&src, bigger);
    assert!(
        err.contains("unfinished pack") && err.contains("--shard-size"),
        "{err}"
    );
    let renamed = PackOptions {
        prefix: "val".into(),
        ..options(&snapshot)
    };
    assert!(refused(&src, renamed).contains("--name"));
    let smaller = PackOptions {
        reencode: Some(Reencode {
            max_side: 24,
            quality: 80,
        }),
        ..options(&snapshot)
    };
    assert!(refused(&src, smaller).contains("--max-side"));
    let other = dir.path().join("other");
    write_image_folder(&other, 3, 5, 40, 2).unwrap();
    assert!(refused(&other, options(&snapshot)).contains("--src"));
    write_image_folder(&src, 4, 5, 40, 2).unwrap();
    let err = refused(&src, options(&snapshot));
    assert!(
        err.contains("source has changed") && err.contains("15 images in 3 classes then"),
        "{err}"
    );
    // Nothing was touched by the refusals.
    assert_eq!(files(&snapshot), before);
}

#[test]
fn a_finished_pack_run_again_is_left_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let (src, out, first) = packed_whole(dir.path());
    let before = files(&out);
    let again = pack_into(&src, &options(&out)).unwrap();
    assert_eq!(again.kept, first.manifest.shards.len());
    assert_eq!(again.manifest, first.manifest);
    assert_eq!(files(&out), before);
    assert!(!out.join(UNFINISHED_MANIFEST_FILE).exists());

    let other = PackOptions {
        shard_bytes: 1 << 20,
        ..options(&out)
    };
    let err = pack_into(&src, &other).unwrap_err().to_string();
    assert!(
        err.contains("already holds shards") && err.contains("--shard-size"),
        "{err}"
    );
}
