//! Learning curves from `records.jsonl`: loss and top-1 of training and validation against
//! epochs, and the learning rate, for one run (`OUT/curves.svg`, rewritten at each
//! validation) or several overlaid (`cornet-trainer plot`). One [`draw::svg`] draws both.
//!
//! Train records are one batch each, too noisy to read: the curves show their means over
//! tenths of an epoch ([`BINS_PER_EPOCH`]), which leaves short runs' steps as they are.

pub mod draw;
mod error;

pub use error::CurvesError;

use crate::error::Explain;
use crate::train::Record;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

/// Train records are averaged over bins of 1/`BINS_PER_EPOCH` of an epoch.
pub const BINS_PER_EPOCH: f64 = 10.0;

/// A mean of the finite values given (a diverged step's NaN leaves a gap, not a NaN mean).
#[derive(Debug, Clone, Copy, Default)]
struct Mean {
    sum: f64,
    count: u32,
}

impl Mean {
    fn add(&mut self, value: f64) {
        if value.is_finite() {
            self.sum += value;
            self.count += 1;
        }
    }

    fn value(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / f64::from(self.count))
    }
}

/// The train records of one bin of an epoch.
#[derive(Debug, Clone, Copy)]
struct Bin {
    index: i64,
    epoch: Mean,
    loss: Mean,
    top1: Mean,
}

/// What the curves of one run show, built record by record.
#[derive(Debug, Clone)]
pub struct RunCurves {
    /// The run's name in the legend.
    pub name: String,
    train: Vec<Bin>,
    /// Validations: (epoch, loss, top-1).
    val: Vec<(f64, f64, f64)>,
    /// (epoch of the first step at this rate, rate), one entry per change.
    lr: Vec<(f64, f64)>,
    /// The epoch of the last train step.
    last_train_epoch: f64,
}

impl RunCurves {
    /// No records yet.
    pub fn new(name: impl Into<String>) -> Self {
        RunCurves {
            name: name.into(),
            train: Vec::new(),
            val: Vec::new(),
            lr: Vec::new(),
            last_train_epoch: 0.0,
        }
    }

    /// The run in `dir`, from `dir/records.jsonl`, named after the folder.
    pub fn load(dir: &Path) -> Result<Self, CurvesError> {
        let path = dir.join("records.jsonl");
        if !path.is_file() {
            return Err(CurvesError::NoRecords {
                dir: dir.to_owned(),
            });
        }
        let mut curves = RunCurves::new(run_name(dir));
        for record in read_records(&path)? {
            curves.push(&record);
        }
        if curves.train.is_empty() && curves.val.is_empty() {
            return Err(CurvesError::Empty { path });
        }
        Ok(curves)
    }

    /// Adds one record, in the order of the run.
    pub fn push(&mut self, record: &Record) {
        match record.phase.as_str() {
            "val" => self.val.push((record.epoch, record.loss, record.top1)),
            _ => {
                // Step k of n per epoch is at epoch k/n, a bin's last at its right edge; the
                // margin keeps k/n * 10 = 3.0000000000000004 in the bin that ends at 3.
                let index = (record.epoch * BINS_PER_EPOCH - 1e-9).ceil() as i64 - 1;
                if self.train.last().is_none_or(|bin| bin.index != index) {
                    self.train.push(Bin {
                        index,
                        epoch: Mean::default(),
                        loss: Mean::default(),
                        top1: Mean::default(),
                    });
                }
                let bin = self.train.last_mut().expect("pushed above");
                bin.epoch.add(record.epoch);
                bin.loss.add(record.loss);
                bin.top1.add(record.top1);
                if self.lr.last().is_none_or(|&(_, lr)| lr != record.lr) {
                    self.lr.push((record.epoch, record.lr));
                }
                self.last_train_epoch = record.epoch;
            }
        }
    }

    /// Mean train loss per bin, (epoch, loss).
    pub fn train_loss(&self) -> Vec<(f64, f64)> {
        self.bins(|bin| bin.loss)
    }

    /// Mean train top-1 per bin, (epoch, fraction).
    pub fn train_top1(&self) -> Vec<(f64, f64)> {
        self.bins(|bin| bin.top1)
    }

    fn bins(&self, value: impl Fn(&Bin) -> Mean) -> Vec<(f64, f64)> {
        self.train
            .iter()
            .filter_map(|bin| Some((bin.epoch.value()?, value(bin).value()?)))
            .collect()
    }

    /// Validation loss, (epoch, loss), finite values only.
    pub fn val_loss(&self) -> Vec<(f64, f64)> {
        finite(self.val.iter().map(|&(epoch, loss, _)| (epoch, loss)))
    }

