//! The run's progress as [`Progress`] hears it: steps done and how the last one went.

use super::error::Result;
use super::observer::{RunObserver, RunStart};
use crate::progress::{Progress, Work};
use crate::records::Record;

/// Tells `progress` of each step: loss, top-1, learning rate and smoothed throughput.
pub struct ShowProgress<'a> {
    progress: &'a mut dyn Progress,
    /// Smoothed throughput (0 before the first step).
    images_per_sec: f64,
}

impl<'a> ShowProgress<'a> {
    /// Progress of a run starting at `start`.
    pub fn new(progress: &'a mut dyn Progress, start: &RunStart) -> Self {
        progress.start(Work::Training, start.total_steps, start.global_step);
        ShowProgress {
            progress,
            images_per_sec: 0.0,
        }
    }
}

impl RunObserver for ShowProgress<'_> {
    fn on_step(&mut self, record: &Record, images: usize) -> Result<()> {
        let rate = images as f64 / record.dur;
        self.images_per_sec = match self.images_per_sec {
            0.0 => rate,
            smooth => 0.9 * smooth + 0.1 * rate,
        };
        self.progress.advance(1);
        self.progress.say(&format!(
            "loss {:.3} top1 {:.1}% lr {:.2e} {:.0} img/s",
            record.loss,
            100.0 * record.top1,
            record.lr,
            self.images_per_sec
        ));
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
