//! Feature extraction, the original's `run.py test`: run images through a model and save what
//! chosen modules output.

use anyhow::{bail, Context, Result};
use candle_core::Tensor;
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

/// Runs `images` ([N, 3, H, W]) through `model` in batches of `batch_size` and writes the
/// selection into `output_dir`; returns the written file.
pub fn extract(
    model: &Model,
    images: &Tensor,
    selection: &Selection,
    batch_size: usize,
    output_dir: &Path,
) -> Result<PathBuf> {
    let total = images.dim(0)?;
    if total == 0 {
        bail!("no images to extract features from");
    }
    let filter = match selection {
        Selection::AllTaps => TapFilter::AreaOutputs,
        Selection::Layer {
            layer,
            sublayer,
            time_step,
        } => TapFilter::layer(layer, sublayer, Some(*time_step)),
    };
    let progress = ProgressBar::new(total as u64).with_style(
        ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} images ({per_sec}, eta {eta})")
            .expect("static template"),
    );
    progress.set_message("extracting");
    let mut names: Vec<String> = Vec::new();
    let mut chunks: Vec<Vec<Tensor>> = Vec::new();
    for start in (0..total).step_by(batch_size) {
        let batch = images.narrow(0, start, batch_size.min(total - start))?;
        let (logits, taps) = model.forward_with_taps(&batch, Mode::Eval, filter.clone())?;
        let mut outputs = taps;
        if matches!(selection, Selection::AllTaps) {
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
    let arrays = chunks
        .iter()
        .map(|parts| Tensor::cat(parts, 0))
        .collect::<candle_core::Result<Vec<_>>>()?;

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
