//! Finding an ImageFolder's images: class folders listed in parallel, progress told per class
//! folder, and each folder's modification time kept, so that the listing can be saved and
//! trusted again later ([`cache`]).

pub mod cache;

use crate::error::{DataError, Result};
use crate::progress::{Progress, Unit};
use rayon::prelude::*;
use std::collections::HashSet;
use std::fs::{FileType, Metadata};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The extensions torchvision's ImageFolder accepts, compared without case.
pub const IMAGE_EXTENSIONS: [&str; 9] = [
    "jpg", "jpeg", "png", "ppm", "bmp", "pgm", "tif", "tiff", "webp",
];

/// An ImageFolder's classes and images, and what a saved copy is checked against.
#[derive(Debug, Clone)]
pub struct Listing {
    /// Class folder names, sorted; a label is a position here.
    pub classes: Vec<String>,
    /// Every image with its label: classes in order, each class's images in sorted path order.
    pub samples: Vec<(PathBuf, usize)>,
    /// When the listing began and how its folders were then.
    pub stamps: Stamps,
}

/// The folders a listing read and when each was last modified: a folder gains or loses an
/// entry only by being modified, so while none has changed, the listing still holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Stamps {
    /// When the listing began (by this machine's clock).
    pub listed_at: SystemTime,
    /// The root (as `""`) and every folder listed under it, relative to the root.
    pub folders: Vec<FolderStamp>,
}

/// One folder's modification time, as the listing saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct FolderStamp {
    /// Relative to the ImageFolder's root.
    pub path: PathBuf,
    /// Its modification time, to the nanosecond where the file system keeps one.
    pub modified: SystemTime,
}

/// torchvision's ImageFolder listing of `root`: class folders in sorted name order, each
/// class's images found recursively in sorted path order. Class folders are listed in
/// parallel (on a network file system most of the time is waiting for the server), and
/// `progress` counts them.
pub fn list_classes(root: &Path, progress: &dyn Progress) -> Result<Listing> {
    let listed_at = SystemTime::now();
    let root_metadata = std::fs::metadata(root).map_err(|e| DataError::io(root, e))?;
    let classes = class_folders(root)?;
    if classes.is_empty() {
        return Err(DataError::Invalid(format!(
            "{}: no class folders (an ImageFolder holds one folder of images per class)",
            root.display()
        )));
    }
    progress.begin(
        &format!("listing {}", root.display()),
        Unit::Items("class folders"),
        Some(classes.len() as u64),
    );
    let listed: Vec<Result<Walk>> = classes
        .par_iter()
        .map(|class| {
            let mut walk = Walk::new(root);
            let listed = walk.images_under(&root.join(class)).map(|()| walk);
            progress.advance(1);
            listed
        })
        .collect();
    let mut samples = Vec::new();
    let mut folders = vec![FolderStamp {
        path: PathBuf::new(),
        modified: modified(&root_metadata),
    }];
    // Each class was walked on its own; a folder reached from two classes (a second link to
    // one folder) is found here, in the order a single walk would have met it.
    let mut walked = HashSet::new();
    for ((label, class), walk) in classes.iter().enumerate().zip(listed) {
        let walk = walk?;
        if let Some(again) = walk.folders.iter().find(|f| !walked.insert(f.id)) {
            return Err(listed_twice(&root.join(&again.stamp.path)));
        }
        // As torchvision ("Found no valid file for the classes ..."): an empty class
        // would still take a label, and a model would be scored on a class it never saw.
        if walk.images.is_empty() {
            return Err(DataError::Invalid(format!(
                "{}: an empty class folder (no {} files)",
                root.join(class).display(),
                IMAGE_EXTENSIONS.join(", ")
            )));
        }
        samples.extend(walk.images.into_iter().map(|path| (path, label)));
        folders.extend(walk.folders.into_iter().map(|f| f.stamp));
    }
    progress.finish();
    Ok(Listing {
        classes,
        samples,
        stamps: Stamps { listed_at, folders },
    })
}

/// The images under `root`, recursively, in sorted path order (no classes).
pub fn list_images(root: &Path) -> Result<Vec<PathBuf>> {
    let mut walk = Walk::new(root);
    walk.images_under(root)?;
    Ok(walk.images)
}

