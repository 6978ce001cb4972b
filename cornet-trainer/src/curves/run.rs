//! What the curves of one run show, built record by record: per drawn scalar
//! ([`crate::records::SCALARS`]), the train values' means per bin and the validations, or the
//! train values' staircase.

use crate::records::{Curve, Phase, Record, SCALARS};

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

/// The train records of one bin of an epoch: the mean epoch and, per scalar, the mean value.
#[derive(Debug, Clone)]
struct Bin {
    index: i64,
    epoch: Mean,
    values: Vec<Mean>,
}

/// What the curves of one run show.
#[derive(Debug, Clone)]
pub struct RunCurves {
    /// The run's name in the legend.
    pub name: String,
    train: Vec<Bin>,
    /// Validations: the epoch and each scalar's value (NaN for one validations lack).
    val: Vec<(f64, Vec<f64>)>,
    /// Per staircase scalar, (epoch of the first step at this value, value), one entry per
    /// change; empty for the others.
    stairs: Vec<Vec<(f64, f64)>>,
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
            stairs: vec![Vec::new(); SCALARS.len()],
            last_train_epoch: 0.0,
        }
    }

    /// Whether no record was added.
    pub fn is_empty(&self) -> bool {
        self.train.is_empty() && self.val.is_empty()
    }

    /// Adds one record, in the order of the run.
    pub fn push(&mut self, record: &Record) {
        if record.phase == Phase::Val {
            let values = SCALARS.iter().map(|s| match s.in_validations {
                true => (s.value)(record).unwrap_or(f64::NAN),
                false => f64::NAN,
            });
            self.val.push((record.epoch, values.collect()));
            return;
        }
        // Step k of n per epoch is at epoch k/n, a bin's last at its right edge; the margin
        // keeps k/n * 10 = 3.0000000000000004 in the bin that ends at 3.
        let index = (record.epoch * BINS_PER_EPOCH - 1e-9).ceil() as i64 - 1;
        if self.train.last().is_none_or(|bin| bin.index != index) {
            self.train.push(Bin {
                index,
                epoch: Mean::default(),
                values: vec![Mean::default(); SCALARS.len()],
            });
        }
        let bin = self.train.last_mut().expect("pushed above");
        bin.epoch.add(record.epoch);
        for ((scalar, mean), stairs) in SCALARS.iter().zip(&mut bin.values).zip(&mut self.stairs) {
            // A value the record lacks leaves a gap, as a NaN does.
            let value = (scalar.value)(record).unwrap_or(f64::NAN);
            match scalar.curve {
                Some(Curve::Staircase { .. }) => {
                    if stairs.last().is_none_or(|&(_, last)| last != value) {
                        stairs.push((record.epoch, value));
                    }
                }
                _ => mean.add(value),
            }
        }
        self.last_train_epoch = record.epoch;
    }

    /// Scalar `k`'s mean train value per bin, (epoch, value).
    pub fn train_means(&self, k: usize) -> Vec<(f64, f64)> {
        self.train
            .iter()
            .filter_map(|bin| Some((bin.epoch.value()?, bin.values[k].value()?)))
            .collect()
    }

    /// Scalar `k` at each validation, (epoch, value), finite values only.
    pub fn validations(&self, k: usize) -> Vec<(f64, f64)> {
        finite(self.val.iter().map(|(epoch, values)| (*epoch, values[k])))
    }

    /// Scalar `k` as a staircase: each value held from its first step to the next value's
    /// (the last to the last step).
    pub fn staircase(&self, k: usize) -> Vec<(f64, f64)> {
        let changes = &self.stairs[k];
        let ends = changes.iter().skip(1).map(|&(epoch, _)| epoch);
        let ends = ends.chain(std::iter::once(self.last_train_epoch));
        let stairs = changes
            .iter()
            .zip(ends)
            .flat_map(|(&(from, value), to)| [(from, value), (to, value)]);
        finite(stairs)
    }

    /// The last epoch any record reaches.
    pub fn last_epoch(&self) -> f64 {
        let val = self.val.iter().map(|(epoch, _)| *epoch);
        val.fold(self.last_train_epoch, f64::max)
    }
}

fn finite(points: impl Iterator<Item = (f64, f64)>) -> Vec<(f64, f64)> {
    points
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn train(step: u64, loss: f64, lr: f64) -> Record {
        Record {
            epoch: step as f64 / 20.0,
            lr,
            ..Record::sample(Phase::Train, step, loss)
        }
    }

    fn scalar(name: &str) -> usize {
        SCALARS.iter().position(|s| s.name == name).unwrap()
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
            curves.train_means(scalar("loss")),
            &[(0.075, 3.0), (0.175, 1.0), (0.275, 0.5)],
        );
        close(
            curves.staircase(scalar("lr")),
            &[(0.05, 0.1), (0.25, 0.1), (0.25, 0.01), (0.3, 0.01)],
        );
        assert_eq!(curves.last_epoch(), 0.3);
    }
}
