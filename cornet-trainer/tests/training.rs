//! The training loop on in-memory data: it learns, it resumes exactly, and ranks agree with
//! one big batch.

use crate::util::{free_port, tensor_bytes_by_name};
use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use cornet_model::testing::norm;
use cornet_model::{Arch, Entry, Model, ModelConfig, Role};
use cornet_trainer::checkpoint::CheckpointDir;
use cornet_trainer::distributed::batch_groups::BatchNormPlan;
use cornet_trainer::distributed::{env::RankEnv, tcp::TcpRing, Communicator, SingleRank};
use cornet_trainer::loading::LabelledBatch;
use cornet_trainer::optim::LrSchedule;
use cornet_trainer::train::{run_files, BatchSource, Interrupts, RunSettings, TrainError, Trainer};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const CLASSES: usize = 4;

/// Images whose class is which quadrant is bright: easy to learn, cheap to run.
fn dataset(n: usize) -> (Tensor, Tensor) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let size = 24;
    let mut pixels = Vec::with_capacity(n * 3 * size * size);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let class = i % CLASSES;
        labels.push(class as u32);
        for _channel in 0..3 {
            for y in 0..size {
                for x in 0..size {
                    let quadrant = (y >= size / 2) as usize * 2 + (x >= size / 2) as usize;
                    let noise: f32 = rand::Rng::random_range(&mut rng, -0.5..0.5);
                    pixels.push(if quadrant == class { 1.0 } else { -1.0 } + noise);
                }
            }
        }
    }
    (
        Tensor::from_vec(pixels, (n, 3, size, size), &Device::Cpu).unwrap(),
        Tensor::from_vec(labels, n, &Device::Cpu).unwrap(),
    )
}

/// A seeded shuffle per epoch; global batch k holds the same samples for any number of ranks,
/// each rank taking its contiguous part.
struct MemorySource {
    images: Tensor,
    labels: Tensor,
    batch: usize,
    rank: usize,
    world: usize,
    /// Raises the flag when asked for the batch of this global step (simulates a signal
    /// there: Ctrl-C for the stop flag, SIGUSR1 for the checkpoint flag).
    flag_at: Option<(u64, Arc<AtomicBool>)>,
    served: AtomicU64,
}

impl MemorySource {
    fn new(images: Tensor, labels: Tensor, batch: usize, rank: usize, world: usize) -> Self {
        MemorySource {
            images,
            labels,
            batch,
            rank,
            world,
            flag_at: None,
            served: AtomicU64::new(0),
        }
    }
}

impl BatchSource for MemorySource {
    fn batches(
        &self,
        epoch: u64,
        start: u64,
    ) -> Result<Box<dyn Iterator<Item = Result<LabelledBatch, TrainError>> + '_>, TrainError> {
        let n = self.labels.dim(0)?;
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(1000 + epoch));
        let global = self.batch * self.world;
        let spe = self.steps_per_epoch();
        Ok(Box::new((start..spe).map(move |step| {
            let global_step = epoch * spe + step;
            if let Some((at, flag)) = &self.flag_at {
                if global_step == *at {
                    flag.store(true, Ordering::SeqCst);
                }
            }
            self.served.fetch_add(1, Ordering::SeqCst);
            let first = step as usize * global + self.rank * self.batch;
            let index = Tensor::new(&order[first..first + self.batch], &Device::Cpu)?;
            Ok(LabelledBatch {
                images: self.images.index_select(&index, 0)?,
                labels: self.labels.index_select(&index, 0)?,
            })
        })))
    }

    fn steps_per_epoch(&self) -> u64 {
        (self.labels.dim(0).unwrap() / (self.batch * self.world)) as u64
    }

    fn fingerprint(&self) -> String {
        format!("memory-{}", self.labels.dim(0).unwrap())
    }
}

fn settings(out: &Path, epochs: u64) -> RunSettings {
    RunSettings {
        epochs,
        schedule: LrSchedule::Step {
            base_lr: 0.05,
            step_size: 2.0,
            gamma: 0.5,
        },
        momentum: 0.9,
        weight_decay: 1e-4,
        seed: 0,
        output_dir: out.to_owned(),
        save_val_epochs: 0.5,
        val_at_start: true,
        save_model_epochs: 1,
        save_model_steps: 0,
        save_model_secs: 0,
        keep: 2,
        config_hash: "test".into(),
        sync_check_steps: 5,
        precision: Default::default(),
        elastic_run: None,
    }
}

