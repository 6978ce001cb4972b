//! Two SGD steps in train mode against the PyTorch original (`*_train.npz`): loss, logits,
//! step-1 gradients, and every parameter and buffer after step 2; and the first step in bf16
//! mixed precision (on the CPU: bf16 activations, f32 arithmetic) against the same reference.
//! The same replays also run through the GPU's code path on the CPU (`with_portable_ops`), and
//! the first step, built with `--features cuda` (or `cudnn`) and run where a GPU is present, on
//! the GPU, in f32 and bf16.

use crate::util::{fixture, read_npz};
use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor};
use cornet_model::testing::{norm, relative_error};
use cornet_model::{Arch, BatchGroups, Model, ModelConfig, Role};
use cornet_trainer::config::Precision;
use cornet_trainer::optim::Sgd;
use cornet_trainer::step::forward_backward;
use std::collections::HashMap;

fn scalar(t: &Tensor) -> f64 {
    t.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
}

/// Step-1 gradients (on any device) within 1e-3 relative.
///
/// A conv bias followed by a GroupNorm with one channel per group (RT's widths of 32) is removed
/// by the normalisation, so its gradient is exactly zero in exact arithmetic and the reference
/// holds only float noise (~1e-8 against gradients of order 1). A relative error against noise
/// means nothing; such a gradient must instead be zero to the same precision here.
fn check_gradients(tag: &str, model: &Model, grads: &GradStore, fixture: &HashMap<String, Tensor>) {
    let all: f64 = model
        .store()
        .parameters()
        .map(|e| norm(&fixture[&format!("grad1/{}", e.name)]).powi(2))
        .sum::<f64>()
        .sqrt();
    let float_noise = 1e-6 * all;
    for entry in model.store().parameters() {
        let grad = grads
            .get(entry.var.as_tensor())
            .unwrap_or_else(|| panic!("{tag}: no gradient for {}", entry.name));
        let expected = &fixture[&format!("grad1/{}", entry.name)];
        if norm(expected) < float_noise {
            assert!(
                norm(grad) < float_noise,
                "{tag} gradient of {} should vanish: norm {:.3e}",
                entry.name,
                norm(grad)
            );
            continue;
        }
        let err = relative_error(grad, expected);
        assert!(err <= 1e-3, "{tag} gradient of {}: {err:.3e}", entry.name);
    }
}

/// How the fixture `tag` grouped its BatchNorm statistics: `s_mini_dp` is the original's
/// 2-GPU `nn.DataParallel` step (each replica normalizing its half of the 8 images, running
/// statistics from the first), which one device reproduces with `model.bn_images` 4.
fn batch_groups_of(tag: &str) -> BatchGroups {
    match tag {
        "s_mini_dp" => BatchGroups::Ghost { images: 4 },
        _ => BatchGroups::WholeBatch,
    }
}

/// The fixture (on the CPU) and the model at its initial weights on `device`, grouping its
/// BatchNorm statistics as the fixture did.
fn load(tag: &str, device: &Device) -> (HashMap<String, Tensor>, Model) {
    let expected = read_npz(&format!("{tag}_train.npz"));
    let init = fixture(&format!("{tag}_train_init.pth"));
    let mut model = Model::from_checkpoint(&init, None, None, device).unwrap();
    model.set_batch_groups(batch_groups_of(tag));
    (expected, model)
}

/// Forward and backward of step 1's batch on the model's device.
fn first_step(
    fixture: &HashMap<String, Tensor>,
    model: &Model,
    precision: Precision,
) -> cornet_trainer::step::StepOutput {
    let on_device = |name: &str| fixture[name].to_device(model.device()).unwrap();
    forward_backward(
        model,
        &on_device("step1/input"),
        &on_device("step1/target"),
        precision,
    )
    .unwrap()
}

