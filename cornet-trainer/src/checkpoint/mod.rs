//! Checkpoints that survive crashes: written atomically, verified by checksum on load, the
//! newest `keep` kept.
//!
//! A checkpoint is a folder `OUT/checkpoints/step-<global step>/` holding
//! - `model.safetensors`: the state dict under PyTorch names (PyTorch loads it with
//!   `safetensors.torch.load_file` + `load_state_dict`);
//! - `optimizer.safetensors`: SGD's momentum buffers by parameter name;
//! - `state.json`: where training stands and where it came from, with the SHA-256 of both
//!   tensor files.
//!
//! The folder is written under a temporary name, every file fsynced, then renamed into place,
//! so a crash leaves either the whole checkpoint or none. A folder damaged afterwards (a torn
//! copy, a full disk during a manual copy) fails its checksum and is refused.
//!
//! When to write one is the [`policy`]'s question.

mod error;
pub mod policy;

pub use error::CheckpointError;
pub use policy::CheckpointPolicy;

use error::{io, with_causes};

use crate::files::Aside;
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};

const MODEL_FILE: &str = "model.safetensors";
const OPTIMIZER_FILE: &str = "optimizer.safetensors";
const STATE_FILE: &str = "state.json";
const PREFIX: &str = "step-";
/// Marks a folder still being written; only ever left behind by a crash.
const TMP_SUFFIX: &str = ".tmp";

/// What checkpoint operations return.
pub type Result<T, E = CheckpointError> = std::result::Result<T, E>;

/// Where training stands: enough, with the weights and momentum, to go on exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Optimizer steps taken since the start of the run.
    pub global_step: u64,
    /// The epoch in progress (0-based) and the steps of it already taken: the sampler restarts
    /// there. Augmentation draws are a function of (seed, epoch, sample), so this and the seed
    /// are the whole random state.
    pub epoch: u64,
    /// Steps of `epoch` already taken.
    pub step_in_epoch: u64,
    /// Steps in an epoch when the checkpoint was taken (the training set over the global
    /// batch): the position above means nothing at another length. 0 in checkpoints written
    /// before it was recorded.
    #[serde(default)]
    pub steps_per_epoch: u64,
    /// The run's seed.
    pub seed: u64,
    /// Where the run came from; a resume under a different one is refused unless forced.
    pub provenance: Provenance,
}

/// Where a run came from: what must not change between a checkpoint and its resume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// Hash of the resolved experiment config.
    pub config_hash: String,
    /// Version of cornet-trainer that wrote the checkpoint.
    pub code_version: String,
    /// Checksum of the training set's file list (or shard manifest).
    pub dataset_checksum: String,
    /// The elastic agent's id of the job that wrote the checkpoint (torchrun's
    /// `TORCHELASTIC_RUN_ID`), when it had one: a worker of the same job that the agent starts
    /// anew without counting a restart (a node joined) continues from it by itself. Not a
    /// difference that refuses a resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elastic_run: Option<String>,
}

