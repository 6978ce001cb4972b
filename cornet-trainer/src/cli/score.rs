//! `cornet-trainer score`: features from a file (`--features`) or from a model (`--model`)
//! scored against neural recordings.

use super::shared::{at_least, DeviceArgs, ImageArgs, NetworkArgs};
use clap::{Args, ValueEnum};
use cornet_trainer::scan::ScanRequest;
use cornet_trainer::score::metric::Metric;
use cornet_trainer::score::protocol::{NeuralRequest, COMPONENTS};
use cornet_trainer::score::ScoreRequest;
use std::path::PathBuf;

/// `score`: the features or the model, the recordings, and the protocol.
#[derive(Debug, Args)]
// The network's flags, required by `test` and `eval`, come here only with --model.
#[command(
    mut_arg("model", |arg| arg.required(false).requires("weights")),
    mut_arg("weights", |arg| arg.required(false).requires("model")),
    mut_arg("times", |arg| arg.requires("model"))
)]
pub struct ScoreArgs {
    /// Model features, float32/64 .npy [stimuli, units] (e.g. from `cornet-trainer test`), or
    /// one array of an .npz (`archive.npz:name`).
    #[arg(
        long,
        value_name = "F.npy",
        required_unless_present = "model",
        conflicts_with = "model"
    )]
    pub features: Option<PathBuf>,

    /// Neural responses, .npy [repetitions, stimuli, neuroids] (or [stimuli, neuroids]: no
    /// ceiling), stimuli in the order of the features' rows (or of the images, with --model).
    #[arg(long, value_name = "R.npy")]
    pub recordings: PathBuf,

    /// Cross-validation fold per stimulus (int64 .npy); drawn from --seed when not given.
    #[arg(long, value_name = "folds.npy")]
    pub folds: Option<PathBuf>,

    /// Split halves (int64 .npy [splits, repetitions], each row a permutation); drawn from
    /// --seed when not given.
    #[arg(long, value_name = "halves.npy")]
    pub split_halves: Option<PathBuf>,

    /// Which scores: RSA, linear CKA, PLS predictivity (with the ceiling), or all of them.
    #[arg(long, value_enum, default_value = "all")]
    pub metric: MetricArg,

    /// PLS components: at most as many as the features have units (as scikit-learn), and
    /// fewer than each fold's training stimuli.
    #[arg(long, default_value_t = COMPONENTS, value_parser = at_least(1))]
    pub components: usize,

    /// Seed of the folds and split halves drawn when not given.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// Write the folds and split halves drawn from --seed into this folder (folds.npy,
    /// split_halves.npy), to pass back with --folds and --split-halves; a different file
    /// already there is refused, never replaced. With --model they go into --output-path.
    #[arg(long, value_name = "DIR", conflicts_with = "model")]
    pub save_draws: Option<PathBuf>,

    /// Print one JSON object instead of a table (with --features).
    #[arg(long, conflicts_with = "model")]
    pub json: bool,

    #[command(flatten)]
    pub scan: ScanArgs,
}

/// Scoring a model: every area's output at every time step (V1, V2, V4, IT) and the decoder's
/// avgpool, extracted from images instead of read from --features.
#[derive(Debug, Args)]
#[command(next_help_heading = "Scoring a model (instead of --features)")]
pub struct ScanArgs {
    // Present with --model; then --data-path and --output-path are required too (wherever
    // --features is not).
    #[command(flatten)]
    pub network: Option<NetworkArgs>,

    /// The stimuli: a folder of images (JPEG or PNG), preprocessed as `test --data-path`.
    #[arg(
        long,
        alias = "data_path",
        value_name = "DIR",
        requires = "model",
        required_unless_present = "features"
    )]
    pub data_path: Option<PathBuf>,

    /// The images in the recordings' stimulus order: one file name (relative to --data-path)
    /// per line. Without it, the folder's images in sorted file-name order, as `test`.
    #[arg(long, value_name = "order.txt", requires = "model")]
    pub stimuli: Option<PathBuf>,

    #[command(flatten)]
    pub images: ImageArgs,

    #[command(flatten)]
    pub device: DeviceArgs,

    /// Folder for scores.csv (area, time_step, metric, value), scores.svg (score against time
    /// step per area), file_list.txt and drawn folds (created if missing).
    #[arg(
        short = 'o',
        long = "output-path",
        alias = "output_path",
        requires = "model",
        required_unless_present = "features"
    )]
    pub output_path: Option<PathBuf>,
}

/// What `score` is asked to do.
pub enum ScoreJob {
    /// Score features read from a file (`--features`).
    Features {
        /// The features and the recordings.
        request: ScoreRequest,
        /// Print JSON instead of a table.
        json: bool,
    },
    /// Scan a model (`--model`); the reports go into its `out_dir`.
    Model(ScanRequest),
}

