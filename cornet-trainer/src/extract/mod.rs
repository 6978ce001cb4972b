//! Feature extraction, the original's `run.py test`: run images through a model and save what
//! chosen modules output. [`taps`] collects a model's outputs over many images, for this and
//! for the scan (`score --model`).

mod error;
pub mod taps;

pub use error::{ExtractError, Result};

use crate::arrays;
use crate::error::Explain;
use crate::files::Aside;
use crate::network::NetworkSpec;
use crate::progress::Progress;
use candle_core::{Device, Tensor};
use cornet_data::{Dataset, ImageFolder};
use cornet_model::{Model, TapFilter};
use std::path::{Path, PathBuf};
use taps::{check_memory, collect_taps, image_batches, FileList};

/// What to keep from each forward pass.
#[derive(Debug, Clone)]
pub enum Selection {
    /// Every `<area>.output` call and `decoder.avgpool`, plus the logits, into one `.npz`.
    AllTaps,
    /// One module's output at one call (time step), flattened per image, into one `.npy`, as
    /// `run.py test --layer --sublayer --time_step` wrote it.
    Layer {
        /// The area: `V1`, `V2`, `V4`, `IT` or `decoder`.
        layer: String,
        /// The module inside the area: `output`, `conv1`, `avgpool`, ...
        sublayer: String,
        /// Which call of the module: the time step for an area's `output`.
        time_step: usize,
    },
}

/// Where the images come from.
#[derive(Debug, Clone)]
pub enum Images {
    /// Preprocessed images: a float32 `.npy` of shape `[N, 3, H, W]`.
    Npy(PathBuf),
    /// A folder of images, decoded and preprocessed as the original's `test` did.
    Folder {
        /// The folder, searched recursively and read in sorted file-name order.
        dir: PathBuf,
        /// Image side.
        imsize: usize,
        /// Decoding threads.
        workers: usize,
    },
}

/// `cornet-trainer test`: which model, which images, what to keep and where.
#[derive(Debug, Clone)]
pub struct ExtractRequest {
    /// The network and its weights.
    pub network: NetworkSpec,
    /// Where to run the model.
    pub device: Device,
    /// The images.
    pub images: Images,
    /// Images per forward pass.
    pub batch_size: usize,
    /// What to keep of each forward pass.
    pub selection: Selection,
    /// Folder for the output files (created if missing).
    pub output_dir: PathBuf,
}

/// An extraction ready to run: the model loaded, the images opened and, for a folder, the
/// list of its images taken (the rows of the features, in order).
pub struct Extraction {
    model: Model,
    input: Input,
    request: ExtractRequest,
    file_list: Option<FileList>,
}

/// What an extraction wrote.
pub struct Written {
    /// `OUT/file_list.txt`, when the images came from a folder.
    pub file_list: Option<PathBuf>,
    /// The features (or every tap) of the images.
    pub features: PathBuf,
}

/// The opened images.
enum Input {
    Tensor(Tensor),
    Folder {
        folder: ImageFolder,
        imsize: usize,
        workers: usize,
    },
}

impl Extraction {
    /// Loads the model and opens the images (a folder's are listed).
    pub fn prepare(request: &ExtractRequest) -> Result<Self> {
        let model = request
            .network
            .load(&request.device)
            .map_err(ExtractError::Weights)?;
        let keeps_area_outputs = matches!(request.selection, Selection::AllTaps);
        let (input, file_list) = match &request.images {
            Images::Npy(path) => {
                let images = read_input_npy(path)?;
                let (n, _, h, w) = images.dims4()?;
                check_memory(
                    &model,
                    (h * w) as f64,
                    request.batch_size,
                    n,
                    keeps_area_outputs,
                )?;
                (Input::Tensor(images), None)
            }
            Images::Folder {
                dir,
                imsize,
                workers,
            } => {
                let folder = ImageFolder::flat(dir)?;
                let pixels = (imsize * imsize) as f64;
                check_memory(
                    &model,
                    pixels,
                    request.batch_size,
                    folder.len(),
                    keeps_area_outputs,
                )?;
                let list = FileList::of(&folder);
                let input = Input::Folder {
                    folder,
                    imsize: *imsize,
                    workers: *workers,
                };
                (input, Some(list))
            }
        };
        Ok(Extraction {
            model,
            input,
            request: request.clone(),
            file_list,
        })
    }

