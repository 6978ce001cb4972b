//! The integration tests of `cornet-data`, linked into one binary: one module per topic, and
//! `util` for what they share.

mod util;

mod cli;
mod loader;
mod parity;
mod shards;
