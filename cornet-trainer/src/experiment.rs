//! `cornet-trainer --config X`: an experiment from its config to its trained weights.
//!
//! [`train`] is the composition root; each phase below is one step of it, in order.

use crate::checkpoint::{self, CheckpointDir};
use crate::config::{Config, DataFormat, Override};
use crate::distributed::batch_groups::BatchNormPlan;
use crate::distributed::placement::{visible_cuda_devices, Placement};
use crate::distributed::{self, Communicator, RankEnv};
use crate::error::{Explain, StoppedBySignal};
use crate::files::Aside;
use crate::loading::{check_classes, open_training_images, ClassLimit};
use crate::progress::{DataProgress, Progress, Quiet};
use crate::train::{
    earlier_run_artifact, run_files, BatchSource, ImageSource, Interrupts, LogEvery, Observers,
    Result, RunLock, RunSettings, ShowProgress, Summary, TrainError, Trainer,
};
use candle_core::Device;
use cornet_data::{Dataset, Pipeline, PipelineOptions, Transform};
use cornet_model::Model;
use std::path::{Path, PathBuf};

/// A training run asked for: the config and what the command line adds to it.
#[derive(Debug, Clone, Default)]
pub struct TrainRequest {
    /// The experiment's YAML file.
    pub config: PathBuf,
    /// Changes to the config's fields: the `--set` flags and the original's flags translated.
    pub overrides: Vec<Override>,
    /// `auto` for the newest good checkpoint of the run, or a checkpoint folder.
    pub resume: Option<String>,
    /// Resume even if the config or data changed.
    pub force: bool,
    /// Initial weights (.pth or safetensors) instead of a random initialisation.
    pub init: Option<PathBuf>,
    /// This process's place among the ranks ([`RankEnv::from_env`], read once by the caller);
    /// `None` for a single process.
    pub rank_env: Option<RankEnv>,
}

/// Trains the experiment `request` names, as this process's rank, to the end (or to a
/// signal), telling `progress` of the steps on rank 0. Fails with a [`TrainError`] saying
/// which part of the experiment is at fault.
pub fn train(request: &TrainRequest, progress: &mut dyn Progress) -> Result<()> {
    let config = Config::load(&request.config, &request.overrides)?;
    let rank = place_rank(&config, request.rank_env.clone())?;
    let data = prepare_data(&config, &rank, progress)?;
    let mut model = build_model(&config, request.init.as_deref(), &rank.device)?;
    let mut comm = connect_ranks(&config, &rank)?;
    model.set_batch_groups(rank.bn_plan.connect(rank.env.as_ref())?);
    let out = &config.output.path;
    let checkpoints = CheckpointDir::new(out.join("checkpoints"), config.output.keep);
    let resume = resume_requests(request.resume.as_deref(), rank.env.as_ref(), &checkpoints);
    let _lock = open_run_folder(&config, &checkpoints, !resume.is_empty(), rank.rank)?;
    let interrupts = Interrupts::from_signals().map_err(TrainError::Signals)?;
    let settings = RunSettings {
        elastic_run: rank
            .env
            .as_ref()
            .and_then(RankEnv::elastic_run)
            .map(str::to_owned),
        ..RunSettings::from_config(&config)
    };
    let mut trainer = Trainer::new(
        &model,
        comm.as_mut(),
        settings,
        &data.train,
        interrupts.clone(),
    )?;
    if !resume.is_empty() {
        resume_from(
            &mut trainer,
            &checkpoints,
            &resume,
            request.force,
            out,
            &rank.device,
        )?;
    }
    let val = data.val.as_ref().map(|v| v as &dyn BatchSource);
    // What the run shows and writes as it goes: the progress, then the run's files, on rank 0.
    let (out, tensorboard) = (&config.output.path, config.output.tensorboard);
    let every = LogEvery {
        steps: config.output.log_every_steps,
        secs: config.output.log_every_secs,
    };
    let summary = trainer.run(&data.train, val, move |start| {
        let files = run_files(out, start, tensorboard)?;
        Ok(match start.rank {
            0 => Observers::new()
                .with(ShowProgress::new(progress, start, every))
                .with(files),
            _ => files,
        })
    })?;
    if summary.interrupted {
        // A rank that a peer's signal stopped ends as one the job's stop reached.
        let signal = interrupts
            .stop_signal()
            .unwrap_or(signal_hook::consts::SIGTERM);
        return Err(StoppedBySignal {
            signal,
            what: format!("at step {}, after a checkpoint", summary.global_step),
        }
        .into());
    }
    tell_the_end(&summary, rank.rank, &config.output.path);
    Ok(())
}