fn replay(tag: &str) {
    let (fixture, model) = load(tag, &Device::Cpu);
    let mut sgd = Sgd::new(
        scalar(&fixture["momentum"]),
        scalar(&fixture["weight_decay"]),
    );
    let lr = scalar(&fixture["lr"]);

    for step in [1, 2] {
        let out = forward_backward(
            &model,
            &fixture[&format!("step{step}/input")],
            &fixture[&format!("step{step}/target")],
            Precision::F32,
        )
        .unwrap();
        let (loss, expected) = (
            scalar(&out.loss),
            scalar(&fixture[&format!("step{step}/loss")]),
        );
        assert!(
            (loss - expected).abs() <= 1e-5 * expected.abs(),
            "{tag} step {step} loss {loss} != {expected}"
        );
        let err = relative_error(&out.logits, &fixture[&format!("step{step}/logits")]);
        assert!(err <= 1e-4, "{tag} step {step} logits: {err:.3e}");
        if step == 1 {
            check_gradients(tag, &model, &out.grads, &fixture);
        }
        sgd.step(model.store().parameters(), &out.grads, lr)
            .unwrap();
    }

    for entry in model.store().entries() {
        let expected = &fixture[&format!("after2/{}", entry.name)];
        let actual = entry.var.as_tensor();
        if entry.name.ends_with("num_batches_tracked") {
            assert_eq!(
                actual.to_vec0::<i64>().unwrap(),
                expected.to_vec0::<i64>().unwrap(),
                "{tag} {}",
                entry.name
            );
            continue;
        }
        let tolerance = match entry.role {
            Role::Parameter => 1e-3,
            Role::Buffer => 1e-4,
        };
        let err = relative_error(actual, expected);
        assert!(
            err <= tolerance,
            "{tag} {} after step 2: {err:.3e} > {tolerance:.0e}",
            entry.name
        );
    }
}

#[test]
fn cornet_z_two_steps() {
    replay("z_mini");
}

#[test]
fn cornet_rt_two_steps() {
    replay("rt_mini");
}

#[test]
fn cornet_s_two_steps() {
    replay("s_mini");
}

/// One device with `model.bn_images` half the batch takes the original's two-GPU
/// DataParallel steps.
#[test]
fn cornet_s_data_parallel_two_steps_on_one_device() {
    replay("s_mini_dp");
}

/// The first step in bf16 mixed precision: the gradients reach the f32 master weights as f32,
/// and logits and loss stay within 2e-2 of the f32 original.
///
/// The gradients themselves are not held to 2e-2 here: bf16's 8-bit mantissa moves max-pool
/// ties in V1 (CORnet-Z's V1 weight gradient is 17% off) and, through the small fixture
/// batches, BatchNorm's normalization amplifies the rounding of channels whose mean dwarfs
/// their spread (CORnet-S's norm gradients are off by up to 95%; in f32 the same
/// amplification is what keeps its step-2 loss at ~1e-5 rather than 1e-7). PyTorch's autocast
/// rounds the same activations, so this is bf16's doing, not the port's.
fn replay_bf16(tag: &str, device: &Device) {
    let (fixture, model) = load(tag, device);
    let out = first_step(&fixture, &model, Precision::Bf16);
    assert_eq!(out.logits.dtype(), DType::F32);
    for entry in model.store().parameters() {
        let grad = out.grads.get(entry.var.as_tensor()).unwrap();
        assert_eq!(
            grad.dtype(),
            DType::F32,
            "{tag} bf16 gradient of {}",
            entry.name
        );
        assert!(
            norm(grad).is_finite(),
            "{tag} bf16 gradient of {}",
            entry.name
        );
    }
    let (loss, expected) = (scalar(&out.loss), scalar(&fixture["step1/loss"]));
    assert!(
        (loss - expected).abs() <= 2e-2 * expected.abs(),
        "{tag} bf16 loss {loss} vs {expected}"
    );
    let err = relative_error(&out.logits, &fixture["step1/logits"]);
    assert!(err <= 2e-2, "{tag} bf16 logits: {err:.3e}");
}

#[test]
fn cornet_z_bf16_step() {
    replay_bf16("z_mini", &Device::Cpu);
}

#[test]
fn cornet_rt_bf16_step() {
    replay_bf16("rt_mini", &Device::Cpu);
}

/// The first step in f32 on `device`: logits and gradients within 1e-3 of the original (the
/// kernels off the CPU sum in other orders than PyTorch's CPU kernels, so the CPU's 1e-4 on
/// logits is not asked for).
fn first_step_f32(tag: &str, device: &Device) {
    let (fixture, model) = load(tag, device);
    let out = first_step(&fixture, &model, Precision::F32);
    let err = relative_error(&out.logits, &fixture["step1/logits"]);
    assert!(err <= 1e-3, "{tag} on {device:?} logits: {err:.3e}");
    check_gradients(
        &format!("{tag} on {device:?}"),
        &model,
        &out.grads,
        &fixture,
    );
}

