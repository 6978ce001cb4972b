//! The original's published weights by name: `--weights S` is `cornet_s-1d3f7974.pth`, found
//! in PyTorch's hub cache (where `cornet.cornet_s(pretrained=True)` leaves it) or downloaded
//! into it as torch.hub does.
//!
//! A download is written under a temporary name in the cache folder ([`partial`]) and renamed
//! only once it is whole (every byte the server announced), its SHA-256 starts with the hash in
//! its name, and it loads as a checkpoint of its model: a failed, partial or wrong download
//! never sits in the cache under the real name, where torch.hub and the next run would take it.
//! [`transfer`] bounds the download in time and size.

mod error;
mod file;
mod partial;
mod transfer;

pub use error::PublishedWeightsError;
pub use file::PublishedFile;
pub use transfer::DownloadLimits;

use error::{cache_error, Result};

use cornet_model::{Arch, Model};
use partial::PartialFile;
use std::path::{Path, PathBuf};

/// Where the original fetches its weights (`cornet/__init__.py`'s `get_model`).
pub const ORIGINAL_BASE_URL: &str = "https://s3.amazonaws.com/cornet-models/";

/// Each published file's hash prefix, the `HASH` of `cornet/cornet_<x>.py`: the file is
/// `cornet_<x>-<hash>.pth` and its SHA-256 starts with `<hash>`.
pub const ORIGINAL_HASHES: [(Arch, &str); 4] = [
    (Arch::Z, "5c427c9c"),
    (Arch::R, "5930a990"),
    (Arch::RT, "933c001c"),
    (Arch::S, "1d3f7974"),
];

/// Overrides [`ORIGINAL_BASE_URL`], for clusters that mirror the files internally.
pub const BASE_URL_VARIABLE: &str = "CORNET_WEIGHTS_BASE_URL";

/// A `--weights` or `--init` argument as a file: an existing path is that path (so a file
/// named `S` in the current folder wins over the name); otherwise `Z`, `R`, `RT` or `S` (or
/// `cornet_s`, `CORnet-S`, in any case) is the original's published file, from PyTorch's hub
/// cache or downloaded into it (see [`PublishedWeights::from_env`]); anything else is returned
/// as it is, for the loader to report as a missing file.
pub fn resolve(arg: &Path) -> Result<PathBuf> {
    match published_arch(arg) {
        Some(arch) => PublishedWeights::from_env()?.fetch(arch),
        None => Ok(arg.to_owned()),
    }
}

/// The model whose published weights `arg` names, unless it is an existing path.
pub fn published_arch(arg: &Path) -> Option<Arch> {
    if arg.exists() {
        return None;
    }
    arg.to_str()?.parse().ok()
}

/// Published weights: where they are served, their hashes, and the folder they are kept in.
#[derive(Debug, Clone)]
pub struct PublishedWeights {
    base_url: String,
    hashes: Vec<(Arch, String)>,
    cache_dir: PathBuf,
    limits: DownloadLimits,
}

impl PublishedWeights {
    /// Files `cornet_<x>-<hash>.pth`, one per `(arch, hash)`, served under `base_url` (with or
    /// without a slash ending it) and kept in `cache_dir`.
    pub fn new(
        base_url: impl Into<String>,
        hashes: impl IntoIterator<Item = (Arch, String)>,
        cache_dir: impl Into<PathBuf>,
    ) -> Self {
        PublishedWeights {
            base_url: base_url.into(),
            hashes: hashes.into_iter().collect(),
            cache_dir: cache_dir.into(),
            limits: DownloadLimits::default(),
        }
    }

    /// The same files, downloaded within `limits` instead of the defaults.
    pub fn with_limits(self, limits: DownloadLimits) -> Self {
        PublishedWeights { limits, ..self }
    }

