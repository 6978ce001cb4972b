//! Encoded images and labels by index.

use crate::error::{DataError, Result};
use crate::listing::{self, Listing, Stamps};
use crate::progress::{NoProgress, Progress};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// A labelled collection of encoded images.
pub trait Dataset: Send + Sync {
    /// How many samples; their indices run from 0 to `len() - 1`.
    fn len(&self) -> usize;

    /// Whether it has no sample.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The encoded bytes of sample `index`.
    fn read(&self, index: usize) -> Result<Vec<u8>>;

    /// The class of sample `index` (0 for unlabelled images).
    fn label(&self, index: usize) -> usize;

    /// Labels run from 0 to `num_classes() - 1` (0 classes for unlabelled images).
    fn num_classes(&self) -> usize;

    /// Where sample `index` comes from, for errors and listings.
    fn path(&self, index: usize) -> &Path;

    /// Identifies the samples and their labels (not their bytes), for checkpoint provenance.
    fn fingerprint(&self) -> String;

    /// Class names in label order (none for unlabelled images).
    fn classes(&self) -> &[String];
}

/// A dataset chosen at run time (an ImageFolder or shards) drives the same loader.
impl<T: Dataset + ?Sized> Dataset for Box<T> {
    fn len(&self) -> usize {
        (**self).len()
    }

    fn read(&self, index: usize) -> Result<Vec<u8>> {
        (**self).read(index)
    }

    fn label(&self, index: usize) -> usize {
        (**self).label(index)
    }

    fn num_classes(&self) -> usize {
        (**self).num_classes()
    }

    fn path(&self, index: usize) -> &Path {
        (**self).path(index)
    }

    fn fingerprint(&self) -> String {
        (**self).fingerprint()
    }

    fn classes(&self) -> &[String] {
        (**self).classes()
    }
}

/// torchvision's `ImageFolder`: one subfolder per class, classes in sorted name order, each
/// class's images found recursively in sorted path order.
#[derive(Debug, Clone)]
pub struct ImageFolder {
    root: PathBuf,
    classes: Vec<String>,
    samples: Vec<(PathBuf, usize)>,
    /// How the folders were when they were listed by class (none for the unlabelled ways of
    /// opening), for [`ImageFolder::save_listing`].
    stamps: Option<Stamps>,
}

/// Where [`ImageFolder::reopen_or_list`] found the images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listed {
    /// In the saved listing, which still holds.
    Reused,
    /// By listing the folder, for this reason (no saved listing, a folder modified since, ...).
    Afresh(String),
}

impl ImageFolder {
    /// The ImageFolder in `root`, labelled by class folder. A missing `root`, one without class
    /// folders or one whose class folders hold no images is an error naming it.
    pub fn open(root: &Path) -> Result<Self> {
        Self::list(root, &NoProgress)
    }

    /// [`ImageFolder::open`], telling `progress` how many class folders are listed (they are
    /// listed in parallel).
    pub fn list(root: &Path, progress: &dyn Progress) -> Result<Self> {
        Ok(Self::from_listing(
            root,
            listing::list_classes(root, progress)?,
        ))
    }

    /// Keeps this listing in `file` (JSON, written whole or not at all), for
    /// [`ImageFolder::reopen_or_list`]: ImageNet's training set makes a file of 27 MB that is
    /// read back in 0.2 s, where listing its 1.28M files takes 1.7 s from the page cache and
    /// far longer from a cold disk, or minutes over a network file system. Only a folder opened by class
    /// can be kept, and only with UTF-8 names.
    pub fn save_listing(&self, file: &Path) -> Result<()> {
        let Some(stamps) = &self.stamps else {
            return Err(DataError::Invalid(format!(
                "{}: only a listing by class folders can be saved",
                self.root.display()
            )));
        };
        listing::cache::save(&self.root, &self.classes, &self.samples, stamps, file)
    }

    /// The ImageFolder in `root` from the listing saved in `file` by
    /// [`ImageFolder::save_listing`] while it still holds (the same root, the same class
    /// folders, no folder listed modified since), else listed afresh as [`ImageFolder::list`]
    /// does; either way the same samples, labels and order as `open`. Saving a fresh listing
    /// is left to the caller (of several ranks, one saves).
    pub fn reopen_or_list(
        root: &Path,
        file: &Path,
        progress: &dyn Progress,
    ) -> Result<(Self, Listed)> {
        match listing::cache::load(root, file)? {
            Ok(listing) => Ok((Self::from_listing(root, listing), Listed::Reused)),
            Err(why) => Ok((Self::list(root, progress)?, Listed::Afresh(why))),
        }
    }

    fn from_listing(root: &Path, listing: Listing) -> Self {
        ImageFolder {
            root: root.to_owned(),
            classes: listing.classes,
            samples: listing.samples,
            stamps: Some(listing.stamps),
        }
    }

