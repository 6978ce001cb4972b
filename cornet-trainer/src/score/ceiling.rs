//! The split-half noise ceiling: how well half the repetitions predict the other half.

use super::stats::{median, pearson};
use nalgebra::DMatrix;

/// Per split (a permutation of repetition indices, first half against second half), the
/// Pearson r per neuroid between the two half-means over stimuli, Spearman-Brown corrected
/// `2r / (1 + r)`; averaged over splits. Returns (per-neuroid ceiling, its median).
pub fn split_half_ceiling(recordings: &[DMatrix<f64>], splits: &[Vec<usize>]) -> (Vec<f64>, f64) {
    let neuroids = recordings[0].ncols();
    let mut per_neuroid = vec![0.0; neuroids];
    for split in splits {
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
            let r = pearson(&column(&a), &column(&b));
            *total += 2.0 * r / (1.0 + r);
        }
    }
    per_neuroid
        .iter_mut()
        .for_each(|c| *c /= splits.len() as f64);
    let ceiling = median(&per_neuroid);
    (per_neuroid, ceiling)
}
