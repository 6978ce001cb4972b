//! What can go wrong reading runs' records and drawing their curves.

use crate::error::Cause;
use crate::records::RecordsError;
use std::path::PathBuf;

/// A run's records that could not be read, or curves that could not be drawn; messages name
/// the folder, file and line at fault.
#[derive(Debug, thiserror::Error)]
pub enum CurvesError {
    /// The folder has no `records.jsonl`.
    #[error(
        "{} holds no records.jsonl: give run folders (a training run's output.path)",
        dir.display()
    )]
    NoRecords {
        /// The folder given.
        dir: PathBuf,
    },
    /// `records.jsonl` holds no record.
    #[error("{}: no records yet: the run has not finished a step", path.display())]
    Empty {
        /// The records file.
        path: PathBuf,
    },
    /// The records could not be read, or a line is not a record.
    #[error(transparent)]
    Records(#[from] RecordsError),
    /// The plot could not be written; the message names it.
    #[error("{0}")]
    Io(String, #[source] Option<Cause>),
    /// The plot could not be drawn.
    #[error("{0}")]
    Draw(String, #[source] Option<Cause>),
}
