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
    pub images: Vec<f32>,
    pub shape: [usize; 4],
    pub labels: Vec<u32>,
    /// The dataset indices of the images, in order.
    pub indices: Vec<usize>,
}

#[derive(Debug, Clone)]
pub struct LoaderOptions {
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
pub struct Loader<D: Dataset + 'static> {
    dataset: Arc<D>,
    options: LoaderOptions,
    bad: Arc<BadImages>,
}

impl<D: Dataset + 'static> Loader<D> {
    pub fn new(dataset: D, options: LoaderOptions) -> Self {
        Loader {
            dataset: Arc::new(dataset),
            options,
            bad: Arc::default(),
        }
    }

    pub fn dataset(&self) -> &D {
        &self.dataset
    }

    /// Unreadable images skipped so far, and a few of their messages.
    pub fn bad_images(&self) -> (u64, Vec<String>) {
        let examples = self.bad.examples.lock().unwrap().clone();
        (self.bad.count.load(Ordering::Relaxed), examples)
    }

    /// The batches of `epoch` whose indices `batches` lists, decoded ahead on the workers and
    /// yielded in this order.
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
