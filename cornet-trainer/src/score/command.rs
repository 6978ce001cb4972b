//! `cornet-trainer score`: features and recordings from .npy files to a table or JSON.

use super::error::{Result, ScoreError};
use super::{
    centred_gram, cka_from_grams, cross_validated_predictivity, mean_over_repetitions, rdm, rsa,
    split_half_ceiling, LayerFeatures,
};
use crate::error::Explain;
use candle_core::Tensor;
use nalgebra::DMatrix;
use npyz::WriterBuilder;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// PLS components, as in Brain-Score.
const COMPONENTS: usize = 25;
const FOLDS: usize = 10;
const SPLITS: usize = 10;

/// Which scores to compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Representational similarity analysis (Spearman and Pearson).
    Rsa,
    /// Linear centred kernel alignment.
    Cka,
    /// Cross-validated PLS predictivity, with the split-half noise ceiling.
    Pls,
    /// All of them.
    All,
}

/// The scores of one set of features; those not asked for (or undefined) are `None`.
#[derive(Debug, Default, Serialize)]
pub struct Scores {
    /// Spearman correlation of the model's and the neural RDMs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rsa_spearman: Option<f64>,
    /// Pearson correlation of the model's and the neural RDMs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rsa_pearson: Option<f64>,
    /// Linear CKA of the features and the mean responses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cka_linear: Option<f64>,
    /// Median over neuroids of the cross-validated PLS prediction's r.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predictivity_raw: Option<f64>,
    /// Median over neuroids of the split-half noise ceiling.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ceiling: Option<f64>,
    /// `predictivity_raw / ceiling`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predictivity_ceiled: Option<f64>,
    /// The PLS prediction's r per neuroid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub r_neuroid: Option<Vec<f64>>,
    /// The ceiling per neuroid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ceiling_neuroid: Option<Vec<f64>>,
}

impl Scores {
    /// The scalar scores as (JSON name, label, value), in the order a table shows them.
    pub fn scalars(&self) -> [(&'static str, &'static str, Option<f64>); 6] {
        [
            ("rsa_spearman", "RSA (Spearman)", self.rsa_spearman),
            ("rsa_pearson", "RSA (Pearson)", self.rsa_pearson),
            ("cka_linear", "linear CKA", self.cka_linear),
            (
                "predictivity_raw",
                "PLS predictivity (raw, median r)",
                self.predictivity_raw,
            ),
            ("ceiling", "noise ceiling (split-half)", self.ceiling),
            (
                "predictivity_ceiled",
                "PLS predictivity / ceiling",
                self.predictivity_ceiled,
            ),
        ]
    }
}

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
    /// Where generated folds and split halves are written.
    pub out_dir: PathBuf,
}

impl NeuralRequest {
    /// What the metric needs: folds and split halves for PLS, nothing for RSA and CKA alone.
    pub fn protocol(&self, recordings: &Recordings) -> Result<Protocol> {
        match self.metric {
            Metric::Rsa | Metric::Cka => Ok(Protocol {
                folds: Vec::new(),
                splits: None,
            }),
            Metric::Pls | Metric::All => Protocol::resolve(self, recordings),
        }
    }
}

/// `score --features`: features from a file against recordings.
pub struct ScoreRequest {
    /// Features, float32/64 `.npy` `[stimuli, units]`.
    pub features: PathBuf,
    /// The recordings and the protocol.
    pub neural: NeuralRequest,
}

/// Neural responses: one [stimuli x neuroids] matrix per repetition.
pub struct Recordings {
    /// One `[stimuli x neuroids]` matrix per repetition.
    pub trials: Vec<DMatrix<f64>>,
    /// Whether the file had a repetition axis (then a ceiling is asked for).
    pub has_repetitions: bool,
}

impl Recordings {
    /// Stimuli recorded.
    pub fn stimuli(&self) -> usize {
        self.trials[0].nrows()
    }

    /// `[repetitions, stimuli, neuroids]` or `[stimuli, neuroids]` floats (.npy or npz entry).
    pub fn load(path: &Path) -> Result<Recordings> {
        let (shape, values) = read_npy(path)?;
        let (has_repetitions, stimuli, neuroids) = match shape[..] {
            [_, s, n] => (true, s, n),
            [s, n] => (false, s, n),
            _ => return Err(ScoreError::Shape(format!("{}: recordings must be [repetitions, stimuli, neuroids] or [stimuli, neuroids], got {shape:?}", path.display()))),
        };
        let trials = values
            .chunks(stimuli * neuroids)
            .map(|block| DMatrix::from_row_slice(stimuli, neuroids, block))
            .collect();
        Ok(Recordings {
            trials,
            has_repetitions,
        })
    }
}

