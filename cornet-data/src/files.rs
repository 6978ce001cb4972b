//! Files written whole or not at all.

use std::path::Path;

/// Writes `bytes` to `path` through a file beside it (`<path>.<pid>.tmp`) that is then renamed
/// into place, so that a reader (or a run killed mid-write) never sees half of it.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut staging = path.as_os_str().to_owned();
    staging.push(format!(".{}.tmp", std::process::id()));
    std::fs::write(&staging, bytes)?;
    std::fs::rename(&staging, path).inspect_err(|_| {
        std::fs::remove_file(&staging).ok();
    })
}
