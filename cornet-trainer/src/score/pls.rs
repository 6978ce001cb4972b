//! PLS regression exactly as scikit-learn's `PLSRegression(scale=False)` (NIPALS), and the
//! cross-validated neural predictivity built on it.

use super::error::{Result, ScoreError};
use super::stats::{median, pearson, varies};
use nalgebra::{DMatrix, DVector, SVD};

/// Sweeps of the SVD behind the pseudo-inverse of P'W: it converges in a few dozen on finite
/// input, and the bound turns what would loop for ever into an error.
const MAX_SVD_ITERATIONS: usize = 10_000;

/// A fitted PLS regression: `predict(x) = (x - x_mean) coef + y_mean`.
pub struct Pls {
    x_mean: DVector<f64>,
    y_mean: DVector<f64>,
    coef: DMatrix<f64>,
}

impl Pls {
    /// Fits `components` components on `x` [samples x features], `y` [samples x targets]
    /// with the power method of scikit-learn (`max_iter`, `tol`). As scikit-learn, it stops
    /// early when Y's residual is constant, leaving the remaining components empty; it also
    /// stops when X's residual is zero, where scikit-learn's weights would be NaN.
    pub fn fit(
        x: &DMatrix<f64>,
        y: &DMatrix<f64>,
        components: usize,
        max_iter: usize,
        tol: f64,
    ) -> Result<Pls> {
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
            let Some(w) = first_x_weights(&xk, &yk, max_iter, tol) else {
                tracing::debug!("PLS: Y residual is constant at component {k}");
                break;
            };
            let t = &xk * &w;
            let tt = t.dot(&t);
            // An X residual of zeros makes the power method divide 0 by 0: scikit-learn's
            // weights turn NaN there; nothing is left to fit, so the components end.
            if tt.is_nan() || tt == 0.0 {
                tracing::debug!("PLS: X residual is zero at component {k}");
                break;
            }
            let x_load = xk.tr_mul(&t) / tt;
            let y_load = yk.tr_mul(&t) / tt;
            xk -= &t * x_load.transpose();
            yk -= &t * y_load.transpose();
            weights.set_column(k, &w);
            x_loadings.set_column(k, &x_load);
            y_loadings.set_column(k, &y_load);
        }
        let ptw = x_loadings.tr_mul(&weights);
        let undefined = |what: &str| ScoreError::Undefined(format!("PLS fit: {what}"), None);
        if !ptw.iter().all(|v| v.is_finite()) {
            return Err(undefined("the loadings are not finite"));
        }
        // nalgebra's own pseudo_inverse, with the same tolerance, but bounded.
        let svd = SVD::try_new_unordered(ptw, true, true, 5.0 * eps, MAX_SVD_ITERATIONS)
            .ok_or_else(|| undefined("the SVD of the loadings did not converge"))?;
        let inverse = svd.pseudo_inverse(1e-15).map_err(undefined)?;
        let coef = &weights * inverse * y_loadings.transpose();
        Ok(Pls {
            x_mean,
            y_mean,
            coef,
        })
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
/// normalised): the x weights of the next component, or `None` where scikit-learn stops
/// ("Y residual is constant": no column of `y` has a value above machine epsilon).
fn first_x_weights(
    x: &DMatrix<f64>,
    y: &DMatrix<f64>,
    max_iter: usize,
    tol: f64,
) -> Option<DVector<f64>> {
    let eps = f64::EPSILON;
    let mut u: DVector<f64> = y
        .column_iter()
        .find(|col| col.iter().any(|v| v.abs() > eps))?
        .into_owned();
    let mut w_old: Option<DVector<f64>> = None;
    let mut w = DVector::zeros(x.ncols());
    for iteration in 1..=max_iter {
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
        if iteration == max_iter {
            // scikit-learn's ConvergenceWarning; the weights are used as they are.
            tracing::warn!("PLS: the power method reached its {max_iter} iterations");
        }
        w_old = Some(w.clone());
    }
    Some(w)
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
/// the other folds predicts fold f; r per neuroid between prediction and response. An r that
/// is undefined (a fold of one stimulus, responses or a prediction that do not vary over the
/// fold) is an error that says which.
pub fn cross_validated_predictivity(
    x: &DMatrix<f64>,
    y: &DMatrix<f64>,
    folds: &[usize],
    components: usize,
) -> Result<Predictivity> {
    let fold_count = folds.iter().max().map_or(0, |m| m + 1);
    let rows = |m: &DMatrix<f64>, pick: &[usize]| {
        DMatrix::from_fn(pick.len(), m.ncols(), |i, j| m[(pick[i], j)])
    };
    let mut r_fold = Vec::with_capacity(fold_count);
    let mut fold0_prediction = DMatrix::zeros(0, 0);
    for f in 0..fold_count {
        let test: Vec<usize> = (0..folds.len()).filter(|&i| folds[i] == f).collect();
        let train: Vec<usize> = (0..folds.len()).filter(|&i| folds[i] != f).collect();
        let model = Pls::fit(&rows(x, &train), &rows(y, &train), components, 500, 1e-6)?;
        let prediction = model.predict(&rows(x, &test));
        let truth = rows(y, &test);
        let r = (0..y.ncols())
            .map(|n| {
                let a: Vec<f64> = prediction.column(n).iter().copied().collect();
                let b: Vec<f64> = truth.column(n).iter().copied().collect();
                fold_r(&a, &b).map_err(|why| {
                    ScoreError::Undefined(
                        format!(
                            "fold {f}, neuroid {n}: the Pearson r of prediction and response \
                             over the fold's {} test stimuli is undefined: {why}",
                            test.len()
                        ),
                        None,
                    )
                })
            })
            .collect::<Result<Vec<f64>>>()?;
        if f == 0 {
            fold0_prediction = prediction;
        }
        r_fold.push(r);
    }
    let r_neuroid: Vec<f64> = (0..y.ncols())
        .map(|n| r_fold.iter().map(|r| r[n]).sum::<f64>() / fold_count as f64)
        .collect();
    let raw = median(&r_neuroid);
    Ok(Predictivity {
        r_fold,
        r_neuroid,
        raw,
        fold0_prediction,
    })
}

/// The r of a `prediction` and the `truth` over a fold's test stimuli, or why it is undefined.
fn fold_r(prediction: &[f64], truth: &[f64]) -> std::result::Result<f64, String> {
    let r = pearson(prediction, truth);
    if r.is_finite() {
        Ok(r)
    } else if truth.len() < 2 {
        Err("a correlation needs at least 2 stimuli".into())
    } else if !varies(truth) {
        Err("the responses are the same for every test stimulus".into())
    } else if !varies(prediction) {
        Err(
            "the prediction is the same for every test stimulus (the training responses \
             left PLS nothing to fit)"
                .into(),
        )
    } else {
        Err(format!("r is {r}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wavy(rows: usize, cols: usize, phase: f64) -> DMatrix<f64> {
        DMatrix::from_fn(rows, cols, |i, j| {
            ((i * (j + 2)) as f64 * 0.37 + phase + j as f64).sin()
        })
    }

    /// Constant responses and fewer units than components end the fit early, as scikit-learn
    /// ends it, where they once looped for ever in the pseudo-inverse of NaN loadings.
    #[test]
    fn fits_end_where_scikit_learn_stops_adding_components() -> Result<()> {
        let constant = DMatrix::from_element(30, 3, 0.25);
        let fit = Pls::fit(&wavy(30, 2, 0.0), &constant, 25, 500, 1e-6)?;
        assert_eq!(
            fit.predict(&wavy(4, 2, 1.0)),
            DMatrix::from_element(4, 3, 0.25)
        );
        for units in [1, 2] {
            let x = wavy(30, units, 0.0);
            let fit = Pls::fit(&x, &wavy(30, 3, 0.5), 25, 500, 1e-6)?;
            assert!(fit.predict(&x).iter().all(|v| v.is_finite()));
        }
        Ok(())
    }

    #[test]
    fn an_undefined_fold_r_says_why() {
        let x = wavy(20, 4, 0.0);
        let mut y = wavy(20, 2, 0.5);
        let folds: Vec<usize> = (0..20).map(|i| i % 2).collect();
        for i in (0..20).step_by(2) {
            y[(i, 1)] = 1.0;
        }
        let err = cross_validated_predictivity(&x, &y, &folds, 2)
            .err()
            .expect("neuroid 1 is the same over fold 0");
        assert!(
            err.to_string()
                .contains("fold 0, neuroid 1: the Pearson r of prediction and response over the fold's 10 test stimuli is undefined: the responses are the same"),
            "{err}"
        );
    }
}
