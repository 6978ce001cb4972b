//! Files and folders written whole: aside under a temporary name, then renamed over the old
//! one, so that a reader (or a kill in the middle) sees the old or the whole new, never half.
//! Every file the library writes for the user goes through [`Aside`].

use std::path::{Path, PathBuf};

/// A file or folder being written under a temporary name beside its place. [`Aside::commit`]
/// renames it into place; dropped uncommitted (the writing failed), it is removed.
#[derive(Debug)]
pub struct Aside {
    path: PathBuf,
    staging: PathBuf,
    committed: bool,
}

impl Aside {
    /// `path`, written at `<path>.partial`.
    pub fn new(path: &Path) -> Self {
        let mut staging = path.as_os_str().to_owned();
        staging.push(".partial");
        Aside::at(path, PathBuf::from(staging))
    }

    /// `path`, written at `staging`, which must be on the same file system (beside it): for
    /// writers that name their own, as processes racing to write the same path must.
    pub fn at(path: &Path, staging: PathBuf) -> Self {
        Aside {
            path: path.to_owned(),
            staging,
            committed: false,
        }
    }

    /// Where to write.
    pub fn staging(&self) -> &Path {
        &self.staging
    }

    /// Renames what was written into place, over a file there (a folder there must be
    /// removed first: a rename does not replace a folder that holds anything).
    pub fn commit(mut self) -> std::io::Result<()> {
        std::fs::rename(&self.staging, &self.path)?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for Aside {
    fn drop(&mut self) {
        if !self.committed {
            // Whatever was written is half of something: nobody must find it.
            let _ = std::fs::remove_file(&self.staging)
                .or_else(|_| std::fs::remove_dir_all(&self.staging));
        }
    }
}

/// Writes `contents` to `path` through `<path>.partial`.
pub fn write_whole(path: &Path, contents: impl AsRef<[u8]>) -> std::io::Result<()> {
    let aside = Aside::new(path);
    std::fs::write(aside.staging(), contents)?;
    aside.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_that_fails_leaves_the_old_file_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scores.csv");
        write_whole(&path, "old").unwrap();
        {
            let aside = Aside::new(&path);
            std::fs::write(aside.staging(), "half of the new").unwrap();
            // Dropped without a commit, as when the writer fails.
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "{names:?}");
        write_whole(&path, "new").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        assert!(!dir.path().join("scores.csv.partial").exists());
    }
}
