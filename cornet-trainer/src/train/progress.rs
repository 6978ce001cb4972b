//! The run's progress as [`Progress`] hears it: steps done and how the last one went, for a
//! bar; and, at the pace of `output.log_every_*`, whole lines for a log (where the run is,
//! the means since the last line, the time left), as the original `run.py` and PyTorch's
//! ImageNet example print them. Validations report their own batches the same two ways.

use super::error::Result;
use super::observer::{RunObserver, RunStart};
use crate::progress::{human_duration, Cadence, Progress, Work};
use crate::records::Record;
use std::time::Instant;

/// How often a log line is due: every `steps` training steps (or validation batches) or
/// every `secs` seconds, whichever comes first; 0 turns either off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogEvery {
    /// Steps (or validation batches) between lines; 0: not by steps.
    pub steps: u64,
    /// Seconds between lines; 0: not by time.
    pub secs: u64,
}

impl LogEvery {
    /// Whether any line is asked for.
    fn is_on(self) -> bool {
        self.steps > 0 || self.secs > 0
    }

    fn cadence(self) -> Cadence {
        Cadence::new(self.steps, self.secs, Instant::now())
    }
}

/// Tells `progress` of each step (loss, top-1, learning rate, epoch and smoothed throughput)
/// and of each validation batch, and notes lines for a log at the pace asked.
pub struct ShowProgress<'a> {
    progress: &'a mut dyn Progress,
    run: RunStart,
    every: LogEvery,
    /// Smoothed throughput over all ranks (0 before the first step).
    images_per_sec: f64,
    /// When the next training line is due.
    cadence: Cadence,
    /// The steps since the last training line.
    since_note: StepSums,
    /// The validation under way, if one is.
    validation: Option<ValidationProgress>,
}

/// Sums over the steps since the last line, for its means.
#[derive(Debug, Clone, Copy, Default)]
struct StepSums {
    steps: u64,
    images: u64,
    loss: f64,
    top1: f64,
    secs: f64,
    data_wait_secs: f64,
}

/// Where a validation is.
#[derive(Debug, Clone)]
struct ValidationProgress {
    step: u64,
    batches: u64,
    done: u64,
    images: u64,
    started: Instant,
    cadence: Cadence,
}

impl<'a> ShowProgress<'a> {
    /// Progress of a run starting at `run`, with a log line at the pace of `every`.
    pub fn new(progress: &'a mut dyn Progress, run: &RunStart, every: LogEvery) -> Self {
        progress.start(Work::Training, run.total_steps, run.global_step);
        if every.is_on() {
            progress.note(&format!(
                "training from step {} to {} ({} epochs of {} steps)",
                run.global_step,
                run.total_steps,
                run.total_steps / run.steps_per_epoch.max(1),
                run.steps_per_epoch
            ));
        }
        ShowProgress {
            progress,
            run: *run,
            every,
            images_per_sec: 0.0,
            cadence: every.cadence(),
            since_note: StepSums::default(),
            validation: None,
        }
    }

    /// The epoch a record is at, of the run's epochs: `2.47/25`.
    fn epoch(&self, record: &Record) -> String {
        let epochs = self.run.total_steps / self.run.steps_per_epoch.max(1);
        format!("{:.2}/{epochs}", record.epoch)
    }

    /// The line for a log after `record`'s step: means over the steps since the last line.
    fn step_line(&self, record: &Record) -> String {
        let sums = &self.since_note;
        let steps = sums.steps.max(1) as f64;
        let left = self.run.total_steps.saturating_sub(record.step) as f64;
        format!(
            "step {}/{} | epoch {} | loss {:.4} | top-1 {:.2}% | lr {:.2e} | {:.0} img/s | \
             data wait {:.3} s/step | {} left",
            record.step,
            self.run.total_steps,
            self.epoch(record),
            sums.loss / steps,
            100.0 * sums.top1 / steps,
            record.lr,
            self.run.world_size as f64 * sums.images as f64 / sums.secs,
            sums.data_wait_secs / steps,
            human_duration(left * sums.secs / steps),
        )
    }
}

