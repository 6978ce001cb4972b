//! When to checkpoint: every `save_model_steps` steps, every `save_model_epochs` epochs and
//! every `save_model_secs` seconds (0 turns each off), as `output` in the config says.

use std::time::Instant;

/// Answers "save now?" at the end of each step and each epoch. The time since the last save
/// counts from its creation and from every [`CheckpointPolicy::saved`].
#[derive(Debug, Clone)]
pub struct CheckpointPolicy {
    every_steps: u64,
    every_epochs: u64,
    every_secs: u64,
    last_save: Instant,
}

impl CheckpointPolicy {
    /// Saves every this many steps, epochs and seconds (0: never by that measure).
    pub fn new(every_steps: u64, every_epochs: u64, every_secs: u64) -> Self {
        CheckpointPolicy {
            every_steps,
            every_epochs,
            every_secs,
            last_save: Instant::now(),
        }
    }

    /// Whether to save after the step that brought the run to `global_step`.
    pub fn after_step(&self, global_step: u64) -> bool {
        let by_steps = self.every_steps > 0 && global_step.is_multiple_of(self.every_steps);
        let by_time = self.every_secs > 0 && self.last_save.elapsed().as_secs() >= self.every_secs;
        by_steps || by_time
    }

    /// Whether to save once `epochs_done` epochs are complete.
    pub fn after_epoch(&self, epochs_done: u64) -> bool {
        self.every_epochs > 0 && epochs_done.is_multiple_of(self.every_epochs)
    }

    /// A checkpoint was just written: the time-based clock starts again.
    pub fn saved(&mut self) {
        self.last_save = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn steps_and_epochs_save_at_their_multiples_and_zero_never() {
        let policy = CheckpointPolicy::new(3, 2, 0);
        let steps: Vec<u64> = (1..=9).filter(|&s| policy.after_step(s)).collect();
        assert_eq!(steps, [3, 6, 9]);
        let epochs: Vec<u64> = (1..=5).filter(|&e| policy.after_epoch(e)).collect();
        assert_eq!(epochs, [2, 4]);
        let never = CheckpointPolicy::new(0, 0, 0);
        assert!((1..100).all(|s| !never.after_step(s) && !never.after_epoch(s)));
    }

    #[test]
    fn time_counts_from_the_last_save() {
        let mut policy = CheckpointPolicy::new(0, 0, 1);
        assert!(!policy.after_step(1));
        policy.last_save -= Duration::from_secs(2);
        assert!(policy.after_step(2));
        policy.saved();
        assert!(!policy.after_step(3));
    }
}
