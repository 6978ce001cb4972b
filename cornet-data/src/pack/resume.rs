//! Where a pack starts: afresh in an empty folder, after the intact shards of an interrupted
//! run of the same pack, or nowhere when that pack had finished. Anything else in the folder
//! (another pack's shards, other settings, a changed source) is refused, naming what differs.

use crate::error::{DataError, Result};
use crate::progress::{bytes, Progress, Unit};
use crate::shards::index::{sidecar_path, ShardIndex};
use crate::shards::manifest::{Manifest, Reencode, MANIFEST_FILE, UNFINISHED_MANIFEST_FILE};
use crate::shards::writer::{shard_file_name, ShardRecord};
use crate::shards::Shards;
use rayon::prelude::*;
use std::path::Path;

/// Where [`start`] says the pack begins.
pub(super) enum Start {
    /// The same pack finished earlier: its manifest.
    Finished(Manifest),
    /// After these shards (none for a fresh pack), which are intact and listed in the
    /// unfinished manifest.
    After(Vec<ShardRecord>),
}

/// Where the pack described by `plan` (a manifest without shards) begins in `out`. An
/// interrupted run's shards are checked whole (size and SHA-256, `progress` counting the
/// bytes); the first that fails and all after it are deleted, to be written again, and so are
/// the files the run was writing aside.
pub(super) fn start(out: &Path, plan: &Manifest, progress: &dyn Progress) -> Result<Start> {
    if let Some(finished) = Manifest::load(out)? {
        let differences = differences(&finished, plan);
        if !differences.is_empty() {
            return Err(DataError::Invalid(format!(
                "{}: already holds shards, packed with other settings ({}); pack into an \
                 empty folder",
                out.display(),
                differences.join("; ")
            )));
        }
        check_sizes(out, &finished.shards)?;
        // Left by a pack stopped between writing its manifest and removing this.
        remove_if_present(&out.join(UNFINISHED_MANIFEST_FILE))?;
        return Ok(Start::Finished(finished));
    }
    if let Some(unfinished) = Manifest::load_unfinished(out)? {
        let differences = differences(&unfinished, plan);
        if !differences.is_empty() {
            return Err(DataError::Invalid(format!(
                "{}: holds an unfinished pack with other settings ({}); run the command \
                 that began it again to finish it, or empty the folder to start afresh",
                out.display(),
                differences.join("; ")
            )));
        }
        let prefix = &unfinished.packing.as_ref().expect("compared above").prefix;
        let intact = intact_shards(out, unfinished.shards, progress);
        remove_shards_from(out, prefix, intact.len())?;
        remove_staging_files(out)?;
        let so_far = Manifest {
            shards: intact.clone(),
            ..plan.clone()
        };
        so_far.save_unfinished(out)?;
        return Ok(Start::After(intact));
    }
    if Shards::found_in(out) {
        return Err(DataError::Invalid(format!(
            "{}: already holds shards, not written by `cornet-data pack`; pack into an empty \
             folder",
            out.display()
        )));
    }
    plan.save_unfinished(out)?;
    Ok(Start::After(Vec::new()))
}

/// How the pack `then` (a manifest in the folder) differs from the pack `now`, flag by
/// flag; empty when they are the same pack.
fn differences(then: &Manifest, now: &Manifest) -> Vec<String> {
    let mut found = Vec::new();
    if then.source != now.source {
        found.push(format!(
            "packed from {}, not {} (--src)",
            then.source, now.source
        ));
    }
    let (Some(before), Some(after)) = (&then.packing, &now.packing) else {
        found.push("packed before packs recorded their settings".into());
        return found;
    };
    if before.prefix != after.prefix {
        found.push(format!(
            "shards named {}-*.tar, not {}-*.tar (--name)",
            before.prefix, after.prefix
        ));
    }
    if before.shard_bytes != after.shard_bytes {
        found.push(format!(
            "shards of at most {}, not {} (--shard-size)",
            bytes(before.shard_bytes),
            bytes(after.shard_bytes)
        ));
    }
    if then.reencode != now.reencode {
        found.push(format!(
            "{}, not {} (--max-side, --quality)",
            describe(then.reencode),
            describe(now.reencode)
        ));
    }
    if then.source == now.source
        && (before.fingerprint != after.fingerprint || then.classes != now.classes)
    {
        found.push(format!(
            "the source has changed since: {} images in {} classes then, {} in {} now{}",
            then.samples,
            then.classes.len(),
            now.samples,
            now.classes.len(),
            if then.samples == now.samples {
                " (files renamed or moved)"
            } else {
                ""
            }
        ));
    }
    found
}

