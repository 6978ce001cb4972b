//! Reading and writing weights: `.pth` (zip and legacy) and safetensors, keyed by PyTorch's
//! state-dict names.

mod pth;

use crate::arch::{Arch, ModelConfig, AREAS};
use crate::error::{Error, Result};
use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

/// Tensors by state-dict name, without the `module.` prefix that `nn.DataParallel` adds.
#[derive(Debug, Clone)]
pub struct StateDict {
    /// Every tensor, by state-dict name.
    pub tensors: HashMap<String, Tensor>,
    /// The checkpoint's `arch` entry (e.g. `CORnet-RT`) where it has one.
    pub arch: Option<String>,
}

impl StateDict {
    /// A state dict of `tensors`, with the `module.` prefix stripped from their names.
    pub fn new(tensors: HashMap<String, Tensor>, arch: Option<String>) -> Self {
        let tensors = tensors
            .into_iter()
            .map(|(name, t)| match name.strip_prefix("module.") {
                Some(stripped) => (stripped.to_owned(), t),
                None => (name, t),
            })
            .collect();
        StateDict { tensors, arch }
    }

    fn shape(&self, key: &str) -> Option<&[usize]> {
        self.tensors.get(key).map(|t| t.dims())
    }
}

/// Reads a checkpoint, recognising its format from its first bytes, not its name: a `.pth`
/// (PyTorch's zip format, or the legacy one) or safetensors. The tensors are on the CPU.
/// Errors name the file: unreadable ([`Error::Io`]), [`Error::NotACheckpoint`] or
/// [`Error::DamagedCheckpoint`].
pub fn read(path: &Path) -> Result<StateDict> {
    let mut head = [0u8; 16];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .map_err(|e| Error::io(path, e))?;
    let head = &head[..n];
    if head.starts_with(b"PK\x03\x04") {
        pth::read_zip(path)
    } else if head.starts_with(&pth::LEGACY_MAGIC) {
        pth::read_legacy(path)
    } else if looks_like_safetensors(head) {
        let tensors = candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| {
            Error::DamagedCheckpoint {
                path: path.to_owned(),
                reason: e.to_string(),
            }
        })?;
        Ok(StateDict::new(tensors, None))
    } else {
        Err(Error::NotACheckpoint {
            path: path.to_owned(),
            reason: "neither a PyTorch .pth (zip or legacy format) nor a safetensors file".into(),
        })
    }
}

/// Safetensors starts with a little-endian u64 header length and a JSON object.
fn looks_like_safetensors(head: &[u8]) -> bool {
    head.len() > 8 && head[8] == b'{'
}

/// Writes tensors (by state-dict name) as safetensors, which PyTorch loads with
/// `safetensors.torch.load_file`.
pub fn write_safetensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    let map: HashMap<_, _> = tensors.iter().cloned().collect();
    candle_core::safetensors::save(&map, path).map_err(|e| written_file_error(path, e))
}

/// candle's error from writing `path`, as ours naming the file. An I/O error inside it (a full
/// disk: candle wraps safetensors' error, which wraps the OS's) becomes the cause itself, so
/// the message says it once, after the file, rather than twice with no file.
fn written_file_error(path: &Path, err: candle_core::Error) -> Error {
    let err = match err {
        candle_core::Error::Io(io) => return Error::io(path, io),
        other => other,
    };
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            let io = match io.raw_os_error() {
                Some(code) => std::io::Error::from_raw_os_error(code),
                None => std::io::Error::new(io.kind(), io.to_string()),
            };
            return Error::io(path, io);
        }
        source = e.source();
    }
    Error::Candle(err)
}

/// The graph's family, told apart by V1's parameter names.
fn family(state: &StateDict) -> Result<&'static [Arch]> {
    let has = |key: &str| state.tensors.contains_key(key);
    if has("V1.conv.weight") {
        Ok(&[Arch::Z])
    } else if has("V1.conv_input.weight") {
        Ok(&[Arch::RT, Arch::R])
    } else if has("V1.conv1.weight") {
        Ok(&[Arch::S])
    } else {
        let mut keys: Vec<_> = state.tensors.keys().map(String::as_str).collect();
        keys.sort();
        keys.truncate(5);
        Err(Error::Incompatible(format!(
            "no CORnet V1 parameters (V1.conv.weight, V1.conv_input.weight or V1.conv1.weight); \
             the first keys are {keys:?}"
        )))
    }
}

/// The model configuration that a state dict's shapes describe.
///
/// `arch`, where given, must fit the weights; R and RT have the same parameters, so it (or the
/// checkpoint's `arch` entry) is what tells them apart, RT by default.
pub fn infer_config(state: &StateDict, arch: Option<Arch>) -> Result<ModelConfig> {
    let candidates = family(state)?;
    let recorded = state.arch.as_deref().and_then(|a| a.parse::<Arch>().ok());
    let arch = match arch {
        Some(a) if candidates.contains(&a) => a,
        Some(a) => {
            return Err(Error::Incompatible(format!(
                "these are CORnet-{} weights, not CORnet-{a}",
                candidates[0]
            )))
        }
        None => recorded
            .filter(|a| candidates.contains(a))
            .unwrap_or(candidates[0]),
    };
    let first_conv = |area: &str| match (arch, area) {
        (Arch::Z, _) => format!("{area}.conv.weight"),
        (Arch::S, "V1") => "V1.conv1.weight".into(),
        _ => format!("{area}.conv_input.weight"),
    };
    let out_channels = |key: &str| {
        state
            .shape(key)
            .and_then(|s| s.first().copied())
            .ok_or_else(|| Error::MissingKey {
                key: key.to_owned(),
                expected: Vec::new(),
            })
    };
    let mut config = ModelConfig::full(arch);
    for (width, area) in config.widths.iter_mut().zip(AREAS) {
        *width = out_channels(&first_conv(area))?;
    }
    config.num_classes = out_channels("decoder.linear.weight")?;
    if arch == Arch::S {
        for (times, area) in config.s_times.iter_mut().zip(&AREAS[1..]) {
            *times = (0..)
                .take_while(|t| {
                    state
                        .tensors
                        .contains_key(&format!("{area}.norm1_{t}.weight"))
                })
                .count();
        }
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A full disk while writing weights, as safetensors reports it inside candle's error.
    #[test]
    fn a_full_disk_names_the_file_and_says_so_once() {
        let no_space = std::io::Error::from_raw_os_error(28);
        let candles =
            candle_core::Error::SafeTensor(safetensors::SafeTensorError::IoError(no_space));
        let err = written_file_error(Path::new("/runs/x/final.safetensors"), candles);
        // The message with its causes, as the command line prints it.
        let mut chain = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            chain.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        assert!(chain.contains("/runs/x/final.safetensors"), "{chain}");
        assert_eq!(
            chain.matches("No space left on device").count(),
            1,
            "{chain}"
        );
    }
}
