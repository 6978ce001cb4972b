//! `cornet-trainer plot RUN [RUN...] -o FILE.svg`: runs' learning curves, overlaid.

use crate::cli::PlotArgs;
use cornet_trainer::curves;

pub fn run(args: &PlotArgs) -> anyhow::Result<()> {
    curves::plot(&args.runs, &args.output)?;
    println!("{}", args.output.display());
    Ok(())
}