impl ScoreArgs {
    /// The score these flags ask for.
    pub fn request(&self) -> anyhow::Result<ScoreJob> {
        if let Some(features) = &self.features {
            return Ok(ScoreJob::Features {
                request: ScoreRequest {
                    features: features.clone(),
                    neural: self.neural_request(self.save_draws.clone()),
                },
                json: self.json,
            });
        }
        // clap has made sure that the model's flags come together.
        let scan = &self.scan;
        let (Some(network), Some(images), Some(out_dir)) =
            (&scan.network, &scan.data_path, &scan.output_path)
        else {
            anyhow::bail!("give --features, or --model with --weights, --data-path and -o");
        };
        Ok(ScoreJob::Model(ScanRequest {
            network: network.resolve()?,
            device: scan.device.open()?,
            images: images.clone(),
            stimuli: scan.stimuli.clone(),
            imsize: scan.images.image_size,
            batch_size: scan.images.batch_size,
            workers: scan.images.workers,
            neural: self.neural_request(Some(out_dir.clone())),
            out_dir: out_dir.clone(),
        }))
    }

    /// The recordings and protocol flags that both forms of `score` take; drawn folds and
    /// halves go into `save_draws` (`--save-draws`, or `-o` with `--model`).
    fn neural_request(&self, save_draws: Option<PathBuf>) -> NeuralRequest {
        NeuralRequest {
            recordings: self.recordings.clone(),
            folds: self.folds.clone(),
            split_halves: self.split_halves.clone(),
            metric: self.metric.into(),
            seed: self.seed,
            components: self.components,
            save_draws,
        }
    }
}

/// `--metric`: the library's [`Metric`] as a command-line value.
// Variants carry no doc comments: clap would show them in `--help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MetricArg {
    Rsa,
    Cka,
    Pls,
    All,
}

impl From<MetricArg> for Metric {
    fn from(arg: MetricArg) -> Metric {
        match arg {
            MetricArg::Rsa => Metric::Rsa,
            MetricArg::Cka => Metric::Cka,
            MetricArg::Pls => Metric::Pls,
            MetricArg::All => Metric::All,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ScoreJob;
    use crate::cli::tests::args_of;
    use crate::cli::ScoreArgs;
    use cornet_trainer::score::metric::Metric;
    use std::path::Path;

    fn score(line: &str) -> Result<ScoreArgs, clap::Error> {
        args_of!(Score, format!("score {line}"))
    }

    #[test]
    fn every_flag_of_scoring_features_reaches_the_request() {
        let args = score(
            "--features f.npz:x --recordings r.npy --folds k.npy --split-halves h.npy \
             --metric pls --components 5 --seed 7 --save-draws /d --json",
        )
        .unwrap();
        let ScoreJob::Features { request, json } = args.request().unwrap() else {
            panic!("not --features");
        };
        assert!(json);
        assert_eq!(request.features, Path::new("f.npz:x"));
        let neural = request.neural;
        assert_eq!(neural.recordings, Path::new("r.npy"));
        assert_eq!(neural.folds.as_deref(), Some(Path::new("k.npy")));
        assert_eq!(neural.split_halves.as_deref(), Some(Path::new("h.npy")));
        assert_eq!(neural.metric, Metric::Pls);
        assert_eq!((neural.components, neural.seed), (5, 7));
        assert_eq!(neural.save_draws.as_deref(), Some(Path::new("/d")));
    }

    #[test]
    fn every_flag_of_scoring_a_model_reaches_the_request() {
        let args = score(
            "--model RT --weights /w/rt.pth --times 3 --data-path /s --stimuli order.txt \
             --image-size 64 --batch-size 8 -j 2 --device cpu -o /o --recordings r.npy \
             --metric rsa",
        )
        .unwrap();
        let ScoreJob::Model(request) = args.request().unwrap() else {
            panic!("not --model");
        };
        assert_eq!(request.network.arch, cornet_model::Arch::RT);
        assert_eq!(request.network.weights, Path::new("/w/rt.pth"));
        assert_eq!(request.network.times, Some(3));
        assert!(request.device.is_cpu());
        assert_eq!(request.images, Path::new("/s"));
        assert_eq!(request.stimuli.as_deref(), Some(Path::new("order.txt")));
        assert_eq!(
            (request.imsize, request.batch_size, request.workers),
            (64, 8, 2)
        );
        assert_eq!(request.out_dir, Path::new("/o"));
        // Drawn folds go with the scores.
        assert_eq!(request.neural.save_draws.as_deref(), Some(Path::new("/o")));
        assert_eq!(request.neural.metric, Metric::Rsa);
    }

    /// Features and a model exclude each other; a model comes with its weights, images and
    /// output folder; the model's flags (defaults included) mean nothing without one.
    #[test]
    fn features_or_a_whole_model() {
        let args = score("--features f.npy --recordings r.npy").unwrap();
        assert!(args.scan.network.is_none());
        assert_eq!(args.components, 25);
        for line in [
            "--recordings r.npy",
            "--features f.npy --model S --weights w --data-path s -o o --recordings r.npy",
            "--model S --weights w --data-path s --recordings r.npy",
            "--model S --data-path s -o o --recordings r.npy",
            "--features f.npy --recordings r.npy --stimuli order.txt",
            "--features f.npy --recordings r.npy --times 3",
            "--features f.npy --recordings r.npy --components 0",
            "--model S --weights w --data-path s -o o --recordings r.npy --json",
        ] {
            assert!(score(line).is_err(), "{line}");
        }
    }
}
