//! How far long work has got, told to whoever shows it: the library reports through
//! [`Progress`] and shows nothing itself; the `cornet-trainer` binary draws progress bars on a
//! terminal and prints the library's notes as plain lines elsewhere (a batch job's log, a
//! pipe). [`Cadence`] says when a note is due.

use cornet_data::progress::{summary, Unit};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The long work the library reports on; a display may show each its own way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// Training steps (`train`).
    Training,
    /// Training's validation, in batches of this rank's share of the validation set.
    Validating,
    /// Images through a model, their taps kept (`test`, `score --model`).
    Extracting,
    /// Labelled images scored (`eval`).
    Evaluating,
    /// Taps scored against recordings (`score --model`).
    Scoring,
    /// Steps timed by `bench`, its warm-up included.
    Benchmarking,
    /// A data set's folders listed (`train` before its first step).
    Listing,
}

/// Hears how far work has got. Calls come in order: [`Progress::start`], then any number of
/// [`Progress::advance`], [`Progress::say`] and [`Progress::note`], then [`Progress::finish`]
/// or [`Progress::stop`]; then perhaps the next work. Work may start within work (a
/// validation between training steps): the inner work's calls come until its own finish or
/// stop, and the outer work's calls resume after.
pub trait Progress: Send {
    /// `work` of `total` units (steps, images, taps) begins, `done` of them already done (the
    /// steps before a resumed run's checkpoint).
    fn start(&mut self, work: Work, total: u64, done: u64);
    /// `units` more are done.
    fn advance(&mut self, units: u64);
    /// How it goes, or what is being done now (a step's loss, the tap being scored), for a
    /// display that shows the work live.
    fn say(&mut self, message: &str);
    /// A whole line for a log that shows no live progress: where the work is and how it goes,
    /// sent at a pace the caller chose ([`Cadence`]). A display that shows the work live
    /// already shows what the line says, and may leave it out.
    fn note(&mut self, line: &str);
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
    fn note(&mut self, _line: &str) {}
    fn finish(&mut self) {}
    fn stop(&mut self, _why: &str) {}
}

/// A [`Progress`] lent to cornet-data's long work (listing a data set's folders), which
/// reports through cornet-data's own trait, from several threads: the counts pass on, and a
/// note at the cadence given, so that a log shows the listing as it goes.
pub struct DataProgress<'a> {
    shared: Mutex<DataTask<'a>>,
}

struct DataTask<'a> {
    progress: &'a mut dyn Progress,
    secs: u64,
    cadence: Cadence,
    what: String,
    unit: Unit,
    total: Option<u64>,
    done: u64,
    started: Instant,
}

impl<'a> DataProgress<'a> {
    /// `progress`, told of cornet-data's work, with a note every `secs` seconds (0: none but
    /// the first and the last).
    pub fn new(progress: &'a mut dyn Progress, secs: u64) -> Self {
        let now = Instant::now();
        DataProgress {
            shared: Mutex::new(DataTask {
                progress,
                secs,
                cadence: Cadence::new(0, secs, now),
                what: String::new(),
                unit: Unit::Items(""),
                total: None,
                done: 0,
                started: now,
            }),
        }
    }
}

impl cornet_data::progress::Progress for DataProgress<'_> {
    fn begin(&self, what: &str, unit: Unit, total: Option<u64>) {
        let mut task = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        task.progress.start(Work::Listing, total.unwrap_or(0), 0);
        task.progress.say(what);
        task.progress.note(&format!("{what}..."));
        task.cadence = Cadence::new(0, task.secs, now);
        (task.what, task.unit, task.total, task.done, task.started) =
            (what.to_owned(), unit, total, 0, now);
    }

    fn advance(&self, n: u64) {
        let mut task = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        task.done += n;
        task.progress.advance(n);
        if task.cadence.due(n, Instant::now()) {
            let of = task.total.map_or(String::new(), |t| format!("/{t}"));
            let line = format!("{}: {}{of} {}", task.what, task.done, unit_name(task.unit));
            task.progress.note(&line);
        }
    }

    fn finish(&self) {
        let mut task = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        let line = summary(&task.what, task.unit, task.done, task.started.elapsed());
        task.progress.note(&line);
        task.progress.finish();
    }
}

fn unit_name(unit: Unit) -> &'static str {
    match unit {
        Unit::Items(name) => name,
        Unit::Bytes => "bytes",
    }
}

/// When the next note is due: after every `units` units of work or every `interval`, whichever
/// comes first (either may be off), counted from the last note.
#[derive(Debug, Clone)]
pub struct Cadence {
    units: Option<u64>,
    interval: Option<Duration>,
    units_since: u64,
    last: Instant,
}

impl Cadence {
    /// A note every `units` units (0: not by units) or every `secs` seconds (0: not by time),
    /// counted from `now`.
    pub fn new(units: u64, secs: u64, now: Instant) -> Self {
        Cadence {
            units: (units > 0).then_some(units),
            interval: (secs > 0).then(|| Duration::from_secs(secs)),
            units_since: 0,
            last: now,
        }
    }

    /// `units` more are done at `now`: whether a note is due, in which case the counts start
    /// again from here.
    pub fn due(&mut self, units: u64, now: Instant) -> bool {
        self.units_since += units;
        let by_units = self.units.is_some_and(|every| self.units_since >= every);
        let by_time = self
            .interval
            .is_some_and(|every| now.duration_since(self.last) >= every);
        if by_units || by_time {
            self.units_since = 0;
            self.last = now;
        }
        by_units || by_time
    }
}

/// A span of seconds as a log shows time left: `42s`, `3m05s`, `2h07m`.
pub fn human_duration(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "?".into();
    }
    let secs = secs.round() as u64;
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_note_is_due_after_so_many_units_or_so_much_time_whichever_comes_first() {
        let t0 = Instant::now();
        let at = |secs| t0 + Duration::from_secs(secs);
        let mut cadence = Cadence::new(3, 10, t0);
        let due: Vec<bool> = [(1, 1), (1, 2), (1, 3), (1, 4), (0, 13), (1, 14)]
            .iter()
            .map(|&(units, secs)| cadence.due(units, at(secs)))
            .collect();
        // Three units at 3 s; then 10 s after that note, with one unit only.
        assert_eq!(due, [false, false, true, false, true, false]);

        let mut by_time_only = Cadence::new(0, 5, t0);
        assert!(!by_time_only.due(1000, at(4)));
        assert!(by_time_only.due(1, at(5)));
        let mut never = Cadence::new(0, 0, t0);
        assert!(!never.due(u64::MAX / 2, at(1_000_000)));
    }

    #[test]
    fn time_left_reads_at_a_glance() {
        let shown: Vec<String> = [0.4, 42.0, 185.0, 7620.0, f64::NAN]
            .map(human_duration)
            .into();
        assert_eq!(shown, ["0s", "42s", "3m05s", "2h07m", "?"]);
    }
}
