//! How brain-like a model's features are: RSA, linear CKA and cross-validated PLS
//! predictivity with a split-half noise ceiling, as the Brain-Score approach computes them.

mod ceiling;
pub mod command;
mod error;
mod layer;
pub mod plot;
mod pls;
pub mod scan;
mod similarity;
mod stats;

pub use ceiling::split_half_ceiling;
pub use error::{Result, ScoreError};
pub use layer::LayerFeatures;
pub use pls::{cross_validated_predictivity, Pls, Predictivity};
pub use similarity::{centred_gram, cka_from_grams, cka_linear, rdm, rdm_from_gram, rsa};
pub use stats::{median, pearson, spearman};

use nalgebra::DMatrix;

/// Neural responses averaged over repetitions: [repetitions][stimuli x neuroids] to
/// [stimuli x neuroids].
pub fn mean_over_repetitions(recordings: &[DMatrix<f64>]) -> DMatrix<f64> {
    let mut sum = DMatrix::zeros(recordings[0].nrows(), recordings[0].ncols());
    for r in recordings {
        sum += r;
    }
    sum / recordings.len() as f64
}
