//! The training loop of the original `run.py train`, with checkpoints, records and ranks.

mod grads;
mod images;
mod metrics;
mod records;
mod run;
mod source;

pub use images::ImageSource;
pub use metrics::Accuracy;
pub use records::Record;
pub use run::{RunSettings, Summary, Trainer};
pub use source::{BatchSource, LabelledBatch};
