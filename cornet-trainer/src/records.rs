//! `OUT/records.jsonl`, one JSON object per train step and per validation: the one schema of
//! what a run measures. [`Record`] is a line; [`SCALARS`] says which of its values the curves
//! show and how, and is all that the TensorBoard log, `OUT/curves.svg` and `plot` know of it,
//! so that a new measure is a field here, a row of [`SCALARS`] and the code that measures it.

use crate::error::{Cause, Explain};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// Records that could not be read or written; messages name the file, and the line at fault.
#[derive(Debug, thiserror::Error)]
pub enum RecordsError {
    /// The records file could not be opened, read or written; the message names it.
    #[error("{0}")]
    Io(String, #[source] Option<Cause>),
    /// A line of `records.jsonl` is not a record.
    #[error("{}:{line}: not a record", path.display())]
    Damaged {
        /// The records file.
        path: PathBuf,
        /// Its line, from 1.
        line: usize,
        /// Why it does not parse.
        #[source]
        source: serde_json::Error,
    },
}

/// What reading and writing records returns.
pub type Result<T, E = RecordsError> = std::result::Result<T, E>;

/// Which part of a run a record measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// One training step: its batch on rank 0.
    Train,
    /// A validation over the whole validation set.
    Val,
}

impl Phase {
    /// As the records and TensorBoard's tags (`train/loss`) spell it.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Train => "train",
            Phase::Val => "val",
        }
    }
}

/// One line of `records.jsonl`: a train step or a validation. JSON has no NaN: a diverged
/// step's NaN is written as `null` and read back as NaN.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Record {
    /// A train step or a validation.
    pub phase: Phase,
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
    /// Peak resident memory of rank 0's process during the step (or the whole validation),
    /// MiB: host memory, a GPU's not counted ([`crate::memory`]). Absent where the kernel
    /// does not tell it, and in records written before it was measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_rss_mib: Option<f64>,
}

/// A number of a record, `null` being NaN.
fn nan_if_null<'de, D: serde::Deserializer<'de>>(number: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(number)?.unwrap_or(f64::NAN))
}

/// A value of the records that the curves show: a TensorBoard tag under the record's phase
/// (`train/loss`), and perhaps a panel of `curves.svg` and `plot`.
#[derive(Debug, Clone, Copy)]
pub struct Scalar {
    /// Its tag under the phase: `loss` in `train/loss`.
    pub name: &'static str,
    /// Whether validations carry it too; train steps carry every scalar.
    pub in_validations: bool,
    /// Its value in a record; `None` where the record does not carry it (a measure the run
    /// could not take, or a record written before the measure existed).
    pub value: fn(&Record) -> Option<f64>,
    /// The panel that draws it against epochs, if one does.
    pub curve: Option<Curve>,
}

/// How a panel of the learning curves draws a scalar.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Curve {
    /// Train values averaged per tenth of an epoch (single steps are too noisy to read) and
    /// each validation, times `scale`, from 0 up to `top`, or up to just above the highest
    /// value when `top` is `None`.
    Means {
        /// The panel's caption.
        caption: &'static str,
        /// Values are drawn times this (100 for a percentage).
        scale: f64,
        /// The top of the axis, if fixed.
        top: Option<f64>,
    },
    /// Train values as a staircase on a log axis: each value held until the next differs
    /// (the learning rate, which StepLR changes tenfold).
    Staircase {
        /// The panel's caption.
        caption: &'static str,
    },
}

/// The records' values that the curves show, in the order of TensorBoard's tags and of the
/// panels.
pub const SCALARS: &[Scalar] = &[
    Scalar {
        name: "loss",
        in_validations: true,
        value: |record| Some(record.loss),
        curve: Some(Curve::Means {
            caption: "loss (cross-entropy)",
            scale: 1.0,
            top: None,
        }),
    },
    Scalar {
        name: "top1",
        in_validations: true,
        value: |record| Some(record.top1),
        curve: Some(Curve::Means {
            caption: "top-1 accuracy (%)",
            scale: 100.0,
            top: Some(100.0),
        }),
    },
    Scalar {
        name: "top5",
        in_validations: true,
        value: |record| Some(record.top5),
        curve: None,
    },
    Scalar {
        name: "lr",
        in_validations: false,
        value: |record| Some(record.lr),
        curve: Some(Curve::Staircase {
            caption: "learning rate",
        }),
    },
    Scalar {
        name: "data_wait_secs",
        in_validations: false,
        value: |record| Some(record.data_load_dur),
        curve: None,
    },
    Scalar {
        name: "peak_rss_mib",
        in_validations: true,
        value: |record| record.peak_rss_mib,
        curve: Some(Curve::Means {
            caption: "peak resident memory (GiB)",
            scale: 1.0 / 1024.0,
            top: None,
        }),
    },
];

