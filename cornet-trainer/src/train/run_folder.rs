//! The run folder (`output.path`): one writer at a time, what an earlier run left in it, and
//! what the run writes there as it goes.

use super::curves_file::CurvesFile;
use super::error::{Result, TrainError};
use super::observer::RunStart;
use super::observers::Observers;
use super::tensorboard::TensorBoardLog;
use crate::error::Explain;
use crate::records::RecordsFile;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The lock file, inside the run folder.
const LOCK_FILE: &str = ".lock";

/// The run folder's exclusive lock, held for the life of the run (by rank 0, for all ranks).
/// It is the OS's advisory lock on `OUT/.lock`: the kernel releases it when the process ends,
/// however it ends, so a stale lock never needs cleaning up. The file holds the holder's PID.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

impl RunLock {
    /// Creates `out` if needed and takes its lock; another run holding it is an error naming
    /// its PID.
    pub fn acquire(out: &Path) -> Result<Self> {
        std::fs::create_dir_all(out).explain(TrainError::Io, || {
            format!("creating output.path {}", out.display())
        })?;
        let path = out.join(LOCK_FILE);
        let locking = || format!("locking {}", path.display());
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .explain(TrainError::Io, locking)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                return Err(TrainError::RunFolderBusy {
                    out: out.to_owned(),
                    holder: holder.trim().to_string(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(TrainError::Io(locking(), Some(e.into()))),
        }
        file.set_len(0).explain(TrainError::Io, locking)?;
        file.rewind().explain(TrainError::Io, locking)?;
        write!(file, "{}", std::process::id()).explain(TrainError::Io, locking)?;
        Ok(RunLock { _file: file })
    }
}

/// What a run leaves in its folder that a new run would replace, by name: checkpoints, the
/// final weights, the records. (`config.yaml` alone is a start that never took a step.)
pub fn earlier_run_artifact(out: &Path, checkpoints: &[PathBuf]) -> Option<&'static str> {
    if !checkpoints.is_empty() {
        Some("checkpoints")
    } else if out.join("final.safetensors").exists() {
        Some("the final weights (final.safetensors)")
    } else if out.join("records.jsonl").exists() {
        Some("the records (records.jsonl)")
    } else {
        None
    }
}

/// What a run writes into its folder `out` as it goes, on rank 0 (other ranks write nothing):
/// `records.jsonl`, `curves.svg` and, with `tensorboard`, `tensorboard/`. A resumed run's
/// records are cut back to its step (see [`RecordsFile::open`]), its TensorBoard log told to
/// drop what comes after it (see [`TensorBoardLog::open`]).
pub fn run_files(out: &Path, start: &RunStart, tensorboard: bool) -> Result<Observers<'static>> {
    if start.rank != 0 {
        return Ok(Observers::new());
    }
    let (records, so_far) = RecordsFile::open(&out.join("records.jsonl"), start.global_step)?;
    let mut files = Observers::new().with(records).with(CurvesFile::open(out)?);
    if tensorboard {
        let dir = out.join("tensorboard");
        files = files.with(TensorBoardLog::open(
            &dir,
            start.global_step,
            start.world_size,
            &so_far,
        )?);
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_is_refused_with_the_holders_pid_until_the_first_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");
        let first = RunLock::acquire(&out).unwrap();
        // A second open file description conflicts even within one process, as another
        // process's would.
        let err = RunLock::acquire(&out).unwrap_err().to_string();
        assert!(
            err.contains(&format!("held by process {}", std::process::id())),
            "{err}"
        );
        drop(first);
        RunLock::acquire(&out).unwrap();
    }

    #[test]
    fn checkpoints_final_weights_and_records_each_mark_an_earlier_run() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        assert_eq!(earlier_run_artifact(out, &[]), None);
        std::fs::write(out.join("config.yaml"), "").unwrap();
        assert_eq!(earlier_run_artifact(out, &[]), None);
        std::fs::write(out.join("records.jsonl"), "").unwrap();
        assert_eq!(
            earlier_run_artifact(out, &[]),
            Some("the records (records.jsonl)")
        );
        std::fs::write(out.join("final.safetensors"), "").unwrap();
        assert!(earlier_run_artifact(out, &[])
            .unwrap()
            .contains("final.safetensors"));
        let listed = [out.join("checkpoints/step-0000000002")];
        assert_eq!(earlier_run_artifact(out, &listed), Some("checkpoints"));
    }
}
