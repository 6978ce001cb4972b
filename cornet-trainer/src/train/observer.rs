//! What the loop tells the outside as it goes, kept out of the loop: the progress bar and the
//! records file are one observer of it.

use super::error::Result;
use super::records::{Record, RecordsFile};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::Path;

/// Sees the loop's events, on every rank, in order.
pub trait RunObserver {
    /// A training step is done; `images` were in its batch on this rank.
    fn on_step(&mut self, record: &Record, images: usize) -> Result<()>;
    /// A validation is done.
    fn on_validation(&mut self, record: &Record) -> Result<()>;
    /// Rank 0 wrote a checkpoint to `path`.
    fn on_checkpoint(&mut self, path: &Path);
    /// The run stopped on a signal, after its checkpoint.
    fn on_stop(&mut self);
    /// Every step is done (the final validation and checkpoint follow).
    fn on_finish(&mut self);
}

/// The observer of a real run: on rank 0 a progress bar on stderr and `OUT/records.jsonl`;
/// other ranks show and write nothing.
pub struct RunReport {
    progress: ProgressBar,
    records: Option<RecordsFile>,
    /// Smoothed throughput for the progress bar (0 before the first step).
    images_per_sec: f64,
}

impl RunReport {
    /// The report of a run of `total_steps`, now at `global_step`: a resumed run's records
    /// are cut back to that step (see [`RecordsFile::open`]).
    pub fn open(
        rank0: bool,
        output_dir: &Path,
        total_steps: u64,
        global_step: u64,
    ) -> Result<Self> {
        if !rank0 {
            return Ok(RunReport {
                progress: ProgressBar::hidden(),
                records: None,
                images_per_sec: 0.0,
            });
        }
        let records = RecordsFile::open(&output_dir.join("records.jsonl"), global_step)?;
        let progress = ProgressBar::new(total_steps).with_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} steps ({eta} left) {msg}")
                .expect("static template"),
        );
        progress.set_position(global_step);
        Ok(RunReport {
            progress,
            records: Some(records),
            images_per_sec: 0.0,
        })
    }

    fn append(&mut self, record: &Record) -> Result<()> {
        match self.records.as_mut() {
            Some(records) => records.append(record),
            None => Ok(()),
        }
    }
}

impl RunObserver for RunReport {
    fn on_step(&mut self, record: &Record, images: usize) -> Result<()> {
        let images = images as f64;
        self.images_per_sec = match self.images_per_sec {
            0.0 => images / record.dur,
            smooth => 0.9 * smooth + 0.1 * images / record.dur,
        };
        self.progress.set_position(record.step);
        self.progress.set_message(format!(
            "loss {:.3} top1 {:.1}% lr {:.2e} {:.0} img/s",
            record.loss,
            100.0 * record.top1,
            record.lr,
            self.images_per_sec
        ));
        self.append(record)
    }

    fn on_validation(&mut self, record: &Record) -> Result<()> {
        self.append(record)
    }

    fn on_checkpoint(&mut self, path: &Path) {
        tracing::debug!("checkpoint {}", path.display());
    }

    fn on_stop(&mut self) {
        self.progress
            .abandon_with_message("stopped; the checkpoint holds the progress");
    }

    fn on_finish(&mut self) {
        self.progress.finish();
    }
}
