//! The training loop of the original `run.py train`, with checkpoints, records and ranks.

mod curves_file;
mod error;
mod images;
mod interrupts;
mod metrics;
mod observer;
mod records;
mod run;
mod run_folder;
mod settings;
mod source;
mod tensorboard;

pub use error::{Result, TrainError};
pub use images::ImageSource;
pub use interrupts::Interrupts;
pub use metrics::Accuracy;
pub use records::Record;
pub use run::{Summary, Trainer};
pub use run_folder::{earlier_run_artifact, RunLock};
pub use settings::RunSettings;
pub use source::{BatchSource, LabelledBatch};
