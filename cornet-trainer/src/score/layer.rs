//! One layer's features reduced to what the metrics need, in one pass over the units: a layer
//! of 200k units costs one n x n Gram product, after which PLS works on n columns at most.
//!
//! Every metric depends on the features X [n stimuli x p units] only through inner products of
//! stimuli. With Xc = X - 1 m' (column means m), G = Xc Xc' (n x n):
//! - linear CKA is a function of G;
//! - PLS predictions are unchanged by an orthogonal change of basis of the units, and every
//!   training-fold-centred row of X lies in the row space of Xc. If G = U S² U', then
//!   Z = U S = Xc V with V'V = I, so PLS on Z [n x rank] predicts exactly what PLS on X does
//!   (each NIPALS weight of X is V times that of Z, and so is the coefficient matrix);
//! - the RDM needs the Gram of the row-centred features Xr = X - r 1' (row means r). With the
//!   grand mean g, d = m - g 1 and b = Xc 1, Xr = Xc + 1 d' - b 1'/p, and since d'1 = 0,
//!   Xr Xr' = G + c 1' + 1 c' + |d|² 1 1' - b b'/p with c = Xc d.
//!   Each term is as large as the data it describes, so no large common offset cancels.

use super::error::{Result, ScoreError};
use super::similarity::rdm_from_gram;
use candle_core::{DType, Tensor, D};
use nalgebra::{DMatrix, SymmetricEigen};

/// Columns per block of the pass over units: 8M f64 values (64 MiB) at most.
const BLOCK_VALUES: usize = 1 << 23;

/// One layer's features as the metrics see them.
pub struct LayerFeatures {
    /// G = Xc Xc', the Gram of the column-centred features (linear CKA).
    pub centred_gram: DMatrix<f64>,
    /// 1 - Pearson correlation between stimuli over units (RSA).
    pub rdm: DMatrix<f64>,
    /// The first stimulus whose features are the same in every unit (to rounding), for
    /// which the correlation distance, and so the RDM, is undefined.
    pub constant_stimulus: Option<usize>,
    /// The units (columns) of the features, which bound the PLS components.
    pub units: usize,
    /// What PLS regresses on: the features themselves when there are no more units than
    /// stimuli, else Z with Z Z' = G (the same predictions, n columns at most).
    pub pls_input: DMatrix<f64>,
}

impl LayerFeatures {
    /// `features` [stimuli, units] of any float dtype, on any device; the products are taken
    /// in f64 on that device, a block of units at a time. `None` when the features are the
    /// same for every stimulus (as R and RT's upper areas before the image reaches them), where
    /// no metric is defined.
    pub fn new(features: &Tensor) -> Result<Option<LayerFeatures>> {
        let (n, p) = features.dims2()?;
        let grams = StimulusGrams::new(features)?;
        if !grams.centred.iter().all(|v| v.is_finite()) {
            return Err(ScoreError::NonFinite);
        }
        // Variation over stimuli below a millionth of the features' size (RMS) is rounding:
        // f32 features resolve no finer.
        if grams.centred.trace() <= 1e-12 * grams.sum_of_squares {
            return Ok(None);
        }
        let pls_input = if p > n {
            gram_factor(&grams.centred)
        } else {
            to_matrix(&features.to_dtype(DType::F64)?)?
        };
        // A row that varies less than the features do over stimuli above (a millionth, RMS,
        // of its size) is the same in every unit.
        let constant_stimulus =
            (0..n).find(|&i| grams.row_centred[(i, i)] <= 1e-12 * grams.row_sums_of_squares[i]);
        Ok(Some(LayerFeatures {
            rdm: rdm_from_gram(&grams.row_centred),
            constant_stimulus,
            units: p,
            centred_gram: grams.centred,
            pls_input,
        }))
    }
}

/// The Grams of the column-centred and of the row-centred features.
struct StimulusGrams {
    centred: DMatrix<f64>,
    row_centred: DMatrix<f64>,
    /// The sum of the squared features, sum_ij X_ij².
    sum_of_squares: f64,
    /// Each stimulus's sum of squared features, sum_j X_ij².
    row_sums_of_squares: Vec<f64>,
}

