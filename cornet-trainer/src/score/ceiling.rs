//! The split-half noise ceiling: how well half the repetitions predict the other half.

use super::error::{Result, ScoreError};
use super::stats::{median, pearson, varies};
use nalgebra::DMatrix;

/// Per split (a permutation of repetition indices, first half against second half), the
/// Pearson r per neuroid between the two half-means over stimuli, Spearman-Brown corrected
/// `2r / (1 + r)`; averaged over splits. Returns (per-neuroid ceiling, its median). No splits,
/// or a ceiling undefined for a neuroid, is an error that says which.
pub fn split_half_ceiling(
    recordings: &[DMatrix<f64>],
    splits: &[Vec<usize>],
) -> Result<(Vec<f64>, f64)> {
    if splits.is_empty() {
        return Err(ScoreError::Protocol(
            "no split halves: a ceiling averages over at least one split".into(),
        ));
    }
    let neuroids = recordings[0].ncols();
    let mut per_neuroid = vec![0.0; neuroids];
    for (s, split) in splits.iter().enumerate() {
        let (first, second) = split.split_at(split.len() / 2);
        let half_mean = |reps: &[usize]| {
            let mut sum = DMatrix::zeros(recordings[0].nrows(), neuroids);
            for &r in reps {
                sum += &recordings[r];
            }
            sum / reps.len() as f64
        };
        let (a, b) = (half_mean(first), half_mean(second));
        for (n, total) in per_neuroid.iter_mut().enumerate() {
            let column = |m: &DMatrix<f64>| m.column(n).iter().copied().collect::<Vec<f64>>();
            let (a, b) = (column(&a), column(&b));
            let r = pearson(&a, &b);
            let corrected = 2.0 * r / (1.0 + r);
            if !corrected.is_finite() {
                let why = if !varies(&a) || !varies(&b) {
                    "a half's mean response is the same for every stimulus".to_owned()
                } else {
                    format!("the halves correlate at r = {r}, where 2r / (1 + r) is undefined")
                };
                return Err(ScoreError::Undefined(
                    format!("split {s}, neuroid {n}: {why}"),
                    None,
                ));
            }
            *total += corrected;
        }
    }
    per_neuroid
        .iter_mut()
        .for_each(|c| *c /= splits.len() as f64);
    let ceiling = median(&per_neuroid);
    Ok((per_neuroid, ceiling))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_undefined_ceiling_is_an_error_not_nan() {
        let rep = DMatrix::from_fn(5, 2, |i, j| (i + j * i) as f64);
        let recordings = [rep.clone(), -rep.clone()];
        assert!(split_half_ceiling(&recordings, &[]).is_err());
        let err = split_half_ceiling(&recordings, &[vec![0, 1]]).expect_err("halves at r = -1");
        assert!(
            err.to_string()
                .contains("split 0, neuroid 0: the halves correlate at r = -1"),
            "{err}"
        );
        let flat = DMatrix::from_fn(5, 2, |i, j| if j == 1 { 3.0 } else { i as f64 });
        let err = split_half_ceiling(&[flat.clone(), flat], &[vec![1, 0]])
            .expect_err("neuroid 1 does not vary");
        assert!(
            err.to_string()
                .contains("neuroid 1: a half's mean response is the same"),
            "{err}"
        );
    }
}