/// Where this process stands among the ranks, read once from the environment.
struct RankPlace {
    /// The rank environment, `None` for a single process.
    env: Option<RankEnv>,
    rank: usize,
    world_size: usize,
    /// This rank's share of `train.batch_size`.
    batch_size: usize,
    /// How its BatchNorm groups the images (`model.bn_images`).
    bn_plan: BatchNormPlan,
    device: Device,
}

/// The rank environment, this rank's device (as `dist.ngpus` says) and its share of the batch.
fn place_rank(config: &Config, env: Option<RankEnv>) -> Result<RankPlace> {
    let (rank, world_size) = env.as_ref().map_or((0, 1), |e| (e.rank, e.world_size));
    let local_rank = env.as_ref().map_or(0, |e| e.local_rank);
    let placement = Placement::resolve(
        config.dist.ngpus,
        &config.train.device,
        world_size,
        local_rank,
        visible_cuda_devices(),
    );
    if let Some(warning) = &placement.warning {
        tracing::warn!("{warning}");
    }
    if !config.train.batch_size.is_multiple_of(world_size) {
        return Err(TrainError::UnevenBatch {
            batch_size: config.train.batch_size,
            world_size,
        });
    }
    let device = placement.open().map_err(TrainError::Device)?;
    let batch_size = config.train.batch_size / world_size;
    let bn_plan = BatchNormPlan::new(
        config.model.bn_images,
        config.train.batch_size,
        rank,
        world_size,
    )?;
    if device.is_cpu() {
        let ranks_here = env.as_ref().map_or(1, |e| e.local_world_size);
        check_memory(config, batch_size, ranks_here)?;
    }
    Ok(RankPlace {
        env,
        rank,
        world_size,
        batch_size,
        bn_plan,
        device,
    })
}

/// Refuses a config whose lower bound of memory exceeds this rank's share of what the machine
/// has available (`ranks_here` ranks share it), before anything grows towards the OOM killer.
fn check_memory(config: &Config, batch_size: usize, ranks_here: usize) -> Result<()> {
    let floats = config
        .model_config()
        .min_training_floats(config.data.image_size, batch_size);
    let Some(shortfall) = crate::device::memory_shortfall(4.0 * floats, ranks_here) else {
        return Ok(());
    };
    Err(TrainError::TooBig(format!(
        "this run needs at least {:.1} GiB per rank and {:.1} GiB is available to it: lower \
         data.image_size ({}), train.batch_size ({}), model.widths ({:?}), model.num_classes \
         ({}) or model.times ({})",
        shortfall.needed_gib,
        shortfall.available_gib,
        config.data.image_size,
        config.train.batch_size,
        config.model.widths,
        config.model.num_classes,
        config.model.times,
    )))
}

/// The training and validation batches of this rank.
struct Data {
    train: ImageSource<Box<dyn Dataset>>,
    val: Option<ImageSource<Box<dyn Dataset>>>,
}

/// Generates the synthetic data if asked, opens the datasets (telling `progress` how their
/// listing goes, their listings kept beside the run) and builds their pipelines.
fn prepare_data(config: &Config, rank: &RankPlace, progress: &mut dyn Progress) -> Result<Data> {
    let data = &config.data;
    if let Some(synthetic) = &data.synthetic {
        ensure_synthetic(
            &data.train,
            synthetic.classes,
            synthetic.train_per_class,
            synthetic.size,
            config.train.seed,
        )?;
        if let Some(val) = &data.val {
            ensure_synthetic(
                val,
                synthetic.classes,
                synthetic.val_per_class,
                synthetic.size,
                config.train.seed + 1,
            )?;
        }
    }
    if data.format == DataFormat::Shards && data.synthetic.is_some() {
        return Err(TrainError::SyntheticShards);
    }
    let options = PipelineOptions {
        batch_size: rank.batch_size,
        rank: rank.rank,
        world_size: rank.world_size,
        workers: data.workers,
        prefetch: data.prefetch,
        skip_bad_images: data.skip_bad_images,
        seed: config.train.seed,
    };
    let size = data.image_size;
    let limit = ClassLimit::Config(config.model.num_classes);
    let out = &config.output.path;
    let keep = rank.rank == 0;
    if keep {
        std::fs::create_dir_all(out)
            .explain(TrainError::Io, || format!("creating {}", out.display()))?;
    }
    // Rank 0 shows what the run does; the others list the same folders unseen.
    let mut quiet = Quiet;
    let shown: &mut dyn Progress = if keep { progress } else { &mut quiet };
    let progress = DataProgress::new(shown, config.output.log_every_secs);
    let open = |path: &Path, key: &str, file: &str| {
        open_training_images(path, data.format, key, &out.join(file), keep, &progress)
    };
    let train_set = open(&data.train, "data.train", LISTING_TRAIN)?;
    let train_classes = train_set.classes();
    check_classes("data.train", &data.train, train_classes, None, limit)?;
    let val_set = match &data.val {
        Some(path) => {
            let set = open(path, "data.val", LISTING_VAL)?;
            let training = Some((data.train.as_path(), train_classes));
            check_classes("data.val", path, set.classes(), training, limit)?;
            Some(set)
        }
        None => None,
    };
    let train = ImageSource::new(Pipeline::training(train_set, size, &options)?);
    let val = val_set
        .map(|set| Pipeline::evaluation(set, Transform::Val { size }, &options))
        .transpose()?
        .map(ImageSource::new);
    Ok(Data { train, val })
}