/// The cross-validation folds and split halves of a score, fixed once for every layer scored.
pub struct Protocol {
    /// The cross-validation fold of each stimulus.
    pub folds: Vec<usize>,
    /// `None` when no ceiling is asked for (responses without a repetition axis).
    pub splits: Option<Vec<Vec<usize>>>,
}

impl Protocol {
    /// Reads the request's folds and split halves, or draws them from its seed and writes
    /// them to its output folder so that the score can be reproduced.
    fn resolve(request: &NeuralRequest, recordings: &Recordings) -> Result<Protocol> {
        let (seed, out_dir) = (request.seed, &request.out_dir);
        let split_halves = request.split_halves.as_deref();
        let stimuli = recordings.stimuli();
        let folds = match request.folds.as_deref() {
            Some(path) => read_indices(path, stimuli)?,
            None => {
                let folds = random_folds(stimuli, seed);
                write_indices(&out_dir.join("folds.npy"), &[stimuli], &folds)?;
                folds
            }
        };
        let fold_count = folds.iter().max().map_or(0, |m| m + 1);
        for f in 0..fold_count {
            let train = folds.iter().filter(|&&g| g != f).count();
            if train < COMPONENTS {
                return Err(ScoreError::Protocol(format!("fold {f} leaves {train} training stimuli, fewer than the {COMPONENTS} PLS components")));
            }
        }
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
                None => {
                    let splits = random_splits(reps, seed);
                    write_indices(
                        &out_dir.join("split_halves.npy"),
                        &[SPLITS, reps],
                        &splits.concat(),
                    )?;
                    splits
                }
            })
        } else {
            None
        };
        Ok(Protocol { folds, splits })
    }
}

/// The recordings' side of a score, the same for every layer scored against them.
pub struct NeuralTarget {
    /// Mean over repetitions [stimuli x neuroids].
    responses: DMatrix<f64>,
    rdm: DMatrix<f64>,
    centred_gram: DMatrix<f64>,
    /// Per-neuroid split-half ceiling and its median, when the protocol has split halves.
    ceiling: Option<(Vec<f64>, f64)>,
}

impl NeuralTarget {
    /// The mean responses and what every layer's scores compare against.
    pub fn new(recordings: &Recordings, protocol: &Protocol) -> NeuralTarget {
        let responses = mean_over_repetitions(&recordings.trials);
        NeuralTarget {
            rdm: rdm(&responses),
            centred_gram: centred_gram(&responses),
            ceiling: protocol
                .splits
                .as_ref()
                .map(|splits| split_half_ceiling(&recordings.trials, splits)),
            responses,
        }
    }

    /// The split-half ceiling's median, when there is one.
    pub fn ceiling(&self) -> Option<f64> {
        self.ceiling.as_ref().map(|(_, median)| *median)
    }
}

/// One layer's `features` against `target` under `protocol`.
pub fn score_layer(
    features: &LayerFeatures,
    target: &NeuralTarget,
    protocol: &Protocol,
    metric: Metric,
) -> Scores {
    let wants = |m: Metric| metric == m || metric == Metric::All;
    let mut scores = Scores::default();
    if wants(Metric::Rsa) {
        let (spearman, pearson) = rsa(&features.rdm, &target.rdm);
        scores.rsa_spearman = Some(spearman);
        scores.rsa_pearson = Some(pearson);
    }
    if wants(Metric::Cka) {
        scores.cka_linear = Some(cka_from_grams(&features.centred_gram, &target.centred_gram));
    }
    if wants(Metric::Pls) {
        let p = cross_validated_predictivity(
            &features.pls_input,
            &target.responses,
            &protocol.folds,
            COMPONENTS,
        );
        if let Some((per_neuroid, ceiling)) = &target.ceiling {
            scores.ceiling = Some(*ceiling);
            scores.predictivity_ceiled = Some(p.raw / ceiling);
            scores.ceiling_neuroid = Some(per_neuroid.clone());
        }
        scores.predictivity_raw = Some(p.raw);
        scores.r_neuroid = Some(p.r_neuroid);
    }
    scores
}

/// Scores the features of `request` against its recordings.
pub fn score(request: &ScoreRequest) -> Result<Scores> {
    let (features_shape, features) = read_npy(&request.features)?;
    let [stimuli, units] = features_shape[..] else {
        return Err(ScoreError::Shape(format!(
            "{}: features must be [stimuli, units], got {features_shape:?}",
            request.features.display()
        )));
    };
    let neural = &request.neural;
    let recordings = Recordings::load(&neural.recordings)?;
    if recordings.stimuli() != stimuli {
        return Err(ScoreError::Shape(format!(
            "{} has {stimuli} stimuli but {} has {}",
            request.features.display(),
            neural.recordings.display(),
            recordings.stimuli()
        )));
    }
    let protocol = neural.protocol(&recordings)?;
    let features = Tensor::from_vec(features, (stimuli, units), &candle_core::Device::Cpu)?;
    let Some(features) = LayerFeatures::new(&features).explain(ScoreError::Features, || {
        request.features.display().to_string()
    })?
    else {
        return Err(ScoreError::Features(
            format!(
                "{}: the features are the same for every stimulus; nothing to score",
                request.features.display()
            ),
            None,
        ));
    };
    let target = NeuralTarget::new(&recordings, &protocol);
    Ok(score_layer(&features, &target, &protocol, neural.metric))
}

