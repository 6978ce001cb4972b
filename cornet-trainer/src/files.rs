//! Files written whole: aside under a temporary name, then renamed over the old one, so that
//! a reader (or a kill in the middle) never sees half of one.

use std::path::Path;

/// Writes `contents` to `path` through `<path>.partial`.
pub fn write_whole(path: &Path, contents: impl AsRef<[u8]>) -> std::io::Result<()> {
    let mut staging = path.as_os_str().to_owned();
    staging.push(".partial");
    std::fs::write(&staging, contents)?;
    std::fs::rename(&staging, path)
}