fn small(arch: Arch) -> Model {
    let config = ModelConfig {
        arch,
        widths: match arch {
            Arch::Z => [8, 8, 16, 16],
            _ => [32, 32, 32, 32],
        },
        num_classes: CLASSES,
        times: 2,
        s_times: [1, 1, 1],
    };
    Model::new(&config, &Device::Cpu, 42).unwrap()
}

fn weights_of(model: &Model) -> BTreeMap<String, Vec<u8>> {
    tensor_bytes_by_name(model.store().state_dict().unwrap())
}

#[test]
fn loss_falls_and_validation_is_recorded() {
    let (images, labels) = dataset(64);
    let train = MemorySource::new(images.clone(), labels.clone(), 8, 0, 1);
    let val = MemorySource::new(images, labels, 16, 0, 1);
    let dir = tempfile::tempdir().unwrap();
    let model = small(Arch::Z);
    let mut comm = SingleRank;
    let mut trainer = Trainer::new(
        &model,
        &mut comm,
        settings(dir.path(), 4),
        &train,
        Interrupts::default(),
    )
    .unwrap();
    let summary = trainer
        .run(&train, Some(&val), |start| {
            run_files(dir.path(), start, false)
        })
        .unwrap();
    assert_eq!(summary.global_step, 32);
    assert!(!summary.interrupted);

    let text = std::fs::read_to_string(dir.path().join("records.jsonl")).unwrap();
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let losses: Vec<f64> = records
        .iter()
        .filter(|r| r["phase"] == "train")
        .map(|r| r["loss"].as_f64().unwrap())
        .collect();
    assert_eq!(losses.len(), 32);
    let first: f64 = losses[..4].iter().sum::<f64>() / 4.0;
    let last: f64 = losses[28..].iter().sum::<f64>() / 4.0;
    assert!(
        last < 0.5 * first,
        "loss should fall: {first:.3} -> {last:.3}"
    );
    // Every half epoch (4 steps) and at the end: steps 0, 4, ..., 32.
    let val_steps: Vec<u64> = records
        .iter()
        .filter(|r| r["phase"] == "val")
        .map(|r| r["step"].as_u64().unwrap())
        .collect();
    assert_eq!(val_steps, (0..=32).step_by(4).collect::<Vec<u64>>());
    assert!(summary.last_val.unwrap().top1 > 0.9);
    assert!(dir.path().join("final.safetensors").is_file());
}

/// Interrupting at any step and resuming gives the same weights, bit for bit, as never
/// stopping (CORnet-S: BatchNorm running statistics and momentum must come back too).
#[test]
fn an_interrupted_run_resumes_to_the_same_weights() {
    let (images, labels) = dataset(48);
    let run = |stop_at: Option<u64>, dir: &Path| -> (Model, bool) {
        let model = small(Arch::S);
        let interrupts = Interrupts::default();
        let mut train = MemorySource::new(images.clone(), labels.clone(), 8, 0, 1);
        train.flag_at = stop_at.map(|s| (s, interrupts.stop.clone()));
        let mut comm = SingleRank;
        let mut trainer =
            Trainer::new(&model, &mut comm, settings(dir, 3), &train, interrupts).unwrap();
        if let Some((_, checkpoint)) = CheckpointDir::new(dir.join("checkpoints"), 2)
            .latest_valid(&Device::Cpu)
            .unwrap()
        {
            trainer.resume(checkpoint, false).unwrap();
        }
        let summary = trainer
            .run(&train, None, |start| run_files(dir, start, false))
            .unwrap();
        (model, summary.interrupted)
    };
    let reference_dir = tempfile::tempdir().unwrap();
    let (reference, _) = run(None, reference_dir.path());
    for stop_at in [0, 5, 6, 11] {
        let dir = tempfile::tempdir().unwrap();
        let (_, interrupted) = run(Some(stop_at), dir.path());
        assert!(interrupted);
        let (resumed, interrupted) = run(None, dir.path());
        assert!(!interrupted);
        assert!(
            weights_of(&resumed) == weights_of(&reference),
            "stopped at step {stop_at}: weights differ"
        );
    }
}

