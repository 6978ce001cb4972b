//! `OUT/records.jsonl`: one JSON object per train step and per validation.

use super::error::{Result, TrainError};
use crate::error::Explain;
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// One line of `records.jsonl`: a train step or a validation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Record {
    /// `train` or `val`.
    pub phase: String,
    /// Fractional epoch, as the original's records.
    pub epoch: f64,
    /// Optimizer steps taken when the record was made.
    pub step: u64,
    /// Mean cross-entropy (of the batch, or of the validation set).
    pub loss: f64,
    /// Top-1 accuracy, a fraction.
    pub top1: f64,
    /// Top-5 accuracy, a fraction.
    pub top5: f64,
    /// The learning rate of the step (0 for a validation).
    pub lr: f64,
    /// Seconds for the step (or the whole validation), data waiting included.
    pub dur: f64,
    /// Seconds spent waiting for the batch: large values mean the run is bound by data.
    pub data_load_dur: f64,
    /// Seconds spent in gradient all-reduce and buffer broadcast (0 for one rank).
    pub comm_dur: f64,
}

/// `records.jsonl`, open for appending.
pub struct RecordsFile {
    path: PathBuf,
    file: File,
}

impl RecordsFile {
    /// Opens `path` for appending. What a run that died after its checkpoint at
    /// `keep_through_step` recorded beyond it is dropped first, since the resumed run redoes
    /// it: train records after that step, and validations from that step on (a validation at
    /// step k runs after the checkpoint of step k). A resumed run's records read as one run's.
    pub fn open(path: &Path, keep_through_step: u64) -> Result<Self> {
        if path.exists() {
            let kept: Vec<String> = BufReader::new(
                File::open(path)
                    .explain(TrainError::Io, || format!("reading {}", path.display()))?,
            )
            .lines()
            .map_while(|line| line.ok())
            .filter(|line| {
                serde_json::from_str::<Record>(line).is_ok_and(|r| match r.phase.as_str() {
                    "val" => r.step < keep_through_step,
                    _ => r.step <= keep_through_step,
                })
            })
            .collect();
            let mut text = kept.join("\n");
            if !text.is_empty() {
                text.push('\n');
            }
            std::fs::write(path, text)
                .explain(TrainError::Io, || format!("rewriting {}", path.display()))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .explain(TrainError::Io, || format!("opening {}", path.display()))?;
        Ok(RecordsFile {
            path: path.to_owned(),
            file,
        })
    }

    /// Writes `record` as one line.
    pub fn append(&mut self, record: &Record) -> Result<()> {
        // Numbers and a string: nothing in a record can fail to serialize.
        let line = serde_json::to_string(record).expect("a record serializes");
        writeln!(self.file, "{line}").explain(TrainError::Io, || {
            format!("writing {}", self.path.display())
        })
    }
}
