//! Which CORnet, and the sizes that make one instance of it.

use crate::error::{Error, Result};
use std::fmt;
use std::str::FromStr;

/// The four CORnet variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arch {
    /// Feedforward: conv, ReLU, max-pool per area.
    Z,
    /// Legacy recurrent: at step t an area reads the previous area's output of step t.
    R,
    /// Biological recurrent: at step t an area reads the previous area's output of step t - 1.
    RT,
    /// Bottleneck blocks with per-step BatchNorm; V2, V4 and IT recur 2, 4 and 2 times.
    S,
}

impl Arch {
    /// Every variant, in the order Z, R, RT, S.
    pub const ALL: [Arch; 4] = [Arch::Z, Arch::R, Arch::RT, Arch::S];

    /// The short name used on the command line and in file names (`CORnet-<name>`).
    pub fn name(self) -> &'static str {
        match self {
            Arch::Z => "Z",
            Arch::R => "R",
            Arch::RT => "RT",
            Arch::S => "S",
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Arch {
    type Err = Error;

    /// Accepts `Z`, `cornet_z`, `CORnet-Z` and the like, in any case.
    fn from_str(s: &str) -> Result<Self> {
        let lower = s.to_ascii_lowercase();
        let short = lower
            .strip_prefix("cornet")
            .map(|rest| rest.trim_start_matches(['-', '_']))
            .unwrap_or(&lower);
        match short {
            "z" => Ok(Arch::Z),
            "r" => Ok(Arch::R),
            "rt" => Ok(Arch::RT),
            "s" => Ok(Arch::S),
            _ => Err(Error::InvalidConfig(format!(
                "unknown CORnet model `{s}`: expected one of Z, R, RT, S"
            ))),
        }
    }
}

/// What a train step keeps per image, as a multiple of its areas' outputs
/// ([`ModelConfig::area_output_floats`]): just under the smallest growth of the CPU's peak
/// memory per image measured at 224 px (docs/performance.md, "Peak memory of a train step":
/// Z 18.5 and 22.0, R 15.7, RT 15.0 and 15.6, S 38.0 and 42.3, from smaller to larger
/// batches). CORnet-S's bottlenecks widen four times inside each block.
fn training_floats_per_output_float(arch: Arch) -> f64 {
    match arch {
        Arch::Z => 18.0,
        Arch::R | Arch::RT => 14.9,
        Arch::S => 37.9,
    }
}

/// The areas in processing order; also the state-dict prefixes.
pub const AREAS: [&str; 4] = ["V1", "V2", "V4", "IT"];

/// Everything that fixes the shapes of a CORnet's parameters and how it unrolls in time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelConfig {
    /// Which of the four graphs.
    pub arch: Arch,
    /// Output channels of V1, V2, V4 and IT.
    pub widths: [usize; 4],
    /// Outputs of the decoder's linear layer: the length of a logits row (1000 for ImageNet).
    pub num_classes: usize,
    /// Time steps that R and RT unroll (the original's `--times`, default 5).
    pub times: usize,
    /// Recurrent steps of CORnet-S's V2, V4 and IT blocks.
    pub s_times: [usize; 3],
}

impl ModelConfig {
    /// The published, ImageNet-sized model.
    pub fn full(arch: Arch) -> Self {
        ModelConfig {
            arch,
            widths: [64, 128, 256, 512],
            num_classes: 1000,
            times: 5,
            s_times: [2, 4, 2],
        }
    }

    /// A lower bound on the floats that training needs: every parameter three times (weights,
    /// gradients, momentum) and, per image of `image_size` pixels square, what a train step
    /// keeps: every layer's intermediates for the backward pass and the gradients in flight,
    /// [`training_floats_per_output_float`] times the areas' outputs. A config over this bound
    /// cannot fit, whatever else is true.
    pub fn min_training_floats(&self, image_size: usize, batch_size: usize) -> f64 {
        let pixels = (image_size * image_size) as f64;
        let per_image =
            training_floats_per_output_float(self.arch) * self.area_output_floats(pixels);
        3.0 * self.parameter_floats() + per_image * batch_size as f64
    }

    /// A lower bound on the floats a forward pass without gradients needs for `batch_size`
    /// images of `pixels` pixels: the weights, the input batch and V1's first convolution's
    /// output (input and output are alive together). What the caller keeps of each pass
    /// comes on top.
    pub fn min_inference_floats(&self, pixels: f64, batch_size: usize) -> f64 {
        // V1's first convolution has stride 2: a quarter of the pixels, in V1's width.
        let per_image = 3.0 * pixels + self.widths[0] as f64 * pixels / 4.0;
        self.parameter_floats() + per_image * batch_size as f64
    }

    /// How many floats the weights are, less the biases and normalization parameters (a few
    /// per channel): the convolutions' kernels and the decoder.
    fn parameter_floats(&self) -> f64 {
        let w = self.widths.map(|w| w as f64);
        // V1 reads 3 channels with a 7x7 kernel; the decoder maps IT's channels to the classes.
        let (v1, decoder) = (147.0 * w[0], w[3] * self.num_classes as f64);
        // Z's areas: a 3x3 convolution from the area before.
        let from_before: f64 = (1..4).map(|a| 9.0 * w[a - 1] * w[a]).sum();
        let areas: f64 = match self.arch {
            Arch::Z => from_before,
            // R and RT add a 3x3 convolution within each area.
            Arch::R | Arch::RT => from_before + w.iter().map(|w| 9.0 * w * w).sum::<f64>(),
            // V1's second 3x3 convolution; in each block a 1x1 from the area before, a 1x1
            // skip, and 1x1, 3x3 and 1x1 convolutions through four times the width.
            Arch::S => {
                9.0 * w[0] * w[0]
                    + (1..4)
                        .map(|a| w[a - 1] * w[a] + 153.0 * w[a] * w[a])
                        .sum::<f64>()
            }
        };
        v1 + areas + decoder
    }

