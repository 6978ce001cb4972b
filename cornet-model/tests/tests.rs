//! The integration tests of `cornet-model`, linked into one binary: one module per topic, and
//! `util` for what they share.

mod util;

mod forward_parity;
mod state_dict;