/// The run folder's files that keep its data sets' listings (see [`open_training_images`]).
const LISTING_TRAIN: &str = "listing-train.json";
const LISTING_VAL: &str = "listing-val.json";

/// The config's model, from `init`'s weights (which must be that model) or seeded at random.
fn build_model(config: &Config, init: Option<&Path>, device: &Device) -> Result<Model> {
    let Some(weights) = init else {
        return Ok(Model::new(
            &config.model_config(),
            device,
            config.train.seed,
        )?);
    };
    let model = Model::from_checkpoint(
        weights,
        Some(config.arch()?),
        Some(config.model.times),
        device,
    )?;
    if model.config() != &config.model_config() {
        return Err(TrainError::InitMismatch {
            path: weights.to_owned(),
            found: Box::new(model.config().clone()),
            expected: Box::new(config.model_config()),
        });
    }
    Ok(model)
}

/// The communicator of `dist.backend`, meeting the other ranks (none for a single process).
fn connect_ranks(config: &Config, rank: &RankPlace) -> Result<Box<dyn Communicator>> {
    Ok(distributed::connect(
        config.dist.backend,
        &rank.device,
        rank.env.as_ref(),
    )?)
}

/// On rank 0 the run folder's lock (held for the run's life; the other ranks write nothing
/// there). On a fresh run (nothing to resume) rank 0 refuses a folder that holds what an
/// earlier run left. Rank 0 creates `output.path` and writes the resolved config into it.
fn open_run_folder(
    config: &Config,
    checkpoints: &CheckpointDir,
    resuming: bool,
    rank: usize,
) -> Result<Option<RunLock>> {
    let out = &config.output.path;
    // Taken before anything is read: another run's writes must not be seen half done.
    let lock = match rank {
        0 => Some(RunLock::acquire(out)?),
        _ => None,
    };
    // Rank 0 alone looks: the others may get here after it has started the run's records.
    if rank == 0 && !resuming {
        if let Some(what) = earlier_run_artifact(out, &checkpoints.list()?) {
            return Err(TrainError::RunExists {
                out: out.clone(),
                what,
            });
        }
    }
    if rank == 0 {
        write_resolved_config(out, config)?;
    }
    Ok(lock)
}

/// Writes the resolved config as `OUT/config.yaml` unless it is there already, as on most
/// resumes. A different file there (edited by hand, or the config a `--force` resume departs
/// from) is kept aside as `config.yaml.<n>`, and said so, never overwritten.
fn write_resolved_config(out: &Path, config: &Config) -> Result<()> {
    let path = out.join("config.yaml");
    let yaml = config.to_yaml();
    let io = |e| TrainError::Io(format!("writing {}", path.display()), Some(Box::new(e)));
    match std::fs::read_to_string(&path) {
        Ok(existing) if existing == yaml => return Ok(()),
        Ok(_) => {
            let kept = (1..)
                .map(|n| out.join(format!("config.yaml.{n}")))
                .find(|p| !p.exists())
                .expect("some number is free");
            std::fs::rename(&path, &kept).map_err(io)?;
            tracing::warn!(
                "{} is not this run's config (edited by hand, or the config a --force resume \
                 departs from): kept as {}",
                path.display(),
                kept.display()
            );
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    crate::files::write_whole(&path, yaml).map_err(io)
}

/// What to resume from, in order of preference: `--resume`; after a restart by the agent
/// (torchrun's `TORCHELASTIC_RESTART_COUNT`, a requeued Slurm job) first the run's newest
/// checkpoint, unasked, since the attempt before may have gone past `--resume`'s. The same
/// when the newest checkpoint is this elastic job's: torchrun starts its workers anew, without
/// counting a restart, when a node joins.
fn resume_requests<'a>(
    asked: Option<&'a str>,
    env: Option<&RankEnv>,
    checkpoints: &CheckpointDir,
) -> Vec<&'a str> {
    let restart = env.map_or(0, |e| e.restart_count);
    if restart > 0 {
        tracing::info!("restart {restart} of the run: resuming from its newest checkpoint");
        return std::iter::once("auto").chain(asked).collect();
    }
    if let Some(job) = env.and_then(RankEnv::elastic_run) {
        if asked.is_none() && newest_is_of_job(checkpoints, job) {
            tracing::info!(
                "the newest checkpoint is this elastic job's ({} {job}), started again with \
                 {} ranks: resuming from it",
                crate::distributed::env::var::RUN_ID,
                env.map_or(1, |e| e.world_size)
            );
            return vec!["auto"];
        }
    }
    asked.into_iter().collect()
}

