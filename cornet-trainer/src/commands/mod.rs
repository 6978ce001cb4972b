//! One module per command: each turns its arguments into a library request, runs it, and
//! prints what the command prints.

pub mod bench;
pub mod eval;
pub mod launch;
pub mod plot;
pub mod score;
pub mod test;
pub mod train;
