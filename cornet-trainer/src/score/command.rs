//! `cornet-trainer score`: features and recordings from .npy files to a table or JSON.

use super::error::{Result, ScoreError};
use super::{
    centred_gram, cka_from_grams, cross_validated_predictivity, mean_over_repetitions, rdm, rsa,
    split_half_ceiling, stats::varies, LayerFeatures,
};
use crate::error::Explain;
use candle_core::Tensor;
use nalgebra::DMatrix;
use npyz::WriterBuilder;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// PLS components, as in Brain-Score (`--components`' default).
pub const COMPONENTS: usize = 25;
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

impl Metric {
    /// Whether asking for `self` asks for `metric`.
    fn includes(self, metric: Metric) -> bool {
        self == metric || self == Metric::All
    }
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
    /// The mean responses and what every layer's scores compare against. Responses for which
    /// a score asked for is undefined are refused here, naming the recordings, before any
    /// layer is scored.
    pub fn new(
        request: &NeuralRequest,
        recordings: &Recordings,
        protocol: &Protocol,
    ) -> Result<NeuralTarget> {
        let path = request.recordings.display();
        let responses = mean_over_repetitions(&recordings.trials);
        let refuse = |why: String| Err(ScoreError::Undefined(format!("{path}: {why}"), None));
        let column = |n: usize| responses.column(n).iter().copied().collect::<Vec<f64>>();
        let row = |i: usize| responses.row(i).iter().copied().collect::<Vec<f64>>();
        let neuroids = responses.ncols();
        if !(0..neuroids).any(|n| varies(&column(n))) {
            return refuse(
                "the mean responses are the same for every stimulus: no score is defined".into(),
            );
        }
        if request.metric.includes(Metric::Rsa) {
            if let Some(i) = (0..responses.nrows()).find(|&i| !varies(&row(i))) {
                return refuse(format!("stimulus {i}'s mean response is the same in all {neuroids} neuroids, so its correlation distance to other stimuli, and RSA, are undefined"));
            }
        }
        if request.metric.includes(Metric::Pls) {
            if let Some(n) = (0..neuroids).find(|&n| !varies(&column(n))) {
                return refuse(format!("neuroid {n}'s mean response is the same for every stimulus, so its predictivity (a Pearson r over stimuli) is undefined"));
            }
        }
        let ceiling = match &protocol.splits {
            Some(splits) => Some(
                split_half_ceiling(&recordings.trials, splits)
                    .explain(ScoreError::Undefined, || {
                        format!("the noise ceiling of {path}")
                    })?,
            ),
            None => None,
        };
        Ok(NeuralTarget {
            rdm: rdm(&responses),
            centred_gram: centred_gram(&responses),
            ceiling,
            responses,
        })
    }

    /// The split-half ceiling's median, when there is one.
    pub fn ceiling(&self) -> Option<f64> {
        self.ceiling.as_ref().map(|(_, median)| *median)
    }
}

/// One layer's `features` against `target` under `protocol`. A score that the features leave
/// undefined is an error that says why; no score is ever NaN or infinite.
pub fn score_layer(
    features: &LayerFeatures,
    target: &NeuralTarget,
    protocol: &Protocol,
    metric: Metric,
) -> Result<Scores> {
    let wants = |m: Metric| metric.includes(m);
    let undefined = |why: String| Err(ScoreError::Undefined(why, None));
    let mut scores = Scores::default();
    if wants(Metric::Rsa) {
        if features.units < 2 {
            return undefined("RSA needs at least 2 units: the correlation distance between stimuli is undefined for features of 1 unit".into());
        }
        if let Some(i) = features.constant_stimulus {
            return undefined(format!("stimulus {i}'s features are the same in all {} units, so its correlation distance to other stimuli, and RSA, are undefined", features.units));
        }
        let (spearman, pearson) = rsa(&features.rdm, &target.rdm);
        scores.rsa_spearman = Some(spearman);
        scores.rsa_pearson = Some(pearson);
    }
    if wants(Metric::Cka) {
        scores.cka_linear = Some(cka_from_grams(&features.centred_gram, &target.centred_gram));
    }
    if wants(Metric::Pls) {
        let (units, components) = (features.units, protocol.components);
        if components > units {
            // scikit-learn's PLSRegression refuses n_components > n_features.
            return undefined(format!("--components {components}: PLS fits at most as many components as the features have units, and they have {units}: give --components {units} or fewer"));
        }
        let p = cross_validated_predictivity(
            &features.pls_input,
            &target.responses,
            &protocol.folds,
            components,
        )?;
        if let Some((per_neuroid, ceiling)) = &target.ceiling {
            scores.ceiling = Some(*ceiling);
            scores.predictivity_ceiled = Some(p.raw / ceiling);
            scores.ceiling_neuroid = Some(per_neuroid.clone());
        }
        scores.predictivity_raw = Some(p.raw);
        scores.r_neuroid = Some(p.r_neuroid);
    }
    // What the checks above have not foreseen (a ceiling of 0, say) is still no score.
    for (_, label, value) in scores.scalars() {
        if let Some(value) = value.filter(|v| !v.is_finite()) {
            return undefined(format!("{label} came out {value}, which is not a score"));
        }
    }
    Ok(scores)
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
    let target = NeuralTarget::new(neural, &recordings, &protocol)?;
    score_layer(&features, &target, &protocol, neural.metric).explain(ScoreError::Features, || {
        request.features.display().to_string()
    })
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