/// The GPU's code path (candle's convolution, the composite max-pool, ReLU and BatchNorm) run
/// on the CPU, in f32 (two steps: weights, buffers, SGD) and bf16, so that its formulas are
/// held to the fixtures where no GPU is.
mod portable_ops {
    use super::*;
    use cornet_model::ops::with_portable_ops;

    #[test]
    fn cornet_z_two_steps() {
        with_portable_ops(|| replay("z_mini"));
    }

    #[test]
    fn cornet_rt_two_steps() {
        with_portable_ops(|| replay("rt_mini"));
    }

    /// The first step only: CORnet-S's step 2 sits at the noise floor its BatchNorms put on
    /// any change of summation order (docs/performance.md), and candle's convolution sums in
    /// another order than ours; its loss lands 1.3e-5 from PyTorch's against the 1e-5 asked.
    #[test]
    fn cornet_s_first_step() {
        with_portable_ops(|| first_step_f32("s_mini", &Device::Cpu));
    }

    #[test]
    fn cornet_s_data_parallel_first_step() {
        with_portable_ops(|| first_step_f32("s_mini_dp", &Device::Cpu));
    }

    #[test]
    fn cornet_z_bf16_first_step() {
        with_portable_ops(|| replay_bf16("z_mini", &Device::Cpu));
    }

    #[test]
    fn cornet_rt_bf16_first_step() {
        with_portable_ops(|| replay_bf16("rt_mini", &Device::Cpu));
    }

    /// A freshly initialised CORnet-RT (GroupNorm biases at zero, as in PyTorch) puts whole
    /// areas at exactly 0 at its first time step, where PyTorch's ReLU stops the gradient
    /// (candle's passes it); the fixtures' random biases never reach 0, so this is checked
    /// against the CPU kernels instead.
    ///
    /// The image is fixed: on about one random image in twenty, some ReLU input lies within
    /// the two convolutions' rounding (1e-6) of 0, so the two paths take opposite sides of
    /// the kink and V1's and V2's gradients legitimately differ by ~2% (scaling such an image
    /// by 1 +- 1e-4 makes the difference vanish). The exact zeros this test is about do not
    /// depend on the image.
    #[test]
    fn fresh_cornet_rt_gradients_match_the_cpu_kernels() {
        use rand::{Rng, SeedableRng};
        let model = Model::new(&ModelConfig::full(Arch::RT), &Device::Cpu, 3).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let pixels = (0..2 * 3 * 64 * 64)
            .map(|_| rng.random_range(-2f32..2.))
            .collect();
        let images = Tensor::from_vec(pixels, (2, 3, 64, 64), &Device::Cpu).unwrap();
        let targets = Tensor::new(&[3u32, 917], &Device::Cpu).unwrap();
        let step = || forward_backward(&model, &images, &targets, Precision::F32).unwrap();
        let (reference, portable) = (step(), with_portable_ops(step));
        for entry in model.store().parameters() {
            let grad = |out: &cornet_trainer::step::StepOutput| {
                out.grads.get(entry.var.as_tensor()).unwrap().clone()
            };
            let err = relative_error(&grad(&portable), &grad(&reference));
            assert!(err <= 1e-4, "gradient of {}: {err:.3e}", entry.name);
        }
    }
}

/// The first step on a GPU, in f32 and in bf16 (as on the CPU), where one is present.
#[cfg(feature = "cuda")]
mod on_cuda {
    use super::*;
    use cornet_model::testing::cuda_device;

    fn gpu() -> Option<Device> {
        cuda_device("GPU parity")
    }

    #[test]
    fn cornet_z_first_step() {
        if let Some(gpu) = gpu() {
            first_step_f32("z_mini", &gpu);
        }
    }

    #[test]
    fn cornet_rt_first_step() {
        if let Some(gpu) = gpu() {
            first_step_f32("rt_mini", &gpu);
        }
    }

    #[test]
    fn cornet_s_first_step() {
        if let Some(gpu) = gpu() {
            first_step_f32("s_mini", &gpu);
        }
    }

    #[test]
    fn cornet_s_data_parallel_first_step() {
        if let Some(gpu) = gpu() {
            first_step_f32("s_mini_dp", &gpu);
        }
    }

    #[test]
    fn cornet_z_bf16_first_step() {
        if let Some(gpu) = gpu() {
            replay_bf16("z_mini", &gpu);
        }
    }

    #[test]
    fn cornet_rt_bf16_first_step() {
        if let Some(gpu) = gpu() {
            replay_bf16("rt_mini", &gpu);
        }
    }
}
