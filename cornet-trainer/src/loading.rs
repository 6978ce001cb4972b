//! Image files to tensors: the one place where the trainer opens datasets and turns the data
//! crate's batches into tensors, for training, extraction and scoring alike.

use crate::config::DataFormat;
use candle_core::{Device, Tensor};
use cornet_data::{check_same_classes, Batch, DataError, Dataset, ImageFolder, Listed, Shards};
use std::path::Path;

/// A labelled set that cannot serve: it does not open, its classes are not the training
/// set's, or it has more than the model has outputs.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// The set could not be opened; the message names where its path came from (the config
    /// key `data.train`, the flag `--data-path`), the data crate's error, naming the file, is
    /// its source.
    #[error("{key}")]
    Open {
        /// The config key or flag of the path.
        key: String,
        /// Why the set could not be opened.
        #[source]
        source: DataError,
    },
    /// The set's classes are not the training set's, in the same order (the data crate's
    /// message names both folders).
    #[error(transparent)]
    Classes(DataError),
    /// The set has more classes than the model has outputs.
    #[error("{name} has {found} classes but {limit}")]
    TooManyClasses {
        /// The set, as its caller names it.
        name: String,
        /// Its classes.
        found: usize,
        /// What bounds them.
        limit: ClassLimit,
    },
}

/// What bounds a labelled set's classes: the outputs of the model that scores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassLimit {
    /// The config's `model.num_classes` (training).
    Config(usize),
    /// The outputs of the weights loaded (`eval`).
    Weights(usize),
}

impl ClassLimit {
    fn classes(self) -> usize {
        match self {
            ClassLimit::Config(n) | ClassLimit::Weights(n) => n,
        }
    }
}

impl std::fmt::Display for ClassLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClassLimit::Config(n) => write!(f, "model.num_classes is {n}"),
            ClassLimit::Weights(n) => {
                write!(
                    f,
                    "the weights have {n} outputs: a label would name no output"
                )
            }
        }
    }
}

/// Images `[N, 3, H, W]` (f32, on the CPU) and their class indices `[N]` (u32): what
/// training and evaluation take.
pub struct LabelledBatch {
    /// The images `[N, 3, H, W]`.
    pub images: Tensor,
    /// Their class indices `[N]`.
    pub labels: Tensor,
}

impl LabelledBatch {
    /// A batch the data crate decoded, as CPU tensors.
    pub fn decoded(batch: Batch) -> candle_core::Result<Self> {
        let n = batch.labels.len();
        let images = Tensor::from_vec(batch.images, batch.shape.to_vec(), &Device::Cpu)?;
        let labels = Tensor::from_vec(batch.labels, n, &Device::Cpu)?;
        Ok(LabelledBatch { images, labels })
    }
}

/// The labelled images at `path`, an ImageFolder or a folder of shards as `format` says;
/// errors name the config key or flag `key` the path came from.
pub fn open_images(
    path: &Path,
    format: DataFormat,
    key: &str,
) -> Result<Box<dyn Dataset>, DatasetError> {
    let opened: Result<Box<dyn Dataset>, DataError> = match format {
        DataFormat::Imagefolder => ImageFolder::open(path).map(|set| Box::new(set) as _),
        DataFormat::Shards => Shards::open(path).map(|set| Box::new(set) as _),
    };
    opened.map_err(|source| DatasetError::Open {
        key: key.to_owned(),
        source,
    })
}

/// [`open_images`] for a training run: an ImageFolder's listing is kept in the file `listing`
/// beside the run and reused while every listed folder is as it was, so that a resume does not
/// list 1.28M files again; a listing is told to `progress`, and `keep` (rank 0, the one writer
/// of the run folder) saves a fresh one. A listing that cannot be saved costs only the next
/// start's time, and is said so.
pub fn open_training_images(
    path: &Path,
    format: DataFormat,
    key: &str,
    listing: &Path,
    keep: bool,
    progress: &dyn cornet_data::progress::Progress,
) -> Result<Box<dyn Dataset>, DatasetError> {
    if format == DataFormat::Shards {
        return open_images(path, format, key);
    }
    let (folder, how) = ImageFolder::reopen_or_list(path, listing, progress).map_err(|source| {
        DatasetError::Open {
            key: key.to_owned(),
            source,
        }
    })?;
    match how {
        Listed::Reused => tracing::info!(
            "{key}: {} as listed in {} (no folder changed since)",
            path.display(),
            listing.display()
        ),
        Listed::Afresh(why) if keep => {
            tracing::info!("{key}: listed {} ({why})", path.display());
            if let Err(e) = folder.save_listing(listing) {
                tracing::warn!(
                    "{key}: the listing could not be kept ({e}): the next start lists again"
                );
            }
        }
        Listed::Afresh(_) => {}
    }
    Ok(Box::new(folder))
}

/// Checks a labelled set (`classes`, at `path`, named `name` in messages) as training checks
/// its own: where `training` gives a training set (its path and classes), the same classes
/// in the same order, since labels are positions in the class list and any other list
/// mislabels; and no more classes than `limit` allows.
pub fn check_classes(
    name: &str,
    path: &Path,
    classes: &[String],
    training: Option<(&Path, &[String])>,
    limit: ClassLimit,
) -> Result<(), DatasetError> {
    if let Some((training_path, training_classes)) = training {
        check_same_classes(training_path, training_classes, path, classes)
            .map_err(DatasetError::Classes)?;
    }
    if classes.len() > limit.classes() {
        return Err(DatasetError::TooManyClasses {
            name: name.to_owned(),
            found: classes.len(),
            limit,
        });
    }
    Ok(())
}
