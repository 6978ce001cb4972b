//! Learning curves from `records.jsonl`: the records' drawn scalars against epochs (loss and
//! top-1 of training and validation, the learning rate), for one run (`OUT/curves.svg`,
//! rewritten at each validation) or several overlaid (`cornet-trainer plot`). One
//! [`draw::svg`] draws both.
//!
//! Train records are one batch each, too noisy to read: the curves show their means over
//! tenths of an epoch ([`BINS_PER_EPOCH`]), which leaves short runs' steps as they are.

pub mod draw;
mod error;
mod run;

pub use error::CurvesError;
pub use run::{RunCurves, BINS_PER_EPOCH};

use crate::error::Explain;
use crate::records::read_records;
use std::path::{Path, PathBuf};

/// The run in `dir`, from `dir/records.jsonl`, named after the folder.
pub fn load(dir: &Path) -> Result<RunCurves, CurvesError> {
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
    if curves.is_empty() {
        return Err(CurvesError::Empty { path });
    }
    Ok(curves)
}

/// Draws the runs in the folders `runs` into the SVG `output` (written aside and renamed).
pub fn plot(runs: &[PathBuf], output: &Path) -> Result<(), CurvesError> {
    let curves = runs
        .iter()
        .map(|dir| load(dir))
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