    /// Floats of every area's output at each of its steps, for one image of `pixels` pixels:
    /// what all the areas' output taps of one image hold.
    pub fn area_output_floats(&self, pixels: f64) -> f64 {
        let steps = match self.arch {
            Arch::Z => [1, 1, 1, 1],
            Arch::R | Arch::RT => [self.times; 4],
            Arch::S => [1, self.s_times[0], self.s_times[1], self.s_times[2]],
        };
        // Each area halves the side, V1 twice (a stride-2 convolution and a pool).
        (0..4)
            .map(|a| {
                let area_pixels = pixels / f64::powi(4.0, a as i32 + 2);
                self.widths[a] as f64 * area_pixels * steps[a] as f64
            })
            .sum()
    }

    /// Checks what the constructors rely on: positive sizes, widths that R's and RT's
    /// GroupNorm can split into [`GROUP_NORM_GROUPS`] groups. Fails with
    /// [`Error::InvalidConfig`] saying which.
    pub fn validate(&self) -> Result<()> {
        let fail = |msg: String| Err(Error::InvalidConfig(msg));
        if self.widths.contains(&0) {
            return fail(format!("widths must be positive, got {:?}", self.widths));
        }
        if self.num_classes == 0 {
            return fail("num_classes must be positive".into());
        }
        match self.arch {
            Arch::R | Arch::RT => {
                if self.times == 0 {
                    return fail("times must be at least 1".into());
                }
                if let Some(w) = self
                    .widths
                    .iter()
                    .find(|w| !w.is_multiple_of(GROUP_NORM_GROUPS))
                {
                    return fail(format!(
                        "CORnet-{} uses GroupNorm with {GROUP_NORM_GROUPS} groups, so every width \
                         must be a multiple of {GROUP_NORM_GROUPS}; got {w} in {:?}",
                        self.arch, self.widths
                    ));
                }
            }
            Arch::S if self.s_times.contains(&0) => {
                return fail(format!(
                    "CORnet-S recurrence steps must be positive, got {:?}",
                    self.s_times
                ));
            }
            _ => {}
        }
        Ok(())
    }
}

/// CORnet-R and RT normalize with `nn.GroupNorm(32, channels)`.
pub const GROUP_NORM_GROUPS: usize = 32;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Model;
    use candle_core::Device;

    /// The weights' estimate leaves out only the biases and the normalization parameters: it is
    /// at most, and within 1% of, what the full-size graphs hold.
    #[test]
    fn the_parameter_estimate_is_the_kernels_and_the_decoder() {
        for arch in Arch::ALL {
            let config = ModelConfig::full(arch);
            let model = Model::new(&config, &Device::Cpu, 0).unwrap();
            let held: usize = model.store().parameters().map(|e| e.var.elem_count()).sum();
            let estimate = config.parameter_floats();
            assert!(
                estimate <= held as f64 && estimate >= 0.99 * held as f64,
                "CORnet-{arch}: estimate {estimate}, held {held}"
            );
        }
    }

    /// Peak resident memory of `cornet-trainer bench --model M --batch-size B --image-size 224
    /// --steps 1 --warmup 0` on the CPU, in MiB, by batch size (docs/performance.md, "Peak
    /// memory of a train step").
    const MEASURED_PEAK_MIB: [(Arch, &[(usize, f64)]); 4] = [
        (Arch::Z, &[(4, 198.1), (8, 304.1), (32, 1062.3)]),
        (Arch::R, &[(4, 636.1), (8, 1086.3)]),
        (Arch::RT, &[(4, 532.2), (8, 962.3), (16, 1856.4)]),
        (Arch::S, &[(4, 1604.4), (8, 1982.2), (16, 2824.2)]),
    ];

    /// The training bound stays under what a train step was measured to take at every batch,
    /// and grows from the smallest batch measured to the largest by at least 80% of what the
    /// measured peak grew by: at ImageNet's batch sizes, where the images dominate, it is close
    /// to the truth and still below it.
    #[test]
    fn the_training_bound_is_below_the_measured_peak_and_grows_with_it() {
        let mib = |floats: f64| 4.0 * floats / f64::from(1u32 << 20);
        for (arch, points) in MEASURED_PEAK_MIB {
            let config = ModelConfig::full(arch);
            let bound = |batch| mib(config.min_training_floats(224, batch));
            for &(batch, peak) in points {
                assert!(bound(batch) <= peak, "CORnet-{arch} at {batch}");
            }
            let ((b1, p1), (b2, p2)) = (points[0], points[points.len() - 1]);
            let (grown, measured) = (bound(b2) - bound(b1), p2 - p1);
            assert!(
                grown >= 0.8 * measured,
                "CORnet-{arch}, {b1} to {b2}: the bound grows by {grown:.1} MiB, the peak by \
                 {measured:.1}"
            );
        }
    }
}