    /// The original's files, from `CORNET_WEIGHTS_BASE_URL` (when set and not empty) or its S3
    /// bucket, kept where torch.hub keeps them: `$TORCH_HOME/hub/checkpoints`, `TORCH_HOME`
    /// defaulting to `$XDG_CACHE_HOME/torch`, and that to `~/.cache/torch`.
    pub fn from_env() -> Result<Self> {
        let var = |name| std::env::var_os(name).map(PathBuf::from);
        let base_url = std::env::var(BASE_URL_VARIABLE)
            .ok()
            .filter(|url| !url.is_empty())
            .unwrap_or_else(|| ORIGINAL_BASE_URL.to_owned());
        let hashes = ORIGINAL_HASHES.map(|(arch, hash)| (arch, hash.to_owned()));
        let home = std::env::home_dir();
        let torch_home = torch_home(var("TORCH_HOME"), var("XDG_CACHE_HOME"), home)?;
        Ok(Self::new(base_url, hashes, hub_checkpoints(&torch_home)))
    }

    /// `arch`'s file, named `cornet_<x>-<hash>.pth` as the original's `get_model` names it.
    pub fn file(&self, arch: Arch) -> Result<PublishedFile> {
        let (_, hash) = self
            .hashes
            .iter()
            .find(|(a, _)| *a == arch)
            .ok_or(PublishedWeightsError::Unpublished(arch))?;
        let name = format!("cornet_{}-{hash}.pth", arch.name().to_ascii_lowercase());
        Ok(PublishedFile {
            arch,
            url: format!("{}/{name}", self.base_url.trim_end_matches('/')),
            cache_path: self.cache_dir.join(&name),
            name,
            hash_prefix: hash.clone(),
        })
    }

    /// The path of `arch`'s weights: the cached file, or else downloaded into the cache. Partial
    /// files that interrupted downloads left in the cache are removed first.
    pub fn fetch(&self, arch: Arch) -> Result<PathBuf> {
        let file = self.file(arch)?;
        partial::sweep_stale(&self.cache_dir);
        if !file.cache_path.exists() {
            self.download(&file)?;
        }
        Ok(file.cache_path)
    }

    /// Downloads `file` beside its cache path and renames it there once it is whole, has the
    /// named hash and loads; otherwise the temporary file is removed.
    fn download(&self, file: &PublishedFile) -> Result<()> {
        let PublishedFile {
            arch,
            name,
            url,
            cache_path,
            hash_prefix,
        } = file;
        std::fs::create_dir_all(&self.cache_dir).map_err(cache_error(&self.cache_dir))?;
        let mut partial =
            PartialFile::create(&self.cache_dir, name).map_err(cache_error(&self.cache_dir))?;
        tracing::info!("downloading {url} to {}", cache_path.display());
        let digest = transfer::transfer(file, self.limits, partial.file_mut())?;
        if !digest.starts_with(hash_prefix.as_str()) {
            return Err(PublishedWeightsError::HashMismatch {
                url: url.clone(),
                expected: hash_prefix.clone(),
                actual: digest,
            });
        }
        Model::from_checkpoint(partial.path(), Some(*arch), None, &candle_core::Device::Cpu)
            .map_err(|source| PublishedWeightsError::NotLoadable {
                url: url.clone(),
                arch: *arch,
                source,
            })?;
        partial
            .persist(cache_path)
            .map_err(cache_error(cache_path))?;
        Ok(())
    }
}

/// torch.hub's `_get_torch_home`: `TORCH_HOME`, else `$XDG_CACHE_HOME/torch`, else
/// `~/.cache/torch`, with a leading `~` expanded to the home folder (a variable that is set
/// counts even when empty, as in Python).
fn torch_home(
    torch_home: Option<PathBuf>,
    xdg_cache_home: Option<PathBuf>,
    home: Option<PathBuf>,
) -> Result<PathBuf> {
    let path = torch_home.unwrap_or_else(|| {
        xdg_cache_home
            .unwrap_or_else(|| PathBuf::from("~/.cache"))
            .join("torch")
    });
    expand_home(&path, home)
}