impl Record {
    /// The scalars this record carries, with their values, in [`SCALARS`]' order.
    pub fn scalars(&self) -> impl Iterator<Item = (&'static Scalar, f64)> + '_ {
        SCALARS
            .iter()
            .filter(|scalar| self.phase == Phase::Train || scalar.in_validations)
            .filter_map(|scalar| Some((scalar, (scalar.value)(self)?)))
    }
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
    /// Lines of diverged steps (NaN written as `null`) are kept; a torn last line (a kill in the
    /// middle of a write) is not. Any other line that is no record is left out too, but said,
    /// and appended to `records.jsonl.damaged` beside it: nothing is lost without a word. The
    /// rewrite goes to a temporary file renamed over the old, so a kill during it loses nothing.
    /// Returns it with the records kept, for whatever else a resumed run rebuilds from them.
    pub fn open(path: &Path, keep_through_step: u64) -> Result<(Self, Vec<Record>)> {
        let mut records = Vec::new();
        if path.exists() {
            let lines = read_lines(path)?;
            let (mut kept, mut damaged) = (String::new(), Vec::new());
            for (number, line) in lines.iter().enumerate() {
                let keep = match parse(line) {
                    Ok(r) => {
                        let keep = match r.phase {
                            Phase::Val => r.step < keep_through_step,
                            Phase::Train => r.step <= keep_through_step,
                        };
                        if keep {
                            records.push(r);
                        }
                        keep
                    }
                    Err(err) if err.is_eof() && number + 1 == lines.len() => false,
                    Err(_) => {
                        damaged.push((number + 1, line.as_str()));
                        false
                    }
                };
                if keep {
                    kept.push_str(line);
                    kept.push('\n');
                }
            }
            if !damaged.is_empty() {
                keep_damaged(path, &damaged)?;
            }
            crate::files::write_whole(path, kept)
                .explain(RecordsError::Io, || format!("rewriting {}", path.display()))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .explain(RecordsError::Io, || format!("opening {}", path.display()))?;
        let file = RecordsFile {
            path: path.to_owned(),
            file,
        };
        Ok((file, records))
    }

    /// Writes `record` as one line.
    pub fn append(&mut self, record: &Record) -> Result<()> {
        // Numbers and a name: nothing in a record can fail to serialize.
        let line = serde_json::to_string(record).expect("a record serializes");
        writeln!(self.file, "{line}").explain(RecordsError::Io, || {
            format!("writing {}", self.path.display())
        })
    }
}

/// Every record of the `records.jsonl` at `path`. A line that is no record is an error naming
/// the file and line, except a last line cut short by a run that is still writing it.
pub fn read_records(path: &Path) -> Result<Vec<Record>> {
    let lines = read_lines(path)?;
    let mut records = Vec::with_capacity(lines.len());
    for (number, line) in lines.iter().enumerate() {
        match parse(line) {
            Ok(record) => records.push(record),
            Err(err) if err.is_eof() && number + 1 == lines.len() => {}
            Err(source) => {
                return Err(RecordsError::Damaged {
                    path: path.to_owned(),
                    line: number + 1,
                    source,
                })
            }
        }
    }
    Ok(records)
}

/// Appends the `damaged` lines (number, text) of the records at `path` to
/// `records.jsonl.damaged` and says which they were.
fn keep_damaged(path: &Path, damaged: &[(usize, &str)]) -> Result<()> {
    let aside = path.with_extension("jsonl.damaged");
    let text: String = damaged
        .iter()
        .map(|(_, line)| format!("{line}\n"))
        .collect();
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&aside)
        .explain(RecordsError::Io, || format!("opening {}", aside.display()))?;
    file.write_all(text.as_bytes())
        .explain(RecordsError::Io, || format!("writing {}", aside.display()))?;
    let numbers: Vec<String> = damaged.iter().map(|(n, _)| n.to_string()).collect();
    tracing::warn!(
        "{}: line(s) {} are not records (damaged): left out of the run's records and kept in {}",
        path.display(),
        numbers.join(", "),
        aside.display()
    );
    Ok(())
}

fn read_lines(path: &Path) -> Result<Vec<String>> {
    let reading = || format!("reading {}", path.display());
    let file = File::open(path).explain(RecordsError::Io, reading)?;
    BufReader::new(file)
        .lines()
        .collect::<std::io::Result<_>>()
        .explain(RecordsError::Io, reading)
}

/// One line as a record.
fn parse(line: &str) -> serde_json::Result<Record> {
    serde_json::from_str(line)
}

#[cfg(test)]
impl Record {
    /// A record of `phase` at `step` (4 steps an epoch) with `loss`, for tests.
    pub(crate) fn sample(phase: Phase, step: u64, loss: f64) -> Record {
        Record {
            phase,
            epoch: step as f64 / 4.0,
            step,
            loss,
            top1: 0.5,
            top5: 1.0,
            lr: if phase == Phase::Train { 0.1 } else { 0.0 },
            dur: 0.01,
            data_load_dur: 0.0,
            comm_dur: 0.0,
            peak_rss_mib: Some(512.0),
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
        let (mut records, _) = RecordsFile::open(&path, 0).unwrap();
        for (phase, step, loss) in [
            (Phase::Val, 0, 2.0),
            (Phase::Train, 1, 1.5),
            (Phase::Train, 2, f64::NAN),
            (Phase::Val, 2, f64::NAN),
            (Phase::Train, 3, f64::NAN),
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
        assert!(!dir.path().join("records.jsonl.damaged").exists());
    }

    /// A damaged line in the middle (a disk error, a hand edit) is left out on resume, but kept
    /// aside in records.jsonl.damaged, where it used to vanish without a word.
    #[test]
    fn a_damaged_line_within_the_records_is_kept_aside_on_resume() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("records.jsonl");
        let (mut records, _) = RecordsFile::open(&path, 0).unwrap();
        records
            .append(&Record::sample(Phase::Train, 1, 1.0))
            .unwrap();
        drop(records);
        let garbage = "\u{0}\u{0}garbage";
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str(&format!("{garbage}\n"));
        std::fs::write(&path, text).unwrap();
        let (mut records, _) = RecordsFile::open(&path, 5).unwrap();
        records
            .append(&Record::sample(Phase::Train, 2, 1.0))
            .unwrap();
        drop(records);
        assert_eq!(read_records(&path).unwrap().len(), 2);
        let aside = std::fs::read_to_string(dir.path().join("records.jsonl.damaged")).unwrap();
        assert_eq!(aside, format!("{garbage}\n"));
    }

    #[test]
    fn validations_carry_the_scalars_they_measure_and_steps_all() {
        let names = |phase| -> Vec<&str> {
            let record = Record::sample(phase, 4, 1.0);
            record.scalars().map(|(scalar, _)| scalar.name).collect()
        };
        assert_eq!(
            names(Phase::Train),
            [
                "loss",
                "top1",
                "top5",
                "lr",
                "data_wait_secs",
                "peak_rss_mib"
            ]
        );
        assert_eq!(names(Phase::Val), ["loss", "top1", "top5", "peak_rss_mib"]);
    }

    /// Records written before the peak memory was measured read as records without it; a
    /// record without it is written without it.
    #[test]
    fn the_peak_memory_is_optional_both_ways() {
        let old = r#"{"phase":"train","epoch":0.5,"step":1,"loss":2.0,"top1":0.25,"top5":1.0,"lr":0.1,"dur":0.1,"data_load_dur":0.0,"comm_dur":0.0}"#;
        let record = parse(old).unwrap();
        assert_eq!(record.peak_rss_mib, None);
        // Nor does it carry the scalar: TensorBoard gets no tag for it, not a NaN.
        assert!(record
            .scalars()
            .all(|(scalar, _)| scalar.name != "peak_rss_mib"));
        assert_eq!(serde_json::to_string(&record).unwrap(), old);
        let measured = Record::sample(Phase::Val, 4, 1.0);
        let line = serde_json::to_string(&measured).unwrap();
        assert!(line.ends_with(r#""peak_rss_mib":512.0}"#), "{line}");
        assert_eq!(parse(&line).unwrap(), measured);
    }
}
