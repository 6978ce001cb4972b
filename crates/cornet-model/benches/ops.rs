//! Per-op timings at the layer shapes of CORnet-Z (batch 16) and CORnet-S (batch 4), 224 px,
//! forward and forward + backward, so that a regression in one op shows:
//!
//!   cargo bench -p cornet-model --bench ops [-- FILTER]

use candle_core::{Device, Tensor, Var};
use cornet_model::ops;
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
        group.bench_function(format!("{name}/forward"), |b| {
            b.iter(|| ops::conv2d(x.as_tensor(), w.as_tensor(), s, k / 2).unwrap())
        });
        group.bench_function(format!("{name}/forward+backward"), |b| {
            b.iter(|| {
                let y = ops::conv2d(x.as_tensor(), w.as_tensor(), s, k / 2).unwrap();
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

criterion_group!(benches, convolutions, pooling);
criterion_main!(benches);
