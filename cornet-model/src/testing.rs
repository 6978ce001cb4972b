//! Helpers for tests that compare against the PyTorch parity fixtures (feature `testing`).

use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::PathBuf;

/// The repository's `tests/fixtures` (written by `tools/fixtures/generate.py`), or
/// `$CORNET_FIXTURES` where a test executable runs away from the source tree (on a GPU
/// machine). Every test of every crate finds its fixtures through here. Panics with the place
/// it looked when they are missing: the tests are meaningless without them.
pub fn fixtures() -> PathBuf {
    let dir = std::env::var_os("CORNET_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures"));
    assert!(
        dir.join("SHA256SUMS").is_file(),
        "parity fixtures not found at {} (set CORNET_FIXTURES)",
        dir.display()
    );
    dir
}

/// The path of the fixture file `name` (which may be in a subfolder: `images/china.jpg`).
pub fn fixture(name: &str) -> PathBuf {
    fixtures().join(name)
}

/// Every array of the fixture `.npz` `name`, by array name, on the CPU in its stored dtype.
/// Panics naming the file when it cannot be read.
pub fn read_npz(name: &str) -> HashMap<String, Tensor> {
    let path = fixture(name);
    Tensor::read_npz(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .into_iter()
        .collect()
}

/// Frobenius norm, in f64.
pub fn norm(t: &Tensor) -> f64 {
    let t = t.to_dtype(DType::F64).unwrap();
    t.sqr()
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
        .sqrt()
}

/// The first CUDA device for a GPU-only test, or `None` where none opens (no GPU, or a build
/// without `cuda`), after a note that `what` went unchecked: such tests pass without checking
/// anything rather than fail on machines without a GPU.
pub fn cuda_device(what: &str) -> Option<Device> {
    let device = Device::new_cuda(0).ok();
    if device.is_none() {
        eprintln!("no CUDA device: {what} not checked");
    }
    device
}

/// ||actual - expected|| / ||expected||, in f64, on `expected`'s device (a GPU result is
/// compared with a fixture on the CPU).
pub fn relative_error(actual: &Tensor, expected: &Tensor) -> f64 {
    assert_eq!(actual.dims(), expected.dims(), "shape mismatch");
    let a = actual.to_device(expected.device()).unwrap();
    let a = a.to_dtype(DType::F64).unwrap();
    let e = expected.to_dtype(DType::F64).unwrap();
    norm(&(&a - &e).unwrap()) / norm(&e).max(f64::MIN_POSITIVE)
}

/// Panics, naming `what`, unless `actual` is within `tolerance` of `expected` in
/// [`relative_error`].
pub fn assert_close(what: &str, actual: &Tensor, expected: &Tensor, tolerance: f64) {
    let err = relative_error(actual, expected);
    assert!(
        err <= tolerance,
        "{what}: relative error {err:.3e} > {tolerance:.0e}"
    );
}

/// The raw little-endian bytes of a tensor's elements (f32 or i64), for bit-exact
/// comparisons.
pub fn tensor_bytes(t: &Tensor) -> Vec<u8> {
    let flat = t.flatten_all().unwrap();
    match flat.dtype() {
        DType::I64 => flat
            .to_vec1::<i64>()
            .unwrap()
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        _ => flat
            .to_dtype(DType::F32)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
    }
}
