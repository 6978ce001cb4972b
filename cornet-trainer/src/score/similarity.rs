//! Representational similarity: RDMs, RSA and linear CKA, through stimulus-by-stimulus Gram
//! matrices, which stay small when a layer has many units.

use super::stats::{pearson, spearman};
use nalgebra::DMatrix;

/// The representational dissimilarity matrix: 1 - Pearson correlation between the rows
/// (stimuli) of `x` [stimuli x units].
pub fn rdm(x: &DMatrix<f64>) -> DMatrix<f64> {
    let mut centred = x.clone();
    for mut row in centred.row_iter_mut() {
        let mean = row.mean();
        row.add_scalar_mut(-mean);
    }
    rdm_from_gram(&(&centred * centred.transpose()))
}

/// The RDM from the Gram of the row-centred features: 1 - R_ij / sqrt(R_ii R_jj).
pub fn rdm_from_gram(gram: &DMatrix<f64>) -> DMatrix<f64> {
    let norms = gram.diagonal().map(f64::sqrt);
    DMatrix::from_fn(gram.nrows(), gram.ncols(), |i, j| {
        1.0 - gram[(i, j)] / (norms[i] * norms[j])
    })
}

/// Spearman and Pearson correlation of two RDMs' upper triangles, diagonal excluded.
pub fn rsa(a: &DMatrix<f64>, b: &DMatrix<f64>) -> (f64, f64) {
    let upper = |m: &DMatrix<f64>| -> Vec<f64> {
        let n = m.nrows();
        (0..n)
            .flat_map(|i| (i + 1..n).map(move |j| (i, j)))
            .map(|(i, j)| m[(i, j)])
            .collect()
    };
    let (a, b) = (upper(a), upper(b));
    (spearman(&a, &b), pearson(&a, &b))
}

/// Linear CKA of `x` [stimuli x units] and `y` [stimuli x neuroids], columns centred:
/// ||y'x||² / (||x'x|| ||y'y||) in Frobenius norms.
pub fn cka_linear(x: &DMatrix<f64>, y: &DMatrix<f64>) -> f64 {
    cka_from_grams(&centred_gram(x), &centred_gram(y))
}

/// Linear CKA from the two Grams of column-centred matrices, K = xx' and L = yy':
/// ||y'x||² = <K, L> and ||x'x|| = ||K||.
pub fn cka_from_grams(k: &DMatrix<f64>, l: &DMatrix<f64>) -> f64 {
    k.dot(l) / (k.norm() * l.norm())
}

/// The stimulus-by-stimulus Gram of `m` [stimuli x columns] with its columns centred.
pub fn centred_gram(m: &DMatrix<f64>) -> DMatrix<f64> {
    let mut c = m.clone();
    for mut col in c.column_iter_mut() {
        let mean = col.mean();
        col.add_scalar_mut(-mean);
    }
    &c * c.transpose()
}
