//! `OUT/records.jsonl`: one JSON object per train step and per validation.

use super::error::{Result, TrainError};
use crate::error::Explain;
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// One line of `records.jsonl`: a train step or a validation. JSON has no NaN: a diverged
/// step's NaN is written as `null` and read back as NaN.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Record {
    /// `train` or `val`.
    pub phase: String,
    /// Fractional epoch, as the original's records.
    #[serde(deserialize_with = "nan_if_null")]
    pub epoch: f64,
    /// Optimizer steps taken when the record was made.
    pub step: u64,
    /// Mean cross-entropy (of the batch, or of the validation set).
    #[serde(deserialize_with = "nan_if_null")]
    pub loss: f64,
    /// Top-1 accuracy, a fraction.
    #[serde(deserialize_with = "nan_if_null")]
    pub top1: f64,
    /// Top-5 accuracy, a fraction.
    #[serde(deserialize_with = "nan_if_null")]
    pub top5: f64,
    /// The learning rate of the step (0 for a validation).
    #[serde(deserialize_with = "nan_if_null")]
    pub lr: f64,
    /// Seconds for the step (or the whole validation), data waiting included.
    #[serde(deserialize_with = "nan_if_null")]
    pub dur: f64,
    /// Seconds spent waiting for the batch: large values mean the run is bound by data.
    #[serde(deserialize_with = "nan_if_null")]
    pub data_load_dur: f64,
    /// Seconds spent in gradient all-reduce and buffer broadcast (0 for one rank).
    #[serde(deserialize_with = "nan_if_null")]
    pub comm_dur: f64,
}

/// A number of a record, `null` being NaN.
fn nan_if_null<'de, D: serde::Deserializer<'de>>(number: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(number)?.unwrap_or(f64::NAN))
}

/// Where a line of `records.jsonl` stands in the run: all that deciding to keep it needs.
/// (Read apart from [`Record`], whose numbers may have been written as `null`: JSON has no NaN.)
#[derive(Deserialize)]
struct Position {
    phase: String,
    step: u64,
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
    /// Lines of diverged steps (NaN written as `null`) are kept; a torn last line is not. The
    /// rewrite goes to a temporary file renamed over the old, so a kill during it loses nothing.
    pub fn open(path: &Path, keep_through_step: u64) -> Result<Self> {
        if path.exists() {
            let reading = || format!("reading {}", path.display());
            let mut kept = String::new();
            let lines = BufReader::new(File::open(path).explain(TrainError::Io, reading)?).lines();
            for line in lines {
                let line = line.explain(TrainError::Io, reading)?;
                let keep =
                    serde_json::from_str::<Position>(&line).is_ok_and(|r| match r.phase.as_str() {
                        "val" => r.step < keep_through_step,
                        _ => r.step <= keep_through_step,
                    });
                if keep {
                    kept.push_str(&line);
                    kept.push('\n');
                }
            }
            crate::files::write_whole(path, kept)
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

#[cfg(test)]
impl Record {
    /// A record of `phase` at `step` (4 steps an epoch) with `loss`, for tests.
    pub(crate) fn sample(phase: &str, step: u64, loss: f64) -> Record {
        Record {
            phase: phase.into(),
            epoch: step as f64 / 4.0,
            step,
            loss,
            top1: 0.5,
            top5: 1.0,
            lr: if phase == "train" { 0.1 } else { 0.0 },
            dur: 0.01,
            data_load_dur: 0.0,
            comm_dur: 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resuming_keeps_diverged_steps_and_drops_what_is_redone_and_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("records.jsonl");
        let mut records = RecordsFile::open(&path, 0).unwrap();
        for (phase, step, loss) in [
            ("val", 0, 2.0),
            ("train", 1, 1.5),
            ("train", 2, f64::NAN),
            ("val", 2, f64::NAN),
            ("train", 3, f64::NAN),
        ] {
            records.append(&Record::sample(phase, step, loss)).unwrap();
        }
        drop(records);
        // A kill in the middle of a line.
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("{\"phase\":\"train\",\"ep");
        std::fs::write(&path, text).unwrap();

        // Resumed from the checkpoint of step 2: its validation and step 3 are redone.
        RecordsFile::open(&path, 2).unwrap();
        let kept: Vec<(String, u64, Option<f64>)> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|line| {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                let phase = v["phase"].as_str().unwrap().to_string();
                (phase, v["step"].as_u64().unwrap(), v["loss"].as_f64())
            })
            .collect();
        assert_eq!(
            kept,
            [
                ("val".to_string(), 0, Some(2.0)),
                ("train".to_string(), 1, Some(1.5)),
                ("train".to_string(), 2, None),
            ]
        );
        assert!(!dir.path().join("records.jsonl.partial").exists());
    }
}
