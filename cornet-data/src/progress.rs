//! How far a long task is (listing a folder, packing, hashing, timing the loader), told to
//! whoever runs it. The library only counts, through [`Progress`]; what the user sees is the
//! caller's choice: a bar on a terminal (the `cornet-data` command draws one with indicatif),
//! plain periodic lines in a log ([`Lines`]: under Slurm, nohup or a pipe), or nothing
//! ([`NoProgress`]).

use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What a task counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Things, named in the plural: `"images"`, `"class folders"`.
    Items(&'static str),
    /// Bytes, shown as KiB, MiB, GiB.
    Bytes,
}

/// Receives a long task's progress: one task at a time, from `begin` to `finish`, with
/// `advance` called from any thread (listing and hashing run on several).
pub trait Progress: Sync {
    /// A task starts: `what` it is (`"listing /data/train"`), what it counts, and how many of
    /// those it will count, where known.
    fn begin(&self, what: &str, unit: Unit, total: Option<u64>);
    /// `n` more were done.
    fn advance(&self, n: u64);
    /// The task ended (not called when it failed).
    fn finish(&self);
}

/// Progress told to no one.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn begin(&self, _: &str, _: Unit, _: Option<u64>) {}
    fn advance(&self, _: u64) {}
    fn finish(&self) {}
}

/// Progress as plain lines, for logs: one when a task begins, one at most every `every` while
/// it runs, and a summary when it ends.
///
/// ```text
/// packing into /data/shards: 0/3200 images
/// packing into /data/shards: 1408/3200 images (44%), 281.5 images/s, 6 s left
/// packing into /data/shards: 3200 images in 11.2 s (285.7 images/s)
/// ```
pub struct Lines<W> {
    every: Duration,
    state: Mutex<LinesState<W>>,
}

struct LinesState<W> {
    out: W,
    task: Option<Task>,
}

/// The task being counted.
struct Task {
    what: String,
    unit: Unit,
    total: Option<u64>,
    done: u64,
    started: Instant,
    last_line: Instant,
}

impl<W: Write + Send> Lines<W> {
    /// Lines written to `out`, a running one at most every `every`.
    pub fn new(out: W, every: Duration) -> Self {
        Lines {
            every,
            state: Mutex::new(LinesState { out, task: None }),
        }
    }

    /// The writer, once the tasks are done (what a test reads back).
    pub fn into_inner(self) -> W {
        self.state
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .out
    }

