//! Representational similarity: RDMs, RSA and linear CKA.

use super::stats::{pearson, spearman};
use nalgebra::DMatrix;

/// The representational dissimilarity matrix: 1 - Pearson correlation between the rows
/// (stimuli) of `x` [stimuli x units].
pub fn rdm(x: &DMatrix<f64>) -> DMatrix<f64> {
    let mut z = x.clone();
    for mut row in z.row_iter_mut() {
        let mean = row.mean();
        row.add_scalar_mut(-mean);
        let norm = row.norm();
        row /= norm;
    }
    DMatrix::from_element(x.nrows(), x.nrows(), 1.0) - &z * z.transpose()
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
/// ||y'x||² / (||x'x|| ||y'y||) in Frobenius norms. Computed with the stimulus-by-stimulus
/// Gram matrices (||y'x||² = <xx', yy'>, ||x'x|| = ||xx'||), which stay small when a layer
/// has many units.
pub fn cka_linear(x: &DMatrix<f64>, y: &DMatrix<f64>) -> f64 {
    let center = |m: &DMatrix<f64>| {
        let mut c = m.clone();
        for mut col in c.column_iter_mut() {
            let mean = col.mean();
            col.add_scalar_mut(-mean);
        }
        c
    };
    let (x, y) = (center(x), center(y));
    let (k, l) = (&x * x.transpose(), &y * y.transpose());
    k.dot(&l) / (k.norm() * l.norm())
}