/// The names of the folders in `root` (links to folders included), sorted.
pub fn class_folders(root: &Path) -> Result<Vec<String>> {
    let mut classes: Vec<String> = read_dir_sorted(root)?
        .into_iter()
        .filter(|(path, kind)| kind.is_dir() || (kind.is_symlink() && path.is_dir()))
        .filter_map(|(path, _)| path.file_name().and_then(|n| n.to_str()).map(str::to_owned))
        .collect();
    classes.sort();
    Ok(classes)
}

/// What one walk found: the images and the folders it listed.
struct Walk<'a> {
    root: &'a Path,
    images: Vec<PathBuf>,
    folders: Vec<WalkedFolder>,
    ids: HashSet<(u64, u64)>,
}

struct WalkedFolder {
    /// (device, inode): the folder itself, whatever the path that led to it.
    id: (u64, u64),
    stamp: FolderStamp,
}

impl<'a> Walk<'a> {
    fn new(root: &'a Path) -> Self {
        Walk {
            root,
            images: Vec::new(),
            folders: Vec::new(),
            ids: HashSet::new(),
        }
    }

    /// Image files under `dir`, recursively, in sorted order. Symbolic links are followed, as
    /// torchvision does, but each folder is listed once: a folder met again (a link into a
    /// loop, or a second link to one folder) is refused, where following it would list its
    /// images again, under other names and perhaps other labels. Only regular files (after
    /// links) are images: a FIFO, socket or device with an image's name is refused here,
    /// before anything opens it. The file type comes with the folder's entries on most file
    /// systems, so only links (and folders) cost a `stat`.
    fn images_under(&mut self, dir: &Path) -> Result<()> {
        let metadata = std::fs::metadata(dir).map_err(|e| DataError::io(dir, e))?;
        let id = (metadata.dev(), metadata.ino());
        if !self.ids.insert(id) {
            return Err(listed_twice(dir));
        }
        self.folders.push(WalkedFolder {
            id,
            stamp: FolderStamp {
                path: dir.strip_prefix(self.root).unwrap_or(dir).to_owned(),
                modified: modified(&metadata),
            },
        });
        for (path, kind) in read_dir_sorted(dir)? {
            let is_image = has_image_extension(&path);
            if kind.is_file() {
                if is_image {
                    self.images.push(path);
                }
                continue;
            }
            if kind.is_dir() {
                self.images_under(&path)?;
                continue;
            }
            // A link (followed) or something that is no file.
            let metadata = match std::fs::metadata(&path) {
                Ok(metadata) => metadata,
                // A broken link to something that is no image matters as little as the rest.
                Err(_) if !is_image => continue,
                Err(e) => return Err(DataError::io(&path, e)),
            };
            if metadata.is_dir() {
                self.images_under(&path)?;
            } else if is_image {
                if !metadata.is_file() {
                    return Err(not_a_file(&path, &metadata));
                }
                self.images.push(path);
            }
        }
        Ok(())
    }
}

fn listed_twice(dir: &Path) -> DataError {
    DataError::Invalid(format!(
        "{}: a folder already listed (a symbolic link loop, or a second link to one folder); \
         its images would be counted twice",
        dir.display()
    ))
}

/// Why a path with an image's name is no image file.
pub(crate) fn not_a_file(path: &Path, metadata: &Metadata) -> DataError {
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

/// The entries of `dir` with their types (not following links), sorted by path.
fn read_dir_sorted(dir: &Path) -> Result<Vec<(PathBuf, FileType)>> {
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    let mut paths = entries
        .map(|entry| {
            let entry = entry.map_err(|e| DataError::io(dir, e))?;
            let kind = entry
                .file_type()
                .map_err(|e| DataError::io(entry.path(), e))?;
            Ok((entry.path(), kind))
        })
        .collect::<Result<Vec<_>>>()?;
    paths.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(paths)
}

fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// A folder's modification time (the epoch where the file system keeps none).
pub(crate) fn modified(metadata: &Metadata) -> SystemTime {
    metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH)
}
