//! Train, evaluate and score CORnet models.

pub mod optim;
pub mod step;
