//! Encoded images and labels by index.

use crate::error::{DataError, Result};
use sha2::{Digest, Sha256};
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
}

/// The extensions torchvision's ImageFolder accepts, compared without case.
const IMAGE_EXTENSIONS: [&str; 9] = [
    "jpg", "jpeg", "png", "ppm", "bmp", "pgm", "tif", "tiff", "webp",
];

/// torchvision's `ImageFolder`: one subfolder per class, classes in sorted name order, each
/// class's images found recursively in sorted path order.
#[derive(Debug, Clone)]
pub struct ImageFolder {
    root: PathBuf,
    classes: Vec<String>,
    samples: Vec<(PathBuf, usize)>,
}

impl ImageFolder {
    /// The ImageFolder in `root`, labelled by class folder. A missing `root`, one without class
    /// folders or one whose class folders hold no images is an error naming it.
    pub fn open(root: &Path) -> Result<Self> {
        let mut classes: Vec<String> = read_dir_sorted(root)?
            .into_iter()
            .filter(|p| p.is_dir())
            .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_owned))
            .collect();
        classes.sort();
        if classes.is_empty() {
            return Err(DataError::Invalid(format!(
                "{}: no class folders (an ImageFolder holds one folder of images per class)",
                root.display()
            )));
        }
        let mut samples = Vec::new();
        for (label, class) in classes.iter().enumerate() {
            for path in images_under(&root.join(class))? {
                samples.push((path, label));
            }
        }
        if samples.is_empty() {
            return Err(DataError::Invalid(format!(
                "{}: the class folders hold no images",
                root.display()
            )));
        }
        Ok(ImageFolder {
            root: root.to_owned(),
            classes,
            samples,
        })
    }

    /// The images directly in `root` (and below), unlabelled, in sorted path order: the input
    /// of feature extraction.
    pub fn flat(root: &Path) -> Result<Self> {
        let samples: Vec<_> = images_under(root)?.into_iter().map(|p| (p, 0)).collect();
        if samples.is_empty() {
            return Err(DataError::Invalid(format!("{}: no images", root.display())));
        }
        Ok(ImageFolder {
            root: root.to_owned(),
            classes: Vec::new(),
            samples,
        })
    }

    /// The images `names` (paths relative to `root`) in the order given, unlabelled: stimuli in
    /// the order of a recording. A name that is not a file under `root` is an error naming it.
    pub fn listed(root: &Path, names: &[String]) -> Result<Self> {
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
        })
    }

    /// The class names in label order (empty where unlabelled).
    pub fn classes(&self) -> &[String] {
        &self.classes
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
        let path = &self.samples[index].0;
        std::fs::read(path).map_err(|e| DataError::io(path, e))
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
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    let mut paths = entries
        .map(|e| e.map(|e| e.path()).map_err(|e| DataError::io(dir, e)))
        .collect::<Result<Vec<_>>>()?;
    paths.sort();
    Ok(paths)
}

/// Image files under `dir`, recursively, in sorted order.
fn images_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for path in read_dir_sorted(dir)? {
        if path.is_dir() {
            found.extend(images_under(&path)?);
        } else if has_image_extension(&path) {
            found.push(path);
        }
    }
    Ok(found)
}

fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}