impl RunObserver for ShowProgress<'_> {
    fn on_step(&mut self, record: &Record, images: usize) -> Result<()> {
        let rate = self.run.world_size as f64 * images as f64 / record.dur;
        self.images_per_sec = match self.images_per_sec {
            0.0 => rate,
            smooth => 0.9 * smooth + 0.1 * rate,
        };
        self.progress.advance(1);
        self.progress.say(&format!(
            "epoch {} loss {:.3} top1 {:.1}% lr {:.2e} {:.0} img/s",
            self.epoch(record),
            record.loss,
            100.0 * record.top1,
            record.lr,
            self.images_per_sec
        ));
        let sums = &mut self.since_note;
        sums.steps += 1;
        sums.images += images as u64;
        sums.loss += record.loss;
        sums.top1 += record.top1;
        sums.secs += record.dur;
        sums.data_wait_secs += record.data_load_dur;
        if self.cadence.due(1, Instant::now()) {
            let line = self.step_line(record);
            self.progress.note(&line);
            self.since_note = StepSums::default();
        }
        Ok(())
    }

    fn on_validation_start(&mut self, step: u64, batches: u64) {
        self.progress.start(Work::Validating, batches, 0);
        if self.every.is_on() {
            self.progress
                .note(&format!("validation at step {step}: {batches} batches"));
        }
        self.validation = Some(ValidationProgress {
            step,
            batches,
            done: 0,
            images: 0,
            started: Instant::now(),
            cadence: self.every.cadence(),
        });
    }

    fn on_validation_batch(&mut self, images: usize) {
        self.progress.advance(1);
        let Some(val) = &mut self.validation else {
            return;
        };
        val.done += 1;
        val.images += images as u64;
        let now = Instant::now();
        if val.cadence.due(1, now) {
            let secs = now.duration_since(val.started).as_secs_f64();
            let left = val.batches.saturating_sub(val.done) as f64 * secs / val.done as f64;
            self.progress.note(&format!(
                "validation at step {}: batch {}/{} | {:.0} img/s | {} left",
                val.step,
                val.done,
                val.batches,
                self.run.world_size as f64 * val.images as f64 / secs,
                human_duration(left),
            ));
        }
    }

    fn on_validation(&mut self, _record: &Record) -> Result<()> {
        if self.validation.take().is_some() {
            self.progress.finish();
        }
        Ok(())
    }

    fn on_stop(&mut self) -> Result<()> {
        self.progress
            .stop("stopped; the checkpoint holds the progress");
        Ok(())
    }

    fn on_finish(&mut self) -> Result<()> {
        self.progress.finish();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::Phase;

    /// What a display was told: the notes, and the works started and finished.
    #[derive(Default)]
    struct Told {
        notes: Vec<String>,
        works: Vec<String>,
    }

    impl Progress for Told {
        fn start(&mut self, work: Work, total: u64, done: u64) {
            self.works.push(format!("start {work:?} {done}/{total}"));
        }
        fn advance(&mut self, _units: u64) {}
        fn say(&mut self, _message: &str) {}
        fn note(&mut self, line: &str) {
            self.notes.push(line.to_owned());
        }
        fn finish(&mut self) {
            self.works.push("finish".into());
        }
        fn stop(&mut self, _why: &str) {}
    }

    /// Step `step` of 4 per epoch: 32 images in 2 s, 0.5 s of it waiting for data.
    fn step(step: u64, loss: f64) -> Record {
        Record {
            dur: 2.0,
            data_load_dur: 0.5,
            ..Record::sample(Phase::Train, step, loss)
        }
    }

    #[test]
    fn a_log_line_every_so_many_steps_gives_the_means_since_the_last() {
        let mut told = Told::default();
        let run = RunStart {
            total_steps: 12,
            steps_per_epoch: 4,
            global_step: 0,
            rank: 0,
            world_size: 2,
        };
        let every = LogEvery { steps: 2, secs: 0 };
        let mut show = ShowProgress::new(&mut told, &run, every);
        show.on_validation_start(0, 3);
        for _ in 0..3 {
            show.on_validation_batch(16);
        }
        show.on_validation(&Record::sample(Phase::Val, 0, 2.0))
            .unwrap();
        for (k, loss) in [3.0, 2.0, 1.0].into_iter().enumerate() {
            show.on_step(&step(k as u64 + 1, loss), 32).unwrap();
        }
        show.on_finish().unwrap();
        assert_eq!(told.notes.len(), 4, "{:?}", told.notes);
        assert_eq!(
            told.notes[0],
            "training from step 0 to 12 (3 epochs of 4 steps)"
        );
        assert_eq!(told.notes[1], "validation at step 0: 3 batches");
        assert!(
            told.notes[2].starts_with("validation at step 0: batch 2/3 | "),
            "{}",
            told.notes[2]
        );
        // Two ranks of 32 images per 2 s step; 10 steps left at 2 s each.
        assert_eq!(
            told.notes[3],
            "step 2/12 | epoch 0.50/3 | loss 2.5000 | top-1 50.00% | lr 1.00e-1 | 32 img/s | \
             data wait 0.500 s/step | 20s left"
        );
        // The validation's bar within training's, then training's end.
        assert_eq!(
            told.works,
            [
                "start Training 0/12",
                "start Validating 0/3",
                "finish",
                "finish"
            ]
        );
    }
}
