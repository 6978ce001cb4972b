//! PyTorch `torch.save` files: the zip format (PyTorch >= 1.6) and the legacy format in which
//! the published CORnet weights were saved.
//!
//! Both hold a pickle whose tensors point at storages by key; candle's pickle reader parses the
//! pickle and its tensor records, and this module finds the state dict in it and the storages'
//! bytes in the file.

use super::StateDict;
use crate::error::{Error, Result};
use candle_core::pickle::{Object, Stack, TensorInfo};
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

/// The first pickle of a legacy file: protocol 2, then `LONG1` of the 10-byte magic number
/// 0x1950a86a20f9469cfc6c, then `STOP`.
pub(super) const LEGACY_MAGIC: [u8; 15] = [
    0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e,
];

pub(super) fn read_zip(path: &Path) -> Result<StateDict> {
    let damaged = |reason: String| Error::DamagedCheckpoint {
        path: path.to_owned(),
        reason,
    };
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut zip = zip::ZipArchive::new(BufReader::new(file))
        .map_err(|e| damaged(format!("unreadable zip archive ({e})")))?;
    let pickle_name = zip
        .file_names()
        .filter_map(|name| name.ok())
        .find(|name| name.ends_with("data.pkl"))
        .map(|name| name.into_owned())
        .ok_or_else(|| Error::NotACheckpoint {
            path: path.to_owned(),
            reason: "a zip archive without the data.pkl of torch.save".into(),
        })?;
    let data_dir = pickle_name.trim_end_matches(".pkl").to_owned();
    let object = {
        let entry = zip
            .by_name(&pickle_name)
            .map_err(|e| damaged(format!("{pickle_name}: {e}")))?;
        parse_pickle(&mut BufReader::new(entry))
            .map_err(|e| damaged(format!("{pickle_name}: {e}")))?
    };
    let (entries, arch) = find_state_dict(object);
    let infos = tensor_infos(entries, &data_dir)?;
    let mut storages: HashMap<String, Vec<u8>> = HashMap::new();
    for info in &infos {
        if !storages.contains_key(&info.path) {
            let mut bytes = Vec::new();
            zip.by_name(&info.path)
                .and_then(|mut entry| Ok(entry.read_to_end(&mut bytes)?))
                .map_err(|e| damaged(format!("storage `{}` of `{}`: {e}", info.path, info.name)))?;
            storages.insert(info.path.clone(), bytes);
        }
    }
    build_state_dict(path, infos, &storages, arch)
}

pub(super) fn read_legacy(path: &Path) -> Result<StateDict> {
    let damaged = |reason: String| Error::DamagedCheckpoint {
        path: path.to_owned(),
        reason,
    };
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader = BufReader::new(file);
    let mut magic = [0u8; LEGACY_MAGIC.len()];
    reader
        .read_exact(&mut magic)
        .map_err(|e| damaged(format!("magic number: {e}")))?;
    // The protocol version and system information pickles carry nothing we need.
    for what in ["protocol version", "system information"] {
        parse_pickle(&mut reader).map_err(|e| damaged(format!("{what}: {e}")))?;
    }
    let object = parse_pickle(&mut reader).map_err(|e| damaged(format!("main pickle: {e}")))?;
    let storage_keys = match parse_pickle(&mut reader) {
        Ok(Object::List(keys)) => keys
            .into_iter()
            .map(|k| {
                k.unicode()
                    .map_err(|k| damaged(format!("storage key {k:?}")))
            })
            .collect::<Result<Vec<_>>>()?,
        Ok(other) => {
            return Err(damaged(format!(
                "expected the list of storage keys, got {other:?}"
            )))
        }
        Err(e) => return Err(damaged(format!("list of storage keys: {e}"))),
    };
    // Storages follow in the listed order, each as an int64 element count and the raw
    // elements. Their element sizes come from the storage types named in the pickle.
    let element_sizes = storage_element_sizes(&object);
    let (entries, arch) = find_state_dict(object);
    let infos = tensor_infos(entries, LEGACY_DIR)?;
    let mut storages = HashMap::new();
    for key in storage_keys {
        let element_size = *element_sizes
            .get(&key)
            .ok_or_else(|| damaged(format!("storage `{key}` is listed but never used")))?;
        let mut count = [0u8; 8];
        reader
            .read_exact(&mut count)
            .map_err(|e| damaged(format!("storage `{key}`: {e} (truncated file?)")))?;
        let len = u64::from_le_bytes(count) as usize * element_size;
        let mut bytes = Vec::new();
        (&mut reader)
            .take(len as u64)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io(path, e))?;
        if bytes.len() != len {
            return Err(damaged(format!(
                "storage `{key}` holds {} of its {len} bytes (truncated file?)",
                bytes.len()
            )));
        }
        storages.insert(format!("{LEGACY_DIR}/{key}"), bytes);
    }
    build_state_dict(path, infos, &storages, arch)
}

