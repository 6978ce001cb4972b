//! A dataset made into batches: the [`Loader`] and the [`Sampler`] that drives it, built
//! together so that training, evaluation, extraction and benchmarks cut and decode an epoch
//! the same way.

use crate::dataset::Dataset;
use crate::error::Result;
use crate::loader::{EpochBatches, Loader, LoaderOptions};
use crate::sampler::Sampler;
use crate::transform::Transform;

/// How the batches are cut and decoded, beside the transform.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// Images per step on this rank.
    pub batch_size: usize,
    /// This rank and the number of ranks sharing the epoch.
    pub rank: usize,
    /// Ranks sharing the epoch.
    pub world_size: usize,
    /// Decoding threads.
    pub workers: usize,
    /// Batches decoded ahead of the consumer.
    pub prefetch: usize,
    /// Skip and count unreadable images instead of failing.
    pub skip_bad_images: bool,
    /// Fixes the shuffle and the augmentations.
    pub seed: u64,
}

impl PipelineOptions {
    /// One process reading `batch_size` images per step on `workers` threads, two batches per
    /// worker decoded ahead, seed 0; unreadable images are errors.
    pub fn single_process(batch_size: usize, workers: usize) -> Self {
        PipelineOptions {
            batch_size,
            rank: 0,
            world_size: 1,
            workers,
            prefetch: 2 * workers.max(1),
            skip_bad_images: false,
            seed: 0,
        }
    }
}

/// A loader and its sampler.
pub struct Pipeline<D: Dataset + 'static> {
    loader: Loader<D>,
    sampler: Sampler,
}

impl<D: Dataset + 'static> Pipeline<D> {
    /// Training: crops of side `size` augmented as `Transform::Train`, the epoch shuffled by
    /// (seed, epoch) and cut per rank, the last partial global batch dropped.
    pub fn training(dataset: D, size: usize, options: &PipelineOptions) -> Result<Self> {
        let sampler = Sampler::training(
            dataset.len(),
            options.batch_size,
            options.rank,
            options.world_size,
            options.seed,
        )?;
        Ok(Self::with_sampler(
            dataset,
            Transform::Train { size },
            sampler,
            options,
        ))
    }

    /// Evaluation (`Transform::Val` or `Transform::Test`): the dataset's order, every sample
    /// read once across the ranks.
    pub fn evaluation(dataset: D, transform: Transform, options: &PipelineOptions) -> Result<Self> {
        let sampler = Sampler::validation(
            dataset.len(),
            options.batch_size,
            options.rank,
            options.world_size,
        )?;
        Ok(Self::with_sampler(dataset, transform, sampler, options))
    }

    fn with_sampler(
        dataset: D,
        transform: Transform,
        sampler: Sampler,
        options: &PipelineOptions,
    ) -> Self {
        let loader = Loader::new(
            dataset,
            LoaderOptions {
                transform,
                workers: options.workers,
                prefetch: options.prefetch,
                skip_bad_images: options.skip_bad_images,
                seed: options.seed,
            },
        );
        Pipeline { loader, sampler }
    }

    /// This rank's batches of `epoch` from step `start` on.
    pub fn epoch(&self, epoch: u64, start: usize) -> EpochBatches {
        self.loader.epoch(epoch, self.sampler.batches(epoch, start))
    }

    /// This rank's steps in one epoch.
    pub fn steps_per_epoch(&self) -> usize {
        self.sampler.steps_per_epoch()
    }

    /// The loader, for its dataset and its count of unreadable images.
    pub fn loader(&self) -> &Loader<D> {
        &self.loader
    }

    /// The sampler, for a custom selection of an epoch's batches.
    pub fn sampler(&self) -> &Sampler {
        &self.sampler
    }
}
