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
    /// gradients, momentum) and, per image of `image_size` pixels square, each area's output at
    /// each of its steps twice (kept for the backward pass, and its gradient). The real need
    /// is several times more (every layer's intermediates); a config over this bound cannot
    /// fit, whatever else is true.
    pub fn min_training_floats(&self, image_size: usize, batch_size: usize) -> f64 {
        let pixels = (image_size * image_size) as f64;
        3.0 * self.parameter_floats() + 2.0 * self.area_output_floats(pixels) * batch_size as f64
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

    /// About how many floats the weights are: the convolutions' kernels and the decoder.
    fn parameter_floats(&self) -> f64 {
        let w = self.widths.map(|w| w as f64);
        // V1 reads 3 channels with a 7x7 kernel; the others 3x3 over the area before; the
        // decoder maps IT's channels to the classes.
        147.0 * w[0]
            + 9.0 * (w[0] * w[1] + w[1] * w[2] + w[2] * w[3])
            + w[3] * self.num_classes as f64
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
