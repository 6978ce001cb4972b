//! `cornet-data`: pack an ImageFolder into WebDataset shards, verify them, and measure the
//! data pipeline.

mod cli;
mod commands;
mod display;

use clap::Parser;
use cli::{Cli, Command};
use std::process::ExitCode;

// The trainer runs the loader under mimalloc; the benchmark does too, so that it measures the
// allocator that training uses (every batch and image allocates buffers of 0.1 to 40 MB).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let progress = display::progress(cli.progress_every);
    let result = match cli.command {
        Command::Pack(args) => commands::pack::run(&args, &*progress),
        Command::Bench(args) => commands::bench::run(&args, &*progress),
        Command::Verify(args) => commands::verify::run(&args, &*progress),
        Command::Generate(args) => commands::generate::run(&args),
    };
    // A bar left by a task that failed is cleared before the error is printed.
    drop(progress);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