    fn with_state(&self, f: impl FnOnce(&mut LinesState<W>)) {
        // A panic elsewhere while the lock was held leaves counts that are still worth showing.
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

impl<W: Write + Send> Progress for Lines<W> {
    fn begin(&self, what: &str, unit: Unit, total: Option<u64>) {
        self.with_state(|state| {
            let now = Instant::now();
            let task = Task {
                what: what.to_owned(),
                unit,
                total,
                done: 0,
                started: now,
                last_line: now,
            };
            let line = match total {
                Some(total) => format!("{what}: 0/{}", amount(unit, total)),
                None => format!("{what}: started"),
            };
            // Progress is a courtesy: a log that cannot be written must not stop the work.
            let _ = writeln!(state.out, "{line}");
            state.task = Some(task);
        });
    }

    fn advance(&self, n: u64) {
        self.with_state(|state| {
            let Some(task) = &mut state.task else { return };
            task.done += n;
            let now = Instant::now();
            if now.duration_since(task.last_line) >= self.every {
                task.last_line = now;
                let _ = writeln!(state.out, "{}", task.running_line(now));
            }
        });
    }

    fn finish(&self) {
        self.with_state(|state| {
            if let Some(task) = state.task.take() {
                let _ = writeln!(state.out, "{}", task.summary(Instant::now()));
            }
        });
    }
}

impl Task {
    /// `what: done/total unit (p%), rate, time left`, or `what: done unit, rate` when the
    /// total is unknown.
    fn running_line(&self, now: Instant) -> String {
        let seconds = now.duration_since(self.started).as_secs_f64();
        let per_sec = self.done as f64 / seconds.max(1e-9);
        let rate = rate(self.unit, per_sec);
        match self.total {
            Some(total) if total > 0 => {
                let left = total.saturating_sub(self.done) as f64 / per_sec;
                format!(
                    "{}: {}/{} ({}%), {rate}, {} left",
                    self.what,
                    count(self.unit, self.done),
                    amount(self.unit, total),
                    self.done * 100 / total,
                    duration(left)
                )
            }
            _ => format!("{}: {}, {rate}", self.what, amount(self.unit, self.done)),
        }
    }

    /// `what: done unit in s (rate)`.
    fn summary(&self, now: Instant) -> String {
        summary(
            &self.what,
            self.unit,
            self.done,
            now.duration_since(self.started),
        )
    }
}

/// The line that ends a task: `what: 3200 images in 11.2 s (285.7 images/s)`. A bar on a
/// terminal ends with it too, so that a terminal and a log tell the same.
pub fn summary(what: &str, unit: Unit, done: u64, elapsed: Duration) -> String {
    let seconds = elapsed.as_secs_f64();
    format!(
        "{what}: {} in {:.1} s ({})",
        amount(unit, done),
        seconds,
        rate(unit, done as f64 / seconds.max(1e-9))
    )
}

/// `412` for items (the unit follows the total), `1.2 GiB` for bytes.
fn count(unit: Unit, n: u64) -> String {
    match unit {
        Unit::Items(_) => n.to_string(),
        Unit::Bytes => bytes(n),
    }
}

/// `512 B`, `70.5 KiB`, `1.2 GiB`: a size in binary units, one decimal.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `1000 class folders`, `142.0 GiB`.
fn amount(unit: Unit, n: u64) -> String {
    match unit {
        Unit::Items(name) => format!("{n} {name}"),
        Unit::Bytes => count(unit, n),
    }
}

/// `285.7 images/s`, `201.3 MiB/s`.
fn rate(unit: Unit, per_sec: f64) -> String {
    match unit {
        Unit::Items(name) => format!("{per_sec:.1} {name}/s"),
        Unit::Bytes => format!("{}/s", count(unit, per_sec as u64)),
    }
}

/// `42 s`, `11 min`, `2 h 05 min`: how long, to a reader's precision.
fn duration(seconds: f64) -> String {
    if !seconds.is_finite() {
        return "? s".into();
    }
    let seconds = seconds.round() as u64;
    match seconds {
        0..=99 => format!("{seconds} s"),
        100..=5999 => format!("{} min", seconds.div_ceil(60)),
        _ => format!("{} h {:02} min", seconds / 3600, seconds % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_begin_run_and_sum_up() {
        // Every advance prints a running line when the interval is zero.
        let lines = Lines::new(Vec::new(), Duration::ZERO);
        lines.begin("packing into out", Unit::Items("images"), Some(4));
        lines.advance(1);
        lines.advance(3);
        lines.finish();
        lines.begin("verifying out", Unit::Bytes, None);
        lines.advance(3 << 20);
        lines.finish();
        let text = String::from_utf8(lines.into_inner()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 7, "{text}");
        assert_eq!(lines[0], "packing into out: 0/4 images");
        assert!(
            lines[1].starts_with("packing into out: 1/4 images (25%), ")
                && lines[1].contains(" images/s, ")
                && lines[1].ends_with(" left"),
            "{}",
            lines[1]
        );
        assert!(lines[2].starts_with("packing into out: 4/4 images (100%), "));
        assert!(
            lines[3].starts_with("packing into out: 4 images in ")
                && lines[3].ends_with(" images/s)"),
            "{}",
            lines[3]
        );
        assert_eq!(lines[4], "verifying out: started");
        assert!(
            lines[5].starts_with("verifying out: 3.0 MiB, ") && lines[5].ends_with("/s"),
            "{}",
            lines[5]
        );
        assert!(
            lines[6].starts_with("verifying out: 3.0 MiB in "),
            "{}",
            lines[6]
        );
    }

    #[test]
    fn lines_wait_for_the_interval() {
        let lines = Lines::new(Vec::new(), Duration::from_secs(3600));
        lines.begin("listing root", Unit::Items("class folders"), Some(1000));
        for _ in 0..1000 {
            lines.advance(1);
        }
        lines.finish();
        let text = String::from_utf8(lines.into_inner()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[1].starts_with("listing root: 1000 class folders in "));
    }

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(72_192), "70.5 KiB");
        assert_eq!(bytes(3 << 20), "3.0 MiB");
        assert_eq!(bytes(142 << 30), "142.0 GiB");
    }

    #[test]
    fn durations_read_as_a_person_says_them() {
        assert_eq!(duration(4.4), "4 s");
        assert_eq!(duration(99.0), "99 s");
        assert_eq!(duration(100.0), "2 min");
        assert_eq!(duration(660.0), "11 min");
        assert_eq!(duration(7500.0), "2 h 05 min");
        assert_eq!(duration(f64::INFINITY), "? s");
    }
}
