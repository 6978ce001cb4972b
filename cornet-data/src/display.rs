//! Progress as the user sees it: a bar on a terminal, plain lines in a log.

use cornet_data::progress::{summary, Lines, Progress, Unit};
use indicatif::{ProgressBar, ProgressState, ProgressStyle};
use std::fmt::Write;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A bar where stderr is a terminal; otherwise (a log, a pipe, a batch job) a line at most
/// every `every`.
pub fn progress(every: Duration) -> Box<dyn Progress> {
    if std::io::stderr().is_terminal() {
        Box::new(Bar::default())
    } else {
        Box::new(Lines::new(std::io::stderr(), every))
    }
}

/// One bar per task, replaced by the task's summary line when it ends.
#[derive(Default)]
struct Bar {
    shown: Mutex<Option<Shown>>,
}

struct Shown {
    bar: ProgressBar,
    what: String,
    unit: Unit,
    started: Instant,
}

impl Bar {
    fn shown(&self) -> std::sync::MutexGuard<'_, Option<Shown>> {
        self.shown.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Progress for Bar {
    fn begin(&self, what: &str, unit: Unit, total: Option<u64>) {
        let bar = match total {
            Some(total) => ProgressBar::new(total),
            None => ProgressBar::new_spinner(),
        };
        bar.set_style(style(unit, total.is_some()));
        bar.set_message(what.to_owned());
        bar.enable_steady_tick(Duration::from_millis(250));
        *self.shown() = Some(Shown {
            bar,
            what: what.to_owned(),
            unit,
            started: Instant::now(),
        });
    }

    fn advance(&self, n: u64) {
        if let Some(shown) = &*self.shown() {
            shown.bar.inc(n);
        }
    }

    fn finish(&self) {
        if let Some(shown) = self.shown().take() {
            shown.bar.finish_and_clear();
            let done = shown.bar.position();
            eprintln!(
                "{}",
                summary(&shown.what, shown.unit, done, shown.started.elapsed())
            );
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        if let Some(shown) = self.shown().take() {
            shown.bar.finish_and_clear();
        }
    }
}

fn style(unit: Unit, bounded: bool) -> ProgressStyle {
    let (count, rate) = match unit {
        Unit::Items(name) if bounded => (format!("{{pos}}/{{len}} {name}"), "{items_per_sec}"),
        Unit::Items(name) => (format!("{{pos}} {name}"), "{items_per_sec}"),
        Unit::Bytes if bounded => (
            "{binary_bytes}/{binary_total_bytes}".into(),
            "{binary_bytes_per_sec}",
        ),
        Unit::Bytes => ("{binary_bytes}".into(), "{binary_bytes_per_sec}"),
    };
    let template = if bounded {
        format!("{{msg}} {{bar:30}} {count}, {rate}, {{eta}} left")
    } else {
        format!("{{spinner}} {{msg}}: {count}, {rate}")
    };
    let name = match unit {
        Unit::Items(name) => name,
        Unit::Bytes => "bytes",
    };
    ProgressStyle::with_template(&template)
        .expect("a valid template")
        // As the log's lines say it (indicatif's own `per_sec` shows four decimals).
        .with_key(
            "items_per_sec",
            move |state: &ProgressState, out: &mut dyn Write| {
                let _ = write!(out, "{:.1} {name}/s", state.per_sec());
            },
        )
}
