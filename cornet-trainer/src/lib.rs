//! Train, evaluate and score CORnet models.
//!
//! The front door is an experiment [`config::Config`]; [`experiment::train`] runs one from its
//! config to its trained weights, on one process or as one rank of several
//! ([`distributed`]). [`evaluate`] scores weights on labelled images (training's validation
//! and the `eval` command). [`extract`] saves a model's features as the original `run.py test`
//! did, [`score`] measures how brain-like features are, and [`scan`] scores every tap of a
//! model. The `cornet-trainer` binary is a thin command line over these modules, which report
//! their progress through [`progress`].
//!
//! Each area returns its own error type, whose variants tell apart the failures a caller
//! could act on and keep the error behind them as their `source()` ([`error`]).

#![warn(missing_docs)]

pub mod accuracy;
pub mod arrays;
pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod curves;
pub mod device;
pub mod distributed;
pub mod error;
pub mod evaluate;
pub mod experiment;
pub mod extract;
pub mod files;
pub mod loading;
pub mod memory;
pub mod network;
pub mod optim;
pub mod progress;
pub mod published;
pub mod records;
pub mod scan;
pub mod score;
pub mod step;
pub mod tfevents;
pub mod train;
