//! Train, evaluate and score CORnet models.

pub mod bench;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod device;
pub mod dist;
pub mod experiment;
pub mod extract;
pub mod launch;
pub mod optim;
pub mod score;
pub mod step;
pub mod train;
