//! What every layer is scored against: the recordings, their mean responses and what the
//! metrics compare with them, computed once.

use super::ceiling::split_half_ceiling;
use super::error::{Result, ScoreError};
use super::metric::Metric;
use super::similarity::{centred_gram, rdm};
use super::stats::varies;
use crate::arrays;
use crate::error::Explain;
use nalgebra::DMatrix;
use std::path::Path;

/// Neural responses: one [stimuli x neuroids] matrix per repetition.
pub struct Recordings {
    /// One `[stimuli x neuroids]` matrix per repetition.
    pub trials: Vec<DMatrix<f64>>,
    /// Whether the file had a repetition axis (then a ceiling is asked for).
    pub has_repetitions: bool,
}

impl Recordings {
    /// Stimuli recorded.
    pub fn stimuli(&self) -> usize {
        self.trials[0].nrows()
    }

    /// `[repetitions, stimuli, neuroids]` or `[stimuli, neuroids]` floats (.npy or npz entry).
    pub fn load(path: &Path) -> Result<Recordings> {
        let (shape, values) = read_scorable(path)?;
        let (has_repetitions, stimuli, neuroids) = match shape[..] {
            [_, s, n] => (true, s, n),
            [s, n] => (false, s, n),
            _ => return Err(ScoreError::Shape(format!("{}: recordings must be [repetitions, stimuli, neuroids] or [stimuli, neuroids], got {shape:?}", path.display()))),
        };
        holds_values(path, &shape, "recordings")?;
        let trials = values
            .chunks(stimuli * neuroids)
            .map(|block| DMatrix::from_row_slice(stimuli, neuroids, block))
            .collect();
        Ok(Recordings {
            trials,
            has_repetitions,
        })
    }
}

/// The recordings' side of a score, the same for every layer scored against them.
pub struct NeuralTarget {
    /// Mean over repetitions [stimuli x neuroids].
    pub(super) responses: DMatrix<f64>,
    pub(super) rdm: DMatrix<f64>,
    pub(super) centred_gram: DMatrix<f64>,
    /// Per-neuroid split-half ceiling and its median, when the protocol has split halves.
    pub(super) ceiling: Option<(Vec<f64>, f64)>,
}

impl NeuralTarget {
    /// The mean responses and what every layer's scores compare against for `metric`, with
    /// the split-half ceiling over `splits` when there are some. Responses for which a score
    /// asked for is undefined are refused here, naming the recordings at `path`, before any
    /// layer is scored.
    pub fn new(
        path: &Path,
        recordings: &Recordings,
        metric: Metric,
        splits: Option<&[Vec<usize>]>,
    ) -> Result<NeuralTarget> {
        let path = path.display();
        let responses = mean_over_repetitions(&recordings.trials);
        let refuse = |why: String| Err(ScoreError::Undefined(format!("{path}: {why}"), None));
        let column = |n: usize| responses.column(n).iter().copied().collect::<Vec<f64>>();
        let row = |i: usize| responses.row(i).iter().copied().collect::<Vec<f64>>();
        let neuroids = responses.ncols();
        if !(0..neuroids).any(|n| varies(&column(n))) {
            return refuse(
                "the mean responses are the same for every stimulus: no score is defined".into(),
            );
        }
        if metric.includes(Metric::Rsa) {
            if let Some(i) = (0..responses.nrows()).find(|&i| !varies(&row(i))) {
                return refuse(format!("stimulus {i}'s mean response is the same in all {neuroids} neuroids, so its correlation distance to other stimuli, and RSA, are undefined"));
            }
        }
        if metric.includes(Metric::Pls) {
            if let Some(n) = (0..neuroids).find(|&n| !varies(&column(n))) {
                return refuse(format!("neuroid {n}'s mean response is the same for every stimulus, so its predictivity (a Pearson r over stimuli) is undefined"));
            }
        }
        let ceiling = match splits {
            Some(splits) => Some(
                split_half_ceiling(&recordings.trials, splits)
                    .explain(ScoreError::Undefined, || {
                        format!("the noise ceiling of {path}")
                    })?,
            ),
            None => None,
        };
        Ok(NeuralTarget {
            rdm: rdm(&responses),
            centred_gram: centred_gram(&responses),
            ceiling,
            responses,
        })
    }

    /// The split-half ceiling's median, when there is one.
    pub fn ceiling(&self) -> Option<f64> {
        self.ceiling.as_ref().map(|(_, median)| *median)
    }
}

/// Neural responses averaged over repetitions: [repetitions][stimuli x neuroids] to
/// [stimuli x neuroids].
pub fn mean_over_repetitions(recordings: &[DMatrix<f64>]) -> DMatrix<f64> {
    let mut sum = DMatrix::zeros(recordings[0].nrows(), recordings[0].ncols());
    for r in recordings {
        sum += r;
    }
    sum / recordings.len() as f64
}

/// Refuses `what` (`features`, `recordings`) at `path` if an axis of its `shape` is empty:
/// there is nothing to score, and the metrics would divide by the empty axis.
pub(super) fn holds_values(path: &Path, shape: &[usize], what: &str) -> Result<()> {
    if shape.contains(&0) {
        return Err(ScoreError::Shape(format!(
            "{}: {what} of shape {shape:?} hold no values: every axis needs at least one entry",
            path.display()
        )));
    }
    Ok(())
}

/// An array of floats that can be scored, with its shape: NaN and infinity are refused,
/// naming the file.
pub(super) fn read_scorable(path: &Path) -> Result<(Vec<usize>, Vec<f64>)> {
    let arrays::Array { shape, values } = arrays::read_f64(path)?;
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(ScoreError::Unscorable(format!(
            "{}: element {i} is {} (NaN or infinite values cannot be scored)",
            path.display(),
            values[i]
        )));
    }
    Ok((shape, values))
}
