//! Eval-mode forward passes against the PyTorch original (`*_eval.npz`): every tap at every
//! time step and the logits, within 1e-4 relative.

use crate::util::{assert_close, checkpoint, read_npz};
use cornet_model::{Arch, Mode, TapFilter};

const TOLERANCE: f64 = 1e-4;

fn check(weights: &str, arch: Arch, expected: &str) {
    let model = checkpoint(weights, Some(arch));
    let fixture = read_npz(expected);
    let (logits, taps) = model
        .forward_with_taps(&fixture["input"], Mode::Eval, TapFilter::AreaOutputs)
        .unwrap();
    assert_close(
        &format!("{expected} logits"),
        &logits,
        &fixture["logits"],
        TOLERANCE,
    );
    let expected_taps: Vec<_> = fixture.keys().filter(|k| k.starts_with("tap/")).collect();
    assert_eq!(taps.len(), expected_taps.len(), "{expected}: tap count");
    for (name, value) in &taps {
        let reference = fixture
            .get(&format!("tap/{name}"))
            .unwrap_or_else(|| panic!("{expected}: we produce tap {name}, PyTorch does not"));
        assert_close(&format!("{expected} {name}"), value, reference, TOLERANCE);
    }
}

#[test]
fn cornet_z_zip_checkpoint() {
    check("z.pth", Arch::Z, "z_eval.npz");
}

#[test]
fn cornet_z_legacy_checkpoint() {
    check("z_legacy.pth", Arch::Z, "z_eval.npz");
}

#[test]
fn cornet_rt() {
    check("rt.pth", Arch::RT, "rt_eval.npz");
}

#[test]
fn cornet_r_from_the_same_weights() {
    check("rt.pth", Arch::R, "r_eval.npz");
}

#[test]
fn cornet_s() {
    check("s_mini.pth", Arch::S, "s_mini_eval.npz");
}
