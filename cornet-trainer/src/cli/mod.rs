//! The command line: `cornet-trainer <command>`, with the original `run.py` flag names. One
//! file per command; the flags that several commands take are defined once ([`shared`]) and
//! flattened into each. Each command's arguments turn themselves into the library's request;
//! these types belong to the binary.

mod bench;
mod eval;
mod launch;
mod plot;
mod score;
mod shared;
mod test;
mod train;

pub use bench::{BenchAllreduceArgs, BenchArgs};
pub use eval::EvalArgs;
pub use launch::LaunchArgs;
pub use plot::PlotArgs;
pub use score::{ScoreArgs, ScoreJob};
pub use test::TestArgs;
pub use train::TrainArgs;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "cornet-trainer",
    version,
    about = "Train, run and score CORnet models (Z, R, RT, S)",
    long_about = "Train, run and score the CORnet models (Kubilius, Schrimpf et al., NeurIPS 2019).\n\n\
                  `cornet-trainer test` extracts features as the original `run.py test` did."
)]
// Bare, it lists the commands (training's flags among them) rather than ask for --config.
#[command(args_conflicts_with_subcommands = true, arg_required_else_help = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Without a command: train.
    #[command(flatten)]
    pub train: TrainArgs,
}

/// The commands besides training.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a model on preprocessed images and save module outputs (the original `run.py test`).
    Test(TestArgs),
    /// Top-1, top-5 and mean cross-entropy of weights on a labelled image folder, with
    /// training's validation transform; one JSON line on stdout. Several ranks (under
    /// `launch --nproc N -- eval ...`) each score a disjoint part.
    Eval(EvalArgs),
    /// How brain-like are features: RSA, linear CKA and PLS neural predictivity with a
    /// split-half noise ceiling, against neural recordings of the same stimuli; with --model,
    /// of every area of a model at every time step.
    Score(ScoreArgs),
    /// Time the train step (forward, backward, update) and inference on synthetic input and
    /// print one JSON line.
    Bench(BenchArgs),
    /// Time the gradient all-reduce between ranks (start it under `launch`) and print one
    /// JSON line from rank 0.
    BenchAllreduce(BenchAllreduceArgs),
    /// Start one training process per device as torchrun does (same variables, same store),
    /// watch them, and restart all from the newest checkpoint when one fails. Under torchrun,
    /// srun or a PyTorchJob, start `cornet-trainer --config ...` directly instead.
    Launch(LaunchArgs),
    /// Draw the learning curves of one or more training runs into one SVG: loss and top-1
    /// (train: means per tenth of an epoch; validation: each one) and the learning rate,
    /// against epochs, one colour per run.
    Plot(PlotArgs),
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Parses `line` (without the program's name) as the command line.
    pub fn parse(line: &str) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("cornet-trainer").chain(line.split_whitespace()))
    }

    /// The arguments of the command `Command::$variant` that `$line` (without the program's
    /// name) gives, or clap's error.
    macro_rules! args_of {
        ($variant:ident, $line:expr) => {
            crate::cli::tests::parse(&$line).map(|cli| match cli.command {
                Some(crate::cli::Command::$variant(args)) => args,
                other => panic!("not {}: {other:?}", stringify!($variant)),
            })
        };
    }
    pub(crate) use args_of;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    /// Bare, the command lists the commands, as `--help` does.
    #[test]
    fn a_bare_command_lists_the_commands() {
        let err = parse("").unwrap_err();
        assert_eq!(
            err.kind(),
            clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        );
        let help = err.to_string();
        assert!(
            help.contains("Commands:") && help.contains("launch"),
            "{help}"
        );
    }

    /// The command lines the README shows, as it shows them.
    #[test]
    fn the_readme_commands_parse() {
        let readme = include_str!("../../../README.md");
        let lines: Vec<&str> = readme
            .lines()
            .filter_map(|line| line.trim_start().strip_prefix("cornet-trainer "))
            .map(|line| line.split(" #").next().unwrap_or(line))
            .filter(|line| !line.contains("..."))
            .collect();
        assert!(lines.len() >= 12, "{lines:?}");
        for line in lines {
            if let Err(err) = parse(line) {
                panic!("`cornet-trainer {line}`: {err}");
            }
        }
    }
}
