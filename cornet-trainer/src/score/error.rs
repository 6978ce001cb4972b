//! What can go wrong in scoring, each message naming the file or tap at fault.

use crate::error::Cause;
use crate::features::ExtractError;

/// A score that could not be computed. The kinds tell apart an input file that cannot be
/// read, arrays whose shapes do not agree, a cross-validation protocol that cannot work,
/// features that no metric is defined for, the extraction of a model's features, and the
/// output files.
#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    /// An input file (features, recordings, folds, split halves, stimulus list) that could not
    /// be read, or that holds what cannot be scored: not `.npy`, another dtype, NaN.
    #[error("{0}")]
    Read(String, #[source] Option<Cause>),
    /// Arrays whose shapes are not what a score needs, or that disagree on the stimuli.
    #[error("{0}")]
    Shape(String),
    /// Folds or split halves that cannot make the cross-validation or the noise ceiling.
    #[error("{0}")]
    Protocol(String),
    /// Features for which no metric is defined (the same for every stimulus, NaN), named by
    /// their file or tap.
    #[error("{0}")]
    Features(String, #[source] Option<Cause>),
    /// A score that these inputs leave undefined (a correlation over values that do not vary,
    /// more PLS components than units): the message says which input and why, never a NaN.
    #[error("{0}")]
    Undefined(String, #[source] Option<Cause>),
    /// The features hold NaN or infinite values.
    #[error("the features hold NaN or infinite values")]
    NonFinite,
    /// A model's features could not be extracted (`score --model`).
    #[error(transparent)]
    Extract(#[from] ExtractError),
    /// An output file (folds, split halves, scores, plot) could not be written; the message
    /// names it.
    #[error("{0}")]
    Output(String, #[source] Option<Cause>),
    /// An array's data could not be read or written (cut short).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A row of the scores could not be written to CSV.
    #[error(transparent)]
    Csv(#[from] csv::Error),
    /// A tensor operation failed.
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
}

/// What scoring returns.
pub type Result<T, E = ScoreError> = std::result::Result<T, E>;
