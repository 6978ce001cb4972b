//! `cornet-trainer score`: features from a file (`--features`) or from a model (`--model`)
//! scored against neural recordings.

use crate::bars::Bars;
use crate::cli::ScoreArgs;
use cornet_trainer::device::parse_device;
use cornet_trainer::network::NetworkSpec;
use cornet_trainer::published;
use cornet_trainer::scan::{self, report, ScanRequest};
use cornet_trainer::score::protocol::NeuralRequest;
use cornet_trainer::score::{score, ScoreRequest};
use std::path::PathBuf;

pub fn run(args: &ScoreArgs) -> anyhow::Result<()> {
    let Some(features) = &args.features else {
        return run_model(args);
    };
    let scores = score(&ScoreRequest {
        features: features.clone(),
        neural: neural_request(args, args.save_draws.clone()),
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
fn run_model(args: &ScoreArgs) -> anyhow::Result<()> {
    let model = &args.scan;
    let (Some(arch), Some(weights), Some(images), Some(out_dir)) = (
        model.model,
        &model.weights,
        &model.data_path,
        &model.output_path,
    ) else {
        anyhow::bail!("give --features, or --model with --weights, --data-path and -o");
    };
    let request = ScanRequest {
        network: NetworkSpec {
            arch,
            weights: published::resolve(weights)?,
            times: model.times,
        },
        device: parse_device(&model.device)?,
        images: images.clone(),
        stimuli: model.stimuli.clone(),
        imsize: model.imsize,
        batch_size: model.batch_size as usize,
        workers: model.workers,
        neural: neural_request(args, Some(out_dir.clone())),
        out_dir: out_dir.clone(),
    };
    let result = scan::scan(&request, &mut Bars::default())?;
    let (csv, svg) = report::write(&result, out_dir)?;
    print!("{}", report::table(&result));
    println!("{}\n{}", csv.display(), svg.display());
    Ok(())
}

/// The recordings and protocol flags that both forms of `score` take; drawn folds and halves
/// go into `save_draws` (`--save-draws`, or `-o` with `--model`).
fn neural_request(args: &ScoreArgs, save_draws: Option<PathBuf>) -> NeuralRequest {
    NeuralRequest {
        recordings: args.recordings.clone(),
        folds: args.folds.clone(),
        split_halves: args.split_halves.clone(),
        metric: args.metric.into(),
        seed: args.seed,
        components: args.components as usize,
        save_draws,
    }
}
