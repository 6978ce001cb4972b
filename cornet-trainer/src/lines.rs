//! The library's progress where no bar can be drawn (a batch job's log, nohup, a pipe): its
//! notes, each a plain line on stderr, at the pace the work chose.

use cornet_trainer::progress::{Progress, Work};

/// Prints the notes; a line a minute says more in a log than a redrawn bar.
#[derive(Debug, Default)]
pub struct Lines;

impl Progress for Lines {
    fn start(&mut self, _work: Work, _total: u64, _done: u64) {}
    fn advance(&mut self, _units: u64) {}
    fn say(&mut self, _message: &str) {}

    fn note(&mut self, line: &str) {
        eprintln!("{line}");
    }

    fn finish(&mut self) {}
    /// Whoever stops the work says why in its own log line.
    fn stop(&mut self, _why: &str) {}
}
