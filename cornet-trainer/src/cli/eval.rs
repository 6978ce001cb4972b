//! `cornet-trainer eval`: how often weights name the right class, as training's validation
//! measures it.

use super::shared::{DeviceArgs, ImageArgs, NetworkArgs, PrecisionArgs};
use clap::{Args, ValueEnum};
use cornet_trainer::config::DataFormat;
use cornet_trainer::distributed::RankEnv;
use cornet_trainer::evaluate::request::EvalRequest;
use std::path::PathBuf;

/// `eval`: the weights, the labelled images, and how to run them.
#[derive(Debug, Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub network: NetworkArgs,

    /// The labelled images themselves (e.g. /data/imagenet/val, not its parent): one folder
    /// per class, labels in sorted class-name order as training gives them; or a folder of
    /// shards with --data-format shards.
    #[arg(long, alias = "data_path", value_name = "DIR")]
    pub data_path: PathBuf,

    /// How --data-path is stored (data.format in a config).
    #[arg(long, value_enum, default_value = "imagefolder")]
    pub data_format: DataFormatArg,

    /// The training set the weights learned (e.g. /data/imagenet/train): --data-path must
    /// hold its classes in the same order, as training checks its validation set.
    #[arg(long, value_name = "DIR")]
    pub classes_from: Option<PathBuf>,

    #[command(flatten)]
    pub images: ImageArgs,

    #[command(flatten)]
    pub device: DeviceArgs,

    #[command(flatten)]
    pub precision: PrecisionArgs,
}

impl EvalArgs {
    /// The evaluation these flags ask of this process, as rank `rank_env` (read once by the
    /// caller).
    pub fn request(&self, rank_env: Option<RankEnv>) -> anyhow::Result<EvalRequest> {
        Ok(EvalRequest {
            network: self.network.resolve()?,
            data: self.data_path.clone(),
            format: self.data_format.into(),
            classes_from: self.classes_from.clone(),
            image_size: self.images.image_size,
            batch_size: self.images.batch_size,
            workers: self.images.workers,
            device: self.device.device.clone(),
            precision: self.precision.precision.into(),
            rank_env,
        })
    }
}

/// `--data-format`: the library's [`DataFormat`] as a command-line value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DataFormatArg {
    Imagefolder,
    Shards,
}

impl From<DataFormatArg> for DataFormat {
    fn from(arg: DataFormatArg) -> DataFormat {
        match arg {
            DataFormatArg::Imagefolder => DataFormat::Imagefolder,
            DataFormatArg::Shards => DataFormat::Shards,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::cli::tests::args_of;
    use crate::cli::EvalArgs;
    use cornet_trainer::config::{DataFormat, Precision};
    use std::path::Path;

    fn eval(line: &str) -> EvalArgs {
        args_of!(Eval, format!("eval {line}")).unwrap()
    }

    #[test]
    fn every_flag_reaches_the_request() {
        let args = eval(
            "--model Z --weights /w/z.pth --times 2 --data-path /val --data-format shards \
             --classes-from /train --image-size 64 --batch-size 16 -j 3 --device auto \
             --precision bf16",
        );
        let request = args.request(None).unwrap();
        assert_eq!(request.network.arch, cornet_model::Arch::Z);
        assert_eq!(request.network.weights, Path::new("/w/z.pth"));
        assert_eq!(request.network.times, Some(2));
        assert_eq!(request.data, Path::new("/val"));
        assert_eq!(request.format, DataFormat::Shards);
        assert_eq!(request.classes_from.as_deref(), Some(Path::new("/train")));
        assert_eq!(
            (request.image_size, request.batch_size, request.workers),
            (64, 16, 3)
        );
        assert_eq!(request.device, "auto");
        assert_eq!(request.precision, Precision::Bf16);
    }

    #[test]
    fn the_defaults_and_the_other_spellings() {
        let request = eval("--model Z --weights w --data_path /val --imsize 96 --batch_size 8")
            .request(None)
            .unwrap();
        assert_eq!(
            (request.image_size, request.batch_size, request.workers),
            (96, 8, 4)
        );
        assert_eq!(request.format, DataFormat::Imagefolder);
        assert_eq!(request.device, "cpu");
        assert_eq!(request.precision, Precision::F32);
        assert_eq!(request.classes_from, None);
    }
}
