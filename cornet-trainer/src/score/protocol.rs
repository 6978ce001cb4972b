//! How a score is taken: the recordings and options asked for, and the cross-validation
//! folds and split halves, read from files or drawn from a seed (and saved, so that a drawn
//! score can be reproduced).

use super::error::{Result, ScoreError};
use super::metric::Metric;
use super::target::Recordings;
use crate::arrays;
use crate::error::Explain;
use npyz::WriterBuilder;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::path::{Path, PathBuf};

/// PLS components, as in Brain-Score (`--components`' default).
pub const COMPONENTS: usize = 25;
const FOLDS: usize = 10;
const SPLITS: usize = 10;

/// What a score compares against and how: the part shared by `score --features` and
/// `score --model`.
pub struct NeuralRequest {
    /// The recordings, `.npy` `[repetitions, stimuli, neuroids]` or `[stimuli, neuroids]`.
    pub recordings: PathBuf,
    /// Cross-validation fold per stimulus (int64 `.npy`); drawn when `None`.
    pub folds: Option<PathBuf>,
    /// Split halves (int64 `.npy` `[splits, repetitions]`); drawn when `None`.
    pub split_halves: Option<PathBuf>,
    /// Which scores.
    pub metric: Metric,
    /// Seed of the folds and split halves drawn.
    pub seed: u64,
    /// PLS components; at most as many as the features have units, as scikit-learn demands.
    pub components: usize,
    /// The folder that drawn folds and split halves are written into (`folds.npy`,
    /// `split_halves.npy`); not written when `None`, since `seed` draws them again.
    pub save_draws: Option<PathBuf>,
}

impl NeuralRequest {
    /// What the metric needs: folds and split halves for PLS, nothing for RSA and CKA alone.
    pub fn protocol(&self, recordings: &Recordings) -> Result<Protocol> {
        match self.metric {
            Metric::Rsa | Metric::Cka => Ok(Protocol {
                folds: Vec::new(),
                splits: None,
                components: self.components,
            }),
            Metric::Pls | Metric::All => Protocol::resolve(self, recordings),
        }
    }
}

/// The cross-validation folds and split halves of a score, fixed once for every layer scored.
pub struct Protocol {
    /// The cross-validation fold of each stimulus.
    pub folds: Vec<usize>,
    /// `None` when no ceiling is asked for (responses without a repetition axis).
    pub splits: Option<Vec<Vec<usize>>>,
    /// PLS components.
    pub components: usize,
}

impl Protocol {
    /// Reads the request's folds and split halves, or draws them from its seed and writes
    /// them into its `save_draws` folder, if any, so that the score can be reproduced.
    fn resolve(request: &NeuralRequest, recordings: &Recordings) -> Result<Protocol> {
        let (seed, stimuli) = (request.seed, recordings.stimuli());
        let folds = match request.folds.as_deref() {
            Some(path) => read_indices(path, stimuli)?,
            None => random_folds(stimuli, seed),
        };
        check_folds(request, &folds)?;
        let split_halves = request.split_halves.as_deref();
        let reps = recordings.trials.len();
        // A repetition axis (or given split halves) asks for a ceiling; 2-D responses have none.
        let splits = if recordings.has_repetitions || split_halves.is_some() {
            if reps < 2 {
                return Err(ScoreError::Protocol(format!(
                    "{}: a ceiling needs at least 2 repetitions, got {reps}",
                    request.recordings.display()
                )));
            }
            Some(match split_halves {
                Some(path) => read_splits(path, reps)?,
                None => random_splits(reps, seed),
            })
        } else {
            None
        };
        // Saved once the protocol is known to work: a refused one leaves no files behind.
        if let Some(dir) = &request.save_draws {
            if request.folds.is_none() {
                write_draw(&dir.join("folds.npy"), &[stimuli], &folds)?;
            }
            if let (None, Some(splits)) = (split_halves, &splits) {
                write_draw(
                    &dir.join("split_halves.npy"),
                    &[SPLITS, reps],
                    &splits.concat(),
                )?;
            }
        }
        Ok(Protocol {
            folds,
            splits,
            components: request.components,
        })
    }
}

