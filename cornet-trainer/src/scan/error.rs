//! What can go wrong in a model scan; messages name the file, flag or tap at fault.

use crate::error::Cause;
use crate::extract::ExtractError;
use crate::score::ScoreError;

/// A scan that could not be made: the stimuli, the model's features, a tap's score, or the
/// output files.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The stimulus list (`--stimuli`) could not be read, or names images that are not there.
    #[error("{0}")]
    Read(String, #[source] Option<Cause>),
    /// The images are not as many as the recordings' stimuli.
    #[error("{0}")]
    Shape(String),
    /// The recordings, the protocol or a tap's features could not be scored.
    #[error(transparent)]
    Score(#[from] ScoreError),
    /// A tap's features that could not be scored, or a tap not named `<module>.<call>`; the
    /// message names the tap and the weights.
    #[error("{0}")]
    Features(String, #[source] Option<Cause>),
    /// The model's features could not be extracted.
    #[error(transparent)]
    Extract(#[from] ExtractError),
    /// An output folder or file (file list, scores, plot) could not be written; the message
    /// names it.
    #[error("{0}")]
    Output(String, #[source] Option<Cause>),
    /// A row of the scores could not be written as CSV.
    #[error(transparent)]
    Csv(#[from] csv::Error),
    /// A tensor operation failed.
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
}

/// What a scan returns.
pub type Result<T, E = ScanError> = std::result::Result<T, E>;
