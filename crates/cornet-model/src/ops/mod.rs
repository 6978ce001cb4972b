//! Operations candle lacks or computes slowly on the CPU, each with the backward training
//! needs and tests against a reference.

mod conv;
mod pool;

pub use conv::conv2d;
pub use pool::{global_avg_pool, max_pool2d};
