//! Fixture access and comparisons shared by the integration tests.
#![allow(dead_code)] // each test binary uses its own subset

use candle_core::Tensor;
use std::collections::HashMap;
use std::path::PathBuf;

/// `../shared/fixtures/parity` beside the repository, or `$CORNET_FIXTURES`.
pub fn fixtures() -> PathBuf {
    let dir = std::env::var_os("CORNET_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/parity")
        });
    assert!(
        dir.join("README.md").is_file(),
        "parity fixtures not found at {} (set CORNET_FIXTURES)",
        dir.display()
    );
    dir
}

pub fn read_npz(name: &str) -> HashMap<String, Tensor> {
    let path = fixtures().join(name);
    Tensor::read_npz(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .into_iter()
        .collect()
}

/// ||actual - expected|| / ||expected|| (Frobenius), in f64.
pub fn relative_error(actual: &Tensor, expected: &Tensor) -> f64 {
    assert_eq!(actual.dims(), expected.dims(), "shape mismatch");
    let a = actual
        .flatten_all()
        .unwrap()
        .to_dtype(candle_core::DType::F64)
        .unwrap();
    let e = expected
        .flatten_all()
        .unwrap()
        .to_dtype(candle_core::DType::F64)
        .unwrap();
    let norm = |t: &Tensor| {
        t.sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
            .sqrt()
    };
    norm(&(&a - &e).unwrap()) / norm(&e).max(f64::MIN_POSITIVE)
}

pub fn assert_close(what: &str, actual: &Tensor, expected: &Tensor, tolerance: f64) {
    let err = relative_error(actual, expected);
    assert!(
        err <= tolerance,
        "{what}: relative error {err:.3e} > {tolerance:.0e}"
    );
}
