//! What the loop tells the outside as it goes, kept out of the loop: the progress bar and the
//! records file are one observer of it, which passes each event on to the TensorBoard log
//! and the curves when the run has them.

use super::curves_file::CurvesFile;
use super::error::Result;
use super::records::{Record, RecordsFile};
use super::tensorboard::TensorBoardLog;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::Path;

/// Sees the loop's events, on every rank, in order.
pub trait RunObserver {
    /// A training step is done; `images` were in its batch on this rank.
    fn on_step(&mut self, record: &Record, images: usize) -> Result<()>;
    /// A validation is done.
    fn on_validation(&mut self, record: &Record) -> Result<()>;
    /// Rank 0 wrote a checkpoint to `path`.
    fn on_checkpoint(&mut self, path: &Path) -> Result<()>;
    /// The run stopped on a signal, after its checkpoint.
    fn on_stop(&mut self) -> Result<()>;
    /// Every step is done (the final validation and checkpoint follow).
    fn on_finish(&mut self) -> Result<()>;
}

/// What a run writes besides its records, on rank 0.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReportOptions {
    /// TensorBoard event files in `OUT/tensorboard/` (`output.tensorboard`).
    pub tensorboard: bool,
    /// The ranks of the run (for the throughput of all of them).
    pub world_size: usize,
}

/// The observer of a real run: on rank 0 a progress bar on stderr, `OUT/records.jsonl`,
/// `OUT/curves.svg` and, if asked, `OUT/tensorboard/`; other ranks show and write nothing.
pub struct RunReport {
    progress: ProgressBar,
    records: Option<RecordsFile>,
    /// The curves and the TensorBoard log, told every event after the records.
    followers: Vec<Box<dyn RunObserver>>,
    /// Smoothed throughput for the progress bar (0 before the first step).
    images_per_sec: f64,
}

impl RunReport {
    /// The report of a run of `total_steps`, now at `global_step`: a resumed run's records
    /// are cut back to that step (see [`RecordsFile::open`]), its TensorBoard log told to
    /// drop what comes after it (see [`TensorBoardLog::open`]).
    pub fn open(
        rank0: bool,
        output_dir: &Path,
        total_steps: u64,
        global_step: u64,
        options: ReportOptions,
    ) -> Result<Self> {
        if !rank0 {
            return Ok(RunReport {
                progress: ProgressBar::hidden(),
                records: None,
                followers: Vec::new(),
                images_per_sec: 0.0,
            });
        }
        let records = RecordsFile::open(&output_dir.join("records.jsonl"), global_step)?;
        let mut followers: Vec<Box<dyn RunObserver>> =
            vec![Box::new(CurvesFile::open(output_dir)?)];
        if options.tensorboard {
            followers.push(Box::new(TensorBoardLog::open(
                &output_dir.join("tensorboard"),
                global_step,
                options.world_size,
            )?));
        }
        let progress = ProgressBar::new(total_steps).with_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} steps ({eta} left) {msg}")
                .expect("static template"),
        );
        progress.set_position(global_step);
        Ok(RunReport {
            progress,
            records: Some(records),
            followers,
            images_per_sec: 0.0,
        })
    }

    fn append(&mut self, record: &Record) -> Result<()> {
        match self.records.as_mut() {
            Some(records) => records.append(record),
            None => Ok(()),
        }
    }

    /// Tells every follower, stopping at the first error.
    fn tell(&mut self, event: impl Fn(&mut dyn RunObserver) -> Result<()>) -> Result<()> {
        self.followers
            .iter_mut()
            .try_for_each(|follower| event(follower.as_mut()))
    }
}

impl RunObserver for RunReport {
    fn on_step(&mut self, record: &Record, images: usize) -> Result<()> {
        let rate = images as f64 / record.dur;
        self.images_per_sec = match self.images_per_sec {
            0.0 => rate,
            smooth => 0.9 * smooth + 0.1 * rate,
        };
        self.progress.set_position(record.step);
        self.progress.set_message(format!(
            "loss {:.3} top1 {:.1}% lr {:.2e} {:.0} img/s",
            record.loss,
            100.0 * record.top1,
            record.lr,
            self.images_per_sec
        ));
        self.append(record)?;
        self.tell(|follower| follower.on_step(record, images))
    }

    fn on_validation(&mut self, record: &Record) -> Result<()> {
        self.append(record)?;
        self.tell(|follower| follower.on_validation(record))
    }

    fn on_checkpoint(&mut self, path: &Path) -> Result<()> {
        tracing::debug!("checkpoint {}", path.display());
        self.tell(|follower| follower.on_checkpoint(path))
    }

    fn on_stop(&mut self) -> Result<()> {
        self.progress
            .abandon_with_message("stopped; the checkpoint holds the progress");
        self.tell(|follower| follower.on_stop())
    }

    fn on_finish(&mut self) -> Result<()> {
        self.progress.finish();
        self.tell(|follower| follower.on_finish())
    }
}