/// Legacy storages have no directory; tensor records name them `<LEGACY_DIR>/<key>`.
const LEGACY_DIR: &str = "storages";

/// Nesting no checkpoint comes near (a state dict's tensors sit a handful of levels deep).
/// Deeper objects are refused before they leave the pickle reader's thread: dropping, cloning
/// or printing an `Object` recurses once per level.
const MAX_NESTING: usize = 256;

/// The largest pickle read. A CORnet state dict's pickle is tens of kilobytes (the tensors'
/// bytes are stored apart from it); a checkpoint with its optimizer's state, a few times that.
const MAX_PICKLE_BYTES: u64 = 1 << 20;

/// The stack of the thread that reads a pickle. candle's reader clones and drops what it
/// builds recursively, one call per nesting level, and a pickle nests at most one level per
/// byte (`TUPLE1`), so a pickle of [`MAX_PICKLE_BYTES`] needs this much to be read, refused
/// and dropped without overflowing, whatever it holds. Only what is touched is committed.
const PICKLE_THREAD_STACK: usize = PICKLE_STACK_PER_LEVEL * MAX_PICKLE_BYTES as usize;

/// Stack bytes per nesting level that cloning and dropping an `Object` take, twice over:
/// `the_deepest_pickle_within_the_size_limit_is_read_cloned_and_dropped` overflows with 256
/// and holds with 512.
const PICKLE_STACK_PER_LEVEL: usize = 1024;

