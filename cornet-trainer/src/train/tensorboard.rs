//! `OUT/tensorboard/`: the run's curves as TensorBoard event files (`output.tensorboard`),
//! written by rank 0 alone. One event per train step and one per validation, a tag per scalar
//! of the record under its phase ([`crate::records::SCALARS`]: `train/loss`, `val/top1`, ...)
//! and the steps' `train/images_per_sec` over all ranks; accuracies as fractions as in
//! `records.jsonl`, NaN as NaN.
//!
//! A resumed run never rewrites the earlier files: it starts a new one with a `SessionLog`
//! START at its step k, on which TensorBoard drops every value logged at step k or after,
//! in every file and tag (`event_accumulator.py`, `_CheckForRestartAndMaybePurge`: kept are
//! the values with `step < k`). That removes what the lost run logged after its checkpoint,
//! and its validation at k (run after the checkpoint, so redone), but also train step k,
//! which the checkpoint holds and the resumed run does not redo: its event is copied from
//! the earlier files right after the START.

use super::error::{Result, TrainError};
use super::observer::RunObserver;
use crate::error::Explain;
use crate::records::Record;
use crate::tfevents::{self, Event, EventWriter, What};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The name the files give as their writer.
const WRITER: &str = "cornet-trainer";

/// The longest a train step's values wait in the buffer: a TensorBoard watching a live run
/// sees it move.
const FLUSH_EVERY: Duration = Duration::from_secs(30);

/// The run's TensorBoard log, open for appending.
pub struct TensorBoardLog {
    events: EventWriter,
    /// Ranks: each step's images were this many times one rank's batch.
    world_size: usize,
    last_flush: Instant,
}

impl TensorBoardLog {
    /// A new event file in `dir` for a run now at `global_step` over `world_size` ranks; if
    /// `dir` already holds files, the run resumes (see the module's note).
    pub fn open(dir: &Path, global_step: u64, world_size: usize) -> Result<Self> {
        let io_error = |what: &str, path: &Path| format!("{what} {}", path.display());
        std::fs::create_dir_all(dir).explain(TrainError::Io, || io_error("creating", dir))?;
        let earlier =
            tfevents::event_files(dir).explain(TrainError::Io, || io_error("reading", dir))?;
        let checkpointed_step = if earlier.is_empty() {
            None
        } else {
            Some(last_train_event_at(&earlier, global_step)?)
        };
        let mut events = EventWriter::create(dir, now(), WRITER).explain(TrainError::Io, || {
            io_error("creating an event file in", dir)
        })?;
        if let Some(checkpointed_step) = checkpointed_step {
            let start = tfevents::restart(now(), global_step);
            for event in std::iter::once(start).chain(checkpointed_step) {
                events
                    .write(&event)
                    .explain(TrainError::Io, || io_error("writing", events.path()))?;
            }
        }
        let mut log = TensorBoardLog {
            events,
            world_size,
            last_flush: Instant::now(),
        };
        log.flush()?;
        Ok(log)
    }

    /// The record's scalars, each tagged under its phase, and a step's throughput.
    fn write(&mut self, record: &Record, images_per_sec: Option<f64>) -> Result<()> {
        let phase = record.phase.name();
        let mut values: Vec<(String, f64)> = record
            .scalars()
            .map(|(scalar, value)| (format!("{phase}/{}", scalar.name), value))
            .collect();
        if let Some(rate) = images_per_sec {
            values.push((format!("{phase}/images_per_sec"), rate));
        }
        let values: Vec<(&str, f64)> = values.iter().map(|(t, v)| (t.as_str(), *v)).collect();
        let path = self.events.path().to_owned();
        self.events
            .write(&tfevents::scalars(now(), record.step, &values))
            .explain(TrainError::Io, || format!("writing {}", path.display()))
    }

    fn flush(&mut self) -> Result<()> {
        self.last_flush = Instant::now();
        let path: PathBuf = self.events.path().to_owned();
        self.events
            .flush()
            .explain(TrainError::Io, || format!("writing {}", path.display()))
    }
}

/// The last event of train values at `step` in `files` (read in order), if any was logged.
fn last_train_event_at(files: &[PathBuf], step: u64) -> Result<Option<Event>> {
    let mut found = None;
    for path in files {
        let events = tfevents::read_events(path)
            .explain(TrainError::Io, || format!("reading {}", path.display()))?;
        let mut at_step = events.into_iter().filter(|event| {
            event.step == step as i64
                && matches!(&event.what, Some(What::Summary(summary))
                    if summary.value.iter().any(|v| v.tag.starts_with("train/")))
        });
        found = at_step.next_back().or(found);
    }
    Ok(found)
}

/// Seconds since the Unix epoch, TensorBoard's wall time.
fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64())
}

impl RunObserver for TensorBoardLog {
    fn on_step(&mut self, record: &Record, images: usize) -> Result<()> {
        let images_per_sec = (images * self.world_size) as f64 / record.dur;
        self.write(record, Some(images_per_sec))?;
        if self.last_flush.elapsed() >= FLUSH_EVERY {
            self.flush()?;
        }
        Ok(())
    }

    fn on_validation(&mut self, record: &Record) -> Result<()> {
        self.write(record, None)?;
        self.flush()
    }

    fn on_checkpoint(&mut self, _path: &Path) -> Result<()> {
        self.flush()
    }

    fn on_stop(&mut self) -> Result<()> {
        self.flush()
    }

    fn on_finish(&mut self) -> Result<()> {
        self.flush()
    }
}
