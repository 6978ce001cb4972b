//! How far long work has got, told to whoever shows it: the library reports through
//! [`Progress`] and shows nothing itself; the `cornet-trainer` binary draws progress bars.

/// The long work the library reports on; a display may show each its own way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// Training steps (`train`).
    Training,
    /// Images through a model, their taps kept (`test`, `score --model`).
    Extracting,
    /// Labelled images scored (`eval`).
    Evaluating,
    /// Taps scored against recordings (`score --model`).
    Scoring,
}

/// Hears how far work has got. Calls come in order: [`Progress::start`], then any number of
/// [`Progress::advance`] and [`Progress::say`], then [`Progress::finish`] or
/// [`Progress::stop`]; then perhaps the next work.
pub trait Progress {
    /// `work` of `total` units (steps, images, taps) begins, `done` of them already done (the
    /// steps before a resumed run's checkpoint).
    fn start(&mut self, work: Work, total: u64, done: u64);
    /// `units` more are done.
    fn advance(&mut self, units: u64);
    /// How it goes, or what is being done now (a step's loss, the tap being scored).
    fn say(&mut self, message: &str);
    /// The work is done.
    fn finish(&mut self);
    /// The work stopped before its end, for the reason given.
    fn stop(&mut self, why: &str);
}

/// Progress that nobody sees: for other ranks than 0, and for callers that show none.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quiet;

impl Progress for Quiet {
    fn start(&mut self, _work: Work, _total: u64, _done: u64) {}
    fn advance(&mut self, _units: u64) {}
    fn say(&mut self, _message: &str) {}
    fn finish(&mut self) {}
    fn stop(&mut self, _why: &str) {}
}
