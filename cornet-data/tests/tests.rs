//! The integration tests of `cornet-data`, linked into one binary: one module per topic, and
//! `util` for what they share.

mod util;

mod bad_folders;
mod bad_shards;
mod bench;
mod cli;
mod listing;
mod loader;
mod pack_resume;
mod parity;
mod shards;
