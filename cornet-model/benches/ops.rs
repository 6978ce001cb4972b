//! Per-op timings at the layer shapes of CORnet-Z (batch 16) and CORnet-S (batch 4), 224 px,
//! forward and forward + backward, so that a regression in one op shows:
//!
//!   cargo bench -p cornet-model --bench ops [-- FILTER]

use candle_core::{DType, Device, Tensor, Var};
use cornet_model::{ops, BatchGroups};
use criterion::{criterion_group, criterion_main, Criterion};

/// (name, batch, in channels, out channels, input side, kernel, stride)
const CONVS: [(&str, usize, usize, usize, usize, usize, usize); 9] = [
    ("Z.V1.conv", 16, 3, 64, 224, 7, 2),
    ("Z.V2.conv", 16, 64, 128, 56, 3, 1),
    ("Z.V4.conv", 16, 128, 256, 28, 3, 1),
    ("Z.IT.conv", 16, 256, 512, 14, 3, 1),
    ("S.V1.conv2", 4, 64, 64, 56, 3, 1),
    ("S.V2.conv2.step0", 4, 512, 512, 56, 3, 2),
    ("S.V4.conv2.step1", 4, 1024, 1024, 14, 3, 1),
    ("S.IT.conv1", 4, 512, 2048, 7, 1, 1),
    ("S.IT.conv2.step1", 4, 2048, 2048, 4, 3, 1),
];

fn convolutions(c: &mut Criterion) {
    let mut group = c.benchmark_group("conv2d");
    group.sample_size(10);
    for (name, n, cin, cout, side, k, s) in CONVS {
        let x = Var::randn(0f32, 1., (n, cin, side, side), &Device::Cpu).unwrap();
        let w = Var::randn(0f32, 0.05, (cout, cin, k, k), &Device::Cpu).unwrap();
        // CORnet-Z's convolutions have biases, CORnet-S's none.
        let bias = name
            .starts_with("Z.")
            .then(|| Var::zeros(cout, DType::F32, &Device::Cpu).unwrap());
        let bias = bias.as_ref().map(Var::as_tensor);
        group.bench_function(format!("{name}/forward"), |b| {
            b.iter(|| ops::conv2d(x.as_tensor(), w.as_tensor(), bias, s, k / 2).unwrap())
        });
        group.bench_function(format!("{name}/forward+backward"), |b| {
            b.iter(|| {
                let y = ops::conv2d(x.as_tensor(), w.as_tensor(), bias, s, k / 2).unwrap();
                y.sum_all().unwrap().backward().unwrap()
            })
        });
    }
    group.finish();
}

fn pooling(c: &mut Criterion) {
    let mut group = c.benchmark_group("max_pool2d");
    group.sample_size(10);
    for (name, n, channels, side) in [("Z.V1.pool", 16, 64, 112), ("S.V1.pool", 4, 64, 112)] {
        let x = Var::randn(0f32, 1., (n, channels, side, side), &Device::Cpu).unwrap();
        group.bench_function(format!("{name}/forward"), |b| {
            b.iter(|| ops::max_pool2d(x.as_tensor(), 3, 2, 1).unwrap())
        });
        group.bench_function(format!("{name}/forward+backward"), |b| {
            b.iter(|| {
                let y: Tensor = ops::max_pool2d(x.as_tensor(), 3, 2, 1).unwrap();
                y.sum_all().unwrap().backward().unwrap()
            })
        });
    }
    group.finish();
}

/// Times `op` forward and forward + backward on a [n, channels, side, side] input.
fn bench_elementwise(
    c: &mut Criterion,
    group: &str,
    shapes: &[(&str, usize, usize, usize)],
    op: impl Fn(&Tensor) -> Tensor,
) {
    let mut group = c.benchmark_group(group);
    group.sample_size(10);
    for &(name, n, channels, side) in shapes {
        let x = Var::randn(0f32, 1., (n, channels, side, side), &Device::Cpu).unwrap();
        group.bench_function(format!("{name}/forward"), |b| b.iter(|| op(x.as_tensor())));
        group.bench_function(format!("{name}/forward+backward"), |b| {
            b.iter(|| op(x.as_tensor()).sum_all().unwrap().backward().unwrap())
        });
    }
    group.finish();
}

/// Ours, and candle's own ReLU (the before of the CPU speed work) beside it.
fn relu(c: &mut Criterion) {
    let shapes = [("Z.V1.nonlin", 16, 64, 112), ("S.V1.nonlin", 4, 64, 112)];
    bench_elementwise(c, "relu", &shapes, |x| ops::relu(x).unwrap());
    bench_elementwise(c, "relu_candle", &shapes, |x| x.relu().unwrap());
}

/// Ours, and candle-nn's BatchNorm in train mode (the before) beside it.
fn batch_norm(c: &mut Criterion) {
    let shapes = [("S.V1.norm1", 4, 64, 112)];
    let weight = Var::ones(64, DType::F32, &Device::Cpu).unwrap();
    let bias = Var::zeros(64, DType::F32, &Device::Cpu).unwrap();
    bench_elementwise(c, "batch_norm_train", &shapes, |x| {
        ops::batch_norm_train(x, &weight, &bias, 1e-5, &BatchGroups::WholeBatch)
            .unwrap()
            .output
    });
    // Two groups of 2 images (ghost batch norm): the same passes, other sums.
    let ghost = BatchGroups::Ghost { images: 2 };
    bench_elementwise(c, "batch_norm_train_ghost2", &shapes, |x| {
        ops::batch_norm_train(x, &weight, &bias, 1e-5, &ghost)
            .unwrap()
            .output
    });
    let candle = candle_nn::BatchNorm::new(
        64,
        Tensor::zeros(64, DType::F32, &Device::Cpu).unwrap(),
        Tensor::ones(64, DType::F32, &Device::Cpu).unwrap(),
        weight.as_tensor().clone(),
        bias.as_tensor().clone(),
        1e-5,
    )
    .unwrap();
    bench_elementwise(c, "batch_norm_train_candle", &shapes, |x| {
        candle.forward_train(x).unwrap()
    });
}

criterion_group!(benches, convolutions, pooling, relu, batch_norm);
criterion_main!(benches);
