//! One module per command: flags in, library calls, a summary out.

pub mod bench;
pub mod generate;
pub mod pack;
pub mod verify;