/// Python's `os.path.expanduser` for `~` and `~/...` (not `~user`, left as it is).
fn expand_home(path: &Path, home: Option<PathBuf>) -> Result<PathBuf> {
    match path.strip_prefix("~") {
        Ok(rest) => Ok(home.ok_or(PublishedWeightsError::NoCacheFolder)?.join(rest)),
        Err(_) => Ok(path.to_owned()),
    }
}

/// torch.hub's `get_dir()/checkpoints`, where `load_state_dict_from_url` keeps files.
fn hub_checkpoints(torch_home: &Path) -> PathBuf {
    torch_home.join("hub").join("checkpoints")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(s: &str) -> Option<PathBuf> {
        Some(PathBuf::from(s))
    }

    #[test]
    fn the_cache_is_where_torch_hub_keeps_it() {
        let home = path("/home/u");
        let at = |torch, xdg| hub_checkpoints(&torch_home(torch, xdg, home.clone()).unwrap());
        assert_eq!(
            at(None, None),
            Path::new("/home/u/.cache/torch/hub/checkpoints")
        );
        assert_eq!(
            at(None, path("/scratch/cache")),
            Path::new("/scratch/cache/torch/hub/checkpoints")
        );
        assert_eq!(
            at(path("/models/torch"), path("/scratch/cache")),
            Path::new("/models/torch/hub/checkpoints")
        );
        assert_eq!(
            at(path("~/t"), None),
            Path::new("/home/u/t/hub/checkpoints")
        );
        assert_eq!(
            at(None, path("~")),
            Path::new("/home/u/torch/hub/checkpoints")
        );
        // Python keeps an unknown user's `~user` as it is.
        assert_eq!(
            at(path("~other/t"), None),
            Path::new("~other/t/hub/checkpoints")
        );
    }

    #[test]
    fn file_names_and_urls_follow_the_original() {
        let weights = PublishedWeights::new(
            ORIGINAL_BASE_URL,
            ORIGINAL_HASHES.map(|(a, h)| (a, h.to_owned())),
            "/c",
        );
        let urls = Arch::ALL.map(|arch| weights.file(arch).unwrap().url);
        assert_eq!(
            urls,
            [
                "https://s3.amazonaws.com/cornet-models/cornet_z-5c427c9c.pth",
                "https://s3.amazonaws.com/cornet-models/cornet_r-5930a990.pth",
                "https://s3.amazonaws.com/cornet-models/cornet_rt-933c001c.pth",
                "https://s3.amazonaws.com/cornet-models/cornet_s-1d3f7974.pth",
            ]
        );
        assert_eq!(
            weights.file(Arch::S).unwrap().cache_path,
            Path::new("/c/cornet_s-1d3f7974.pth")
        );
        let mirror = PublishedWeights::new("http://mirror/w", [(Arch::Z, "ab".into())], "/c");
        assert_eq!(
            mirror.file(Arch::Z).unwrap().url,
            "http://mirror/w/cornet_z-ab.pth"
        );
        let err = mirror.file(Arch::S).unwrap_err().to_string();
        assert_eq!(err, "no published weights of CORnet-S are known");
    }

    /// An existing file named `S` wins over the name: the CLI test
    /// `an_existing_file_named_like_a_model_is_a_path` (this test cannot change the current
    /// folder).
    #[test]
    fn names_are_the_model_names_and_other_arguments_are_paths() {
        assert_eq!(published_arch(Path::new("RT")), Some(Arch::RT));
        assert_eq!(published_arch(Path::new("cornet_s")), Some(Arch::S));
        assert_eq!(published_arch(Path::new("z")), Some(Arch::Z));
        assert_eq!(published_arch(Path::new("no/such/weights.pth")), None);
        assert_eq!(published_arch(Path::new("weights.pth")), None);
    }
}