/// Whether the newest checkpoint in `checkpoints` was written by the elastic job `job`. One
/// that cannot be read is no job's: the refusal of a folder with checkpoints then names it.
fn newest_is_of_job(checkpoints: &CheckpointDir, job: &str) -> bool {
    let newest = checkpoints
        .list()
        .ok()
        .and_then(|list| list.into_iter().next());
    newest
        .and_then(|dir| checkpoint::read_state(&dir).ok())
        .is_some_and(|state| state.provenance.elastic_run.as_deref() == Some(job))
}

/// Continues from the first of `requests` that gives a checkpoint (`auto`: the newest good
/// checkpoint of the run in `out`, if any; else a checkpoint folder, which must load).
fn resume_from(
    trainer: &mut Trainer<'_>,
    checkpoints: &CheckpointDir,
    requests: &[&str],
    force: bool,
    out: &Path,
    device: &Device,
) -> Result<()> {
    let mut found = None;
    for request in requests {
        found = match *request {
            "auto" => newest_checkpoint(checkpoints, out, device)?,
            path => {
                let path = PathBuf::from(path);
                let c = checkpoint::load(&path, device)?;
                Some((path, c))
            }
        };
        if found.is_some() {
            break;
        }
    }
    match found {
        Some((path, c)) => {
            tracing::info!(
                "resuming from {} (step {})",
                path.display(),
                c.state.global_step
            );
            trainer.resume(c, force)?;
        }
        None => tracing::info!(
            "no checkpoint in {} yet: starting from the beginning",
            out.display()
        ),
    }
    Ok(())
}

/// The newest checkpoint of the run in `out` that loads, or `None` for a run that has not
/// written one yet. Checkpoints none of which loads, or a finished run whose checkpoints are
/// gone, are refused: starting over would replace them.
fn newest_checkpoint(
    checkpoints: &CheckpointDir,
    out: &Path,
    device: &Device,
) -> Result<Option<(PathBuf, checkpoint::Checkpoint)>> {
    if let Some(found) = checkpoints.latest_valid(device)? {
        return Ok(Some(found));
    }
    let damaged = checkpoints.list()?;
    if !damaged.is_empty() {
        let dir = out.join("checkpoints");
        return Err(TrainError::NoUsableCheckpoint { dir, damaged });
    }
    if out.join("final.safetensors").exists() {
        let out = out.to_owned();
        return Err(TrainError::FinishedWithoutCheckpoint { out });
    }
    Ok(None)
}

/// How a run that reached its end ended, for the user: its last validation, where its weights
/// are.
fn tell_the_end(summary: &Summary, rank: usize, out: &Path) {
    if rank == 0 {
        if let Some(val) = &summary.last_val {
            // save_val_epochs past the run's end leaves only the validation before step 1.
            let when = match val.step == summary.global_step {
                true => String::new(),
                false => format!(" at step {}", val.step),
            };
            println!(
                "done: {} steps; validation{when} loss {:.4}, top-1 {:.2}%, top-5 {:.2}%; \
                 weights in {}",
                summary.global_step,
                val.loss,
                100.0 * val.top1,
                100.0 * val.top5,
                out.join("final.safetensors").display()
            );
        }
    }
}

/// Generates a synthetic ImageFolder at `root` unless it exists. Written aside and renamed
/// into place, so ranks starting together never see half a dataset.
fn ensure_synthetic(
    root: &Path,
    classes: usize,
    per_class: usize,
    size: usize,
    seed: u64,
) -> Result<()> {
    if root.exists() {
        return Ok(());
    }
    let parent = root.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)
        .explain(TrainError::Io, || format!("creating {}", parent.display()))?;
    let name = root.file_name().unwrap_or_default().to_string_lossy();
    // Each rank writes its own copy: ranks starting together race to the same folder.
    let aside = Aside::at(root, parent.join(format!(".{name}.{}", std::process::id())));
    tracing::info!("generating a synthetic image set in {}", root.display());
    let staging = aside.staging();
    cornet_data::synthetic::write_image_folder(staging, classes, per_class, size as u32, seed)?;
    // A failed rename is another rank's set already there, the same images; ours is removed.
    let _ = aside.commit();
    Ok(())
}
