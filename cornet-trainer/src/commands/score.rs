//! `cornet-trainer score`: features from a file (`--features`) or from a model (`--model`)
//! scored against neural recordings.

use crate::cli::{ScoreArgs, ScoreJob};
use crate::display;
use cornet_trainer::scan::{self, report};
use cornet_trainer::score;

pub fn run(args: &ScoreArgs) -> anyhow::Result<()> {
    match args.request()? {
        ScoreJob::Features { request, json } => {
            let scores = score::score(&request)?;
            if json {
                println!("{}", serde_json::to_string(&scores)?);
                return Ok(());
            }
            for (_, label, value) in scores.scalars() {
                if let Some(value) = value {
                    println!("{label:<34} {value:.4}");
                }
            }
        }
        ScoreJob::Model(request) => {
            let result = scan::scan(&request, display::on_stderr().as_mut())?;
            let (csv, svg) = report::write(&result, &request.out_dir)?;
            print!("{}", report::table(&result));
            println!("{}\n{}", csv.display(), svg.display());
        }
    }
    Ok(())
}