/// The object a pickle builds, read on a thread of its own whose stack no pickle of at most
/// [`MAX_PICKLE_BYTES`] can overflow; objects nested deeper than [`MAX_NESTING`] are refused
/// and dropped there.
fn parse_pickle<R: std::io::BufRead + Send>(reader: &mut R) -> candle_core::Result<Object> {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("pickle reader".into())
            .stack_size(PICKLE_THREAD_STACK)
            .spawn_scoped(scope, || parse_bounded_pickle(reader))
            .map_err(|e| candle_core::Error::Msg(format!("cannot start the pickle reader: {e}")))?
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

fn parse_bounded_pickle<R: std::io::BufRead>(reader: &mut R) -> candle_core::Result<Object> {
    let mut bounded = reader.take(MAX_PICKLE_BYTES);
    let mut stack = Stack::empty();
    let read = stack.read_loop(&mut bounded);
    if read.is_err() && bounded.limit() == 0 {
        return Err(candle_core::Error::Msg(format!(
            "a pickle of more than {} MiB: not a checkpoint",
            MAX_PICKLE_BYTES >> 20
        )));
    }
    read?;
    let object = stack.finalize()?;
    if nested_deeper_than(&object, MAX_NESTING) {
        return Err(candle_core::Error::Msg(format!(
            "objects nested more than {MAX_NESTING} levels deep: not a checkpoint"
        )));
    }
    Ok(object)
}

/// The objects directly inside `object`.
fn children(object: &Object) -> Vec<&Object> {
    match object {
        Object::Tuple(items) | Object::List(items) => items.iter().collect(),
        Object::Dict(items) => items.iter().flat_map(|(k, v)| [k, v]).collect(),
        Object::Reduce { callable, args } | Object::Build { callable, args } => {
            vec![callable, args]
        }
        Object::PersistentLoad(id) => vec![id],
        _ => Vec::new(),
    }
}

/// Whether `object` nests deeper than `limit` levels; walked with a heap stack, not recursion.
fn nested_deeper_than(object: &Object, limit: usize) -> bool {
    let mut pending = vec![(object, 0)];
    while let Some((object, depth)) = pending.pop() {
        if depth > limit {
            return true;
        }
        pending.extend(children(object).into_iter().map(|child| (child, depth + 1)));
    }
    false
}

/// The state dict inside what `torch.save` stored: `{"state_dict": ...}` as the CORnet
/// checkpoints have it, or a bare state dict. Also returns the checkpoint's `arch` entry.
fn find_state_dict(object: Object) -> (Vec<(Object, Object)>, Option<String>) {
    let Object::Dict(top) = object else {
        return (Vec::new(), None);
    };
    let mut arch = None;
    let mut nested = None;
    for (key, value) in &top {
        match key {
            Object::Unicode(k) if k == "arch" => {
                if let Object::Unicode(a) = value {
                    arch = Some(a.clone());
                }
            }
            Object::Unicode(k) if k == "state_dict" => nested = Some(value.clone()),
            _ => {}
        }
    }
    match nested {
        Some(Object::Dict(entries)) => (entries, arch),
        _ => (top, arch),
    }
}

fn tensor_infos(entries: Vec<(Object, Object)>, data_dir: &str) -> Result<Vec<TensorInfo>> {
    let mut infos = Vec::new();
    for (name, value) in entries {
        // Entries that are not tensors (e.g. `_metadata`) give `None`.
        if let Some(info) = value.into_tensor_info(name, Path::new(data_dir))? {
            infos.push(info);
        }
    }
    Ok(infos)
}

fn build_state_dict(
    path: &Path,
    infos: Vec<TensorInfo>,
    storages: &HashMap<String, Vec<u8>>,
    arch: Option<String>,
) -> Result<StateDict> {
    if infos.is_empty() {
        return Err(Error::NotACheckpoint {
            path: path.to_owned(),
            reason: "the pickle holds no tensors".into(),
        });
    }
    let mut tensors = HashMap::new();
    for info in infos {
        let tensor = tensor_from_storage(&info, &storages[&info.path]).map_err(|reason| {
            Error::DamagedCheckpoint {
                path: path.to_owned(),
                reason: format!("`{}`: {reason}", info.name),
            }
        })?;
        tensors.insert(info.name, tensor);
    }
    Ok(StateDict::new(tensors, arch))
}

fn tensor_from_storage(info: &TensorInfo, storage: &[u8]) -> std::result::Result<Tensor, String> {
    let layout = &info.layout;
    if !layout.is_contiguous() {
        return Err(format!(
            "non-contiguous tensor (strides {:?}) is not supported",
            layout.stride()
        ));
    }
    let start = layout.start_offset();
    let end = start + layout.shape().elem_count() * info.dtype.size_in_bytes();
    let bytes = storage.get(start..end).ok_or_else(|| {
        format!(
            "needs bytes {start}..{end} of a {}-byte storage",
            storage.len()
        )
    })?;
    Tensor::from_raw_buffer(bytes, info.dtype, layout.dims(), &Device::Cpu)
        .map_err(|e| e.to_string())
}

/// Element size of every storage the pickle references, by storage key: persistent ids are
/// `('storage', <torch.XStorage>, key, location, numel, ...)`.
fn storage_element_sizes(object: &Object) -> HashMap<String, usize> {
    let mut sizes = HashMap::new();
    let mut pending = vec![object];
    while let Some(obj) = pending.pop() {
        match obj {
            Object::PersistentLoad(id) => {
                if let Object::Tuple(fields) = id.as_ref() {
                    if let (Some(Object::Class { class_name, .. }), Some(Object::Unicode(key))) =
                        (fields.get(1), fields.get(2))
                    {
                        if let Some(size) = storage_element_size(class_name) {
                            sizes.insert(key.clone(), size);
                        }
                    }
                }
            }
            other => pending.extend(children(other)),
        }
    }
    sizes
}

fn storage_element_size(class_name: &str) -> Option<usize> {
    Some(match class_name {
        "DoubleStorage" | "LongStorage" => DType::F64.size_in_bytes(),
        "FloatStorage" | "IntStorage" => DType::F32.size_in_bytes(),
        "HalfStorage" | "BFloat16Storage" | "ShortStorage" => DType::F16.size_in_bytes(),
        "ByteStorage" | "CharStorage" | "BoolStorage" => DType::U8.size_in_bytes(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// `pickle` as the `data.pkl` of a zip checkpoint; what reading it says.
    fn read_zip_of_pickle(pickle: &[u8]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crafted.pth");
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        zip.start_file("archive/data.pkl", zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(pickle).unwrap();
        zip.finish().unwrap();
        read_zip(&path).expect_err("refused").to_string()
    }

    const PROTO_2: [u8; 2] = [0x80, 2];
    const EMPTY_LIST: u8 = b']';
    const APPEND: u8 = b'a';
    const TUPLE1: u8 = 0x85;
    const BINPUT_0: [u8; 2] = [b'q', 0];
    const STOP: u8 = b'.';

    /// Half a million nested lists (a pickle of `[[[...]]]`) is refused with a message, where
    /// it used to overflow the stack and abort the process.
    #[test]
    fn deeply_nested_pickles_are_refused_not_a_stack_overflow() {
        let depth = 500_000;
        let mut pickle = PROTO_2.to_vec();
        pickle.extend(std::iter::repeat_n(EMPTY_LIST, depth));
        pickle.extend(std::iter::repeat_n(APPEND, depth - 1));
        pickle.push(STOP);
        let err = read_zip_of_pickle(&pickle);
        assert!(err.contains("nested more than 256 levels deep"), "{err}");
    }

    /// The deepest object a pickle within the size limit can build (a level per byte), cloned
    /// into the memo by the reader and dropped with it: the reader's stack holds all of it.
    #[test]
    fn the_deepest_pickle_within_the_size_limit_is_read_cloned_and_dropped() {
        let depth = MAX_PICKLE_BYTES as usize - 8;
        let mut pickle = PROTO_2.to_vec();
        pickle.push(EMPTY_LIST);
        pickle.extend(std::iter::repeat_n(TUPLE1, depth));
        pickle.extend(BINPUT_0);
        pickle.push(STOP);
        let err = read_zip_of_pickle(&pickle);
        assert!(err.contains("nested more than 256 levels deep"), "{err}");
    }

    /// A deep pickle that breaks off before its `STOP` fails with the reader's error; what it
    /// had built is dropped on the reader's stack.
    #[test]
    fn a_deep_pickle_broken_before_its_end_is_an_error_not_a_stack_overflow() {
        let mut pickle = PROTO_2.to_vec();
        pickle.push(EMPTY_LIST);
        pickle.extend(std::iter::repeat_n(TUPLE1, 1_000_000));
        let err = read_zip_of_pickle(&pickle);
        assert!(err.contains("data.pkl"), "{err}");
    }

    #[test]
    fn a_pickle_over_the_size_limit_is_refused() {
        let mut pickle = PROTO_2.to_vec();
        let text = vec![b'x'; MAX_PICKLE_BYTES as usize];
        pickle.push(b'X'); // BINUNICODE
        pickle.extend((text.len() as u32).to_le_bytes());
        pickle.extend(text);
        pickle.push(STOP);
        let err = read_zip_of_pickle(&pickle);
        assert!(err.contains("a pickle of more than 1 MiB"), "{err}");
    }
}
