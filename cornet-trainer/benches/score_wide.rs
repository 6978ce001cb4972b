//! Scoring a wide layer: PLS predictivity on the features themselves (scikit-learn's NIPALS
//! over every unit) against the same score through the stimulus Gram (`LayerFeatures`: one
//! f64 pass over the units, an n x n eigendecomposition, NIPALS on Z = U S). Same data,
//! alternating, medians of 3.
//!
//! `cargo bench -p cornet-trainer --bench score_wide`

use candle_core::{Device, Tensor};
use cornet_trainer::score::{cross_validated_predictivity, LayerFeatures};
use nalgebra::DMatrix;
use rand::{Rng, SeedableRng};
use std::time::Instant;

const STIMULI: usize = 100;
const NEUROIDS: usize = 20;
const COMPONENTS: usize = 25;

fn main() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let folds: Vec<usize> = (0..STIMULI).map(|i| i % 10).collect();
    let y = DMatrix::from_fn(STIMULI, NEUROIDS, |_, _| rng.random_range(-1.0..1.0));
    println!("{STIMULI} stimuli, {NEUROIDS} neuroids, {COMPONENTS} components, 10 folds");
    // 64 x 56 x 56 is CORnet's V1 output at 224 px; the direct fit is only timed where it
    // finishes in reasonable time.
    for (units, with_direct) in [(2_000, true), (20_000, true), (64 * 56 * 56, false)] {
        let values: Vec<f32> = (0..STIMULI * units)
            .map(|_| rng.random_range(0.0..1.0f32).max(0.5) - 0.5)
            .collect();
        let features = Tensor::from_vec(values, (STIMULI, units), &Device::Cpu).unwrap();
        let (mut direct, mut reduced) = (Vec::new(), Vec::new());
        let mut raw = (f64::NAN, f64::NAN);
        for _ in 0..3 {
            if with_direct {
                let start = Instant::now();
                let x = features.to_dtype(candle_core::DType::F64).unwrap();
                let x = DMatrix::from_row_slice(
                    STIMULI,
                    units,
                    &x.flatten_all().unwrap().to_vec1::<f64>().unwrap(),
                );
                raw.0 = cross_validated_predictivity(&x, &y, &folds, COMPONENTS)
                    .expect("random data is scored")
                    .raw;
                direct.push(start.elapsed().as_secs_f64());
            }
            let start = Instant::now();
            let layer = LayerFeatures::new(&features)
                .unwrap()
                .expect("varied features");
            raw.1 = cross_validated_predictivity(&layer.pls_input, &y, &folds, COMPONENTS)
                .expect("random data is scored")
                .raw;
            reduced.push(start.elapsed().as_secs_f64());
        }
        let reduced = median(reduced);
        if with_direct {
            let direct = median(direct);
            println!(
                "{units:>7} units: direct {direct:8.3} s, through the Gram {reduced:7.3} s, \
                 {:6.1}x faster; predictivity {:.12} vs {:.12}",
                direct / reduced,
                raw.0,
                raw.1
            );
        } else {
            println!("{units:>7} units: through the Gram {reduced:7.3} s");
        }
    }
}

fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}