    /// Runs the images through the model, telling `progress` of the images, and writes the
    /// selection, then a folder's `file_list.txt`.
    pub fn run(self, progress: &mut dyn Progress) -> Result<Written> {
        let request = &self.request;
        let batch_size = request.batch_size;
        let features = match self.input {
            Input::Tensor(images) => extract(
                &self.model,
                tensor_batches(&images, batch_size),
                images.dim(0)?,
                &request.selection,
                &request.output_dir,
                progress,
            ),
            Input::Folder {
                folder,
                imsize,
                workers,
            } => {
                let batches = image_batches(folder, imsize, workers, batch_size)?;
                extract(
                    &self.model,
                    batches.images,
                    batches.total,
                    &request.selection,
                    &request.output_dir,
                    progress,
                )
            }
        }?;
        let file_list = match &self.file_list {
            Some(list) => Some(list.write(&request.output_dir)?),
            None => None,
        };
        Ok(Written {
            file_list,
            features,
        })
    }
}

/// Splits a preprocessed [N, 3, H, W] tensor into batches for [`extract`].
pub fn tensor_batches(
    images: &Tensor,
    batch_size: usize,
) -> impl Iterator<Item = Result<Tensor>> + '_ {
    let total = images.dims().first().copied().unwrap_or(0);
    (0..total)
        .step_by(batch_size)
        .map(move |start| Ok(images.narrow(0, start, batch_size.min(total - start))?))
}

/// Runs `total` images, arriving in `batches` ([n, 3, H, W] each), through `model` and writes
/// the selection into `output_dir`; returns the written file.
pub fn extract(
    model: &Model,
    batches: impl Iterator<Item = Result<Tensor>>,
    total: usize,
    selection: &Selection,
    output_dir: &Path,
    progress: &mut dyn Progress,
) -> Result<PathBuf> {
    let filter = match selection {
        Selection::AllTaps => TapFilter::AreaOutputs,
        Selection::Layer {
            layer,
            sublayer,
            time_step,
        } => TapFilter::layer(layer, sublayer, Some(*time_step)),
    };
    let with_logits = matches!(selection, Selection::AllTaps);
    let (names, outputs): (Vec<String>, Vec<Tensor>) =
        collect_taps(model, batches, total, filter, with_logits, progress)?
            .into_iter()
            .unzip();
    std::fs::create_dir_all(output_dir).explain(ExtractError::Output, || {
        format!("creating {}", output_dir.display())
    })?;
    let arch = model.config().arch;
    let (path, written) = match selection {
        Selection::AllTaps => {
            let path = output_dir.join(format!("CORnet-{arch}_taps.npz"));
            let aside = Aside::new(&path);
            let entries: Vec<_> = names
                .iter()
                .map(String::as_str)
                .zip(outputs.iter())
                .collect();
            Tensor::write_npz(&entries, aside.staging()).map_err(ExtractError::WriteArray)?;
            (path, aside)
        }
        Selection::Layer {
            layer, sublayer, ..
        } => {
            let path = output_dir.join(format!("CORnet-{arch}_{layer}_{sublayer}_feats.npy"));
            let aside = Aside::new(&path);
            outputs[0]
                .flatten_from(1)?
                .write_npy(aside.staging())
                .map_err(ExtractError::WriteArray)?;
            (path, aside)
        }
    };
    written.commit().explain(ExtractError::Output, || {
        format!("writing {}", path.display())
    })?;
    Ok(path)
}

/// Reads a preprocessed float32 NCHW batch from an `.npy` file or an `.npz` entry
/// (`archive.npz:name`); float64 is rounded to float32.
pub fn read_input_npy(path: &Path) -> Result<Tensor> {
    let arrays::Array { shape, values } = arrays::read_f32(path)?;
    if shape.len() != 4 || shape[1] != 3 {
        let message = format!(
            "{}: expected preprocessed images as float32 [N, 3, H, W], got shape {shape:?}",
            path.display()
        );
        return Err(ExtractError::Input(message));
    }
    Ok(Tensor::from_vec(values, shape, &Device::Cpu)?)
}
