//! Encoded images and labels by index.

use crate::error::{DataError, Result};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
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
        let mut walked = HashSet::new();
        for (label, class) in classes.iter().enumerate() {
            let folder = root.join(class);
            let images = images_under(&folder, &mut walked)?;
            // As torchvision ("Found no valid file for the classes ..."): an empty class
            // would still take a label, and a model would be scored on a class it never saw.
            if images.is_empty() {
                return Err(DataError::Invalid(format!(
                    "{}: an empty class folder (no {} files)",
                    folder.display(),
                    IMAGE_EXTENSIONS.join(", ")
                )));
            }
            samples.extend(images.into_iter().map(|path| (path, label)));
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
        let samples: Vec<_> = images_under(root, &mut HashSet::new())?
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
        return Err(not_a_file(path, &metadata));
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

fn not_a_file(path: &Path, metadata: &Metadata) -> DataError {
    let kind = metadata.file_type();
    let kind = if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else {
        "not a regular file"
    };
    DataError::BadImage {
        path: path.to_owned(),
        reason: format!("{kind}, not an image file"),
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

/// Image files under `dir`, recursively, in sorted order. Symbolic links are followed, as
/// torchvision does, but each folder is listed once: `walked` holds the (device, inode) of
/// every folder listed so far, and a folder met again (a link into a loop, or a second link to
/// one folder) is refused, where following it would list its images again, under other names
/// and perhaps other labels. Only regular files (after links) are images: a FIFO, socket or
/// device with an image's name is refused here, before anything opens it.
fn images_under(dir: &Path, walked: &mut HashSet<(u64, u64)>) -> Result<Vec<PathBuf>> {
    let metadata = std::fs::metadata(dir).map_err(|e| DataError::io(dir, e))?;
    if !walked.insert((metadata.dev(), metadata.ino())) {
        return Err(DataError::Invalid(format!(
            "{}: a folder already listed (a symbolic link loop, or a second link to one \
             folder); its images would be counted twice",
            dir.display()
        )));
    }
    let mut found = Vec::new();
    for path in read_dir_sorted(dir)? {
        let is_image = has_image_extension(&path);
        let metadata = match std::fs::metadata(&path) {
            Ok(metadata) => metadata,
            // A broken link to something that is no image matters as little as the rest.
            Err(_) if !is_image => continue,
            Err(e) => return Err(DataError::io(&path, e)),
        };
        if metadata.is_dir() {
            found.extend(images_under(&path, walked)?);
        } else if is_image {
            if !metadata.is_file() {
                return Err(not_a_file(&path, &metadata));
            }
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
