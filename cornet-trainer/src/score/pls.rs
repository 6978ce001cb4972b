//! PLS regression exactly as scikit-learn's `PLSRegression(scale=False)` (NIPALS), and the
//! cross-validated neural predictivity built on it.

use super::stats::{median, pearson};
use nalgebra::{DMatrix, DVector};

/// A fitted PLS regression: `predict(x) = (x - x_mean) coef + y_mean`.
pub struct Pls {
    x_mean: DVector<f64>,
    y_mean: DVector<f64>,
    coef: DMatrix<f64>,
}

impl Pls {
    /// Fits `components` components on `x` [samples x features], `y` [samples x targets]
    /// with the power method of scikit-learn (`max_iter`, `tol`).
    pub fn fit(
        x: &DMatrix<f64>,
        y: &DMatrix<f64>,
        components: usize,
        max_iter: usize,
        tol: f64,
    ) -> Pls {
        let eps = f64::EPSILON;
        let x_mean = column_means(x);
        let y_mean = column_means(y);
        let mut xk = subtract_row(x, &x_mean);
        let mut yk = subtract_row(y, &y_mean);
        let (p, q) = (x.ncols(), y.ncols());
        let mut weights = DMatrix::zeros(p, components);
        let mut x_loadings = DMatrix::zeros(p, components);
        let mut y_loadings = DMatrix::zeros(q, components);
        for k in 0..components {
            // Columns of Y that deflation has emptied are set to exactly zero, as sklearn does.
            for mut col in yk.column_iter_mut() {
                if col.iter().all(|v| v.abs() < 10.0 * eps) {
                    col.fill(0.0);
                }
            }
            let w = first_x_weights(&xk, &yk, max_iter, tol);
            let t = &xk * &w;
            let tt = t.dot(&t);
            let x_load = xk.tr_mul(&t) / tt;
            let y_load = yk.tr_mul(&t) / tt;
            xk -= &t * x_load.transpose();
            yk -= &t * y_load.transpose();
            weights.set_column(k, &w);
            x_loadings.set_column(k, &x_load);
            y_loadings.set_column(k, &y_load);
        }
        let ptw = x_loadings.tr_mul(&weights);
        let rotations = &weights
            * ptw
                .pseudo_inverse(1e-15)
                .expect("SVD of a small square matrix");
        let coef = rotations * y_loadings.transpose();
        Pls {
            x_mean,
            y_mean,
            coef,
        }
    }

    /// The fitted responses to `x` `[samples x features]`.
    pub fn predict(&self, x: &DMatrix<f64>) -> DMatrix<f64> {
        let mut out = subtract_row(x, &self.x_mean) * &self.coef;
        for mut row in out.row_iter_mut() {
            row += self.y_mean.transpose();
        }
        out
    }
}

/// scikit-learn's `_get_first_singular_vectors_power_method` (mode A, y weights not
/// normalised): the x weights of the next component.
fn first_x_weights(x: &DMatrix<f64>, y: &DMatrix<f64>, max_iter: usize, tol: f64) -> DVector<f64> {
    let eps = f64::EPSILON;
    let mut u: DVector<f64> = y
        .column_iter()
        .find(|col| col.iter().any(|v| v.abs() > eps))
        .map(|col| col.into_owned())
        .unwrap_or_else(|| y.column(0).into_owned());
    let mut w_old: Option<DVector<f64>> = None;
    let mut w = DVector::zeros(x.ncols());
    for _ in 0..max_iter {
        w = x.tr_mul(&u) / u.dot(&u);
        w /= w.dot(&w).sqrt() + eps;
        let t = x * &w;
        let c = y.tr_mul(&t) / t.dot(&t);
        u = y * &c / (c.dot(&c) + eps);
        let converged = match &w_old {
            Some(old) => (&w - old).norm_squared() < tol,
            None => false,
        };
        if converged || y.ncols() == 1 {
            break;
        }
        w_old = Some(w.clone());
    }
    w
}

fn column_means(m: &DMatrix<f64>) -> DVector<f64> {
    DVector::from_iterator(m.ncols(), m.column_iter().map(|c| c.mean()))
}

fn subtract_row(m: &DMatrix<f64>, row: &DVector<f64>) -> DMatrix<f64> {
    let mut out = m.clone();
    for mut r in out.row_iter_mut() {
        r -= row.transpose();
    }
    out
}

/// Cross-validated neural predictivity of features `x` [stimuli x units] for responses `y`
/// [stimuli x neuroids].
pub struct Predictivity {
    /// Pearson r per fold and neuroid.
    pub r_fold: Vec<Vec<f64>>,
    /// Mean over folds, per neuroid.
    pub r_neuroid: Vec<f64>,
    /// Median over neuroids of `r_neuroid`.
    pub raw: f64,
    /// The held-out predictions of fold 0.
    pub fold0_prediction: DMatrix<f64>,
}

/// For each fold f (stimuli with `folds[i] == f`), PLS with `components` components fitted on
/// the other folds predicts fold f; r per neuroid between prediction and response.
pub fn cross_validated_predictivity(
    x: &DMatrix<f64>,
    y: &DMatrix<f64>,
    folds: &[usize],
    components: usize,
) -> Predictivity {
    let fold_count = folds.iter().max().map_or(0, |m| m + 1);
    let rows = |m: &DMatrix<f64>, pick: &[usize]| {
        DMatrix::from_fn(pick.len(), m.ncols(), |i, j| m[(pick[i], j)])
    };
    let mut r_fold = Vec::with_capacity(fold_count);
    let mut fold0_prediction = DMatrix::zeros(0, 0);
    for f in 0..fold_count {
        let test: Vec<usize> = (0..folds.len()).filter(|&i| folds[i] == f).collect();
        let train: Vec<usize> = (0..folds.len()).filter(|&i| folds[i] != f).collect();
        let model = Pls::fit(&rows(x, &train), &rows(y, &train), components, 500, 1e-6);
        let prediction = model.predict(&rows(x, &test));
        let truth = rows(y, &test);
        let r: Vec<f64> = (0..y.ncols())
            .map(|n| {
                let a: Vec<f64> = prediction.column(n).iter().copied().collect();
                let b: Vec<f64> = truth.column(n).iter().copied().collect();
                pearson(&a, &b)
            })
            .collect();
        if f == 0 {
            fold0_prediction = prediction;
        }
        r_fold.push(r);
    }
    let r_neuroid: Vec<f64> = (0..y.ncols())
        .map(|n| r_fold.iter().map(|r| r[n]).sum::<f64>() / fold_count as f64)
        .collect();
    let raw = median(&r_neuroid);
    Predictivity {
        r_fold,
        r_neuroid,
        raw,
        fold0_prediction,
    }
}
