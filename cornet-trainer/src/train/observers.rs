//! Several observers of a run as one: each event goes to each, in the order they were added,
//! stopping at the first error.

use super::error::Result;
use super::observer::RunObserver;
use crate::records::Record;
use std::path::Path;

/// The observers of a run, told every event in order.
#[derive(Default)]
pub struct Observers<'a> {
    observers: Vec<Box<dyn RunObserver + 'a>>,
}

impl<'a> Observers<'a> {
    /// No observer yet.
    pub fn new() -> Self {
        Observers::default()
    }

    /// `observer` hears every event, after those added before it.
    pub fn with(mut self, observer: impl RunObserver + 'a) -> Self {
        self.observers.push(Box::new(observer));
        self
    }

    fn tell(&mut self, event: impl Fn(&mut dyn RunObserver) -> Result<()>) -> Result<()> {
        self.observers
            .iter_mut()
            .try_for_each(|observer| event(observer.as_mut()))
    }
}

impl RunObserver for Observers<'_> {
    fn on_step(&mut self, record: &Record, images: usize) -> Result<()> {
        self.tell(|observer| observer.on_step(record, images))
    }

    fn on_validation_start(&mut self, step: u64, batches: u64) {
        for observer in &mut self.observers {
            observer.on_validation_start(step, batches);
        }
    }

    fn on_validation_batch(&mut self, images: usize) {
        for observer in &mut self.observers {
            observer.on_validation_batch(images);
        }
    }

    fn on_validation(&mut self, record: &Record) -> Result<()> {
        self.tell(|observer| observer.on_validation(record))
    }

    fn on_checkpoint(&mut self, path: &Path) -> Result<()> {
        self.tell(|observer| observer.on_checkpoint(path))
    }

    fn on_stop(&mut self) -> Result<()> {
        self.tell(|observer| observer.on_stop())
    }

    fn on_finish(&mut self) -> Result<()> {
        self.tell(|observer| observer.on_finish())
    }
}
