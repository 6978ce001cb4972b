//! Which images each BatchNorm's statistics cover across the ranks (`model.bn_images`): the
//! groups of a rank's batch, or the ranks that share one group and the ring that sums their
//! statistics.

use super::error::{DistributedError, Result};
use super::tcp::TcpRing;
use super::RankEnv;
use cornet_model::batch_groups::GroupError;
use cornet_model::{BatchGroups, BatchStatsGroup};
use std::ops::Range;
use std::sync::{Arc, Mutex};

/// How this rank's BatchNorm groups its images in training.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchNormPlan {
    /// Statistics over this rank's batch (`model.bn_images` unset, or equal to it).
    WholeBatch,
    /// Groups of `images` images within this rank's batch, each on its own.
    Ghost {
        /// Images per group.
        images: usize,
    },
    /// One group spread over the consecutive ranks `ranks`, this one among them.
    AcrossRanks {
        /// The group's ranks.
        ranks: Range<usize>,
    },
}

impl BatchNormPlan {
    /// The plan of rank `rank` of `world_size`, each with `batch_size / world_size` images,
    /// for groups of `bn_images` (`None`: each rank's batch). Groups tile the global batch in
    /// rank order, so the first is rank 0's first; a group never straddles two ranks
    /// partially.
    pub fn new(
        bn_images: Option<usize>,
        batch_size: usize,
        rank: usize,
        world_size: usize,
    ) -> Result<Self> {
        let per_rank = batch_size / world_size;
        let Some(images) = bn_images else {
            return Ok(BatchNormPlan::WholeBatch);
        };
        if images == per_rank {
            Ok(BatchNormPlan::WholeBatch)
        } else if images > 0 && per_rank.is_multiple_of(images) {
            Ok(BatchNormPlan::Ghost { images })
        } else if images.is_multiple_of(per_rank) && batch_size.is_multiple_of(images) {
            let ranks_per_group = images / per_rank;
            let first = rank / ranks_per_group * ranks_per_group;
            Ok(BatchNormPlan::AcrossRanks {
                ranks: first..first + ranks_per_group,
            })
        } else {
            Err(DistributedError::BatchNormGroups {
                bn_images: images,
                batch_size,
                per_rank,
                world_size,
            })
        }
    }

    /// The model's grouping for this plan: a group across ranks connects its ring (after the
    /// job's communicator, whose rendezvous serves the store on rank 0). The ring is TCP on
    /// GPU ranks too: the statistics it carries are a few values per BatchNorm.
    pub fn connect(&self, env: Option<&RankEnv>) -> Result<BatchGroups> {
        match self {
            BatchNormPlan::WholeBatch => Ok(BatchGroups::WholeBatch),
            BatchNormPlan::Ghost { images } => Ok(BatchGroups::Ghost { images: *images }),
            BatchNormPlan::AcrossRanks { ranks } => {
                let env = env.ok_or_else(|| {
                    DistributedError::RankEnv(
                        "a BatchNorm group across ranks needs the rank environment".into(),
                        None,
                    )
                })?;
                let ring = TcpRing::connect_group(env, &ring_name(ranks), ranks.clone())?;
                Ok(BatchGroups::AcrossRanks(Arc::new(RingSums(Mutex::new(
                    ring,
                )))))
            }
        }
    }
}

/// The store keys of the ring of the group `ranks`.
fn ring_name(ranks: &Range<usize>) -> String {
    format!("bn-ring-{}-{}", ranks.start, ranks.end)
}

/// A group's sums over its own TCP ring, in f64 as the BatchNorm kernel accumulates them:
/// rounding each rank's partial sums to f32 before adding would make a group spread over
/// ranks normalize differently from the same group on one rank.
struct RingSums(Mutex<TcpRing>);

impl BatchStatsGroup for RingSums {
    fn all_reduce_sum(&self, values: &mut [f64]) -> std::result::Result<(), GroupError> {
        let mut ring = self
            .0
            .lock()
            .map_err(|_| "the BatchNorm ring's lock is poisoned")?;
        Ok(ring.all_reduce_sum_of(values)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_tile_the_global_batch_in_rank_order() {
        let plan = |bn, batch, rank, world| BatchNormPlan::new(bn, batch, rank, world).unwrap();
        assert_eq!(plan(None, 256, 1, 4), BatchNormPlan::WholeBatch);
        assert_eq!(plan(Some(128), 256, 1, 2), BatchNormPlan::WholeBatch);
        assert_eq!(
            plan(Some(128), 256, 0, 1),
            BatchNormPlan::Ghost { images: 128 }
        );
        assert_eq!(
            plan(Some(128), 256, 3, 4),
            BatchNormPlan::AcrossRanks { ranks: 2..4 }
        );
        assert_eq!(
            plan(Some(256), 256, 5, 8),
            BatchNormPlan::AcrossRanks { ranks: 0..8 }
        );
    }

    #[test]
    fn groups_that_do_not_tile_the_batch_are_refused_naming_the_numbers() {
        for (bn, batch, world) in [(96, 256, 1), (48, 256, 2), (192, 256, 4), (0, 8, 1)] {
            let err = BatchNormPlan::new(Some(bn), batch, 0, world)
                .unwrap_err()
                .to_string();
            let per_rank = batch / world;
            assert!(
                err.contains(&format!("model.bn_images {bn}"))
                    && err.contains(&format!("{per_rank} images"))
                    && err.contains(&format!("over {world} ranks")),
                "{err}"
            );
        }
    }
}
