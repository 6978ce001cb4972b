//! The training loop of the original `run.py train`, with checkpoints, records and ranks.

mod error;
mod images;
mod interrupts;
mod metrics;
mod observer;
mod records;
mod run;
mod settings;
mod source;

pub use error::{Result, TrainError};
pub use images::ImageSource;
pub use interrupts::Interrupts;
pub use metrics::Accuracy;
pub use records::Record;
pub use run::{Summary, Trainer};
pub use settings::RunSettings;
pub use source::{BatchSource, LabelledBatch};
