//! Model features of many images: taps collected over batches, and a folder of images as
//! preprocessed batches. Extraction (`test`) saves them; the scan (`score --model`) scores
//! them.

use super::error::{ExtractError, Result};
use crate::error::Explain;
use crate::loading::LabelledBatch;
use crate::progress::{Progress, Work};
use candle_core::Tensor;
use cornet_data::{Dataset, ImageFolder, Pipeline, PipelineOptions, Transform};
use cornet_model::{Mode, Model, TapFilter};
use std::path::{Path, PathBuf};

/// The taps `filter` selects (and the logits, if asked) of `total` images arriving in
/// `batches`, each concatenated over all images, in call order; `progress` hears of each
/// batch.
pub fn collect_taps(
    model: &Model,
    batches: impl Iterator<Item = Result<Tensor>>,
    total: usize,
    filter: TapFilter,
    with_logits: bool,
    progress: &mut dyn Progress,
) -> Result<Vec<(String, Tensor)>> {
    if total == 0 {
        return Err(ExtractError::NoImages);
    }
    progress.start(Work::Extracting, total as u64, 0);
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
        progress.advance(batch.dim(0)? as u64);
    }
    progress.finish();
    names
        .into_iter()
        .zip(&chunks)
        .map(|(name, parts)| Ok((name, Tensor::cat(parts, 0)?)))
        .collect()
}

/// Refuses, before any image is decoded, an extraction on the CPU whose lower bound of memory
/// exceeds what is available: a forward pass of `batch_size` images of `pixels` pixels, and,
/// where every area's output is kept (`keeps_area_outputs`), those of all `images` twice
/// (collected, then concatenated).
pub fn check_memory(
    model: &Model,
    pixels: f64,
    batch_size: usize,
    images: usize,
    keeps_area_outputs: bool,
) -> Result<()> {
    if !model.device().is_cpu() {
        return Ok(());
    }
    let config = model.config();
    let kept = match keeps_area_outputs {
        true => 2.0 * config.area_output_floats(pixels) * images as f64,
        false => 0.0,
    };
    let floats = config.min_inference_floats(pixels, batch_size) + kept;
    let Some(shortfall) = crate::device::memory_shortfall(4.0 * floats, 1) else {
        return Ok(());
    };
    Err(ExtractError::TooBig(format!(
        "features of {images} images of {pixels} pixels need at least {:.1} GiB and {:.1} GiB \
         is available: lower --imsize, --batch-size ({batch_size}) or --times ({}), or give \
         fewer images",
        shortfall.needed_gib, shortfall.available_gib, config.times
    )))
}

/// A folder's images as preprocessed batches, decoded on worker threads.
pub struct ImageBatches {
    /// Images in the folder.
    pub total: usize,
    /// Batches `[n, 3, imsize, imsize]` on the CPU, in the folder's order.
    pub images: Box<dyn Iterator<Item = Result<Tensor>>>,
}

/// The feature-extraction pipeline of the original: `Resize((imsize, imsize))`, `ToTensor`,
/// `Normalize`, in the folder's sorted order. An unreadable image is an error naming it; so
/// is a batch size of 0.
pub fn image_batches(
    folder: ImageFolder,
    imsize: usize,
    workers: usize,
    batch_size: usize,
) -> Result<ImageBatches> {
    let total = folder.len();
    let pipeline = Pipeline::evaluation(
        folder,
        Transform::Test { size: imsize },
        &PipelineOptions::single_process(batch_size, workers),
    )?;
    let images = pipeline
        .epoch(0, 0)
        .map(|batch| Ok(LabelledBatch::decoded(batch?)?.images));
    Ok(ImageBatches {
        total,
        images: Box::new(images),
    })
}

/// `OUT/file_list.txt`: the images in the order of the feature rows, a path a line. Taken
/// when the images are opened, written once the features are: a failed extraction leaves no
/// list of features that do not exist.
pub struct FileList(String);

impl FileList {
    /// The list of `folder`'s images.
    pub fn of(folder: &ImageFolder) -> Self {
        let mut text = String::new();
        for i in 0..folder.len() {
            text.push_str(&folder.path(i).display().to_string());
            text.push('\n');
        }
        FileList(text)
    }

    /// Writes it into `output_dir`; returns its path.
    pub fn write(&self, output_dir: &Path) -> Result<PathBuf> {
        std::fs::create_dir_all(output_dir).explain(ExtractError::Output, || {
            format!("creating {}", output_dir.display())
        })?;
        let path = output_dir.join("file_list.txt");
        crate::files::write_whole(&path, &self.0).explain(ExtractError::Output, || {
            format!("writing {}", path.display())
        })?;
        Ok(path)
    }
}