/// A diverging run stops with an error naming the step, having checkpointed nothing that is
/// not finite, and top-1 never counts a NaN logit as a hit.
#[test]
fn a_diverging_run_stops_at_the_first_non_finite_loss_keeping_finite_checkpoints() {
    let (images, labels) = dataset(48);
    let dir = tempfile::tempdir().unwrap();
    let model = small(Arch::Z);
    let train = MemorySource::new(images, labels, 8, 0, 1);
    let mut s = settings(dir.path(), 20);
    s.schedule = LrSchedule::Step {
        base_lr: 1e4,
        step_size: 2.0,
        gamma: 0.5,
    };
    s.save_model_steps = 1;
    s.keep = 100;
    let mut comm = SingleRank;
    let mut trainer = Trainer::new(&model, &mut comm, s, &train, Interrupts::default()).unwrap();
    let err = trainer
        .run(&train, None, |start| run_files(dir.path(), start, false))
        .expect_err("the run diverges")
        .to_string();
    assert!(
        err.contains("is not finite") && err.starts_with("step "),
        "{err}"
    );
    let step: u64 = err["step ".len()..]
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();

    let records = std::fs::read_to_string(dir.path().join("records.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(records.lines().last().unwrap()).unwrap();
    assert_eq!(last["step"].as_u64(), Some(step));
    let checkpoints = CheckpointDir::new(dir.path().join("checkpoints"), 100);
    let (newest, checkpoint) = checkpoints.latest_valid(&Device::Cpu).unwrap().unwrap();
    assert!(checkpoint.state.global_step < step, "{}", newest.display());
    for (_, tensor) in &checkpoint.model {
        let magnitude = tensor.to_dtype(DType::F64).unwrap().abs().unwrap();
        let sum = magnitude.sum_all().unwrap().to_scalar::<f64>().unwrap();
        assert!(
            sum.is_finite(),
            "a non-finite tensor in {}",
            newest.display()
        );
    }
    assert!(!dir.path().join("final.safetensors").exists());
}

/// A checkpoint asked for mid-run (SIGUSR1) is written after the current step, and training
/// goes on to the end.
#[test]
fn a_checkpoint_request_saves_after_the_step_and_training_goes_on() {
    let (images, labels) = dataset(48);
    let dir = tempfile::tempdir().unwrap();
    let model = small(Arch::Z);
    let interrupts = Interrupts::default();
    let mut train = MemorySource::new(images, labels, 8, 0, 1);
    // Raised while fetching the batch of step 2 (0-based): saved once step 3 is done.
    train.flag_at = Some((2, interrupts.checkpoint.clone()));
    let mut s = settings(dir.path(), 2);
    s.keep = 10;
    let mut comm = SingleRank;
    let mut trainer = Trainer::new(&model, &mut comm, s, &train, interrupts).unwrap();
    let summary = trainer
        .run(&train, None, |start| run_files(dir.path(), start, false))
        .unwrap();
    assert_eq!((summary.global_step, summary.interrupted), (12, false));
    let steps: Vec<String> = CheckpointDir::new(dir.path().join("checkpoints"), 10)
        .list()
        .unwrap()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    // Newest first: the two epoch ends, and the one asked for.
    assert_eq!(
        steps,
        ["step-0000000012", "step-0000000006", "step-0000000003"]
    );
}

/// ||a - b|| / ||b|| over the f32 entries of `role` together, in f64.
fn relative_difference(a: &Model, b: &Model, role: Role) -> f64 {
    fn entries(m: &Model, role: Role) -> impl Iterator<Item = &Entry> {
        let all = m.store().entries().iter();
        all.filter(move |e| e.role == role && e.var.dtype() == DType::F32)
    }
    let (mut diff, mut total) = (0f64, 0f64);
    for (x, y) in entries(a, role).zip(entries(b, role)) {
        let x = x.var.as_tensor().to_dtype(DType::F64).unwrap();
        let y = y.var.as_tensor().to_dtype(DType::F64).unwrap();
        diff += norm(&(&x - &y).unwrap()).powi(2);
        total += norm(&y).powi(2);
    }
    (diff / total).sqrt()
}

/// `small(arch)` trained one epoch of `images` on `world` ranks over loopback TCP (one rank
/// alone without a ring), each with `batch` images and BatchNorm groups of `bn_images`
/// (`model.bn_images`); each rank's model afterwards. Rank 1 and up start from other weights:
/// rank 0's must win.
fn train_on_ranks(
    arch: Arch,
    (images, labels): &(Tensor, Tensor),
    world: usize,
    batch: usize,
    bn_images: Option<usize>,
) -> Vec<Model> {
    let port = free_port();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..world)
            .map(|rank| {
                let (images, labels) = (images.clone(), labels.clone());
                s.spawn(move || {
                    let mut env = RankEnv::on_this_machine(rank, world, port);
                    env.timeout = Duration::from_secs(20);
                    let mut comm: Box<dyn Communicator> = match world {
                        1 => Box::new(SingleRank),
                        _ => Box::new(TcpRing::connect(&env).unwrap()),
                    };
                    let mut model = match rank {
                        0 => small(arch),
                        _ => Model::new(small(arch).config(), &Device::Cpu, 7).unwrap(),
                    };
                    let plan = BatchNormPlan::new(bn_images, batch * world, rank, world).unwrap();
                    model.set_batch_groups(plan.connect(Some(&env)).unwrap());
                    let train = MemorySource::new(images, labels, batch, rank, world);
                    let dir = tempfile::tempdir().unwrap();
                    let mut s = settings(dir.path(), 1);
                    s.save_val_epochs = 0.0;
                    let mut trainer =
                        Trainer::new(&model, comm.as_mut(), s, &train, Interrupts::default())
                            .unwrap();
                    let summary = trainer
                        .run(&train, None, |start| run_files(dir.path(), start, false))
                        .unwrap();
                    assert_eq!(summary.global_step, train.steps_per_epoch());
                    drop(trainer);
                    model
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Two ranks with batch B over loopback end with the weights of one rank with batch 2B.
fn two_ranks_match_one(arch: Arch) {
    let data = dataset(160);
    let single = train_on_ranks(arch, &data, 1, 8, None);
    let ranks = train_on_ranks(arch, &data, 2, 4, None);
    assert!(
        weights_of(&ranks[0]) == weights_of(&ranks[1]),
        "ranks diverged"
    );
    let diff = relative_difference(&ranks[0], &single[0], Role::Parameter);
    assert!(
        diff < 1e-4,
        "CORnet-{arch}: 2 ranks x 4 vs 1 rank x 8 differ by {diff:.2e}"
    );
}

#[test]
fn two_ranks_equal_one_rank_with_twice_the_batch_z() {
    two_ranks_match_one(Arch::Z);
}

#[test]
fn two_ranks_equal_one_rank_with_twice_the_batch_rt() {
    two_ranks_match_one(Arch::RT);
}

/// CORnet-S with BatchNorm over 4 images (`model.bn_images`) trains to the same weights and
/// running statistics on 1 rank x 8 (two groups on the rank), 2 x 4 (a group per rank) and
/// 4 x 2 (each group summed over two ranks); every rank ends with rank 0's running
/// statistics. Normalizing over the whole 8 instead trains to other weights.
#[test]
fn cornet_s_trains_alike_on_1_2_and_4_ranks_with_fixed_batch_norm_groups() {
    let data = dataset(24); // 3 steps of 8
    let one = train_on_ranks(Arch::S, &data, 1, 8, Some(4));
    for world in [2, 4] {
        let ranks = train_on_ranks(Arch::S, &data, world, 8 / world, Some(4));
        for (rank, model) in ranks.iter().enumerate().skip(1) {
            assert!(
                weights_of(model) == weights_of(&ranks[0]),
                "{world} ranks: rank {rank}'s weights or running statistics differ from rank 0's"
            );
        }
        for role in [Role::Parameter, Role::Buffer] {
            let diff = relative_difference(&ranks[0], &one[0], role);
            assert!(
                diff < 1e-4,
                "{world} ranks x {} vs 1 rank x 8: {role:?}s differ by {diff:.2e}",
                8 / world
            );
        }
    }
    let whole_batch = train_on_ranks(Arch::S, &data, 1, 8, None);
    let diff = relative_difference(&whole_batch[0], &one[0], Role::Parameter);
    assert!(diff > 1e-3, "groups of 4 changed nothing: {diff:.2e}");
}
