//! `OUT/curves.svg`: the run's learning curves ([`crate::curves`]), redrawn by rank 0 after
//! each validation, written aside and renamed so that a viewer never reads half of one.

use super::error::{Result, TrainError};
use super::observer::RunObserver;
use crate::curves::{self, RunCurves};
use crate::error::Explain;
use crate::records::{read_records, Record};
use std::path::{Path, PathBuf};

/// The run's curves so far and where they are drawn.
pub struct CurvesFile {
    path: PathBuf,
    curves: RunCurves,
}

impl CurvesFile {
    /// The curves of the run in `output_dir`, from the records it holds (a resumed run's,
    /// already cut back to its checkpoint).
    pub fn open(output_dir: &Path) -> Result<Self> {
        let records = output_dir.join("records.jsonl");
        let mut curves = RunCurves::new(curves::run_name(output_dir));
        if records.is_file() {
            let kept = read_records(&records)
                .explain(TrainError::Io, || format!("reading {}", records.display()))?;
            kept.iter().for_each(|record| curves.push(record));
        }
        Ok(CurvesFile {
            path: output_dir.join("curves.svg"),
            curves,
        })
    }

    fn draw(&self) -> Result<()> {
        let drawing = || format!("drawing {}", self.path.display());
        let svg = curves::draw::svg(std::slice::from_ref(&self.curves))
            .map_err(|cause| TrainError::Io(drawing(), Some(cause)))?;
        crate::files::write_whole(&self.path, svg).explain(TrainError::Io, drawing)
    }
}

impl RunObserver for CurvesFile {
    fn on_step(&mut self, record: &Record, _images: usize) -> Result<()> {
        self.curves.push(record);
        Ok(())
    }

    fn on_validation(&mut self, record: &Record) -> Result<()> {
        self.curves.push(record);
        self.draw()
    }

    fn on_stop(&mut self) -> Result<()> {
        self.draw()
    }

    /// Drawn here too for a run that never validates (the final validation follows).
    fn on_finish(&mut self) -> Result<()> {
        self.draw()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::Phase;

    #[test]
    fn the_curves_are_redrawn_whole_at_each_validation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("curves.svg");
        let mut curves = CurvesFile::open(dir.path()).unwrap();
        curves
            .on_validation(&Record::sample(Phase::Val, 0, 2.3))
            .unwrap();
        let first = std::fs::read_to_string(&path).unwrap();
        for step in 1..=4 {
            curves
                .on_step(&Record::sample(Phase::Train, step, 2.0), 8)
                .unwrap();
        }
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            first,
            "steps draw nothing"
        );
        curves
            .on_validation(&Record::sample(Phase::Val, 4, 1.5))
            .unwrap();
        let second = std::fs::read_to_string(&path).unwrap();
        assert_ne!(second, first);
        assert!(second.starts_with("<svg") && second.trim_end().ends_with("</svg>"));
        assert!(!dir.path().join("curves.svg.partial").exists());
    }
}
