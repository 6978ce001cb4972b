//! What can go wrong reading runs' records and drawing their curves.

use crate::error::Cause;
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
    /// A file could not be read or written; the message names it.
    #[error("{0}")]
    Io(String, #[source] Option<Cause>),
    /// The plot could not be drawn.
    #[error("{0}")]
    Draw(String, #[source] Option<Cause>),
}
