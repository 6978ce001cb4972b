//! Feature extraction, the original's `run.py test`: run images through a model and save what
//! chosen modules output.

use anyhow::{bail, Context, Result};
use candle_core::Tensor;
use cornet_data::{Dataset, ImageFolder, Loader, LoaderOptions, Sampler, Transform};
use cornet_model::{Mode, Model, TapFilter};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};

/// What to keep from each forward pass.
#[derive(Debug, Clone)]
pub enum Selection {
    /// Every `<area>.output` call and `decoder.avgpool`, plus the logits, into one `.npz`.
    AllTaps,
    /// One module's output at one call (time step), flattened per image, into one `.npy`, as
    /// `run.py test --layer --sublayer --time_step` wrote it.
    Layer {
        layer: String,
        sublayer: String,
        time_step: usize,
    },
}

/// The taps `filter` selects (and the logits, if asked) of `total` images arriving in
/// `batches`, each concatenated over all images, in call order.
pub fn collect_taps(
    model: &Model,
    batches: impl Iterator<Item = Result<Tensor>>,
    total: usize,
    filter: TapFilter,
    with_logits: bool,
) -> Result<Vec<(String, Tensor)>> {
    if total == 0 {
        bail!("no images to extract features from");
    }
    let progress = ProgressBar::new(total as u64).with_style(
        ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} images ({per_sec}, eta {eta})")
            .expect("static template"),
    );
    progress.set_message("extracting");
    let mut names: Vec<String> = Vec::new();
    let mut chunks: Vec<Vec<Tensor>> = Vec::new();
    for batch in batches {
        let batch = batch?.to_device(model.device())?;
        let (logits, mut outputs) = model.forward_with_taps(&batch, Mode::Eval, filter.clone())?;
        if with_logits {
            outputs.push(("logits".into(), logits));
        }
        if chunks.is_empty() {
            names = outputs.iter().map(|(name, _)| name.clone()).collect();
            chunks = vec![Vec::new(); outputs.len()];
        }
        for (chunk, (_, value)) in chunks.iter_mut().zip(outputs) {
            chunk.push(value);
        }
        progress.inc(batch.dim(0)? as u64);
    }
    progress.finish_and_clear();
    names
        .into_iter()
        .zip(&chunks)
        .map(|(name, parts)| Ok((name, Tensor::cat(parts, 0)?)))
        .collect()
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
    let (names, arrays): (Vec<String>, Vec<Tensor>) =
        collect_taps(model, batches, total, filter, with_logits)?
            .into_iter()
            .unzip();
    std::fs::create_dir_all(output_dir)
        .with_context(|| format!("creating {}", output_dir.display()))?;
    let arch = model.config().arch;
    let path = match selection {
        Selection::AllTaps => {
            let path = output_dir.join(format!("CORnet-{arch}_taps.npz"));
            let entries: Vec<_> = names
                .iter()
                .map(String::as_str)
                .zip(arrays.iter())
                .collect();
            Tensor::write_npz(&entries, &path)?;
            path
        }
        Selection::Layer {
            layer, sublayer, ..
        } => {
            let path = output_dir.join(format!("CORnet-{arch}_{layer}_{sublayer}_feats.npy"));
            arrays[0].flatten_from(1)?.write_npy(&path)?;
            path
        }
    };
    Ok(path)
}

/// Reads a preprocessed float32 NCHW batch from an `.npy` file.
pub fn read_input_npy(path: &Path) -> Result<Tensor> {
    let tensor = Tensor::read_npy(path).with_context(|| format!("reading {}", path.display()))?;
    if tensor.rank() != 4 || tensor.dim(1)? != 3 {
        bail!(
            "{}: expected preprocessed images as float32 [N, 3, H, W], got shape {:?}",
            path.display(),
            tensor.dims()
        );
    }
    Ok(tensor.to_dtype(candle_core::DType::F32)?)
}

/// A folder's images as preprocessed batches, decoded on worker threads.
pub struct ImageBatches {
    pub total: usize,
    pub images: Box<dyn Iterator<Item = Result<Tensor>>>,
}

/// The feature-extraction pipeline of the original: `Resize((imsize, imsize))`, `ToTensor`,
/// `Normalize`, in the folder's sorted order. An unreadable image is an error naming it.
pub fn image_batches(
    folder: ImageFolder,
    imsize: usize,
    workers: usize,
    batch_size: usize,
) -> ImageBatches {
    let total = folder.len();
    let loader = Loader::new(
        folder,
        LoaderOptions {
            transform: Transform::Test { size: imsize },
            workers,
            prefetch: 2 * workers.max(1),
            skip_bad_images: false,
            seed: 0,
        },
    );
    let order = Sampler::validation(total, batch_size, 0, 1).batches(0, 0);
    let images = loader.epoch(0, order).map(|batch| {
        let batch = batch?;
        Ok(Tensor::from_vec(
            batch.images,
            batch.shape.to_vec(),
            &candle_core::Device::Cpu,
        )?)
    });
    ImageBatches {
        total,
        images: Box::new(images),
    }
}

/// Writes `OUT/file_list.txt`, the images in the order of the feature rows.
pub fn write_file_list(folder: &ImageFolder, output_dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(output_dir)
        .with_context(|| format!("creating {}", output_dir.display()))?;
    let path = output_dir.join("file_list.txt");
    let mut text = String::new();
    for i in 0..folder.len() {
        text.push_str(&folder.path(i).display().to_string());
        text.push('\n');
    }
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}