/// Folds that leave enough training stimuli for the PLS components and at least 2 test
/// stimuli per fold: predictivity is a Pearson r per neuroid over each fold's test stimuli.
fn check_folds(request: &NeuralRequest, folds: &[usize]) -> Result<()> {
    let source = match &request.folds {
        Some(path) => format!("--folds {}", path.display()),
        None => format!("the {FOLDS} folds drawn for {} stimuli", folds.len()),
    };
    let components = request.components;
    let fold_count = folds.iter().max().map_or(0, |m| m + 1);
    for f in 0..fold_count {
        let test = folds.iter().filter(|&&g| g == f).count();
        let train = folds.len() - test;
        let problem = if train < components {
            format!("fold {f} leaves {train} training stimuli, fewer than the {components} PLS components (--components)")
        } else if test == 0 {
            format!("fold {f} has no stimuli: number the folds 0 to k-1 without gaps")
        } else if test == 1 {
            format!("fold {f} holds 1 stimulus, but predictivity (a Pearson r per neuroid over a fold's test stimuli) needs at least 2: leave-one-out folds cannot be scored")
        } else {
            continue;
        };
        return Err(ScoreError::Protocol(format!("{source}: {problem}")));
    }
    Ok(())
}

fn read_indices(path: &Path, stimuli: usize) -> Result<Vec<usize>> {
    let arrays::Array { shape, values } = arrays::read_i64(path)?;
    if shape != [stimuli] || values.iter().any(|&v| v < 0) {
        return Err(ScoreError::Protocol(format!(
            "{}: folds must be {stimuli} non-negative fold numbers, got shape {shape:?}",
            path.display()
        )));
    }
    Ok(values.into_iter().map(|v| v as usize).collect())
}

fn read_splits(path: &Path, reps: usize) -> Result<Vec<Vec<usize>>> {
    let arrays::Array { shape, values } = arrays::read_i64(path)?;
    if shape.first() == Some(&0) {
        return Err(ScoreError::Protocol(format!(
            "{}: no split halves (0 rows): a ceiling averages over at least one split",
            path.display()
        )));
    }
    if shape.len() != 2 || shape[1] != reps {
        return Err(ScoreError::Protocol(format!("{}: split halves must be [splits, {reps}] permutations of the repetitions, got {shape:?}", path.display())));
    }
    let splits: Vec<Vec<usize>> = values
        .chunks(reps)
        .map(|r| r.iter().map(|&v| v as usize).collect())
        .collect();
    for split in &splits {
        let mut sorted = split.clone();
        sorted.sort();
        if sorted != (0..reps).collect::<Vec<_>>() {
            return Err(ScoreError::Protocol(format!(
                "{}: row {split:?} is not a permutation of 0..{reps}",
                path.display()
            )));
        }
    }
    Ok(splits)
}

/// Writes drawn indices as an int64 `.npy`. A file already there is kept when it holds the
/// same draw (a rerun with the same seed) and refused otherwise: another score's folds are
/// never replaced unasked.
fn write_draw(path: &Path, shape: &[usize], values: &[usize]) -> Result<()> {
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let mut bytes = Vec::new();
    let mut writer = npyz::WriteOptions::<i64>::new()
        .default_dtype()
        .shape(&shape)
        .writer(&mut bytes)
        .begin_nd()?;
    writer.extend(values.iter().map(|&v| v as i64))?;
    writer.finish()?;
    if path.exists() {
        if std::fs::read(path).is_ok_and(|existing| existing == bytes) {
            return Ok(());
        }
        return Err(ScoreError::Output(
            format!(
                "{} already exists and holds another draw: pass it back (--folds, \
                 --split-halves) to reuse it, or remove it or choose another folder",
                path.display()
            ),
            None,
        ));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .explain(ScoreError::Output, || format!("creating {}", dir.display()))?;
    }
    crate::files::write_whole(path, bytes)
        .explain(ScoreError::Output, || format!("writing {}", path.display()))?;
    tracing::info!(
        "wrote {} (pass it back to reproduce this score)",
        path.display()
    );
    Ok(())
}

/// Stimuli shuffled by `seed`, then dealt into 10 folds.
fn random_folds(stimuli: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..stimuli).collect();
    order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
    let mut folds = vec![0; stimuli];
    for (position, &stimulus) in order.iter().enumerate() {
        folds[stimulus] = position % FOLDS;
    }
    folds
}

fn random_splits(reps: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed.wrapping_add(1));
    (0..SPLITS)
        .map(|_| {
            let mut perm: Vec<usize> = (0..reps).collect();
            perm.shuffle(&mut rng);
            perm
        })
        .collect()
}