impl Provenance {
    /// What differs from `other`, in words; empty when a resume may go on.
    pub fn differences(&self, other: &Provenance) -> Vec<String> {
        let mut out = Vec::new();
        if self.config_hash != other.config_hash {
            out.push(format!(
                "the config changed (hash {} in the checkpoint, {} now)",
                other.config_hash, self.config_hash
            ));
        }
        if self.dataset_checksum != other.dataset_checksum {
            out.push(format!(
                "the training data changed (checksum {} in the checkpoint, {} now)",
                other.dataset_checksum, self.dataset_checksum
            ));
        }
        out
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct StateFile {
    state: TrainState,
    /// SHA-256 of each tensor file, by file name.
    checksums: BTreeMap<String, String>,
}

/// Everything a checkpoint holds.
#[derive(Debug)]
pub struct Checkpoint {
    /// The model's state dict, under PyTorch names.
    pub model: Vec<(String, Tensor)>,
    /// SGD's momentum buffers by parameter name.
    pub momentum: HashMap<String, Tensor>,
    /// Where training stands.
    pub state: TrainState,
}

/// The checkpoints of one run.
#[derive(Debug, Clone)]
pub struct CheckpointDir {
    root: PathBuf,
    keep: usize,
}

impl CheckpointDir {
    /// The checkpoints in `root` (created at the first save), the newest `keep` (at least
    /// one) kept.
    pub fn new(root: impl Into<PathBuf>, keep: usize) -> Self {
        CheckpointDir {
            root: root.into(),
            keep: keep.max(1),
        }
    }

    /// Writes `checkpoint` atomically, then deletes all but the newest `keep`.
    pub fn save(&self, checkpoint: &Checkpoint) -> Result<PathBuf> {
        std::fs::create_dir_all(&self.root)
            .map_err(io(|| format!("creating {}", self.root.display())))?;
        let name = format!("{PREFIX}{:010}", checkpoint.state.global_step);
        let final_dir = self.root.join(&name);
        let tmp_dir = self.root.join(format!(".{name}{TMP_SUFFIX}"));
        self.remove_unfinished()?;
        let aside = Aside::at(&final_dir, tmp_dir.clone());
        std::fs::create_dir(&tmp_dir).map_err(io(|| format!("creating {}", tmp_dir.display())))?;

        let momentum: Vec<_> = checkpoint
            .momentum
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut checksums = BTreeMap::new();
        for (file, tensors) in [(MODEL_FILE, &checkpoint.model), (OPTIMIZER_FILE, &momentum)] {
            let path = tmp_dir.join(file);
            cornet_model::weights::write_safetensors(&path, tensors)?;
            checksums.insert(file.to_string(), sha256_file(&path)?);
            fsync(&path)?;
        }
        let state = StateFile {
            state: checkpoint.state.clone(),
            checksums,
        };
        let state_path = tmp_dir.join(STATE_FILE);
        std::fs::write(&state_path, serde_json::to_vec_pretty(&state)?)
            .map_err(io(|| format!("writing {}", state_path.display())))?;
        fsync(&state_path)?;
        fsync(&tmp_dir)?;

        if final_dir.exists() {
            // Saved twice at the same step (e.g. an epoch end that is also a step boundary).
            std::fs::remove_dir_all(&final_dir)
                .map_err(io(|| format!("replacing {}", final_dir.display())))?;
        }
        aside
            .commit()
            .map_err(io(|| format!("renaming {} into place", tmp_dir.display())))?;
        fsync(&self.root)?;
        self.prune()?;
        Ok(final_dir)
    }

    /// Checkpoint folders, newest first.
    pub fn list(&self) -> Result<Vec<PathBuf>> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(|| format!("reading {}", self.root.display()))(e)),
        };
        let mut dirs: Vec<(u64, PathBuf)> = entries
            .filter_map(|entry| {
                let entry = entry.ok()?;
                let step = entry
                    .file_name()
                    .to_str()?
                    .strip_prefix(PREFIX)?
                    .parse()
                    .ok()?;
                Some((step, entry.path()))
            })
            .collect();
        dirs.sort_by_key(|(step, _)| std::cmp::Reverse(*step));
        Ok(dirs.into_iter().map(|(_, path)| path).collect())
    }

    /// The newest checkpoint that loads and verifies, skipping (with a warning) damaged ones.
    pub fn latest_valid(&self, device: &Device) -> Result<Option<(PathBuf, Checkpoint)>> {
        for dir in self.list()? {
            match load(&dir, device) {
                Ok(checkpoint) => return Ok(Some((dir, checkpoint))),
                Err(err) => tracing::warn!("skipping damaged checkpoint: {}", with_causes(&err)),
            }
        }
        Ok(None)
    }

    /// Removes what crashed saves left (only rank 0 writes, so none is in progress).
    fn remove_unfinished(&self) -> Result<()> {
        let reading = || format!("reading {}", self.root.display());
        for entry in std::fs::read_dir(&self.root).map_err(io(reading))? {
            let path = entry.map_err(io(reading))?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if name.starts_with('.') && name.ends_with(TMP_SUFFIX) {
                std::fs::remove_dir_all(&path)
                    .map_err(io(|| format!("removing the leftover {}", path.display())))?;
            }
        }
        Ok(())
    }

    fn prune(&self) -> Result<()> {
        for old in self.list()?.into_iter().skip(self.keep) {
            std::fs::remove_dir_all(&old).map_err(io(|| format!("removing {}", old.display())))?;
        }
        Ok(())
    }
}

/// The state of the checkpoint in `dir`, read alone (its tensors neither read nor verified).
pub fn read_state(dir: &Path) -> Result<TrainState> {
    Ok(read_state_file(dir)?.state)
}

fn read_state_file(dir: &Path) -> Result<StateFile> {
    let state_path = dir.join(STATE_FILE);
    let bytes =
        std::fs::read(&state_path).map_err(io(|| format!("reading {}", state_path.display())))?;
    serde_json::from_slice(&bytes).map_err(|source| CheckpointError::BadState {
        path: state_path,
        source,
    })
}

