//! How brain-like a model's features are: RSA, linear CKA and cross-validated PLS
//! predictivity with a split-half noise ceiling, as the Brain-Score approach computes them.
//!
//! A leaf of the library: arrays in (files through [`crate::arrays`], or a model's taps from
//! whoever extracts them), scores out. [`metric`] says what is measured, [`protocol`] how (the
//! folds and split halves), [`target`] what against (the recordings); [`score_layer`] scores
//! one layer and [`score`] a file of features.

mod ceiling;
mod error;
mod layer;
pub mod metric;
mod pls;
pub mod protocol;
mod similarity;
mod stats;
pub mod target;

pub use ceiling::split_half_ceiling;
pub use error::{Result, ScoreError};
pub use layer::LayerFeatures;
pub use pls::{cross_validated_predictivity, Pls, Predictivity};
pub use similarity::{centred_gram, cka_from_grams, cka_linear, rdm, rdm_from_gram, rsa};
pub use stats::{median, pearson, spearman};
pub use target::mean_over_repetitions;

use crate::error::Explain;
use candle_core::Tensor;
use metric::{Metric, Scores};
use protocol::{NeuralRequest, Protocol};
use std::path::PathBuf;
use target::{holds_values, read_scorable, NeuralTarget, Recordings};

/// `score --features`: features from a file against recordings.
pub struct ScoreRequest {
    /// Features, float32/64 `.npy` `[stimuli, units]`.
    pub features: PathBuf,
    /// The recordings and the protocol.
    pub neural: NeuralRequest,
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
    let (features_shape, features) = read_scorable(&request.features)?;
    let [stimuli, units] = features_shape[..] else {
        return Err(ScoreError::Shape(format!(
            "{}: features must be [stimuli, units], got {features_shape:?}",
            request.features.display()
        )));
    };
    holds_values(&request.features, &features_shape, "features")?;
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
    let splits = protocol.splits.as_deref();
    let target = NeuralTarget::new(&neural.recordings, &recordings, neural.metric, splits)?;
    score_layer(&features, &target, &protocol, neural.metric).explain(ScoreError::Features, || {
        request.features.display().to_string()
    })
}