    /// The images directly in `root` (and below), unlabelled, in sorted path order: the input
    /// of feature extraction.
    pub fn flat(root: &Path) -> Result<Self> {
        let samples: Vec<_> = listing::list_images(root)?
            .into_iter()
            .map(|p| (p, 0))
            .collect();
        if samples.is_empty() {
            return Err(DataError::Invalid(format!("{}: no images", root.display())));
        }
        // Unlabelled images are rows of features, listed one per line beside them.
        if let Some((path, _)) = samples
            .iter()
            .find(|(p, _)| p.to_string_lossy().contains(['\n', '\r']))
        {
            return Err(DataError::Invalid(format!(
                "{:?}: a file name with a line break cannot be one line of a list of the \
                 images: rename it",
                path.display().to_string()
            )));
        }
        Ok(ImageFolder {
            root: root.to_owned(),
            classes: Vec::new(),
            samples,
            stamps: None,
        })
    }

    /// The images `names` (paths relative to `root`) in the order given, unlabelled: stimuli in
    /// the order of a recording. A name that is not a file under `root`, or that is listed
    /// twice, is an error naming it.
    pub fn listed(root: &Path, names: &[String]) -> Result<Self> {
        let mut first_entry = std::collections::HashMap::new();
        for (entry, name) in names.iter().enumerate() {
            if let Some(first) = first_entry.insert(name, entry) {
                return Err(DataError::Invalid(format!(
                    "`{name}` is listed twice (entries {} and {}): each image is one row of \
                     features, and a stimulus is one image",
                    first + 1,
                    entry + 1
                )));
            }
        }
        let samples = names
            .iter()
            .map(|name| {
                let path = root.join(name);
                if path.is_file() {
                    Ok((path, 0))
                } else {
                    Err(DataError::Invalid(format!(
                        "{}: no image `{name}`",
                        root.display()
                    )))
                }
            })
            .collect::<Result<Vec<_>>>()?;
        if samples.is_empty() {
            return Err(DataError::Invalid("no images listed".into()));
        }
        Ok(ImageFolder {
            root: root.to_owned(),
            classes: Vec::new(),
            samples,
            stamps: None,
        })
    }

    /// The folder the images were found in.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl Dataset for ImageFolder {
    fn len(&self) -> usize {
        self.samples.len()
    }

    fn read(&self, index: usize) -> Result<Vec<u8>> {
        read_image_file(&self.samples[index].0)
    }

    fn label(&self, index: usize) -> usize {
        self.samples[index].1
    }

    fn num_classes(&self) -> usize {
        self.classes.len()
    }

    fn path(&self, index: usize) -> &Path {
        &self.samples[index].0
    }

    fn fingerprint(&self) -> String {
        let mut hasher = Sha256::new();
        for (path, label) in &self.samples {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default();
            hasher.update(format!("{label}\t{name}\n"));
        }
        hex::encode(hasher.finalize())[..16].to_string()
    }

    fn classes(&self) -> &[String] {
        &self.classes
    }
}

/// Checks that a validation set has exactly the training set's classes, in the same order:
/// labels are positions in the class list, so a class missing from one folder shifts every
/// label after it, and a renamed one gives a label another meaning. The error names both
/// folders and the first class that differs.
pub fn check_same_classes(
    train_root: &Path,
    train: &[String],
    val_root: &Path,
    val: &[String],
) -> Result<()> {
    let Some(position) = (0..train.len().max(val.len())).find(|&i| train.get(i) != val.get(i))
    else {
        return Ok(());
    };
    let describe = |classes: &[String]| match classes.get(position) {
        Some(name) => format!("class {name:?}"),
        None => "no class".to_owned(),
    };
    Err(DataError::Invalid(format!(
        "{} and {} differ at label {position}: {} in the first, {} in the second (the two \
         must hold the same classes)",
        train_root.display(),
        val_root.display(),
        describe(train),
        describe(val),
    )))
}

/// The most bytes read as one image: far above any photograph, and a bound on what a file
/// that grows while it is read (or a link to a device that passed the listing) can make us read.
pub const MAX_IMAGE_BYTES: u64 = 256 << 20;

/// The bytes of the image file at `path`, refused when it is not a regular file or holds
/// more than [`MAX_IMAGE_BYTES`].
fn read_image_file(path: &Path) -> Result<Vec<u8>> {
    let io = |e| DataError::io(path, e);
    let file = File::open(path).map_err(io)?;
    let metadata = file.metadata().map_err(io)?;
    if !metadata.is_file() {
        return Err(listing::not_a_file(path, &metadata));
    }
    let mut bytes = Vec::new();
    file.take(MAX_IMAGE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_IMAGE_BYTES {
        return Err(DataError::BadImage {
            path: path.to_owned(),
            reason: format!("more than {} MiB", MAX_IMAGE_BYTES >> 20),
        });
    }
    Ok(bytes)
}
