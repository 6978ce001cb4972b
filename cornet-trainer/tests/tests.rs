//! The integration tests of `cornet-trainer`, linked into one binary: one module per topic, and
//! `util` for what they share (`weights_server`: the published weights' stand-in server).

mod util;
mod weights_server;

mod cli_test;
mod config;
mod eval;
mod gpu_proof;
mod hostile_peers;
mod kill_resume;
mod launcher;
mod learning_curves;
mod module_graph;
mod published_weights;
mod score_metrics;
mod score_model;
mod sgd_parity;
mod shards_data;
mod training;
mod watching;
