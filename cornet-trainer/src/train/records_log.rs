//! `OUT/records.jsonl` as the run goes: a line per step and per validation (rank 0).

use super::error::Result;
use super::observer::RunObserver;
use crate::records::{Record, RecordsFile};

impl RunObserver for RecordsFile {
    fn on_step(&mut self, record: &Record, _images: usize) -> Result<()> {
        Ok(self.append(record)?)
    }

    fn on_validation(&mut self, record: &Record) -> Result<()> {
        Ok(self.append(record)?)
    }
}
