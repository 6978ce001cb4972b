//! Image files to tensors: the one place where the trainer opens datasets and turns the data
//! crate's batches into tensors, for training, extraction and scoring alike.

use crate::config::DataFormat;
use candle_core::{Device, Tensor};
use cornet_data::{Batch, DataError, Dataset, ImageFolder, Shards};
use std::path::Path;

/// A dataset that could not be opened, named by the config key its path came from
/// (`data.train`); the data crate's error, naming the file, is its source.
#[derive(Debug, thiserror::Error)]
#[error("{key}")]
pub struct OpenDatasetError {
    /// The config key of the path (`data.train`, `data.val`).
    pub key: String,
    /// Why the dataset could not be opened.
    #[source]
    pub source: DataError,
}

/// A decoded batch as CPU tensors: the images `[N, 3, H, W]` (f32) and their labels `[N]`
/// (u32).
pub fn batch_tensors(batch: Batch) -> candle_core::Result<(Tensor, Tensor)> {
    let n = batch.labels.len();
    let images = Tensor::from_vec(batch.images, batch.shape.to_vec(), &Device::Cpu)?;
    let labels = Tensor::from_vec(batch.labels, n, &Device::Cpu)?;
    Ok((images, labels))
}

/// The labelled images at `path`, an ImageFolder or a folder of shards as `format` says;
/// errors name the config `key` the path came from.
pub fn open_images(
    path: &Path,
    format: DataFormat,
    key: &str,
) -> Result<Box<dyn Dataset>, OpenDatasetError> {
    let opened: Result<Box<dyn Dataset>, DataError> = match format {
        DataFormat::Imagefolder => ImageFolder::open(path).map(|set| Box::new(set) as _),
        DataFormat::Shards => Shards::open(path).map(|set| Box::new(set) as _),
    };
    opened.map_err(|source| OpenDatasetError {
        key: key.to_owned(),
        source,
    })
}
