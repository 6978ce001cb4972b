use clap::Parser;
use cornet_trainer::cli::{Cli, Command, TestArgs};
use cornet_trainer::device::parse_device;
use cornet_trainer::extract::{extract, read_input_npy, Selection};
use std::process::ExitCode;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Test(args) => run_test(&args),
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
    let images = read_input_npy(&args.input_npy)?.to_device(&device)?;
    let selection = if args.all_taps {
        Selection::AllTaps
    } else {
        Selection::Layer {
            layer: args.layer.clone(),
            sublayer: args.sublayer.clone(),
            time_step: args.time_step,
        }
    };
    let path = extract(
        &model,
        &images,
        &selection,
        args.batch_size as usize,
        &args.output_path,
    )?;
    println!("{}", path.display());
    Ok(())
}
