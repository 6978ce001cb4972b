//! `torch.optim.SGD` and the learning-rate schedules (the original `run.py`'s StepLR), with
//! PyTorch's semantics.

use candle_core::backprop::GradStore;
use candle_core::Tensor;
use cornet_model::Entry;
use std::collections::HashMap;

/// An SGD update that failed.
#[derive(Debug, thiserror::Error)]
pub enum OptimError {
    /// A parameter did not take its updated value (its shape or dtype is not the gradient's).
    #[error("updating `{name}`")]
    Update {
        /// The parameter's state-dict name.
        name: String,
        /// What candle said.
        #[source]
        source: candle_core::Error,
    },
    /// A tensor operation of the update failed.
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
}

/// SGD with momentum and L2 weight decay (no dampening, no Nesterov), as PyTorch computes it:
/// `g = grad + wd * p`; `buf = g` at a parameter's first step, else `buf = momentum * buf + g`;
/// `p -= lr * buf`.
#[derive(Debug)]
pub struct Sgd {
    momentum: f64,
    weight_decay: f64,
    /// Momentum buffers by parameter name: what a checkpoint must keep.
    buffers: HashMap<String, Tensor>,
}

impl Sgd {
    /// An optimizer with no momentum buffers yet.
    pub fn new(momentum: f64, weight_decay: f64) -> Self {
        Sgd {
            momentum,
            weight_decay,
            buffers: HashMap::new(),
        }
    }

    /// One update of every parameter that received a gradient; as in PyTorch, a parameter
    /// without one (unused in this forward pass) is left alone, momentum included.
    pub fn step<'a>(
        &mut self,
        params: impl IntoIterator<Item = &'a Entry>,
        grads: &GradStore,
        lr: f64,
    ) -> Result<(), OptimError> {
        for entry in params {
            let Some(grad) = grads.get(entry.var.as_tensor()) else {
                continue;
            };
            let value = entry.var.as_detached_tensor();
            let mut g = grad.clone();
            if self.weight_decay != 0.0 {
                g = (g + (&value * self.weight_decay)?)?;
            }
            if self.momentum != 0.0 {
                g = match self.buffers.get(&entry.name) {
                    Some(buf) => ((buf * self.momentum)? + g)?,
                    None => g,
                };
                self.buffers.insert(entry.name.clone(), g.clone());
            }
            let updated = (value - (g * lr)?)?;
            entry
                .var
                .set(&updated)
                .map_err(|source| OptimError::Update {
                    name: entry.name.clone(),
                    source,
                })?;
        }
        Ok(())
    }

    /// The momentum buffers, by parameter name.
    pub fn buffers(&self) -> &HashMap<String, Tensor> {
        &self.buffers
    }

    /// Restores momentum buffers saved from [`Sgd::buffers`].
    pub fn set_buffers(&mut self, buffers: HashMap<String, Tensor>) {
        self.buffers = buffers;
    }
}

/// The learning rate over a run, a function of the fractional epoch alone: a resumed run
/// takes each step's rate from its position, with no schedule state to checkpoint (exact
/// resume relies on it). One variant per kind of schedule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LrSchedule {
    /// `base_lr * gamma ^ floor(epoch / step_size)`, evaluated at the fractional epoch of
    /// every step as the original's `StepLR.step(epoch=frac_epoch)` did.
    Step {
        /// The learning rate before the first drop.
        base_lr: f64,
        /// Epochs between drops.
        step_size: f64,
        /// Factor of each drop.
        gamma: f64,
    },
}

impl LrSchedule {
    /// The learning rate at fractional `epoch`.
    pub fn lr_at(&self, epoch: f64) -> f64 {
        match *self {
            LrSchedule::Step {
                base_lr,
                step_size,
                gamma,
            } => base_lr * gamma.powf((epoch / step_size).floor()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_lr_drops_by_gamma_at_each_boundary() {
        let schedule = LrSchedule::Step {
            base_lr: 0.1,
            step_size: 20.0,
            gamma: 0.1,
        };
        for (epoch, expected) in [
            (0.0, 0.1),
            (19.999, 0.1),
            (20.0, 0.01),
            (39.5, 0.01),
            (40.0, 0.001),
            (42.9, 0.001),
        ] {
            let lr = schedule.lr_at(epoch);
            assert!(
                (lr - expected).abs() < 1e-15,
                "epoch {epoch}: {lr} != {expected}"
            );
        }
    }
}
