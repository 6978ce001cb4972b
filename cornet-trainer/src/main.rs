//! `cornet-trainer`: the command line over the `cornet_trainer` library.

mod bars;
mod cli;
mod commands;
mod display;
mod lines;
mod logging;

use clap::Parser;
use cli::{Cli, Command};
use cornet_trainer::distributed::env::AgentFiles;
use cornet_trainer::distributed::error_file;
use cornet_trainer::error::StoppedBySignal;
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
    logging::init();
    let cli = Cli::parse();
    // The launcher has no steps: what its store held for clients since gone goes back.
    if !matches!(cli.command, Some(Command::Launch(_))) {
        keep_freed_memory();
    }
    let result = match cli.command {
        None => commands::train::run(&cli.train),
        Some(Command::Test(args)) => commands::test::run(&args),
        Some(Command::Eval(args)) => commands::eval::run(&args),
        Some(Command::Score(args)) => commands::score::run(&args),
        Some(Command::Bench(args)) => commands::bench::run(&args),
        Some(Command::BenchAllreduce(args)) => commands::bench::run_all_reduce(&args),
        Some(Command::Launch(args)) => commands::launch::run(args),
        Some(Command::Plot(args)) => commands::plot::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // The whole chain of causes on one line, never a backtrace.
            let message = format!("{err:#}");
            let the_launcher_shows_it = tell_the_agent(&message);
            // A stop that was asked for is not an error, but the run did not finish either.
            match err.downcast_ref::<StoppedBySignal>() {
                Some(stopped) => {
                    eprintln!("{message}");
                    ExitCode::from(stopped.exit_status())
                }
                None => {
                    if !the_launcher_shows_it {
                        eprintln!("error: {message}");
                    }
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Under torchrun (or our `launch`), leaves the error where the agent looks for it, so that its
/// failure summary shows it. Whether our own `launch` (the one agent that sets a heartbeat
/// file) has it: its summary shows it once for all ranks that failed alike, where each rank
/// printing it too showed a config error once per rank, then in the summary.
fn tell_the_agent(message: &str) -> bool {
    let agent = AgentFiles::from_env();
    let Some(path) = agent.error_file else {
        return false;
    };
    match error_file::write(&path, message) {
        Ok(()) => agent.heartbeat.is_some(),
        Err(e) => {
            eprintln!("(could not write the error file {}: {e})", path.display());
            false
        }
    }
}
