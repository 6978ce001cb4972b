//! Image files to batches of normalized tensors, with torchvision's algorithms.
//!
//! A [`Dataset`] gives encoded images and labels by index, from an [`ImageFolder`] or from
//! WebDataset [`Shards`]; a [`Sampler`] orders an epoch and cuts it per rank; a [`Loader`]
//! decodes and augments on worker threads and hands out [`Batch`]es in sampler order; a
//! [`Pipeline`] builds a loader and its sampler together. Nothing here knows about models.
//!
//! [`Loader`] is the front door (its documentation has an example); errors are
//! [`DataError`]s, each naming the file or shard at fault. Long tasks (listing a folder,
//! packing, verifying, benchmarking) tell a [`progress::Progress`] how far they are.

#![warn(missing_docs)]

pub mod bench;
pub mod dataset;
pub mod decode;
pub mod error;
mod files;
mod listing;
pub mod loader;
pub mod pack;
pub mod pipeline;
pub mod progress;
pub mod sampler;
pub mod shards;
pub mod synthetic;
pub mod transform;

pub use dataset::{check_same_classes, Dataset, ImageFolder, Listed};
pub use error::{DataError, Result};
pub use loader::{Batch, Loader, LoaderOptions};
pub use pipeline::{Pipeline, PipelineOptions};
pub use sampler::Sampler;
pub use shards::Shards;
pub use transform::Transform;
