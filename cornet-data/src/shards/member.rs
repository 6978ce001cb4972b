//! One member of a tar shard read at its indexed offset, together with the header block that
//! precedes its data, so that each read checks the index still points where it says.

use super::index::sidecar_path;
use crate::error::{DataError, Result};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// A tar header block; a member's data starts right after its own header (extension headers
/// for long names, GNU or PAX, come before that header).
const HEADER_BYTES: u64 = 512;
/// The name field of a tar header: longer names are cut to it there (and kept whole in an
/// extension header before it).
const NAME_FIELD_BYTES: usize = 100;

/// The `len` data bytes at `offset` of `shard` (open as `file`), after checking that the
/// header before them is a valid tar header of a `len`-byte member named `name`. An error
/// names the shard, the member and what differs.
pub(crate) fn read_member(
    file: &File,
    shard: &Path,
    offset: u64,
    len: u64,
    name: &str,
) -> Result<Vec<u8>> {
    let stale = |reason: String| DataError::BadShard {
        shard: shard.to_owned(),
        reason: format!(
            "{name}: its index points at byte {offset}, but {reason}; delete {} to index the \
             shard again",
            sidecar_path(shard).display()
        ),
    };
    let start = offset
        .checked_sub(HEADER_BYTES)
        .ok_or_else(|| stale("no tar header fits before it".into()))?;
    let mut bytes = vec![0; (HEADER_BYTES + len) as usize];
    file.read_exact_at(&mut bytes, start)
        .map_err(|e| DataError::io(shard.join(name), e))?;
    let data = bytes.split_off(HEADER_BYTES as usize);
    check_header(&bytes, len, name).map_err(stale)?;
    Ok(data)
}

fn check_header(block: &[u8], len: u64, name: &str) -> std::result::Result<(), String> {
    let header = tar::Header::from_byte_slice(block);
    let recorded = header.cksum().ok();
    if recorded != Some(checksum(block)) {
        return Err("no tar header is before it".into());
    }
    // Without case: the index keeps extensions in lower case (`.JPG` is read as `.jpg`).
    let found = String::from_utf8_lossy(&header.path_bytes()).to_ascii_lowercase();
    let name = name.to_ascii_lowercase();
    let cut_name = found.len() == NAME_FIELD_BYTES && name.starts_with(&found);
    if found != name && !cut_name {
        return Err(format!("the member there is {found}"));
    }
    match header.entry_size() {
        Ok(size) if size == len => Ok(()),
        size => Err(format!("the member there has {size:?} bytes, not {len}")),
    }
}

/// The tar checksum: the sum of the header's bytes, its own 8-byte field counted as spaces.
fn checksum(block: &[u8]) -> u32 {
    let field = 148..156;
    let summed: u32 = block.iter().map(|&b| u32::from(b)).sum();
    let field_sum: u32 = block[field].iter().map(|&b| u32::from(b)).sum();
    summed - field_sum + 8 * u32::from(b' ')
}
