//! The command's log lines: on stderr, filtered by `RUST_LOG` (default `info`), and coloured
//! only where a person reads them. Slurm's output files, `nohup.out`, a pipe, and the ranks
//! whose output `launch` prefixes with `[rank N]` get plain text; `NO_COLOR`
//! (<https://no-color.org>) turns colour off on a terminal too.

use std::ffi::OsString;
use std::io::IsTerminal;

/// Sends the `tracing` events of the whole process to stderr.
pub fn init() {
    let colours = use_colours(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR"),
    );
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(colours)
        .init();
}

/// Colour on a terminal, unless `NO_COLOR` is set to anything but the empty string.
fn use_colours(stderr_is_terminal: bool, no_color: Option<OsString>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|value| value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_and_never_under_no_color() {
        assert!(use_colours(true, None));
        assert!(
            use_colours(true, Some("".into())),
            "an empty NO_COLOR counts as unset"
        );
        assert!(!use_colours(true, Some("1".into())));
        assert!(!use_colours(false, None));
        assert!(!use_colours(false, Some("1".into())));
    }
}
