//! The process's peak resident memory, as Linux counts it (`VmHWM` in `/proc/self/status`),
//! for the whole process or for a span of work (a train step, a validation, `bench`'s timed
//! steps): the kernel's peak is reset to the present resident size at the span's start
//! (`/proc/self/clear_refs`, value 5). Host memory only: a GPU's is not counted.

/// A span of work whose peak resident memory is wanted.
#[derive(Debug)]
pub struct PeakSpan {
    /// Whether the kernel's peak was reset at the start, so that it is the span's own.
    own: bool,
}

impl PeakSpan {
    /// Starts a span now, resetting the kernel's peak where it can be (Linux 4.0 on; a write
    /// and a lock of the address space, microseconds).
    pub fn start() -> Self {
        PeakSpan {
            own: std::fs::write("/proc/self/clear_refs", "5").is_ok(),
        }
    }

    /// The peak resident memory since the span's start, in MiB; `None` where the kernel has
    /// no peak to tell or could not reset it.
    pub fn peak_mib(&self) -> Option<f64> {
        self.own.then(peak_rss_mib).flatten()
    }
}

/// The peak resident memory of the process in MiB, since it started or since the last
/// [`PeakSpan::start`]; `None` where the kernel does not tell it (not Linux).
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_sees_its_own_peak_not_the_process_before_it() {
        let mib = |bytes: usize| bytes as f64 / f64::from(1 << 20);
        // 256 MiB touched and freed before the span: the process's peak, not the span's.
        let before = vec![1u8; 256 << 20];
        std::hint::black_box(&before);
        drop(before);
        let process_peak = peak_rss_mib().expect("Linux tells the peak");
        let span = PeakSpan::start();
        let during = vec![1u8; 32 << 20];
        std::hint::black_box(&during);
        let Some(peak) = span.peak_mib() else {
            return; // A kernel that cannot reset the peak tells none.
        };
        assert!(peak >= mib(32 << 20), "{peak} MiB");
        assert!(
            peak < process_peak,
            "{peak} MiB, the process's {process_peak} MiB"
        );
    }
}