/// The .npy bytes of `path`: a `.npy` file, or `archive.npz:name` for one array of an
/// `.npz` (as numpy's `np.savez` writes them).
fn array_bytes(path: &Path) -> Result<Vec<u8>> {
    let text = path.to_string_lossy();
    let Some((archive, name)) = text.split_once(".npz:") else {
        return std::fs::read(path)
            .explain(ScoreError::Read, || format!("reading {}", path.display()));
    };
    let archive = format!("{archive}.npz");
    let file =
        std::fs::File::open(&archive).explain(ScoreError::Read, || format!("reading {archive}"))?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
        .explain(ScoreError::Read, || {
            format!("{archive}: not an .npz archive")
        })?;
    let mut entry = zip
        .by_name(&format!("{name}.npy"))
        .explain(ScoreError::Read, || {
            format!("{archive} has no array `{name}`")
        })?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut entry, &mut bytes)
        .explain(ScoreError::Read, || format!("reading {archive}:{name}"))?;
    Ok(bytes)
}

/// An .npy of floats (f32 or f64), as f64 in row-major order, with its shape. NaN and
/// infinity are refused, naming the file.
fn read_npy(path: &Path) -> Result<(Vec<usize>, Vec<f64>)> {
    let bytes = array_bytes(path)?;
    let npy = npyz::NpyFile::new(&bytes[..]).explain(ScoreError::Read, || {
        format!("{}: not an .npy file", path.display())
    })?;
    if npy.order() != npyz::Order::C {
        return Err(ScoreError::Read(
            format!(
                "{}: Fortran-ordered arrays are not supported",
                path.display()
            ),
            None,
        ));
    }
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let values: Vec<f64> = match npy.dtype() {
        npyz::DType::Plain(t) if t.type_char() == npyz::TypeChar::Float && t.size_field() == 4 => {
            npy.into_vec::<f32>()?.into_iter().map(f64::from).collect()
        }
        npyz::DType::Plain(t) if t.type_char() == npyz::TypeChar::Float && t.size_field() == 8 => {
            npy.into_vec::<f64>()?
        }
        other => {
            return Err(ScoreError::Read(
                format!(
                    "{}: expected float32 or float64, got {other:?}",
                    path.display()
                ),
                None,
            ))
        }
    };
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(ScoreError::Read(
            format!(
                "{}: element {i} is {} (NaN or infinite values cannot be scored)",
                path.display(),
                values[i]
            ),
            None,
        ));
    }
    Ok((shape, values))
}

fn read_int_npy(path: &Path) -> Result<(Vec<usize>, Vec<i64>)> {
    let bytes = array_bytes(path)?;
    let npy = npyz::NpyFile::new(&bytes[..]).explain(ScoreError::Read, || {
        format!("{}: not an .npy file", path.display())
    })?;
    let shape = npy.shape().iter().map(|&d| d as usize).collect();
    let values = npy.into_vec::<i64>().explain(ScoreError::Read, || {
        format!("{}: expected int64", path.display())
    })?;
    Ok((shape, values))
}

fn read_indices(path: &Path, stimuli: usize) -> Result<Vec<usize>> {
    let (shape, values) = read_int_npy(path)?;
    if shape != [stimuli] || values.iter().any(|&v| v < 0) {
        return Err(ScoreError::Protocol(format!(
            "{}: folds must be {stimuli} non-negative fold numbers, got shape {shape:?}",
            path.display()
        )));
    }
    Ok(values.into_iter().map(|v| v as usize).collect())
}

fn read_splits(path: &Path, reps: usize) -> Result<Vec<Vec<usize>>> {
    let (shape, values) = read_int_npy(path)?;
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

fn write_indices(path: &Path, shape: &[usize], values: &[usize]) -> Result<()> {
    std::fs::create_dir_all(path.parent().unwrap_or(Path::new("."))).ok();
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let mut bytes = Vec::new();
    let mut writer = npyz::WriteOptions::<i64>::new()
        .default_dtype()
        .shape(&shape)
        .writer(&mut bytes)
        .begin_nd()?;
    writer.extend(values.iter().map(|&v| v as i64))?;
    writer.finish()?;
    std::fs::write(path, bytes)
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
