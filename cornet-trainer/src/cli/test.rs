//! `cornet-trainer test`: features of images, as the original `run.py test`.

use super::shared::{DeviceArgs, ImageArgs, NetworkArgs};
use clap::Args;
use cornet_trainer::extract::{ExtractRequest, Images, Selection};
use std::path::PathBuf;

/// `test`: which model, which images, what to keep of each forward pass and where.
#[derive(Debug, Args)]
pub struct TestArgs {
    #[command(flatten)]
    pub network: NetworkArgs,

    /// Preprocessed images: a float32 .npy of shape [N, 3, H, W], or one array of an .npz
    /// (`archive.npz:name`).
    #[arg(
        long,
        value_name = "X.npy",
        required_unless_present = "data_path",
        conflicts_with = "data_path"
    )]
    pub input_npy: Option<PathBuf>,

    /// A folder of images (JPEG or PNG, searched recursively), read in sorted file-name order
    /// and preprocessed as the original: Resize((imsize, imsize)), ToTensor, Normalize.
    #[arg(long, alias = "data_path", value_name = "DIR")]
    pub data_path: Option<PathBuf>,

    #[command(flatten)]
    pub images: ImageArgs,

    /// Save every area's output at every time step, `decoder.avgpool` and the logits to
    /// `OUTPUT/CORnet-<model>_taps.npz` instead of one layer.
    #[arg(long, conflicts_with_all = ["layer", "sublayer", "time_step"])]
    pub all_taps: bool,

    /// The area to read from: V1, V2, V4, IT or decoder.
    #[arg(long, default_value = "decoder")]
    pub layer: String,

    /// The module inside the area (`output`, `conv1`, `norm2_3`, `avgpool`, ...).
    #[arg(long, default_value = "avgpool")]
    pub sublayer: String,

    /// Which call of the module to keep: the time step for an area's `output`.
    #[arg(long = "time-step", alias = "time_step", default_value_t = 0)]
    pub time_step: usize,

    #[command(flatten)]
    pub device: DeviceArgs,

    /// Folder for the output files (created if missing).
    #[arg(short = 'o', long = "output-path", alias = "output_path")]
    pub output_path: PathBuf,
}

impl TestArgs {
    /// The extraction these flags ask for.
    pub fn request(&self) -> anyhow::Result<ExtractRequest> {
        let selection = if self.all_taps {
            Selection::AllTaps
        } else {
            Selection::Layer {
                layer: self.layer.clone(),
                sublayer: self.sublayer.clone(),
                time_step: self.time_step,
            }
        };
        let images = match (&self.input_npy, &self.data_path) {
            (Some(npy), _) => Images::Npy(npy.clone()),
            (None, Some(dir)) => Images::Folder {
                dir: dir.clone(),
                imsize: self.images.image_size,
                workers: self.images.workers,
            },
            (None, None) => anyhow::bail!("give --input-npy or --data-path"),
        };
        Ok(ExtractRequest {
            network: self.network.resolve()?,
            device: self.device.open()?,
            images,
            batch_size: self.images.batch_size,
            selection,
            output_dir: self.output_path.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::cli::tests::args_of;
    use crate::cli::TestArgs;
    use cornet_trainer::extract::{Images, Selection};
    use std::path::Path;

    fn test(line: &str) -> Result<TestArgs, clap::Error> {
        args_of!(Test, format!("test {line}"))
    }

    #[test]
    fn every_flag_reaches_the_request() {
        let args = test(
            "--model RT --weights /w/rt.pth --times 3 --data-path /images --image-size 64 \
             --batch-size 8 -j 2 --layer V4 --sublayer output --time-step 2 --device cpu -o /o",
        )
        .unwrap();
        let request = args.request().unwrap();
        assert_eq!(request.network.arch, cornet_model::Arch::RT);
        assert_eq!(request.network.weights, Path::new("/w/rt.pth"));
        assert_eq!(request.network.times, Some(3));
        assert!(request.device.is_cpu());
        assert_eq!(request.batch_size, 8);
        assert_eq!(request.output_dir, Path::new("/o"));
        assert!(matches!(
            request.images,
            Images::Folder { ref dir, imsize: 64, workers: 2 } if dir == Path::new("/images")
        ));
        assert!(matches!(
            request.selection,
            Selection::Layer { ref layer, ref sublayer, time_step: 2 }
                if layer == "V4" && sublayer == "output"
        ));
    }

    /// The original `run.py test` flags, and the defaults.
    #[test]
    fn the_original_flags_and_the_defaults() {
        let args = test(
            "--model S --weights w.pth --data_path /i --imsize 96 --time_step 1 \
                         --batch_size 4 --output_path /o",
        )
        .unwrap();
        let (images, request) = (&args.images, args.request().unwrap());
        assert_eq!((images.image_size, images.batch_size), (96, 4));
        assert!(matches!(
            request.selection,
            Selection::Layer { time_step: 1, .. }
        ));
        let args =
            test("--model S --weights w.pth --input-npy x.npz:images --all-taps -o o").unwrap();
        let (images, request) = (&args.images, args.request().unwrap());
        assert_eq!(
            (images.image_size, images.batch_size, images.workers),
            (224, 32, 4)
        );
        assert_eq!(args.device.device, "cpu");
        assert!(matches!(request.images, Images::Npy(ref p) if p == Path::new("x.npz:images")));
        assert!(matches!(request.selection, Selection::AllTaps));
    }

    #[test]
    fn inputs_come_one_way_and_a_selection_one_way() {
        for line in [
            "--model S --weights w -o o",
            "--model S --weights w --input-npy x.npy --data-path d -o o",
            "--model S --weights w --input-npy x.npy --all-taps --layer V1 -o o",
            "--model S --weights w --input-npy x.npy --batch-size 0 -o o",
        ] {
            assert!(test(line).is_err(), "{line}");
        }
    }
}
