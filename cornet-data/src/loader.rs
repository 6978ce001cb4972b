//! Decoding and augmenting on worker threads, batches handed out in sampler order.

use crate::dataset::Dataset;
use crate::decode::decode_rgb;
use crate::error::{DataError, Result};
use crate::transform::{sample_rng, Transform};
use crossbeam_channel::{Receiver, Sender};
use fast_image_resize::Resizer;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Images [N, 3, size, size] (CHW, normalized) and their labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// The images' floats, row-major in `shape`: image by image, channel by channel (RGB).
    pub images: Vec<f32>,
    /// `[N, 3, size, size]`; N is less than the sampler's batch where unreadable images were
    /// skipped.
    pub shape: [usize; 4],
    /// The class of each image, in order.
    pub labels: Vec<u32>,
    /// The dataset indices of the images, in order.
    pub indices: Vec<usize>,
}

/// How a [`Loader`] decodes and augments.
#[derive(Debug, Clone)]
pub struct LoaderOptions {
    /// The preprocessing of each image, which also fixes the batches' image size.
    pub transform: Transform,
    /// Decoding threads.
    pub workers: usize,
    /// Batches decoded ahead of the consumer; bounds memory.
    pub prefetch: usize,
    /// Skip and count unreadable images instead of failing (a batch left with no image is
    /// filled from the samples after it: see `build_batch`).
    pub skip_bad_images: bool,
    /// Fixes the augmentations together with the epoch and sample index.
    pub seed: u64,
}

/// Unreadable images met so far.
#[derive(Debug, Default)]
pub struct BadImages {
    /// How many.
    pub count: AtomicU64,
    /// The first few messages, for the report.
    pub examples: Mutex<Vec<String>>,
}

impl BadImages {
    /// Counts one unreadable image, keeping the first few messages.
    fn record(&self, err: &DataError) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let mut examples = self.examples.lock().unwrap();
        if examples.len() < 5 {
            examples.push(err.to_string());
        }
    }
}

/// A dataset, a transform and a pool of decoding threads.
///
/// A [`Sampler`](crate::Sampler) says which samples each step reads; [`Loader::epoch`] decodes
/// those batches ahead on the workers and hands them out in order. The batches are the same
/// for any number of workers: each sample's augmentation depends only on (seed, epoch, index).
///
/// # Example
///
/// One batch of four from a small generated ImageFolder:
///
/// ```
/// use cornet_data::synthetic::write_image_folder;
/// use cornet_data::{Dataset, ImageFolder, Loader, LoaderOptions, Sampler, Transform};
///
/// let dir = tempfile::tempdir()?;
/// // Two classes of four 40x40 images.
/// write_image_folder(dir.path(), 2, 4, 40, 0)?;
/// let options = LoaderOptions {
///     transform: Transform::Train { size: 32 },
///     workers: 2,
///     prefetch: 2,
///     skip_bad_images: false,
///     seed: 0,
/// };
/// let loader = Loader::new(ImageFolder::open(dir.path())?, options);
/// // Batches of 4 for rank 0 of 1, shuffled with seed 0.
/// let sampler = Sampler::training(loader.dataset().len(), 4, 0, 1, 0)?;
/// let batch = loader.epoch(0, sampler.batches(0, 0)).next().unwrap()?;
/// assert_eq!(batch.shape, [4, 3, 32, 32]);
/// assert_eq!(batch.images.len(), 4 * 3 * 32 * 32);
/// assert!(batch.labels.iter().all(|&label| label < 2));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Loader<D: Dataset + 'static> {
    dataset: Arc<D>,
    options: LoaderOptions,
    bad: Arc<BadImages>,
}

impl<D: Dataset + 'static> Loader<D> {
    /// A loader of `dataset`; no thread starts before [`Loader::epoch`].
    pub fn new(dataset: D, options: LoaderOptions) -> Self {
        Loader {
            dataset: Arc::new(dataset),
            options,
            bad: Arc::default(),
        }
    }

    /// The dataset it reads.
    pub fn dataset(&self) -> &D {
        &self.dataset
    }

    /// Unreadable images skipped so far, and a few of their messages.
    pub fn bad_images(&self) -> (u64, Vec<String>) {
        let examples = self.bad.examples.lock().unwrap().clone();
        (self.bad.count.load(Ordering::Relaxed), examples)
    }

    /// The batches of `epoch` whose indices `batches` lists, decoded ahead on the workers and
    /// yielded in this order. A batch is an error where an image is unreadable (and
    /// `skip_bad_images` is off) or every image of it is.
    pub fn epoch(&self, epoch: u64, batches: Vec<Vec<usize>>) -> EpochBatches {
        let (jobs, job_rx) = crossbeam_channel::unbounded::<(usize, Vec<usize>)>();
        let (result_tx, results) = crossbeam_channel::unbounded();
        let workers = (0..self.options.workers.max(1))
            .map(|_| {
                let job_rx = job_rx.clone();
                let result_tx: Sender<(usize, Result<Batch>)> = result_tx.clone();
                let dataset = self.dataset.clone();
                let options = self.options.clone();
                let bad = self.bad.clone();
                std::thread::spawn(move || {
                    let mut resizer = Resizer::new();
                    for (position, indices) in job_rx {
                        let batch =
                            build_batch(&*dataset, &options, &bad, epoch, indices, &mut resizer);
                        if result_tx.send((position, batch)).is_err() {
                            return;
                        }
                    }
                })
            })
            .collect();
        EpochBatches {
            pending: batches.into_iter().enumerate().collect(),
            jobs: Some(jobs),
            results,
            ready: BTreeMap::new(),
            next: 0,
            issued: 0,
            prefetch: self.options.prefetch.max(1),
            workers,
        }
    }
}

