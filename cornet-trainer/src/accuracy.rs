//! Top-1 and top-5 accuracy, as the original's `accuracy(output, target, topk=(1, 5))`: of a
//! training step and of an evaluation alike.

use candle_core::{DType, Tensor};

/// Correct predictions among `count` samples.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Accuracy {
    /// Samples whose label has the highest logit.
    pub top1: f64,
    /// Samples whose label is among the five highest logits.
    pub top5: f64,
    /// Samples counted.
    pub count: f64,
}

impl Accuracy {
    /// Counts, for each sample, whether its label is the best or among the five best logits.
    /// Ties are broken by class index like `torch.topk` on distinct values. A NaN logit is
    /// never a hit: a diverged model scores 0, not 100% (every comparison with NaN is false,
    /// so without this a NaN label logit would have no class above it).
    pub fn of(logits: &Tensor, labels: &Tensor) -> candle_core::Result<Self> {
        let logits = logits.to_dtype(DType::F32)?.to_vec2::<f32>()?;
        let labels = labels.to_dtype(DType::U32)?.to_vec1::<u32>()?;
        let mut acc = Accuracy::default();
        for (row, &label) in logits.iter().zip(&labels) {
            let target = row[label as usize];
            // Classes that beat the label: NaN (first in torch.topk's order), strictly
            // higher, or equal with a lower index.
            let better = row
                .iter()
                .enumerate()
                .filter(|&(i, &v)| v.is_nan() || v > target || (v == target && i < label as usize))
                .count();
            let hit = |k: usize| f64::from(u8::from(!target.is_nan() && better < k));
            acc.top1 += hit(1);
            acc.top5 += hit(5);
            acc.count += 1.0;
        }
        Ok(acc)
    }

    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &Accuracy) {
        self.top1 += other.top1;
        self.top5 += other.top5;
        self.count += other.count;
    }

    /// The top-1 fraction (0 for no samples).
    pub fn top1_rate(&self) -> f64 {
        self.top1 / self.count.max(1.0)
    }

    /// The top-5 fraction (0 for no samples).
    pub fn top5_rate(&self) -> f64 {
        self.top5 / self.count.max(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Result};

    #[test]
    fn counts_top1_and_top5() -> Result<()> {
        let logits = Tensor::new(
            &[
                [0.0f32, 9.0, 1.0, 2.0, 3.0, 4.0, 5.0],
                [9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0],
                [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
            ],
            &Device::Cpu,
        )?;
        let labels = Tensor::new(&[1u32, 5, 6], &Device::Cpu)?;
        let acc = Accuracy::of(&logits, &labels)?;
        // Row 0: label is the best. Row 1: sixth best. Row 2: all tied, label last in index.
        assert_eq!((acc.top1, acc.top5, acc.count), (1.0, 1.0, 3.0));
        Ok(())
    }

    #[test]
    fn nan_logits_are_never_hits() -> Result<()> {
        let nan = f32::NAN;
        let logits = Tensor::new(
            &[
                [nan, nan, nan, nan, nan, nan, nan],
                [1.0, nan, 0.0, 0.0, 0.0, 0.0, 0.0],
                [5.0, 4.0, 3.0, 2.0, 1.0, 0.0, nan],
            ],
            &Device::Cpu,
        )?;
        let labels = Tensor::new(&[0u32, 0, 0], &Device::Cpu)?;
        let acc = Accuracy::of(&logits, &labels)?;
        // Row 0: the label's logit is NaN. Row 1: a NaN ranks above the label, which is
        // still in the top five. Row 2: the label is best among numbers, a NaN ranks above it.
        assert_eq!((acc.top1, acc.top5, acc.count), (0.0, 2.0, 3.0));
        Ok(())
    }
}
