//! The integration tests of `cornet-trainer`, linked into one binary: one module per topic, and
//! `util` for what they share.

mod util;

mod cli_test;
mod config;
mod kill_resume;
mod launcher;
mod learning_curves;
mod score_metrics;
mod score_model;
mod sgd_parity;
mod shards_data;
mod training;