    /// Validation top-1, (epoch, fraction), finite values only.
    pub fn val_top1(&self) -> Vec<(f64, f64)> {
        finite(self.val.iter().map(|&(epoch, _, top1)| (epoch, top1)))
    }

    /// The learning rate as a staircase: each rate held from its first step to the next
    /// rate's (the last to the last step).
    pub fn lr_steps(&self) -> Vec<(f64, f64)> {
        let ends = self.lr.iter().skip(1).map(|&(epoch, _)| epoch);
        let ends = ends.chain(std::iter::once(self.last_train_epoch));
        let stairs = self
            .lr
            .iter()
            .zip(ends)
            .flat_map(|(&(from, lr), to)| [(from, lr), (to, lr)]);
        finite(stairs)
    }

    /// The last epoch any record reaches.
    pub fn last_epoch(&self) -> f64 {
        let val = self.val.iter().map(|&(epoch, _, _)| epoch);
        val.fold(self.last_train_epoch, f64::max)
    }
}

/// Draws the runs in the folders `runs` into the SVG `output` (written aside and renamed).
pub fn plot(runs: &[PathBuf], output: &Path) -> Result<(), CurvesError> {
    let curves = runs
        .iter()
        .map(|dir| RunCurves::load(dir))
        .collect::<Result<Vec<_>, _>>()?;
    let drawing = || format!("drawing {}", output.display());
    let svg = draw::svg(&curves).map_err(|cause| CurvesError::Draw(drawing(), Some(cause)))?;
    crate::files::write_whole(output, svg).explain(CurvesError::Io, drawing)
}

/// A run's name in a legend: its folder's.
pub fn run_name(dir: &Path) -> String {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
    dir.file_name().map_or_else(
        || dir.display().to_string(),
        |name| name.to_string_lossy().into_owned(),
    )
}

fn finite(points: impl Iterator<Item = (f64, f64)>) -> Vec<(f64, f64)> {
    points
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect()
}

/// Every record of the `records.jsonl` at `path` (a step's NaN was written as `null` and
/// reads back as NaN). A line that is no record is an error naming the file and line, except
/// a last line cut short by a run that is still writing it.
pub fn read_records(path: &Path) -> Result<Vec<Record>, CurvesError> {
    let reading = || format!("reading {}", path.display());
    let file = std::fs::File::open(path).explain(CurvesError::Io, reading)?;
    let lines: Vec<String> = BufReader::new(file)
        .lines()
        .collect::<std::io::Result<_>>()
        .explain(CurvesError::Io, reading)?;
    let mut records = Vec::with_capacity(lines.len());
    for (number, line) in lines.iter().enumerate() {
        match serde_json::from_str::<Record>(line) {
            Ok(record) => records.push(record),
            Err(err) if err.is_eof() && number + 1 == lines.len() => {}
            Err(source) => {
                return Err(CurvesError::Damaged {
                    path: path.to_owned(),
                    line: number + 1,
                    source,
                })
            }
        }
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn train(step: u64, loss: f64, lr: f64) -> Record {
        Record {
            phase: "train".into(),
            epoch: step as f64 / 20.0,
            step,
            loss,
            top1: 0.5,
            top5: 1.0,
            lr,
            dur: 0.1,
            data_load_dur: 0.0,
            comm_dur: 0.0,
        }
    }

    #[test]
    fn train_steps_are_averaged_per_tenth_of_an_epoch_and_the_rate_is_a_staircase() {
        // 20 steps per epoch: two steps per bin; a NaN loss leaves the other step's value.
        let mut curves = RunCurves::new("run");
        let losses = [4.0, 2.0, f64::NAN, 1.0, 0.5, 0.5];
        for (k, &loss) in losses.iter().enumerate() {
            let step = k as u64 + 1;
            curves.push(&train(step, loss, if step <= 4 { 0.1 } else { 0.01 }));
        }
        let close = |got: Vec<(f64, f64)>, expected: &[(f64, f64)]| {
            assert_eq!(got.len(), expected.len(), "{got:?}");
            for (g, e) in got.iter().zip(expected) {
                assert!(
                    (g.0 - e.0).abs() < 1e-12 && (g.1 - e.1).abs() < 1e-12,
                    "{got:?}"
                );
            }
        };
        close(
            curves.train_loss(),
            &[(0.075, 3.0), (0.175, 1.0), (0.275, 0.5)],
        );
        close(
            curves.lr_steps(),
            &[(0.05, 0.1), (0.25, 0.1), (0.25, 0.01), (0.3, 0.01)],
        );
        assert_eq!(curves.last_epoch(), 0.3);
    }
}
