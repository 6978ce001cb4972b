//! Training, the default command: `cornet-trainer --config configs/cornet_s.yaml`. The
//! original `run.py train` flags (`--lr`, `--step_size`, ...) override the config's fields.

use super::shared::{at_least, weights_forms};
use clap::Args;
use cornet_trainer::config::Override;
use cornet_trainer::distributed::RankEnv;
use cornet_trainer::experiment::TrainRequest;
use cornet_trainer::published;
use std::fmt::Display;
use std::path::PathBuf;

/// Training: a config, overrides of its fields, and where to start from.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The experiment: a YAML file as in configs/ (required to train).
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,

    /// Override a config field, e.g. `--set optim.lr=0.05` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,

    /// Continue a run: `auto` for its newest good checkpoint, or a checkpoint folder.
    #[arg(long, value_name = "PATH|auto")]
    pub resume: Option<String>,

    /// Resume even if the config or the training data changed since the checkpoint.
    #[arg(long)]
    pub force: bool,

    #[arg(
        long,
        value_name = "PATH|Z|R|RT|S",
        help = concat!("Start from these weights, not at random: ", weights_forms!())
    )]
    pub init: Option<PathBuf>,

    /// ImageNet root with train/ and val/ folders (sets data.train and data.val).
    #[arg(long, alias = "data_path")]
    pub data_path: Option<PathBuf>,

    /// Output folder (output.path).
    #[arg(short = 'o', long, alias = "output_path")]
    pub output_path: Option<PathBuf>,

    /// Z, R, RT or S (model.arch).
    #[arg(long)]
    pub model: Option<String>,

    /// Time steps of R and RT (model.times).
    #[arg(long)]
    pub times: Option<usize>,

    /// Ranks (dist.ngpus).
    #[arg(long)]
    pub ngpus: Option<usize>,

    /// Decoding threads (data.workers).
    #[arg(short = 'j', long)]
    pub workers: Option<usize>,

    /// Images per step over all ranks (train.batch_size).
    #[arg(long, alias = "batch_size", value_parser = at_least(1))]
    pub batch_size: Option<usize>,

    /// Initial learning rate (optim.lr).
    #[arg(long)]
    pub lr: Option<f64>,

    /// Epochs between learning-rate drops (optim.step_size).
    #[arg(long, alias = "step_size")]
    pub step_size: Option<f64>,

    /// Training epochs (train.epochs).
    #[arg(long)]
    pub epochs: Option<u64>,

    /// SGD momentum (optim.momentum).
    #[arg(long)]
    pub momentum: Option<f64>,

    /// L2 weight decay (optim.weight_decay).
    #[arg(long, alias = "weight_decay")]
    pub weight_decay: Option<f64>,

    /// Image side (data.image_size).
    #[arg(long, visible_alias = "imsize", value_parser = at_least(1))]
    pub image_size: Option<usize>,

    /// Validate before the first step too (output.val_at_start; true unless the config says).
    #[arg(long, value_name = "true|false")]
    pub val_at_start: Option<bool>,
}

impl TrainArgs {
    /// The training these flags ask of this process, as rank `rank_env` (read once by the
    /// caller); a published name given to `--init` resolved to its file.
    pub fn request(&self, rank_env: Option<RankEnv>) -> anyhow::Result<TrainRequest> {
        let Some(config) = self.config.clone() else {
            anyhow::bail!("{}", self.config_missing());
        };
        Ok(TrainRequest {
            config,
            overrides: self.overrides(),
            resume: self.resume.clone(),
            force: self.force,
            init: self.init.as_deref().map(published::resolve).transpose()?,
            rank_env,
        })
    }

    /// Why training needs `--config`, with the command that the original `run.py`'s habit
    /// (`--model S --data-path ...` alone) was likely after.
    fn config_missing(&self) -> String {
        let model = self.model.as_deref().unwrap_or("S").to_lowercase();
        let model = match model.as_str() {
            "z" | "r" | "rt" | "s" => model,
            _ => "s".into(),
        };
        format!(
            "--config is required to train: an experiment's YAML file, whose fields the original \
             run.py's flags (--model, --data-path, --lr, ...) change, e.g. `cornet-trainer \
             --config configs/cornet_{model}.yaml --data-path /imagenet` (configs/ holds one \
             per model); `cornet-trainer --help` lists the other commands"
        )
    }

    /// The `--set` overrides followed by the original's flags, each named in errors.
    fn overrides(&self) -> Vec<Override> {
        let mut out: Vec<Override> = self.set.iter().map(Override::set).collect();
        if let Some(root) = &self.data_path {
            let (train, val) = (root.join("train"), root.join("val"));
            put(&mut out, "--data-path", "data.train", Some(train.display()));
            put(&mut out, "--data-path", "data.val", Some(val.display()));
        }
        let output = self.output_path.as_ref().map(|path| path.display());
        put(&mut out, "--output-path", "output.path", output);
        put(&mut out, "--model", "model.arch", self.model.as_ref());
        put(&mut out, "--times", "model.times", self.times);
        put(&mut out, "--ngpus", "dist.ngpus", self.ngpus);
        put(&mut out, "--workers", "data.workers", self.workers);
        put(
            &mut out,
            "--batch-size",
            "train.batch_size",
            self.batch_size,
        );
        put(&mut out, "--lr", "optim.lr", self.lr);
        put(&mut out, "--step-size", "optim.step_size", self.step_size);
        put(&mut out, "--epochs", "train.epochs", self.epochs);
        put(&mut out, "--momentum", "optim.momentum", self.momentum);
        put(
            &mut out,
            "--weight-decay",
            "optim.weight_decay",
            self.weight_decay,
        );
        put(&mut out, "--image-size", "data.image_size", self.image_size);
        put(
            &mut out,
            "--val-at-start",
            "output.val_at_start",
            self.val_at_start,
        );
        out
    }
}

