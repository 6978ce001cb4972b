//! The loop: SGD steps over epochs, validation every `save_val_epochs`, checkpoints when the
//! [`CheckpointPolicy`](crate::checkpoint::CheckpointPolicy) says, events to a
//! [`RunObserver`], a clean stop on Ctrl-C / SIGTERM and a checkpoint on SIGUSR1
//! ([`Interrupts`]).

use super::error::{Result, TrainError};
use super::interrupts::Interrupts;
use super::observer::{RunObserver, RunStart};
use super::observers::Observers;
use super::settings::RunSettings;
use super::source::BatchSource;
use crate::accuracy::Accuracy;
use crate::checkpoint::{Checkpoint, CheckpointDir, Provenance, TrainState};
use crate::distributed::grads::{
    average_gradients, broadcast_from_rank0, buffers, check_in_sync, checksum,
};
use crate::distributed::launch::Heartbeat;
use crate::distributed::Communicator;
use crate::error::Explain;
use crate::evaluate::evaluate;
use crate::files::Aside;
use crate::loading::LabelledBatch;
use crate::memory::PeakSpan;
use crate::optim::Sgd;
use crate::records::{Phase, Record};
use crate::step::forward_backward;
use candle_core::DType;
use cornet_model::{weights, Model};
use std::time::Instant;

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Optimizer steps taken since the start of the run.
    pub global_step: u64,
    /// Stopped by a signal before the end (a checkpoint was written).
    pub interrupted: bool,
    /// The last validation, if any ran.
    pub last_val: Option<Record>,
}

/// What the ranks agreed to do after a step.
struct AfterStep {
    /// Save a checkpoint now (SIGUSR1 on some rank).
    checkpoint: bool,
    /// Save a checkpoint and stop (SIGINT or SIGTERM on some rank).
    stop: bool,
}

/// One rank's training run: its model, optimizer and place in the run.
pub struct Trainer<'a> {
    model: &'a Model,
    comm: &'a mut dyn Communicator,
    settings: RunSettings,
    sgd: Sgd,
    state: TrainState,
    interrupts: Interrupts,
    heartbeat: Heartbeat,
}

impl<'a> Trainer<'a> {
    /// A run from the model's current weights; rank 0's weights are broadcast to the others.
    /// `interrupts` set (by signals) make the loop checkpoint after the current step, and
    /// return if asked to stop.
    pub fn new(
        model: &'a Model,
        comm: &'a mut dyn Communicator,
        settings: RunSettings,
        train: &dyn BatchSource,
        interrupts: Interrupts,
    ) -> Result<Self> {
        broadcast_from_rank0(comm, model.store().entries().iter())?;
        let state = TrainState {
            global_step: 0,
            epoch: 0,
            step_in_epoch: 0,
            steps_per_epoch: train.steps_per_epoch(),
            seed: settings.seed,
            provenance: Provenance {
                config_hash: settings.config_hash.clone(),
                code_version: env!("CARGO_PKG_VERSION").to_string(),
                dataset_checksum: train.fingerprint(),
                elastic_run: settings.elastic_run.clone(),
            },
        };
        Ok(Trainer {
            model,
            comm,
            sgd: Sgd::new(settings.momentum, settings.weight_decay),
            settings,
            state,
            interrupts,
            heartbeat: Heartbeat::from_env(),
        })
    }

    /// Continues from `checkpoint`. A checkpoint of another config or dataset is refused,
    /// saying what changed, unless `force`.
    pub fn resume(&mut self, checkpoint: Checkpoint, force: bool) -> Result<()> {
        let changes = self
            .state
            .provenance
            .differences(&checkpoint.state.provenance);
        if !changes.is_empty() && !force {
            return Err(TrainError::ProvenanceChanged { changes });
        }
        let (was, now) = (checkpoint.state.steps_per_epoch, self.state.steps_per_epoch);
        if was != 0 && was != now {
            return Err(TrainError::EpochLengthChanged { was, now });
        }
        let tensors = checkpoint.model.into_iter().collect();
        self.model
            .store()
            .load(&tensors)
            .map_err(TrainError::CheckpointWeights)?;
        self.sgd.set_buffers(checkpoint.momentum);
        let provenance = self.state.provenance.clone();
        self.state = TrainState {
            provenance,
            steps_per_epoch: now,
            ..checkpoint.state
        };
        Ok(())
    }

