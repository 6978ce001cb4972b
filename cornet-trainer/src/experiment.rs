//! `cornet-trainer --config X`: an experiment from its config to its trained weights.

use crate::checkpoint::{self, CheckpointDir};
use crate::config::{Backend, Config, DataFormat};
use crate::device::parse_device;
use crate::dist::{self, env::RankEnv, Transport};
use crate::optim::StepLr;
use crate::train::{BatchSource, ImageSource, RunSettings, Trainer};
use anyhow::{bail, Context, Result};
use cornet_data::{Dataset, ImageFolder, Loader, LoaderOptions, Sampler, Shards, Transform};
use cornet_model::Model;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// What the command line adds to the config.
#[derive(Debug, Clone, Default)]
pub struct Launch {
    pub config: PathBuf,
    /// `key.path=value` overrides, the `--set` flags and the original's flags translated.
    pub overrides: Vec<String>,
    /// `auto` for the newest good checkpoint of the run, or a checkpoint folder.
    pub resume: Option<String>,
    /// Resume even if the config or data changed.
    pub force: bool,
    /// Initial weights (.pth or safetensors) instead of a random initialisation.
    pub init: Option<PathBuf>,
}

pub fn train(launch: &Launch) -> Result<()> {
    let config = Config::load(&launch.config, &launch.overrides)?;
    let rank_env = RankEnv::from_env()?;
    let (rank, world) = rank_env.as_ref().map_or((0, 1), |e| (e.rank, e.world_size));
    if world == 1 && config.dist.ngpus > 1 {
        tracing::warn!(
            "dist.ngpus is {} but this is a single process: start the ranks with `cornet-trainer launch --nproc {}` or scripts/launch_2gpu.sh",
            config.dist.ngpus,
            config.dist.ngpus
        );
    }
    if config.train.batch_size % world != 0 {
        bail!(
            "train.batch_size {} does not split evenly over {world} ranks",
            config.train.batch_size
        );
    }
    let batch_size = config.train.batch_size / world;
    let device = parse_device(&config.train.device).context("train.device")?;

    if let Some(synthetic) = &config.data.synthetic {
        ensure_synthetic(
            &config.data.train,
            synthetic.classes,
            synthetic.train_per_class,
            synthetic.size,
            config.train.seed,
        )?;
        if let Some(val) = &config.data.val {
            ensure_synthetic(
                val,
                synthetic.classes,
                synthetic.val_per_class,
                synthetic.size,
                config.train.seed + 1,
            )?;
        }
    }
    if config.data.format == DataFormat::Shards && config.data.synthetic.is_some() {
        bail!("data.synthetic generates an ImageFolder: use it with data.format: imagefolder");
    }
    let loader_options = |transform| LoaderOptions {
        transform,
        workers: config.data.workers,
        prefetch: config.data.prefetch,
        skip_bad_images: config.data.skip_bad_images,
        seed: config.train.seed,
    };
    let size = config.data.image_size;
    let train_set = open_images(&config.data.train, config.data.format, "data.train")?;
    check_classes(&config, train_set.num_classes(), "data.train")?;
    let train_sampler =
        Sampler::training(train_set.len(), batch_size, rank, world, config.train.seed);
    let train = ImageSource::new(
        Loader::new(train_set, loader_options(Transform::Train { size })),
        train_sampler,
    );
    let val = match &config.data.val {
        Some(path) => {
            let set = open_images(path, config.data.format, "data.val")?;
            check_classes(&config, set.num_classes(), "data.val")?;
            let sampler = Sampler::validation(set.len(), batch_size, rank, world);
            Some(ImageSource::new(
                Loader::new(set, loader_options(Transform::Val { size })),
                sampler,
            ))
        }
        None => None,
    };

    let model = match &launch.init {
        Some(weights) => {
            let model = Model::from_checkpoint(
                weights,
                Some(config.arch()?),
                Some(config.model.times),
                &device,
            )?;
            if model.config() != &config.model_config() {
                bail!(
                    "--init {}: the weights are a {:?}, the config asks for {:?}",
                    weights.display(),
                    model.config(),
                    config.model_config()
                );
            }
            model
        }
        None => Model::new(&config.model_config(), &device, config.train.seed)?,
    };
    let transport = match config.dist.backend {
        Backend::Auto => Transport::Auto,
        Backend::Nccl => Transport::Nccl,
        Backend::Tcp => Transport::Tcp,
    };
    let mut comm = dist::connect(transport, &device)?;

    let out = &config.output.path;
    let checkpoints = CheckpointDir::new(out.join("checkpoints"), config.output.keep);
    if launch.resume.is_none() && !checkpoints.list()?.is_empty() {
        bail!(
            "{} already holds checkpoints of a run: continue it with --resume auto, or train \
             into another output.path (-o)",
            out.display()
        );
    }
    if rank == 0 {
        std::fs::create_dir_all(out)
            .with_context(|| format!("creating output.path {}", out.display()))?;
        let resolved = out.join("config.yaml");
        std::fs::write(&resolved, config.to_yaml())
            .with_context(|| format!("writing {}", resolved.display()))?;
    }
    let settings = RunSettings {
        epochs: config.train.epochs,
        schedule: StepLr {
            base_lr: config.optim.lr,
            step_size: config.optim.step_size,
            gamma: config.optim.gamma,
        },
        momentum: config.optim.momentum,
        weight_decay: config.optim.weight_decay,
        seed: config.train.seed,
        output_dir: out.clone(),
        save_val_epochs: config.output.save_val_epochs,
        save_model_epochs: config.output.save_model_epochs,
        save_model_steps: config.output.save_model_steps,
        save_model_secs: config.output.save_model_secs,
        keep: config.output.keep,
        config_hash: config.hash(),
        sync_check_steps: 100,
        precision: config.train.precision,
    };
    let stop = stop_on_signals()?;
    let mut trainer = Trainer::new(&model, comm.as_mut(), settings, &train, stop)?;
    if let Some(resume) = &launch.resume {
        let found = match resume.as_str() {
            "auto" => checkpoints.latest_valid(&device)?,
            path => {
                let path = PathBuf::from(path);
                let c = checkpoint::load(&path, &device)?;
                Some((path, c))
            }
        };
        match found {
            Some((path, c)) => {
                tracing::info!(
                    "resuming from {} (step {})",
                    path.display(),
                    c.state.global_step
                );
                trainer.resume(c, launch.force)?;
            }
            None => tracing::info!(
                "no checkpoint in {} yet: starting from the beginning",
                out.display()
            ),
        }
    }
    let summary = trainer.run(&train, val.as_ref().map(|v| v as &dyn BatchSource))?;
    if summary.interrupted {
        tracing::info!(
            "stopped at step {}; continue with --resume auto",
            summary.global_step
        );
    } else if rank == 0 {
        if let Some(val) = summary.last_val {
            println!(
                "done: {} steps; validation loss {:.4}, top-1 {:.2}%, top-5 {:.2}%; weights in {}",
                summary.global_step,
                val.loss,
                100.0 * val.top1,
                100.0 * val.top5,
                out.join("final.safetensors").display()
            );
        }
    }
    Ok(())
}

