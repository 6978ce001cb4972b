//! What can go wrong in scoring, each message naming the file or tap at fault.

use crate::arrays::ArrayError;
use crate::error::Cause;

/// A score that could not be computed. The kinds tell apart an input array that cannot be
/// read or scored, arrays whose shapes do not agree, a cross-validation protocol that cannot
/// work, features that no metric is defined for, and the files of drawn folds.
#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    /// An input array (features, recordings, folds, split halves) that could not be read: not
    /// `.npy`, another dtype.
    #[error(transparent)]
    Array(#[from] ArrayError),
    /// An input array that holds what cannot be scored: NaN or infinite values.
    #[error("{0}")]
    Unscorable(String),
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
    /// A file of drawn folds or split halves could not be written; the message names it.
    #[error("{0}")]
    Output(String, #[source] Option<Cause>),
    /// Drawn folds or split halves could not be encoded as `.npy`.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A tensor operation failed.
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
}

/// What scoring returns.
pub type Result<T, E = ScoreError> = std::result::Result<T, E>;
