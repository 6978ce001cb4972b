//! What the library's error types share: a failure explained in words, with the error that
//! caused it kept as its `source()`.
//!
//! Each area of the library has its own error type. A kind of failure that says what was
//! being done (`writing /x/records.jsonl`) is a variant `Kind(String, Option<Cause>)` that
//! displays the message alone: the cause follows as the next link of the error chain, so a
//! chain printed link by link (`a: b: c`) shows each message once.

/// The error behind a failure that another error explains, kept as that error's `source()`.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// Explains a failure as one kind of error, the original error as its cause:
/// `result.explain(TrainError::Io, || format!("writing {}", path.display()))`, where the kind
/// is a variant `Kind(String, #[source] Option<Cause>)` of any of the crate's error types. On
/// an `Option`, `None` becomes that kind without a cause.
pub(crate) trait Explain<T> {
    /// On failure, `kind(message(), cause)`.
    fn explain<E>(
        self,
        kind: impl FnOnce(String, Option<Cause>) -> E,
        message: impl FnOnce() -> String,
    ) -> Result<T, E>;
}

impl<T, C: Into<Cause>> Explain<T> for Result<T, C> {
    fn explain<E>(
        self,
        kind: impl FnOnce(String, Option<Cause>) -> E,
        message: impl FnOnce() -> String,
    ) -> Result<T, E> {
        self.map_err(|cause| kind(message(), Some(cause.into())))
    }
}

impl<T> Explain<T> for Option<T> {
    fn explain<E>(
        self,
        kind: impl FnOnce(String, Option<Cause>) -> E,
        message: impl FnOnce() -> String,
    ) -> Result<T, E> {
        self.ok_or_else(|| kind(message(), None))
    }
}

/// Work that a signal stopped before its end, after saving what lets it go on (a checkpoint).
/// The command exits with [`StoppedBySignal::exit_status`], 128 + the signal's number, as a
/// process the signal had ended would: never 0, so that a script, Slurm or torchrun sees a run
/// that did not finish (torchrun restarts such a worker, which resumes by itself).
#[derive(Debug, thiserror::Error)]
#[error("stopped by {} {what}: continue with --resume auto", signal_name(*.signal))]
pub struct StoppedBySignal {
    /// SIGINT or SIGTERM's number.
    pub signal: i32,
    /// Where the work stood: `at step 66, after a checkpoint`.
    pub what: String,
}

impl StoppedBySignal {
    /// 130 for SIGINT, 143 for SIGTERM: what a shell reports for a process they ended.
    pub fn exit_status(&self) -> u8 {
        u8::try_from(128 + self.signal).unwrap_or(u8::MAX)
    }
}

fn signal_name(signal: i32) -> String {
    nix::sys::signal::Signal::try_from(signal)
        .map_or_else(|_| format!("signal {signal}"), |s| s.as_str().to_owned())
}
