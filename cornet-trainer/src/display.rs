//! Where the library's progress shows: bars on a terminal, plain lines otherwise.

use crate::bars::Bars;
use crate::lines::Lines;
use cornet_trainer::progress::Progress;
use std::io::IsTerminal;

/// Bars when stderr is a terminal; else the work's notes, line by line (a redrawn bar would
/// fill a log with control characters, and indicatif draws nothing off a terminal).
pub fn on_stderr() -> Box<dyn Progress> {
    match std::io::stderr().is_terminal() {
        true => Box::new(Bars::default()),
        false => Box::new(Lines),
    }
}
