//! `cornet-trainer plot RUN [RUN...] -o FILE.svg`: runs' learning curves, overlaid.

use clap::Args;
use std::path::PathBuf;

/// `plot`: the runs and the picture.
#[derive(Debug, Args)]
pub struct PlotArgs {
    /// Run folders (each a training run's output.path, holding records.jsonl); the legend
    /// names each by its folder.
    #[arg(required = true, value_name = "RUN")]
    pub runs: Vec<PathBuf>,

    /// The SVG to write.
    #[arg(short = 'o', long, value_name = "FILE.svg")]
    pub output: PathBuf,
}

#[cfg(test)]
mod tests {
    use crate::cli::tests::{args_of, parse};
    use std::path::PathBuf;

    #[test]
    fn the_runs_and_the_picture() {
        let args = args_of!(Plot, "plot a b -o c.svg").unwrap();
        assert_eq!(args.runs, [PathBuf::from("a"), PathBuf::from("b")]);
        assert_eq!(args.output, PathBuf::from("c.svg"));
        assert!(parse("plot -o c.svg").is_err());
    }
}
