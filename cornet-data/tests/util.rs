//! What the integration tests share: running the `cornet-data` command, the fixtures (the
//! parity fixtures through [`cornet_model::testing`], the crate's own webdataset shard), and a
//! progress that records what it is told.

use cornet_data::progress::{Progress, Unit};
use cornet_data::synthetic::write_image_folder;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

pub use cornet_model::testing::{fixture, read_npz};

/// `cornet-data` with `args`, run to its end.
pub fn cornet_data(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cornet-data"))
        .args(args)
        .output()
        .expect("running cornet-data")
}

/// A run's stdout, after asserting that it succeeded (showing its stderr if not).
pub fn stdout_of_success(run: &Output) -> String {
    assert!(run.status.success(), "{}", text(&run.stderr));
    text(&run.stdout)
}

/// `dir/train`, an ImageFolder of `classes` folders of `per_class` PNGs of `side` pixels, and
/// `dir/shards`, a folder (not made) to pack them into.
pub fn train_folder(dir: &Path, classes: usize, per_class: usize, side: u32) -> (PathBuf, PathBuf) {
    let src = dir.join("train");
    write_image_folder(&src, classes, per_class, side, 3).unwrap();
    (src, dir.join("shards"))
}

/// Every file of `dir` by name, with its bytes.
pub fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect()
}

/// Process output as text (lossy: a test reads it for messages only).
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A shard written by Python's webdataset (`tests/fixtures/make_webdataset_shard.py`): three
/// samples of sizes 16x12, 10x20 and 8x8 labelled 2, 0 and 1.
pub fn webdataset_shard() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/webdataset-000000.tar")
}

/// A [`Progress`] that keeps what it was told, task by task.
#[derive(Default)]
pub struct RecordedProgress {
    tasks: Mutex<Vec<RecordedTask>>,
}

/// One task as a [`RecordedProgress`] saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedTask {
    pub what: String,
    pub unit: Unit,
    pub total: Option<u64>,
    pub done: u64,
    pub finished: bool,
}

impl RecordedProgress {
    pub fn tasks(&self) -> Vec<RecordedTask> {
        self.tasks.lock().unwrap().clone()
    }
}

impl Progress for RecordedProgress {
    fn begin(&self, what: &str, unit: Unit, total: Option<u64>) {
        self.tasks.lock().unwrap().push(RecordedTask {
            what: what.to_owned(),
            unit,
            total,
            done: 0,
            finished: false,
        });
    }

    fn advance(&self, n: u64) {
        self.tasks.lock().unwrap().last_mut().unwrap().done += n;
    }

    fn finish(&self) {
        self.tasks.lock().unwrap().last_mut().unwrap().finished = true;
    }
}