/// Adds `flag`'s setting of `key`, if the flag was given.
fn put(out: &mut Vec<Override>, flag: &str, key: &str, value: Option<impl Display>) {
    if let Some(value) = value {
        out.push(Override::by_flag(flag, key, value));
    }
}

#[cfg(test)]
mod tests {
    use crate::cli::tests::parse;
    use crate::cli::TrainArgs;
    use cornet_trainer::config::{Config, Override};
    use std::path::Path;

    fn train(line: &str) -> TrainArgs {
        let cli = parse(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert!(cli.command.is_none(), "{line}");
        cli.train
    }

    fn assignments(args: &TrainArgs) -> Vec<(String, String)> {
        let overrides = args.overrides();
        overrides
            .into_iter()
            .map(|o| (o.flag, o.assignment))
            .collect()
    }

    #[test]
    fn every_flag_reaches_the_request() {
        let args = train(
            "--config c.yaml --set optim.gamma=0.5 --resume auto --force --init /w/z.pth \
             --data-path /d -o /o --model S --times 3 --ngpus 2 -j 5 --batch-size 64 --lr 0.1 \
             --step-size 10 --epochs 3 --momentum 0.8 --weight-decay 0.0001 --image-size 96 \
             --val-at-start false",
        );
        let request = args.request(None).unwrap();
        assert_eq!(request.config, Path::new("c.yaml"));
        assert_eq!(request.resume.as_deref(), Some("auto"));
        assert!(request.force);
        assert_eq!(request.init.as_deref(), Some(Path::new("/w/z.pth")));
        let expected = [
            ("--set", "optim.gamma=0.5"),
            ("--data-path", "data.train=/d/train"),
            ("--data-path", "data.val=/d/val"),
            ("--output-path", "output.path=/o"),
            ("--model", "model.arch=S"),
            ("--times", "model.times=3"),
            ("--ngpus", "dist.ngpus=2"),
            ("--workers", "data.workers=5"),
            ("--batch-size", "train.batch_size=64"),
            ("--lr", "optim.lr=0.1"),
            ("--step-size", "optim.step_size=10"),
            ("--epochs", "train.epochs=3"),
            ("--momentum", "optim.momentum=0.8"),
            ("--weight-decay", "optim.weight_decay=0.0001"),
            ("--image-size", "data.image_size=96"),
            ("--val-at-start", "output.val_at_start=false"),
        ]
        .map(|(flag, assignment)| (flag.to_string(), assignment.to_string()));
        assert_eq!(assignments(&args), expected);
        assert_eq!(request.overrides, args.overrides());
    }

    /// The original `run.py train` spelled its flags with underscores.
    #[test]
    fn the_original_flags_mean_what_they_meant() {
        let original = train(
            "--config c.yaml --data_path /d --output_path /o --ngpus 2 --workers 5 \
             --batch_size 64 --lr 0.1 --step_size 10 --epochs 3 --momentum 0.8 \
             --weight_decay 0.0001 --imsize 96",
        );
        let ours = train(
            "--config c.yaml --data-path /d -o /o --ngpus 2 -j 5 --batch-size 64 --lr 0.1 \
             --step-size 10 --epochs 3 --momentum 0.8 --weight-decay 0.0001 --image-size 96",
        );
        assert_eq!(assignments(&original), assignments(&ours));
    }

    /// The original's habit, its flags without a config, is told which config to start from.
    #[test]
    fn training_without_a_config_names_the_config_to_start_from() {
        let err = train("--model RT --data-path /d")
            .request(None)
            .unwrap_err();
        let err = err.to_string();
        assert!(err.starts_with("--config is required to train"), "{err}");
        assert!(err.contains("--config configs/cornet_rt.yaml"), "{err}");
    }

    /// A value the config refuses is blamed on the flag that gave it; one of the wrong type
    /// on the flag too, by clap.
    #[test]
    fn a_bad_value_is_blamed_on_its_flag() {
        let yaml = "model: {arch: Z}\ndata: {train: /t}\noptim: {lr: 0.1, step_size: 10}\n\
                    train: {epochs: 1, batch_size: 8}\noutput: {path: /o}\n";
        let config = |line: &str| {
            let overrides: Vec<Override> = train(line).overrides();
            Config::parse(yaml, Path::new("c.yaml"), &overrides).map_err(|e| e.to_string())
        };
        let cases = [
            ("--lr=-1", "--lr: optim.lr: must be a positive number"),
            (
                "--momentum 1.5",
                "--momentum: optim.momentum: must be in [0, 1)",
            ),
            (
                "--step_size 0",
                "--step-size: optim.step_size: must be positive",
            ),
            ("--times 0", "--times: model.times: must be at least 1"),
            ("-j 0", "--workers: data.workers: must be at least 1"),
            (
                "--imsize 16",
                "--image-size: data.image_size: must be at least 32",
            ),
            ("--model Q", "--model: model.arch: "),
        ];
        for (flags, blamed) in cases {
            let err = config(&format!("--config c.yaml {flags}")).unwrap_err();
            assert!(err.starts_with(blamed), "{flags}: {err}");
        }
        assert!(config("--config c.yaml --epochs 2").is_ok());
        for flags in ["--lr x", "--epochs=-1", "--ngpus two", "--batch-size 0"] {
            let err = parse(&format!("--config c.yaml {flags}"))
                .unwrap_err()
                .to_string();
            let flag = flags.split([' ', '=']).next().unwrap();
            assert!(err.contains(&format!("'{flag} <")), "{flags}: {err}");
        }
    }
}
