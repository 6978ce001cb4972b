//! The order of an epoch, cut per rank, from any step.

use crate::error::{DataError, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Which samples each step of an epoch reads on one rank.
///
/// Training shuffles by (seed, epoch) and drops the last partial global batch; global batch k
/// is `order[k * G .. (k + 1) * G]` with `G = batch_size * world_size`, and rank r reads its
/// r-th slice of it, so global batch k holds the same samples for any world size with the
/// same global batch. Validation keeps the dataset's order and gives each sample to exactly
/// one rank (rank r reads samples r, r + world, ...), with no padding.
#[derive(Debug, Clone)]
pub struct Sampler {
    len: usize,
    batch_size: usize,
    rank: usize,
    world_size: usize,
    seed: u64,
    training: bool,
}

impl Sampler {
    /// The training order of `len` samples for rank `rank` of `world_size`, `batch_size`
    /// samples per rank and step, shuffled anew each epoch from `seed`.
    pub fn training(
        len: usize,
        batch_size: usize,
        rank: usize,
        world_size: usize,
        seed: u64,
    ) -> Result<Self> {
        check_shape(batch_size, rank, world_size)?;
        Ok(Sampler {
            len,
            batch_size,
            rank,
            world_size,
            seed,
            training: true,
        })
    }

    /// The validation order of `len` samples for rank `rank` of `world_size`, in batches of
    /// `batch_size` (the last may be smaller).
    pub fn validation(
        len: usize,
        batch_size: usize,
        rank: usize,
        world_size: usize,
    ) -> Result<Self> {
        check_shape(batch_size, rank, world_size)?;
        Ok(Sampler {
            len,
            batch_size,
            rank,
            world_size,
            seed: 0,
            training: false,
        })
    }

    /// Steps this rank takes in one epoch.
    pub fn steps_per_epoch(&self) -> usize {
        if self.training {
            self.len / (self.batch_size * self.world_size)
        } else {
            self.validation_share().len().div_ceil(self.batch_size)
        }
    }

    /// The dataset indices of each of this rank's steps of `epoch`, from step `start` on.
    pub fn batches(&self, epoch: u64, start: usize) -> Vec<Vec<usize>> {
        if !self.training {
            let share = self.validation_share();
            return share
                .chunks(self.batch_size)
                .skip(start)
                .map(<[usize]>::to_vec)
                .collect();
        }
        let mut order: Vec<usize> = (0..self.len).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(epoch);
        order.shuffle(&mut rng);
        let global = self.batch_size * self.world_size;
        (start..self.steps_per_epoch())
            .map(|step| {
                let first = step * global + self.rank * self.batch_size;
                order[first..first + self.batch_size].to_vec()
            })
            .collect()
    }

    fn validation_share(&self) -> Vec<usize> {
        (self.rank..self.len).step_by(self.world_size).collect()
    }
}

/// Refused here rather than met later as a division by zero or a slice out of range.
fn check_shape(batch_size: usize, rank: usize, world_size: usize) -> Result<()> {
    if batch_size == 0 {
        return Err(DataError::ZeroBatchSize);
    }
    if rank >= world_size {
        return Err(DataError::BadRank { rank, world_size });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_sample_is_seen_once_per_epoch_across_ranks() {
        for world in [1, 2, 3] {
            let mut seen = Vec::new();
            for rank in 0..world {
                let s = Sampler::training(100, 4, rank, world, 7).unwrap();
                seen.extend(s.batches(3, 0).into_iter().flatten());
            }
            let unique: HashSet<_> = seen.iter().collect();
            assert_eq!(unique.len(), seen.len(), "world {world}: a sample twice");
            assert_eq!(
                seen.len(),
                100 / (4 * world) * 4 * world,
                "world {world}: drop_last only"
            );

            let mut val = Vec::new();
            for rank in 0..world {
                val.extend(
                    Sampler::validation(101, 8, rank, world)
                        .unwrap()
                        .batches(0, 0)
                        .into_iter()
                        .flatten(),
                );
            }
            val.sort();
            assert_eq!(
                val,
                (0..101).collect::<Vec<_>>(),
                "validation covers every sample once"
            );
        }
    }

    #[test]
    fn global_batches_do_not_depend_on_the_world_size() {
        let one = Sampler::training(96, 8, 0, 1, 5).unwrap().batches(2, 0);
        for (step, global) in one.iter().enumerate() {
            let split: Vec<usize> = (0..2)
                .flat_map(|rank| {
                    Sampler::training(96, 4, rank, 2, 5).unwrap().batches(2, 0)[step].clone()
                })
                .collect();
            assert_eq!(&split, global);
        }
    }

    #[test]
    fn starting_at_step_k_gives_the_tail_and_epochs_differ() {
        let s = Sampler::training(64, 4, 0, 1, 1).unwrap();
        assert_eq!(s.batches(0, 5), s.batches(0, 0)[5..]);
        assert_ne!(s.batches(0, 0), s.batches(1, 0));
    }

    #[test]
    fn a_batch_size_of_zero_or_a_rank_outside_the_world_is_refused() {
        assert!(matches!(
            Sampler::training(10, 0, 0, 1, 0),
            Err(DataError::ZeroBatchSize)
        ));
        assert!(matches!(
            Sampler::validation(10, 0, 0, 1),
            Err(DataError::ZeroBatchSize)
        ));
        assert!(matches!(
            Sampler::training(10, 4, 2, 2, 0),
            Err(DataError::BadRank {
                rank: 2,
                world_size: 2
            })
        ));
        assert!(Sampler::validation(10, 4, 0, 0).is_err());
    }
}