/// The labelled images at `path`, an ImageFolder or a folder of shards as `format` says.
fn open_images(path: &Path, format: DataFormat, key: &str) -> Result<Box<dyn Dataset>> {
    let set: Box<dyn Dataset> = match format {
        DataFormat::Imagefolder => Box::new(ImageFolder::open(path).context(key.to_owned())?),
        DataFormat::Shards => Box::new(Shards::open(path).context(key.to_owned())?),
    };
    Ok(set)
}

fn check_classes(config: &Config, found: usize, key: &str) -> Result<()> {
    if found > config.model.num_classes {
        bail!(
            "{key} has {found} classes but model.num_classes is {}",
            config.model.num_classes
        );
    }
    Ok(())
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
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let staging = parent.join(format!(
        ".{}.{}",
        root.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    tracing::info!("generating a synthetic image set in {}", root.display());
    cornet_data::synthetic::write_image_folder(&staging, classes, per_class, size as u32, seed)?;
    if std::fs::rename(&staging, root).is_err() {
        // Another rank got there first with the same images.
        std::fs::remove_dir_all(&staging).ok();
    }
    Ok(())
}

/// The first Ctrl-C or SIGTERM asks the loop to checkpoint and stop after the current step;
/// a second one ends the process at once.
fn stop_on_signals() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            eprintln!("stopping now, without a checkpoint");
            std::process::exit(130);
        }
        eprintln!("stopping after this step, with a checkpoint (again to stop at once)");
    })
    .context("installing the signal handler")?;
    Ok(stop)
}
