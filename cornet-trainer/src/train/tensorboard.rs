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
//! the earlier files right after the START. And what the lost run recorded in
//! `records.jsonl` before k but never got into its event files (a write that failed on a full
//! disk, values still buffered when it died) is written there too, from the records, so that
//! the curves read as `records.jsonl` does: each value once.

use super::error::{Result, TrainError};
use super::observer::RunObserver;
use crate::error::Explain;
use crate::records::{Phase, Record};
use crate::tfevents::{self, Event, EventWriter, What};
use std::collections::HashSet;
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
    /// `dir` already holds files, the run resumes, `records` its records so far (see the
    /// module's note).
    pub fn open(
        dir: &Path,
        global_step: u64,
        world_size: usize,
        records: &[Record],
    ) -> Result<Self> {
        let io_error = |what: &str, path: &Path| format!("{what} {}", path.display());
        std::fs::create_dir_all(dir).explain(TrainError::Io, || io_error("creating", dir))?;
        let earlier =
            tfevents::event_files(dir).explain(TrainError::Io, || io_error("reading", dir))?;
        let events = EventWriter::create(dir, now(), WRITER).explain(TrainError::Io, || {
            io_error("creating an event file in", dir)
        })?;
        let mut log = TensorBoardLog {
            events,
            world_size,
            last_flush: Instant::now(),
        };
        if !earlier.is_empty() {
            log.resume(&Logged::read(&earlier, global_step)?, global_step, records)?;
        }
        log.flush()?;
        Ok(log)
    }

    /// After the START at `step`, what the earlier files lack: each record before `step` they
    /// never got, then train step `step`'s event (copied, or from the records).
    fn resume(&mut self, logged: &Logged, step: u64, records: &[Record]) -> Result<()> {
        let path = self.events.path().to_owned();
        let writing = || format!("writing {}", path.display());
        self.events
            .write(&tfevents::restart(now(), step))
            .explain(TrainError::Io, writing)?;
        let step_unlogged =
            |r: &Record| r.step == step && r.phase == Phase::Train && logged.at_step.is_none();
        let missing = records.iter().filter(|r| {
            (r.step < step && !logged.before.contains(&(r.phase, r.step))) || step_unlogged(r)
        });
        for record in missing {
            // A refilled step's throughput is not in the records: it stays out.
            self.write(record, None)?;
        }
        if let Some(event) = &logged.at_step {
            self.events.write(event).explain(TrainError::Io, writing)?;
        }
        Ok(())
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

/// What earlier event files hold of a run resumed at a step.
struct Logged {
    /// The (phase, step) of every value logged before the step.
    before: HashSet<(Phase, u64)>,
    /// The last event of train values at the step, if one was logged.
    at_step: Option<Event>,
}

impl Logged {
    /// Reads `files` in order, for a run resumed at `step`.
    fn read(files: &[PathBuf], step: u64) -> Result<Logged> {
        let mut logged = Logged {
            before: HashSet::new(),
            at_step: None,
        };
        for path in files {
            let events = tfevents::read_events(path)
                .explain(TrainError::Io, || format!("reading {}", path.display()))?;
            for event in events {
                let Some(What::Summary(summary)) = &event.what else {
                    continue;
                };
                let phases = summary.value.iter().filter_map(|v| phase_of(&v.tag));
                for phase in phases.collect::<HashSet<_>>() {
                    match u64::try_from(event.step) {
                        Ok(at) if at < step => {
                            logged.before.insert((phase, at));
                        }
                        Ok(at) if at == step && phase == Phase::Train => {
                            logged.at_step = Some(event.clone());
                        }
                        _ => {}
                    }
                }
            }
        }
        Ok(logged)
    }
}

/// The phase a tag (`train/loss`) belongs to.
fn phase_of(tag: &str) -> Option<Phase> {
    [Phase::Train, Phase::Val]
        .into_iter()
        .find(|phase| tag.split('/').next() == Some(phase.name()))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::RecordsFile;

    /// The steps, and the phase of their first tag, of the events in `path` after its header.
    fn logged(path: &Path) -> Vec<(String, i64)> {
        tfevents::read_events(path)
            .unwrap()
            .into_iter()
            .filter_map(|event| match event.what {
                Some(What::Summary(summary)) => {
                    let phase = summary.value[0].tag.split('/').next().unwrap().to_string();
                    Some((phase, event.step))
                }
                Some(What::SessionLog(_)) => Some(("START".into(), event.step)),
                _ => None,
            })
            .collect()
    }

    /// A run whose event file lost steps 4 and 5 and the validation at 4 (its writes failed on
    /// a full disk) while records.jsonl has them, resumed from its checkpoint at step 6: the
    /// new file gets them from the records after its START, then step 6, and nothing that the
    /// earlier file holds again.
    #[test]
    fn a_resumed_log_refills_from_the_records_what_the_earlier_files_lack() {
        let dir = tempfile::tempdir().unwrap();
        let (events, records) = (dir.path().join("tb"), dir.path().join("records.jsonl"));
        let all = [
            (Phase::Train, 1),
            (Phase::Train, 2),
            (Phase::Val, 2),
            (Phase::Train, 3),
            (Phase::Train, 4),
            (Phase::Val, 4),
            (Phase::Train, 5),
            (Phase::Train, 6),
        ];
        let (mut file, _) = RecordsFile::open(&records, 0).unwrap();
        let mut log = TensorBoardLog::open(&events, 0, 1, &[]).unwrap();
        for (n, &(phase, step)) in all.iter().enumerate() {
            let record = Record::sample(phase, step, 1.0);
            file.append(&record).unwrap();
            if n < 4 {
                match phase {
                    Phase::Train => log.on_step(&record, 8).unwrap(),
                    Phase::Val => log.on_validation(&record).unwrap(),
                }
            }
        }
        log.flush().unwrap();
        drop((file, log));

        let (_, so_far) = RecordsFile::open(&records, 6).unwrap();
        let resumed = TensorBoardLog::open(&events, 6, 1, &so_far).unwrap();
        let new_file = resumed.events.path().to_owned();
        drop(resumed);
        let expected = [
            ("START", 6),
            ("train", 4),
            ("val", 4),
            ("train", 5),
            ("train", 6),
        ];
        let expected: Vec<(String, i64)> =
            expected.iter().map(|&(p, s)| (p.to_string(), s)).collect();
        assert_eq!(logged(&new_file), expected);
    }
}
