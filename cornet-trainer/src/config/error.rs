//! Config errors that point at the file, line and key, or at the flag that set the key.

use std::fmt;
use std::path::{Path, PathBuf};

/// A config that could not be read or is wrong, shown as `FILE:LINE: KEY: MESSAGE`, or for a
/// value from the command line `--set KEY: MESSAGE` (`--lr: KEY: MESSAGE` for one of the
/// original's flags), with the parts that are known.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct ConfigError {
    /// Where the value came from: the config file, or a flag.
    pub origin: Origin,
    /// The 1-based line in the file, when known.
    pub line: Option<usize>,
    /// Dotted key path (`optim.lr`); empty for the file as a whole.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// Where a config's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The config file.
    File(PathBuf),
    /// A flag of the command line: `--set`, or one of the original's (`--lr`).
    Flag(String),
}

impl ConfigError {
    pub(super) fn io(path: &Path, err: std::io::Error) -> Self {
        ConfigError {
            origin: Origin::File(path.to_owned()),
            line: None,
            key: String::new(),
            message: err.to_string(),
        }
    }

    pub(super) fn syntax(path: &Path, err: &serde_yaml::Error) -> Self {
        ConfigError {
            origin: Origin::File(path.to_owned()),
            line: err.location().map(|l| l.line()),
            key: String::new(),
            message: format!("not valid YAML: {err}"),
        }
    }

    pub(super) fn at(path: &Path, text: &str, key: &str, message: String) -> Self {
        ConfigError {
            origin: Origin::File(path.to_owned()),
            line: super::locate::line_of(text, key),
            key: key.to_string(),
            message,
        }
    }

    pub(super) fn flag(flag: &str, key: &str, message: String) -> Self {
        ConfigError {
            origin: Origin::Flag(flag.to_owned()),
            line: None,
            key: key.to_string(),
            message,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `--set` names its key as the flag's value does; another flag is named apart from
        // the key it sets.
        match (&self.origin, self.line) {
            (Origin::File(file), Some(line)) => write!(f, "{}:{line}: ", file.display())?,
            (Origin::File(file), None) => write!(f, "{}: ", file.display())?,
            (Origin::Flag(flag), _) if flag == "--set" => write!(f, "--set ")?,
            (Origin::Flag(flag), _) => write!(f, "{flag}: ")?,
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}