fn describe(reencode: Option<Reencode>) -> String {
    match reencode {
        Some(r) => format!(
            "re-encoded to at most {} px at quality {}",
            r.max_side, r.quality
        ),
        None => "the files' bytes kept".into(),
    }
}

/// The finished pack's shards still have their sizes (a `stat` each; `cornet-data verify`
/// hashes them).
fn check_sizes(out: &Path, shards: &[ShardRecord]) -> Result<()> {
    for record in shards {
        let path = out.join(&record.file);
        let size = std::fs::metadata(&path)
            .map_err(|e| DataError::io(&path, e))?
            .len();
        if size != record.bytes {
            return Err(DataError::BadShard {
                shard: path,
                reason: format!(
                    "has {size} bytes but the finished pack's manifest lists {} (cut or \
                     rewritten); empty the folder and pack again",
                    record.bytes
                ),
            });
        }
    }
    Ok(())
}

/// The shards of `listed`, in order, up to the first whose size or SHA-256 is not what the
/// unfinished manifest lists (or that cannot be read). They are read whole in parallel, and
/// indexed on the way: an index lost with the run that was writing it is made again.
fn intact_shards(
    out: &Path,
    listed: Vec<ShardRecord>,
    progress: &dyn Progress,
) -> Vec<ShardRecord> {
    if listed.is_empty() {
        return listed;
    }
    progress.begin(
        &format!(
            "checking the {} shards an earlier run finished in {}",
            listed.len(),
            out.display()
        ),
        Unit::Bytes,
        Some(listed.iter().map(|s| s.bytes).sum()),
    );
    let intact: Vec<bool> = listed
        .par_iter()
        .map(|record| is_intact(&out.join(&record.file), record, progress))
        .collect();
    progress.finish();
    let good = intact.iter().take_while(|&&ok| ok).count();
    listed.into_iter().take(good).collect()
}

/// Whether `shard` has the size and SHA-256 of `record`; if so its index is saved beside it.
fn is_intact(shard: &Path, record: &ShardRecord, progress: &dyn Progress) -> bool {
    std::fs::metadata(shard).is_ok_and(|m| m.len() == record.bytes)
        && ShardIndex::build(shard, progress)
            .is_ok_and(|index| index.sha256 == record.sha256 && index.save(shard).is_ok())
}

/// Deletes what a run stopped while writing a file whole leaves: the file it was writing
/// aside (`manifest.unfinished.json.<pid>.tmp`, `<prefix>-000003.idx.<pid>.tmp`).
fn remove_staging_files(out: &Path) -> Result<()> {
    let entries = std::fs::read_dir(out).map_err(|e| DataError::io(out, e))?;
    for entry in entries {
        let path = entry.map_err(|e| DataError::io(out, e))?.path();
        if is_staging_file(&path) {
            remove_if_present(&path)?;
        }
    }
    Ok(())
}

/// A manifest or shard index written aside: `<name>.<pid>.tmp`.
fn is_staging_file(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    name.strip_suffix(".tmp")
        .and_then(|rest| rest.rsplit_once('.'))
        .is_some_and(|(name, pid)| {
            let ours =
                name == MANIFEST_FILE || name == UNFINISHED_MANIFEST_FILE || name.ends_with(".idx");
            ours && !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit())
        })
}

/// Deletes this pack's shards numbered `from` on, and their indexes: the one being written
/// when the pack stopped, and any after a damaged one.
fn remove_shards_from(out: &Path, prefix: &str, from: usize) -> Result<()> {
    let mut number = from;
    loop {
        let shard = out.join(shard_file_name(prefix, number));
        let index = sidecar_path(&shard);
        if !shard.exists() && !index.exists() {
            return Ok(());
        }
        remove_if_present(&shard)?;
        remove_if_present(&index)?;
        number += 1;
    }
}

fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(DataError::io(path, e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::is_staging_file;
    use std::path::Path;

    #[test]
    fn only_files_written_aside_by_a_pack_are_staging_files() {
        for name in [
            "manifest.unfinished.json.4242.tmp",
            "manifest.json.7.tmp",
            "train-000003.idx.31337.tmp",
        ] {
            assert!(is_staging_file(Path::new(name)), "{name}");
        }
        for name in [
            "train-000003.tar",
            "train-000003.idx",
            "notes.12.tmp",
            "manifest.json.tmp",
            "train-000003.idx.x1.tmp",
        ] {
            assert!(!is_staging_file(Path::new(name)), "{name}");
        }
    }
}
