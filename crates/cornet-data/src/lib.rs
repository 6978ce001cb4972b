//! Image files to batches of normalized tensors, with torchvision's algorithms.
//!
//! A [`Dataset`] gives encoded images and labels by index; a [`Sampler`] orders an epoch and
//! cuts it per rank; a [`Loader`] decodes and augments on worker threads and hands out
//! [`Batch`]es in sampler order. Nothing here knows about models.

pub mod dataset;
pub mod decode;
pub mod error;
pub mod loader;
pub mod sampler;
pub mod synthetic;
pub mod transform;

pub use dataset::{Dataset, ImageFolder};
pub use error::{DataError, Result};
pub use loader::{Batch, Loader, LoaderOptions};
pub use sampler::Sampler;
pub use transform::Transform;
