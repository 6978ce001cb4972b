//! What signals ask of the training loop. SIGINT and SIGTERM (Ctrl-C, torchrun's stop, a
//! Slurm preemption) ask it to checkpoint and stop after the current step; a second one ends
//! the process at once. SIGUSR1 (Slurm's `--signal` ahead of a time limit) asks for a
//! checkpoint after the current step, and training goes on.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;

/// The requests the loop polls once per step (the ranks then agree on them).
#[derive(Debug, Clone, Default)]
pub struct Interrupts {
    /// Checkpoint and stop after the current step.
    pub stop: Arc<AtomicBool>,
    /// Checkpoint after the current step, and go on.
    pub checkpoint: Arc<AtomicBool>,
    /// The signal that asked for the stop (0 until one did).
    signal: Arc<AtomicI32>,
}

impl Interrupts {
    /// Sets the flags from this process's signals, for the rest of its life.
    pub fn from_signals() -> std::io::Result<Self> {
        use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
        let interrupts = Interrupts::default();
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGUSR1])?;
        let flags = interrupts.clone();
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for signal in signals.forever() {
                    if signal == SIGUSR1 {
                        eprintln!("SIGUSR1: checkpointing after this step");
                        flags.checkpoint.store(true, Ordering::SeqCst);
                    } else if flags.stop.swap(true, Ordering::SeqCst) {
                        // The first stop's signal is the one the run answers to.
                        eprintln!("stopping now, without a checkpoint");
                        std::process::exit(128 + signal);
                    } else {
                        flags.signal.store(signal, Ordering::SeqCst);
                        eprintln!(
                            "stopping after this step, with a checkpoint (again to stop at once)"
                        );
                    }
                }
            })?;
        Ok(interrupts)
    }

    /// Whether a stop was asked for.
    pub fn stop_asked(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// The signal this process was stopped by, if one was; a rank stopped at a peer's request
    /// (or by a test's flag) has none.
    pub fn stop_signal(&self) -> Option<i32> {
        match self.signal.load(Ordering::SeqCst) {
            0 => None,
            signal => Some(signal),
        }
    }

    /// Whether a checkpoint was asked for since the last call.
    pub fn take_checkpoint_request(&self) -> bool {
        self.checkpoint.swap(false, Ordering::SeqCst)
    }
}