/// Loads and verifies one checkpoint folder.
pub fn load(dir: &Path, device: &Device) -> Result<Checkpoint> {
    let state_path = dir.join(STATE_FILE);
    let state = read_state_file(dir)?;
    for file in [MODEL_FILE, OPTIMIZER_FILE] {
        let path = dir.join(file);
        let expected = state
            .checksums
            .get(file)
            .ok_or_else(|| CheckpointError::NoChecksum {
                path: state_path.clone(),
                file: file.to_string(),
            })?;
        let actual = sha256_file(&path)?;
        if &actual != expected {
            return Err(CheckpointError::ChecksumMismatch {
                path,
                actual,
                expected: expected.clone(),
            });
        }
    }
    let read = |file: &str| -> Result<HashMap<String, Tensor>> {
        let path = dir.join(file);
        candle_core::safetensors::load(&path, device)
            .map_err(|source| CheckpointError::ReadTensors { path, source })
    };
    Ok(Checkpoint {
        model: read(MODEL_FILE)?.into_iter().collect(),
        momentum: read(OPTIMIZER_FILE)?,
        state: state.state,
    })
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).map_err(io(|| format!("opening {}", path.display())))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(io(|| format!("reading {}", path.display())))?;
    Ok(hex::encode(hasher.finalize()))
}

fn fsync(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(io(|| format!("syncing {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;

    fn checkpoint(step: u64) -> Checkpoint {
        let t = |v: f32| Tensor::full(v, (2, 3), &Device::Cpu).unwrap();
        Checkpoint {
            model: vec![("V1.conv.weight".into(), t(step as f32))],
            momentum: HashMap::from([("V1.conv.weight".to_string(), t(-1.0))]),
            state: TrainState {
                global_step: step,
                epoch: 0,
                step_in_epoch: step,
                steps_per_epoch: 12,
                seed: 7,
                provenance: Provenance {
                    config_hash: "c".into(),
                    code_version: "v".into(),
                    dataset_checksum: "d".into(),
                    elastic_run: None,
                },
            },
        }
    }

    fn first_value(c: &Checkpoint) -> f32 {
        c.model[0]
            .1
            .flatten_all()
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()[0]
    }

    #[test]
    fn save_load_round_trip_and_keep_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let ckpts = CheckpointDir::new(dir.path(), 2);
        for step in [10, 20, 30] {
            ckpts.save(&checkpoint(step)).unwrap();
        }
        let kept: Vec<_> = ckpts
            .list()
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_owned())
            .collect();
        assert_eq!(kept, ["step-0000000030", "step-0000000020"]);
        let (_, latest) = ckpts.latest_valid(&Device::Cpu).unwrap().unwrap();
        assert_eq!(latest.state, checkpoint(30).state);
        assert_eq!(first_value(&latest), 30.0);
    }

    #[test]
    fn a_damaged_newest_checkpoint_falls_back_to_the_previous() {
        let dir = tempfile::tempdir().unwrap();
        let ckpts = CheckpointDir::new(dir.path(), 3);
        ckpts.save(&checkpoint(1)).unwrap();
        let newest = ckpts.save(&checkpoint(2)).unwrap();
        let model = newest.join(MODEL_FILE);
        let bytes = std::fs::read(&model).unwrap();
        std::fs::write(&model, &bytes[..bytes.len() / 2]).unwrap();

        let err = load(&newest, &Device::Cpu).unwrap_err().to_string();
        assert!(err.contains("checksum mismatch"), "{err}");
        let (path, fallback) = ckpts.latest_valid(&Device::Cpu).unwrap().unwrap();
        assert_eq!(fallback.state.global_step, 1);
        assert!(path.ends_with("step-0000000001"));
    }

    #[test]
    fn an_unfinished_write_is_invisible_and_cleaned_up() {
        let dir = tempfile::tempdir().unwrap();
        let ckpts = CheckpointDir::new(dir.path(), 3);
        // What a crash in the middle of `save` leaves behind.
        std::fs::create_dir(dir.path().join(".step-0000000004.tmp")).unwrap();
        assert!(ckpts.latest_valid(&Device::Cpu).unwrap().is_none());
        ckpts.save(&checkpoint(5)).unwrap();
        assert!(!dir.path().join(".step-0000000004.tmp").exists());
        assert_eq!(ckpts.list().unwrap().len(), 1);
    }
}
