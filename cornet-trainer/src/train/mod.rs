//! The training loop of the original `run.py train`, with checkpoints, records and ranks.

mod curves_file;
mod error;
mod images;
mod interrupts;
mod observer;
mod observers;
mod progress;
mod records_log;
mod run;
mod run_folder;
mod settings;
mod source;
mod tensorboard;

pub use error::{Result, TrainError};
pub use images::ImageSource;
pub use interrupts::Interrupts;
pub use observer::{RunObserver, RunStart};
pub use observers::Observers;
pub use progress::{LogEvery, ShowProgress};
pub use run::{Summary, Trainer};
pub use run_folder::{earlier_run_artifact, run_files, RunLock};
pub use settings::RunSettings;
pub use source::BatchSource;