/// One epoch's batches, in order. Dropping it stops the workers.
pub struct EpochBatches {
    pending: std::collections::VecDeque<(usize, Vec<usize>)>,
    jobs: Option<Sender<(usize, Vec<usize>)>>,
    results: Receiver<(usize, Result<Batch>)>,
    ready: BTreeMap<usize, Result<Batch>>,
    next: usize,
    issued: usize,
    prefetch: usize,
    workers: Vec<JoinHandle<()>>,
}

impl Iterator for EpochBatches {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        // Keep `prefetch` batches in flight or done beyond the one handed out next.
        while self.issued < self.next + self.prefetch {
            let Some(job) = self.pending.pop_front() else {
                break;
            };
            self.jobs.as_ref()?.send(job).ok()?;
            self.issued += 1;
        }
        if self.next >= self.issued {
            return None;
        }
        let batch = loop {
            if let Some(batch) = self.ready.remove(&self.next) {
                break batch;
            }
            match self.results.recv() {
                Ok((position, batch)) => {
                    self.ready.insert(position, batch);
                }
                Err(_) => {
                    return Some(Err(DataError::Invalid(
                        "the decoding workers stopped".into(),
                    )))
                }
            }
        };
        self.next += 1;
        Some(batch)
    }
}

impl Drop for EpochBatches {
    fn drop(&mut self) {
        self.pending.clear();
        self.jobs = None;
        // Workers finish their current batch, find the job channel closed, and exit.
        while self.results.recv().is_ok() {}
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

/// With `skip_bad_images`, the most samples tried in place of a batch whose every image is
/// unreadable, before the batch is an error: far more than a few bad files explain.
const SUBSTITUTE_TRIES: usize = 4096;

/// Decodes and transforms the images `indices` into one batch. With `skip_bad_images`, the
/// unreadable ones are left out (and counted); a batch left with none is filled instead from
/// the samples following its last in dataset order (wrapping), up to its size: skipping the
/// step would desynchronise the ranks of a distributed run, which step together, while the
/// substitutes depend on the data alone (not on workers or timing), so epochs stay
/// reproducible. They may be read again elsewhere in the epoch; a dataset so broken that
/// [`SUBSTITUTE_TRIES`] samples give no image is an error.
fn build_batch<D: Dataset>(
    dataset: &D,
    options: &LoaderOptions,
    bad: &BadImages,
    epoch: u64,
    indices: Vec<usize>,
    resizer: &mut Resizer,
) -> Result<Batch> {
    let per_image = options.transform.output_len();
    let size = options.transform.size();
    let mut images = vec![0f32; indices.len() * per_image];
    let mut labels = Vec::with_capacity(indices.len());
    let mut kept = Vec::with_capacity(indices.len());
    let mut load = |index: usize, kept: &mut Vec<usize>| {
        let out = &mut images[kept.len() * per_image..(kept.len() + 1) * per_image];
        let result = dataset
            .read(index)
            .and_then(|bytes| decode_rgb(&bytes, dataset.path(index)))
            .and_then(|image| {
                let mut rng = sample_rng(options.seed, epoch, index as u64);
                options.transform.apply(&image, &mut rng, resizer, out)
            });
        match result {
            Ok(()) => {
                labels.push(dataset.label(index) as u32);
                kept.push(index);
                Ok(())
            }
            Err(err) if options.skip_bad_images => {
                bad.record(&err);
                Ok(())
            }
            Err(err) => Err(err),
        }
    };
    for &index in &indices {
        load(index, &mut kept)?;
    }
    if let (true, Some(&last)) = (kept.is_empty(), indices.last()) {
        let tries = SUBSTITUTE_TRIES.min(dataset.len());
        for step in 1..=tries {
            if kept.len() == indices.len() {
                break;
            }
            load((last + step) % dataset.len(), &mut kept)?;
        }
        if kept.is_empty() {
            return Err(DataError::Invalid(format!(
                "every image of a batch and the {tries} samples after it are unreadable \
                 (first: {})",
                dataset.path(indices[0]).display()
            )));
        }
    }
    images.truncate(kept.len() * per_image);
    Ok(Batch {
        images,
        shape: [kept.len(), 3, size, size],
        labels,
        indices: kept,
    })
}
