//! A listing kept in a file, so that a resumed run need not list 1.28M files again: the
//! class folders, each one's image names, and the modification time of every folder listed.
//! It is reused only while the root is the same folder, its class folders are the same and
//! no folder listed has been modified since; anything else lists afresh.

use super::{class_folders, FolderStamp, Listing, Stamps};
use crate::error::{DataError, Result};
use crate::files::write_atomically;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Names this file's format, so that another version's file is listed afresh, not misread.
const FORMAT: &str = "cornet-data listing 1";

/// A folder modified this close to the start of its listing (or after it) may have changed
/// unseen within one tick of its clock (file systems keep times to 1 or 2 s, and a network
/// file system's clock is the server's): its listing is not trusted again, as git does with
/// its index.
pub const MODIFIED_TOO_LATE: Duration = Duration::from_secs(2);

#[derive(Serialize, Deserialize)]
struct ListingFile {
    format: String,
    /// The root, made absolute, as it was listed.
    root: PathBuf,
    /// Nanoseconds since the Unix epoch.
    listed_at: u128,
    folders: Vec<FolderTime>,
    samples: usize,
    classes: Vec<ClassImages>,
}

#[derive(Serialize, Deserialize)]
struct FolderTime {
    /// Relative to the root (`""` for the root).
    path: PathBuf,
    /// Nanoseconds since the Unix epoch.
    modified: u128,
}

#[derive(Serialize, Deserialize)]
struct ClassImages {
    name: String,
    /// Relative to the class folder.
    images: Vec<String>,
}

/// Writes the listing of `root` (its `classes`, `samples` and `stamps`, as [`Listing`] holds
/// them) into `file`, whole or not at all (written aside, then renamed). A name that is not
/// UTF-8 cannot be saved (the file is JSON): an error naming it.
pub fn save(
    root: &Path,
    class_names: &[String],
    samples: &[(PathBuf, usize)],
    stamps: &Stamps,
    file: &Path,
) -> Result<()> {
    let absolute = std::path::absolute(root).map_err(|e| DataError::io(root, e))?;
    let mut classes: Vec<ClassImages> = class_names
        .iter()
        .map(|name| ClassImages {
            name: name.clone(),
            images: Vec::new(),
        })
        .collect();
    let class_dirs: Vec<PathBuf> = class_names.iter().map(|name| root.join(name)).collect();
    for (path, label) in samples {
        let relative = path.strip_prefix(&class_dirs[*label]).unwrap_or(path);
        let name = relative.to_str().ok_or_else(|| {
            DataError::Invalid(format!(
                "{}: a name that is not UTF-8 cannot be kept in a listing file",
                path.display()
            ))
        })?;
        classes[*label].images.push(name.to_owned());
    }
    let saved = ListingFile {
        format: FORMAT.into(),
        root: absolute,
        listed_at: nanos(stamps.listed_at),
        folders: stamps
            .folders
            .iter()
            .map(|f| FolderTime {
                path: f.path.clone(),
                modified: nanos(f.modified),
            })
            .collect(),
        samples: samples.len(),
        classes,
    };
    let bytes = serde_json::to_vec(&saved).expect("a listing serializes");
    write_atomically(file, &bytes).map_err(|e| DataError::io(file, e))
}

/// The listing of `root` saved in `file` if it still holds, or why not (no file, another
/// root, a folder modified since, ...). A file that is there but unreadable or inconsistent is
/// a reason too: the caller lists afresh. Costs a `stat` per folder listed, not per image.
pub fn load(root: &Path, file: &Path) -> Result<std::result::Result<Listing, String>> {
    let bytes = match std::fs::read(file) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Err(format!("no listing saved in {}", file.display())))
        }
        Err(e) => return Err(DataError::io(file, e)),
    };
    let saved: ListingFile = match serde_json::from_slice(&bytes) {
        Ok(saved) => saved,
        Err(e) => return Ok(Err(format!("{}: unreadable ({e})", file.display()))),
    };
    Ok(still_holds(root, &saved).map(|()| restore(root, saved)))
}

/// Whether the saved listing is still that of `root`.
fn still_holds(root: &Path, saved: &ListingFile) -> std::result::Result<(), String> {
    if saved.format != FORMAT {
        return Err(format!("a listing of another format ({:?})", saved.format));
    }
    let absolute = std::path::absolute(root).map_err(|e| format!("{}: {e}", root.display()))?;
    if saved.root != absolute {
        return Err(format!("a listing of {}", saved.root.display()));
    }
    let listed = saved.classes.iter().map(|c| c.images.len()).sum::<usize>();
    if listed != saved.samples || saved.classes.iter().any(|c| c.images.is_empty()) {
        return Err("its counts do not add up (cut or edited)".into());
    }
    let trusted_until = saved.listed_at.saturating_sub(MODIFIED_TOO_LATE.as_nanos());
    for folder in &saved.folders {
        let path = root.join(&folder.path);
        let now = std::fs::metadata(&path)
            .map(|m| nanos(super::modified(&m)))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if now != folder.modified {
            return Err(format!("{} was modified since", path.display()));
        }
        if now >= trusted_until {
            return Err(format!(
                "{} was modified as it was listed (a later change could hide in the same \
                 tick of its clock)",
                path.display()
            ));
        }
    }
    let classes = class_folders(root).map_err(|e| e.to_string())?;
    if !classes.iter().eq(saved.classes.iter().map(|c| &c.name)) {
        return Err(format!("{} holds other class folders", root.display()));
    }
    Ok(())
}

fn restore(root: &Path, saved: ListingFile) -> Listing {
    let mut samples = Vec::with_capacity(saved.samples);
    let mut classes = Vec::with_capacity(saved.classes.len());
    for (label, class) in saved.classes.into_iter().enumerate() {
        let class_dir = root.join(&class.name);
        samples.extend(
            class
                .images
                .iter()
                .map(|name| (class_dir.join(name), label)),
        );
        classes.push(class.name);
    }
    let folders = saved
        .folders
        .into_iter()
        .map(|f| FolderStamp {
            path: f.path,
            modified: from_nanos(f.modified),
        })
        .collect();
    Listing {
        classes,
        samples,
        stamps: Stamps {
            listed_at: from_nanos(saved.listed_at),
            folders,
        },
    }
}

fn nanos(time: SystemTime) -> u128 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

fn from_nanos(nanos: u128) -> SystemTime {
    let secs = (nanos / 1_000_000_000) as u64;
    SystemTime::UNIX_EPOCH + Duration::new(secs, (nanos % 1_000_000_000) as u32)
}
