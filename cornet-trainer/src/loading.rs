//! Image files to tensors: the one place where the trainer opens datasets and turns the data
//! crate's batches into tensors, for training, extraction and scoring alike.

use crate::config::DataFormat;
use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use cornet_data::{Batch, Dataset, ImageFolder, Shards};
use std::path::Path;

/// A decoded batch as CPU tensors: the images `[N, 3, H, W]` (f32) and their labels `[N]`
/// (u32).
pub fn batch_tensors(batch: Batch) -> Result<(Tensor, Tensor)> {
    let n = batch.labels.len();
    let images = Tensor::from_vec(batch.images, batch.shape.to_vec(), &Device::Cpu)?;
    let labels = Tensor::from_vec(batch.labels, n, &Device::Cpu)?;
    Ok((images, labels))
}

/// The labelled images at `path`, an ImageFolder or a folder of shards as `format` says;
/// errors name the config `key` the path came from.
pub fn open_images(path: &Path, format: DataFormat, key: &str) -> Result<Box<dyn Dataset>> {
    let set: Box<dyn Dataset> = match format {
        DataFormat::Imagefolder => Box::new(ImageFolder::open(path).context(key.to_owned())?),
        DataFormat::Shards => Box::new(Shards::open(path).context(key.to_owned())?),
    };
    Ok(set)
}
