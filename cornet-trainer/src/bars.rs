//! The library's progress as bars on stderr (indicatif draws them only on a terminal).

use cornet_trainer::progress::{Progress, Work};
use indicatif::{ProgressBar, ProgressStyle};

/// A bar per piece of work, drawn as the work's kind asks.
#[derive(Default)]
pub struct Bars {
    bar: Option<(ProgressBar, Work)>,
}

impl Progress for Bars {
    fn start(&mut self, work: Work, total: u64, done: u64) {
        let template = match work {
            Work::Training => "{bar:30} {pos}/{len} steps ({eta} left) {msg}",
            Work::Extracting => "extracting {bar:30} {pos}/{len} images ({per_sec}, eta {eta})",
            Work::Evaluating => "evaluating {bar:30} {pos}/{len} images ({per_sec}, eta {eta})",
            Work::Scoring => "scoring {bar:30} {pos}/{len} taps ({msg}, eta {eta})",
        };
        let style = ProgressStyle::with_template(template).expect("static template");
        let bar = ProgressBar::new(total).with_style(style);
        bar.set_position(done);
        self.bar = Some((bar, work));
    }

    fn advance(&mut self, units: u64) {
        if let Some((bar, _)) = &self.bar {
            bar.inc(units);
        }
    }

    fn say(&mut self, message: &str) {
        if let Some((bar, _)) = &self.bar {
            bar.set_message(message.to_owned());
        }
    }

    /// Training's bar stays, with its last step; the others' make room for what is printed.
    fn finish(&mut self) {
        match self.bar.take() {
            Some((bar, Work::Training)) => bar.finish(),
            Some((bar, _)) => bar.finish_and_clear(),
            None => {}
        }
    }

    fn stop(&mut self, why: &str) {
        if let Some((bar, _)) = self.bar.take() {
            bar.abandon_with_message(why.to_owned());
        }
    }
}