impl StimulusGrams {
    fn new(x: &Tensor) -> candle_core::Result<StimulusGrams> {
        let (n, p) = x.dims2()?;
        let width = (BLOCK_VALUES / n.max(1)).clamp(1, p.max(1));
        let blocks = || {
            (0..p).step_by(width).map(move |start| {
                x.narrow(1, start, width.min(p - start))?
                    .to_dtype(DType::F64)
            })
        };
        // First pass: the column means, to centre each block exactly in the second.
        let means = blocks()
            .map(|block| block?.mean_keepdim(0))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let grand_mean = Tensor::cat(&means, 1)?.mean_all()?;
        let device = x.device();
        let mut g = Tensor::zeros((n, n), DType::F64, device)?;
        let mut b = Tensor::zeros((n, 1), DType::F64, device)?;
        let mut c = Tensor::zeros((n, 1), DType::F64, device)?;
        let mut d_norm = Tensor::zeros((), DType::F64, device)?;
        for (block, mean) in blocks().zip(&means) {
            let centred = block?.broadcast_sub(mean)?;
            let d = mean.broadcast_sub(&grand_mean)?.t()?;
            g = (g + centred.matmul(&centred.t()?)?)?;
            b = (b + centred.sum_keepdim(D::Minus1)?)?;
            c = (c + centred.matmul(&d)?)?;
            d_norm = (d_norm + d.sqr()?.sum_all()?)?;
        }
        let centred = to_matrix(&g)?;
        let (b, c) = (to_matrix(&b)?, to_matrix(&c)?);
        let d_norm = d_norm.to_scalar::<f64>()?;
        let grand_mean = grand_mean.to_scalar::<f64>()?;
        // X = Xc + 1 (d + g 1)', whose three parts are orthogonal (Xc'1 = 0, d'1 = 0).
        let sum_of_squares = centred.trace() + n as f64 * (d_norm + p as f64 * grand_mean.powi(2));
        let row_centred = DMatrix::from_fn(n, n, |i, j| {
            centred[(i, j)] + c[i] + c[j] + d_norm - b[i] * b[j] / p as f64
        });
        // Row i of X is xc_i + m with m = d + g 1: |x_i|² = G_ii + 2 (c_i + g b_i) + |m|².
        let m_norm = d_norm + p as f64 * grand_mean.powi(2);
        let row_sums_of_squares = (0..n)
            .map(|i| centred[(i, i)] + 2.0 * (c[i] + grand_mean * b[i]) + m_norm)
            .collect();
        Ok(StimulusGrams {
            centred,
            row_centred,
            sum_of_squares,
            row_sums_of_squares,
        })
    }
}

/// Z = U S from G = U S² U', keeping the eigenvalues that rounding cannot account for
/// (relative to the largest, below n machine epsilons they are noise of the Gram's sums).
fn gram_factor(gram: &DMatrix<f64>) -> DMatrix<f64> {
    let eigen = SymmetricEigen::new(gram.clone());
    let largest = eigen.eigenvalues.max();
    let tolerance = largest * gram.nrows() as f64 * f64::EPSILON;
    let kept: Vec<usize> = (0..eigen.eigenvalues.len())
        .filter(|&k| eigen.eigenvalues[k] > tolerance)
        .collect();
    DMatrix::from_fn(gram.nrows(), kept.len(), |i, j| {
        let k = kept[j];
        eigen.eigenvectors[(i, k)] * eigen.eigenvalues[k].sqrt()
    })
}

/// A 2-D f64 tensor as a matrix on the CPU.
fn to_matrix(t: &Tensor) -> candle_core::Result<DMatrix<f64>> {
    let (rows, cols) = t.dims2()?;
    let values = t.flatten_all()?.to_device(&candle_core::Device::Cpu)?;
    Ok(DMatrix::from_row_slice(
        rows,
        cols,
        &values.to_vec1::<f64>()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_that_do_not_vary_over_stimuli_are_not_scored() -> Result<()> {
        let row: Vec<f32> = (0..50).map(|u| u as f32 * 0.1).collect();
        let same = Tensor::new(vec![row; 4], &candle_core::Device::Cpu)?;
        assert!(LayerFeatures::new(&same)?.is_none());
        let mut varied = same.to_vec2::<f32>()?;
        varied[2][7] += 0.5;
        assert!(LayerFeatures::new(&Tensor::new(varied, &candle_core::Device::Cpu)?)?.is_some());
        Ok(())
    }

    /// A stimulus whose features are the same in every unit has no correlation distance; one
    /// unit makes every stimulus so.
    #[test]
    fn stimuli_the_same_in_every_unit_are_found() -> Result<()> {
        let mut rows: Vec<Vec<f32>> = (0..6)
            .map(|i| {
                (0..40)
                    .map(|u| ((i * 7 + u * 3) % 11) as f32 * 0.3)
                    .collect()
            })
            .collect();
        let cpu = candle_core::Device::Cpu;
        let features = LayerFeatures::new(&Tensor::new(rows.clone(), &cpu)?)?.expect("varies");
        assert_eq!(features.constant_stimulus, None);
        rows[3] = vec![2.5; 40];
        let features = LayerFeatures::new(&Tensor::new(rows.clone(), &cpu)?)?.expect("varies");
        assert_eq!((features.constant_stimulus, features.units), (Some(3), 40));
        let one_unit: Vec<Vec<f32>> = rows.iter().map(|r| vec![r[1]]).collect();
        let features = LayerFeatures::new(&Tensor::new(one_unit, &cpu)?)?.expect("varies");
        assert_eq!(features.constant_stimulus, Some(0));
        Ok(())
    }
}
