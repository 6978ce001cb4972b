//! The library's progress as bars on a terminal's stderr: one per piece of work, work within
//! work (a validation between training steps) drawn below the work it interrupts.

use cornet_trainer::progress::{Progress, Work};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// The bars of the work under way, the innermost last.
#[derive(Default)]
pub struct Bars {
    drawn: MultiProgress,
    bars: Vec<(ProgressBar, Work)>,
}

impl Progress for Bars {
    fn start(&mut self, work: Work, total: u64, done: u64) {
        let template = match work {
            Work::Training => "{bar:30} {pos}/{len} steps ({eta} left) {msg}",
            Work::Validating => "validating {bar:30} {pos}/{len} batches ({eta} left)",
            Work::Extracting => "extracting {bar:30} {pos}/{len} images ({per_sec}, eta {eta})",
            Work::Evaluating => "evaluating {bar:30} {pos}/{len} images ({per_sec}, eta {eta})",
            Work::Scoring => "scoring {bar:30} {pos}/{len} taps ({msg}, eta {eta})",
            Work::Benchmarking => "timing {bar:30} {pos}/{len} steps {msg}",
            Work::Listing => "{msg} {bar:30} {pos}/{len} folders ({eta} left)",
        };
        let style = ProgressStyle::with_template(template).expect("static template");
        let bar = self.drawn.add(ProgressBar::new(total).with_style(style));
        bar.set_position(done);
        self.bars.push((bar, work));
    }

    fn advance(&mut self, units: u64) {
        if let Some((bar, _)) = self.bars.last() {
            bar.inc(units);
        }
    }

    fn say(&mut self, message: &str) {
        if let Some((bar, _)) = self.bars.last() {
            bar.set_message(message.to_owned());
        }
    }

    /// The bar shows what a note says.
    fn note(&mut self, _line: &str) {}

    /// Training's bar stays, with its last step; the others' make room for what is printed.
    fn finish(&mut self) {
        match self.bars.pop() {
            Some((bar, Work::Training)) => bar.finish(),
            Some((bar, _)) => bar.finish_and_clear(),
            None => {}
        }
    }

    fn stop(&mut self, why: &str) {
        if let Some((bar, _)) = self.bars.pop() {
            bar.abandon_with_message(why.to_owned());
        }
    }
}
