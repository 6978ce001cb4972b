//! The file a download is written to until it is whole: `<name>.<random>.partial` beside its
//! place in the cache (so that the final rename is atomic), as torch.hub names its own.
//!
//! It never outlives its download: a failed download drops it; SIGINT, SIGTERM or SIGHUP
//! during the download removes it before the signal ends the process as it would have; and
//! one left by a process killed outright (SIGKILL, a power cut) is swept by the next fetch
//! once nothing has written it for [`STALE_AFTER`].

use nix::libc;
use std::ffi::{c_char, c_int, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::time::{Duration, SystemTime};
use tempfile::NamedTempFile;

/// A partial file that nothing has written for this long belongs to no live download: one
/// that receives nothing for its stall timeout (seconds) fails and removes its own.
pub const STALE_AFTER: Duration = Duration::from_secs(10 * 60);

/// A download's partial file, removed unless persisted.
pub struct PartialFile {
    // Declared first, so dropped first: the signals stop pointing at the path before the file
    // is removed.
    _on_signal: Option<RemovedOnSignal>,
    file: NamedTempFile,
}

impl PartialFile {
    /// A new partial file for `name` in `dir`.
    pub fn create(dir: &Path, name: &str) -> std::io::Result<Self> {
        let file = tempfile::Builder::new()
            .prefix(&format!("{name}."))
            .suffix(".partial")
            .tempfile_in(dir)?;
        Ok(PartialFile {
            _on_signal: RemovedOnSignal::arm(file.path()),
            file,
        })
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// The open file, to write the body into.
    pub fn file_mut(&mut self) -> &mut std::fs::File {
        self.file.as_file_mut()
    }

    /// Flushes it to the disk and renames it to `path`.
    pub fn persist(self, path: &Path) -> std::io::Result<()> {
        let PartialFile { _on_signal, file } = self;
        file.as_file().sync_all()?;
        file.persist(path).map_err(|e| e.error)?;
        Ok(())
    }
}

/// Removes the partial files of published weights in `dir` that nothing has written for
/// [`STALE_AFTER`] (left by a download killed outright), saying so; a fresh one may be another
/// process's live download and is kept.
pub fn sweep_stale(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with("cornet_") && name.ends_with(".partial")) {
            continue;
        }
        let age = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|modified| now.duration_since(modified).ok());
        if age.is_some_and(|age| age > STALE_AFTER) && std::fs::remove_file(entry.path()).is_ok() {
            tracing::info!(
                "removed {}, left by an interrupted download",
                entry.path().display()
            );
        }
    }
}

/// The partial file that a terminating signal removes first: one download's at a time (a
/// second download alongside is left to [`sweep_stale`]).
static ARMED_PATH: AtomicPtr<c_char> = AtomicPtr::new(null_mut());

/// The signals that end a process by default and that a user or a scheduler sends to stop one.
const TERMINATING: [c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// While alive, [`TERMINATING`] signals remove the armed path before ending the process. Only
/// signals left at their default action are taken over, and each is given back as it was: a
/// program that handles a signal itself (or ignores it, as nohup does SIGHUP) keeps doing so.
struct RemovedOnSignal {
    taken_over: Vec<(c_int, libc::sigaction)>,
}

impl RemovedOnSignal {
    /// Arms `path`; `None` when it cannot be (another download is armed, or the path holds a
    /// NUL byte).
    fn arm(path: &Path) -> Option<Self> {
        let path = CString::new(path.as_os_str().as_bytes()).ok()?.into_raw();
        if ARMED_PATH
            .compare_exchange(null_mut(), path, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            // SAFETY: `path` came from `into_raw` above and was never shared.
            drop(unsafe { CString::from_raw(path) });
            return None;
        }
        let taken_over = TERMINATING
            .iter()
            .filter_map(|&signal| take_over_if_default(signal).map(|old| (signal, old)))
            .collect();
        Some(RemovedOnSignal { taken_over })
    }
}

impl Drop for RemovedOnSignal {
    fn drop(&mut self) {
        for (signal, old) in &self.taken_over {
            // SAFETY: `old` is the action `sigaction` reported for this signal.
            unsafe { libc::sigaction(*signal, old, null_mut()) };
        }
        let path = ARMED_PATH.swap(null_mut(), Ordering::SeqCst);
        if !path.is_null() {
            // SAFETY: `arm` stored it from `into_raw`; the swap took it from the handler.
            drop(unsafe { CString::from_raw(path) });
        }
    }
}

/// Installs [`remove_then_end`] for `signal` if its action is the default; returns the action
/// it replaced.
fn take_over_if_default(signal: c_int) -> Option<libc::sigaction> {
    // SAFETY: plain sigaction(2) calls on zeroed structs, which is how they are initialised;
    // the handler installed is async-signal-safe.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(signal, null_mut(), &mut old) != 0 || old.sa_sigaction != libc::SIG_DFL {
            return None;
        }
        let mut new: libc::sigaction = std::mem::zeroed();
        new.sa_sigaction = remove_then_end as extern "C" fn(c_int) as libc::sighandler_t;
        libc::sigemptyset(&mut new.sa_mask);
        (libc::sigaction(signal, &new, null_mut()) == 0).then_some(old)
    }
}

/// The signal handler: unlinks the armed path, then ends the process by the same signal with
/// its default action, as if nothing had been installed. Only async-signal-safe calls.
extern "C" fn remove_then_end(signal: c_int) {
    let path = ARMED_PATH.swap(null_mut(), Ordering::SeqCst);
    // SAFETY: unlink(2), signal(2) and raise(3) are async-signal-safe; `path` is a NUL-ended
    // string that `arm` leaked and that only the thread that swaps it out may touch (the
    // process ends here, so it is never freed).
    unsafe {
        if !path.is_null() {
            libc::unlink(path);
        }
        libc::signal(signal, libc::SIG_DFL);
        // Blocked while its handler runs: delivered, with its default action, on return.
        libc::raise(signal);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_stale_partial_files_of_published_weights_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let touch = |name: &str, age: Duration| {
            let file = std::fs::File::create(dir.path().join(name)).unwrap();
            file.set_modified(SystemTime::now() - age).unwrap();
        };
        let hour = Duration::from_secs(3600);
        touch("cornet_s-1d3f7974.pth.aB3dE9.partial", hour);
        touch("cornet_z-5c427c9c.pth.live01.partial", Duration::ZERO);
        touch("cornet_z-5c427c9c.pth", hour);
        touch("resnet18-f37072fd.pth.0123abcd.partial", hour);
        sweep_stale(dir.path());
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "cornet_z-5c427c9c.pth",
                "cornet_z-5c427c9c.pth.live01.partial",
                "resnet18-f37072fd.pth.0123abcd.partial"
            ]
        );
    }
}