    /// What all ranks do after this step, any rank's cause being enough for all: stop with an
    /// error if a loss was not finite (`diverged` here; each rank sees only its own batch),
    /// else checkpoint and perhaps stop as signals asked. A signal reaches the ranks at
    /// slightly different moments; agreeing makes all act after the same step.
    fn agree_after_step(&mut self, diverged: bool) -> Result<AfterStep> {
        let flag = |asked: bool| f32::from(u8::from(asked));
        let mut asked = [
            flag(diverged),
            flag(self.interrupts.take_checkpoint_request()),
            flag(self.interrupts.stop_asked()),
        ];
        self.comm.all_reduce_sum(&mut asked)?;
        if asked[0] > 0.0 {
            return Err(TrainError::Diverged {
                step: self.state.global_step,
                what: "loss",
            });
        }
        Ok(AfterStep {
            checkpoint: asked[1] > 0.0,
            stop: asked[2] > 0.0,
        })
    }

    fn is_rank0(&self) -> bool {
        self.comm.rank() == 0
    }

    /// Trains to the end of the last epoch (or to a stop signal), telling the observer that
    /// `observe` opens where the run starts (not called for a run already complete, whose
    /// records and logs stay as they are).
    pub fn run<'o>(
        &mut self,
        train: &dyn BatchSource,
        val: Option<&dyn BatchSource>,
        observe: impl FnOnce(&RunStart) -> Result<Observers<'o>>,
    ) -> Result<Summary> {
        let spe = train.steps_per_epoch();
        if spe == 0 {
            return Err(TrainError::NoFullBatch);
        }
        let total = self.settings.epochs * spe;
        if self.state.global_step >= total {
            // Resumed after its last checkpoint: only a run killed before its final weights
            // lacks them; a finished run is left exactly as it is.
            let final_weights = self.settings.output_dir.join("final.safetensors");
            if !final_weights.exists() {
                tracing::info!("the run is complete ({total} steps): writing its final weights");
                self.write_final_weights()?;
            } else if self.is_rank0() {
                println!(
                    "the run is already finished ({total} steps), nothing to do; its weights are \
                     in {}",
                    final_weights.display()
                );
            }
            return Ok(Summary {
                global_step: self.state.global_step,
                interrupted: false,
                last_val: None,
            });
        }
        let mut observer = observe(&RunStart {
            total_steps: total,
            steps_per_epoch: spe,
            global_step: self.state.global_step,
            rank: self.comm.rank(),
            world_size: self.comm.world_size(),
        })?;
        self.train_to_end(train, val, spe, &mut observer)
    }

    /// The loop of [`Trainer::run`] over the steps left, `spe` per epoch, telling `observer`
    /// what happens.
    fn train_to_end(
        &mut self,
        train: &dyn BatchSource,
        val: Option<&dyn BatchSource>,
        spe: u64,
        observer: &mut dyn RunObserver,
    ) -> Result<Summary> {
        let total = self.settings.epochs * spe;
        let checkpoints = CheckpointDir::new(
            self.settings.output_dir.join("checkpoints"),
            self.settings.keep,
        );
        let mut policy = self.settings.checkpoint_policy();
        let mut last_val = None;

        while self.state.global_step < total {
            let epoch = self.state.epoch;
            let mut batches = train.batches(epoch, self.state.step_in_epoch)?;
            while self.state.step_in_epoch < spe {
                let global_step = self.state.global_step;
                // The original validates before the step at each multiple of save_val_epochs.
                if let (Some(val), true) = (val, self.validates_at(global_step, spe)) {
                    last_val = Some(self.validate(val, spe, observer)?);
                }
                let wait = Instant::now();
                let batch = batches.next().ok_or(TrainError::DataRanOut)??;
                let data_load_dur = wait.elapsed().as_secs_f64();
                let images = batch.images.dim(0)?;
                let record = self.train_step(batch, spe, data_load_dur)?;
                self.heartbeat.beat();
                observer.on_step(&record, images)?;
                let after = self.agree_after_step(!record.loss.is_finite())?;
                if self.settings.sync_check_steps > 0
                    && self
                        .state
                        .global_step
                        .is_multiple_of(self.settings.sync_check_steps)
                {
                    check_in_sync(self.comm, self.model.store())?;
                }
                let due = policy.after_step(self.state.global_step);
                if due || after.checkpoint || after.stop {
                    self.save(&checkpoints, observer)?;
                    policy.saved();
                }
                if after.stop {
                    observer.on_stop()?;
                    return Ok(Summary {
                        global_step: self.state.global_step,
                        interrupted: true,
                        last_val,
                    });
                }
            }
            drop(batches);
            if let Some(problems) = train.problems() {
                tracing::warn!("epoch {epoch}: {problems}");
            }
            self.state.epoch += 1;
            self.state.step_in_epoch = 0;
            if policy.after_epoch(self.state.epoch) {
                self.save(&checkpoints, observer)?;
                policy.saved();
            }
        }
        observer.on_finish()?;
        if let (Some(val), true) = (val, self.validates_at(total, spe)) {
            last_val = Some(self.validate(val, spe, observer)?);
        }
        self.save(&checkpoints, observer)?;
        self.write_final_weights()?;
        Ok(Summary {
            global_step: self.state.global_step,
            interrupted: false,
            last_val,
        })
    }

    fn train_step(
        &mut self,
        batch: LabelledBatch,
        steps_per_epoch: u64,
        data_load_dur: f64,
    ) -> Result<Record> {
        let start = Instant::now();
        let peak = PeakSpan::start();
        let device = self.model.device();
        // As the original: the learning rate at fractional epoch (global_step + 1) / nsteps.
        let frac_epoch = (self.state.global_step + 1) as f64 / steps_per_epoch as f64;
        let lr = self.settings.schedule.lr_at(frac_epoch);
        let images = batch.images.to_device(device)?;
        let labels = batch.labels.to_device(device)?;

        let mut out = forward_backward(self.model, &images, &labels, self.settings.precision)?;
        let comm_start = Instant::now();
        average_gradients(self.comm, self.model.store(), &mut out.grads)?;
        // Rank 0's running statistics (its first BatchNorm group's, as DataParallel's first
        // replica's) everywhere after each step, as DDP's broadcast before the next forward
        // would give, and so that every rank ends (and validates) with the same.
        broadcast_from_rank0(self.comm, buffers(self.model.store()))?;
        let comm_dur = comm_start.elapsed().as_secs_f64();
        self.sgd
            .step(self.model.store().parameters(), &out.grads, lr)?;

        let acc = Accuracy::of(&out.logits, &labels)?;
        let loss = out.loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        self.state.global_step += 1;
        self.state.step_in_epoch += 1;
        Ok(Record {
            phase: Phase::Train,
            epoch: frac_epoch,
            step: self.state.global_step,
            loss,
            top1: acc.top1_rate(),
            top5: acc.top5_rate(),
            lr,
            dur: start.elapsed().as_secs_f64() + data_load_dur,
            data_load_dur,
            comm_dur,
            peak_rss_mib: peak.peak_mib(),
        })
    }

    /// Loss and accuracy over the whole validation set, each sample scored once across ranks.
    fn validate(
        &mut self,
        val: &dyn BatchSource,
        steps_per_epoch: u64,
        observer: &mut dyn RunObserver,
    ) -> Result<Record> {
        let start = Instant::now();
        let peak = PeakSpan::start();
        let heartbeat = &self.heartbeat;
        observer.on_validation_start(self.state.global_step, val.steps_per_epoch());
        let evaluated = evaluate::<TrainError>(
            self.model,
            val.batches(0, 0)?,
            self.settings.precision.activation_dtype(),
            &mut *self.comm,
            |images| {
                heartbeat.beat();
                observer.on_validation_batch(images);
            },
        )?;
        let scores = evaluated.evaluation;
        let record = Record {
            phase: Phase::Val,
            epoch: self.state.global_step as f64 / steps_per_epoch as f64,
            step: self.state.global_step,
            loss: scores.loss,
            top1: scores.top1,
            top5: scores.top5,
            lr: 0.0,
            dur: start.elapsed().as_secs_f64(),
            data_load_dur: evaluated.data_load_dur,
            comm_dur: evaluated.comm_dur,
            peak_rss_mib: peak.peak_mib(),
        };
        if self.is_rank0() {
            tracing::info!(
                "validation at step {}: loss {:.4}, top-1 {:.2}%, top-5 {:.2}% ({} images)",
                record.step,
                record.loss,
                100.0 * record.top1,
                100.0 * record.top5,
                scores.images
            );
        }
        observer.on_validation(&record)?;
        Ok(record)
    }

    /// Saves a checkpoint on rank 0, unless the weights are not finite: every rank checks
    /// (their weights are the same) and stops, so the newest checkpoint stays a finite one.
    fn save(&mut self, checkpoints: &CheckpointDir, observer: &mut dyn RunObserver) -> Result<()> {
        if !checksum(self.model.store().entries().iter())?.is_finite() {
            return Err(TrainError::Diverged {
                step: self.state.global_step,
                what: "weights",
            });
        }
        if !self.is_rank0() {
            return Ok(());
        }
        let checkpoint = Checkpoint {
            model: self.model.store().state_dict()?,
            momentum: self
                .sgd
                .buffers()
                .iter()
                .map(|(k, v)| Ok((k.clone(), v.copy()?)))
                .collect::<candle_core::Result<_>>()?,
            state: self.state.clone(),
        };
        let path = checkpoints.save(&checkpoint)?;
        tracing::debug!("checkpoint {}", path.display());
        observer.on_checkpoint(&path)?;
        Ok(())
    }

    /// `OUT/final.safetensors`, written atomically by rank 0.
    fn write_final_weights(&self) -> Result<()> {
        if !self.is_rank0() {
            return Ok(());
        }
        let out = &self.settings.output_dir;
        let path = out.join("final.safetensors");
        let aside = Aside::at(&path, out.join(".final.safetensors.tmp"));
        weights::write_safetensors(aside.staging(), &self.model.store().state_dict()?)?;
        aside
            .commit()
            .explain(TrainError::Io, || format!("writing {}", path.display()))?;
        tracing::info!("trained weights written to {}", path.display());
        Ok(())
    }
}

impl Trainer<'_> {
    /// The original validates before the steps `int(k * save_val_epochs * nsteps)`, k = 0, 1,
    /// ... (`np.arange(0, epochs + 1, save_val_epochs) * nsteps`), and at the end; before
    /// step 0 only if `val_at_start`.
    fn validates_at(&self, global_step: u64, steps_per_epoch: u64) -> bool {
        let every = self.settings.save_val_epochs;
        if every <= 0.0 || (global_step == 0 && !self.settings.val_at_start) {
            return false;
        }
        let k = (global_step as f64 / (every * steps_per_epoch as f64)).floor();
        [k, k + 1.0]
            .iter()
            .any(|k| ((k * every) * steps_per_epoch as f64) as u64 == global_step)
    }
}
