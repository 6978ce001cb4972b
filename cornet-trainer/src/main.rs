use clap::Parser;
use cornet_data::ImageFolder;
use cornet_trainer::bench::{self, BenchOptions};
use cornet_trainer::cli::{
    BenchAllreduceArgs, BenchArgs, Cli, Command, LaunchArgs, ScoreArgs, TestArgs, TrainArgs,
};
use cornet_trainer::device::parse_device;
use cornet_trainer::experiment::{self, Launch};
use cornet_trainer::extract::{
    extract, image_batches, read_input_npy, tensor_batches, write_file_list, Selection,
};
use cornet_trainer::launch::{launch, LaunchOptions};
use std::process::ExitCode;

// Training allocates and frees activation-sized buffers every step; glibc returns each to the
// kernel (munmap) and faults it in again, which cost ~15% of a CPU step. mimalloc keeps them
// (once told not to purge them, see `keep_freed_memory`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc.h's option enum, the same in its v2 and v3
/// (libmimalloc-sys 0.1 names only the older options).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// By default mimalloc gives freed memory back to the kernel after a delay (10 ms in v2, 1 s in
/// v3), and the kernel zeroes each page again when the next step's buffers touch it. The step's
/// peak memory is needed again at every step anyway, so keep it (-1: never purge).
fn keep_freed_memory() {
    // SAFETY: mimalloc's option calls take and return plain integers and may be called at any
    // time. A delay is positive; anything else means the enum moved, and nothing is changed.
    unsafe {
        if libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) > 0 {
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1);
        }
    }
}

fn main() -> ExitCode {
    keep_freed_memory();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        None => run_train(&cli.train),
        Some(Command::Test(args)) => run_test(&args),
        Some(Command::Score(args)) => run_score(&args),
        Some(Command::Bench(args)) => run_bench(&args),
        Some(Command::BenchAllreduce(args)) => run_bench_allreduce(&args),
        Some(Command::Launch(args)) => run_launch(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // The whole chain of causes on one line, never a backtrace.
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_test(args: &TestArgs) -> anyhow::Result<()> {
    let device = parse_device(&args.device)?;
    let model =
        cornet_model::Model::from_checkpoint(&args.weights, Some(args.model), args.times, &device)?;
    let selection = if args.all_taps {
        Selection::AllTaps
    } else {
        Selection::Layer {
            layer: args.layer.clone(),
            sublayer: args.sublayer.clone(),
            time_step: args.time_step,
        }
    };
    let batch_size = args.batch_size as usize;
    let path = match (&args.input_npy, &args.data_path) {
        (Some(npy), _) => {
            let images = read_input_npy(npy)?;
            extract(
                &model,
                tensor_batches(&images, batch_size),
                images.dim(0)?,
                &selection,
                &args.output_path,
            )?
        }
        (None, Some(dir)) => {
            let folder = ImageFolder::flat(dir)?;
            let list = write_file_list(&folder, &args.output_path)?;
            println!("{}", list.display());
            let batches = image_batches(folder, args.imsize, args.workers, batch_size);
            extract(
                &model,
                batches.images,
                batches.total,
                &selection,
                &args.output_path,
            )?
        }
        (None, None) => anyhow::bail!("give --input-npy or --data-path"),
    };
    println!("{}", path.display());
    Ok(())
}

fn run_bench(args: &BenchArgs) -> anyhow::Result<()> {
    let device = parse_device(&args.device)?;
    let options = BenchOptions {
        arch: args.model,
        batch_size: args.batch_size as usize,
        image_size: args.image_size as usize,
        steps: args.steps as usize,
        warmup: args.warmup as usize,
        precision: args.precision,
    };
    let report = bench::run(&options, &device)?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

fn run_launch(args: LaunchArgs) -> anyhow::Result<()> {
    launch(&LaunchOptions {
        nproc: args.nproc,
        nnodes: args.nnodes,
        node_rank: args.node_rank,
        master_addr: args.master_addr,
        master_port: args.master_port,
        max_restarts: args.max_restarts,
        heartbeat_timeout: std::time::Duration::from_secs(args.heartbeat_timeout),
        trainer_args: args.trainer_args,
    })
}

fn run_train(args: &TrainArgs) -> anyhow::Result<()> {
    let Some(config) = args.config.clone() else {
        anyhow::bail!("--config is required to train (see --help)");
    };
    experiment::train(&Launch {
        config,
        overrides: args.overrides(),
        resume: args.resume.clone(),
        force: args.force,
        init: args.init.clone(),
    })
}

fn run_bench_allreduce(args: &BenchAllreduceArgs) -> anyhow::Result<()> {
    let mut comm = cornet_trainer::dist::connect(
        cornet_trainer::dist::Transport::Tcp,
        &candle_core::Device::Cpu,
    )?;
    let report = bench::all_reduce(comm.as_mut(), args.floats, args.iters.max(1))?;
    if comm.rank() == 0 {
        println!("{}", serde_json::to_string(&report)?);
    }
    Ok(())
}

/// The recordings and protocol flags that both forms of `score` take.
fn neural_request(
    args: &ScoreArgs,
    out_dir: std::path::PathBuf,
) -> cornet_trainer::score::command::NeuralRequest {
    cornet_trainer::score::command::NeuralRequest {
        recordings: args.recordings.clone(),
        folds: args.folds.clone(),
        split_halves: args.split_halves.clone(),
        metric: args.metric,
        seed: args.seed,
        out_dir,
    }
}

fn run_score(args: &ScoreArgs) -> anyhow::Result<()> {
    use cornet_trainer::score::command::{score, ScoreRequest};
    let Some(features) = &args.features else {
        return run_score_model(args);
    };
    let out_dir = features
        .parent()
        .unwrap_or(std::path::Path::new("."))
        .to_owned();
    let scores = score(&ScoreRequest {
        features: features.clone(),
        neural: neural_request(args, out_dir),
    })?;
    if args.json {
        println!("{}", serde_json::to_string(&scores)?);
        return Ok(());
    }
    for (_, label, value) in scores.scalars() {
        if let Some(value) = value {
            println!("{label:<34} {value:.4}");
        }
    }
    Ok(())
}

/// `score --model`: clap has made sure that the model's flags come together.
fn run_score_model(args: &ScoreArgs) -> anyhow::Result<()> {
    use cornet_trainer::score::{plot, scan};
    let model = &args.scan;
    let (Some(arch), Some(weights), Some(images), Some(out_dir)) = (
        model.model,
        &model.weights,
        &model.data_path,
        &model.output_path,
    ) else {
        anyhow::bail!("give --features, or --model with --weights, --data-path and -o");
    };
    let result = scan::scan(&scan::ScanRequest {
        arch,
        weights: weights.clone(),
        times: model.times,
        device: parse_device(&model.device)?,
        images: images.clone(),
        stimuli: model.stimuli.clone(),
        imsize: model.imsize,
        batch_size: model.batch_size as usize,
        workers: model.workers,
        neural: neural_request(args, out_dir.clone()),
    })?;
    let (csv, svg) = (out_dir.join("scores.csv"), out_dir.join("scores.svg"));
    result.write_csv(&csv)?;
    plot::write_svg(&result, &svg)?;
    print!("{}", result.table());
    println!("{}\n{}", csv.display(), svg.display());
    Ok(())
}
