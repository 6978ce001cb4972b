//! Config errors that point at the file, line and key, or at the `--set` flag.

use std::path::{Path, PathBuf};

/// A config that could not be read or is wrong, shown as `FILE:LINE: KEY: MESSAGE` (or
/// `--set KEY: MESSAGE` for an override), with the parts that are known.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}{}{message}", location(.file.as_deref(), *.line), key_prefix(.key))]
pub struct ConfigError {
    /// The config file, or `None` for a `--set` override.
    pub file: Option<PathBuf>,
    /// The 1-based line in the file, when known.
    pub line: Option<usize>,
    /// Dotted key path (`optim.lr`); empty for the file as a whole.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    pub(super) fn io(path: &Path, err: std::io::Error) -> Self {
        ConfigError {
            file: Some(path.to_owned()),
            line: None,
            key: String::new(),
            message: err.to_string(),
        }
    }

    pub(super) fn syntax(path: &Path, err: &serde_yaml::Error) -> Self {
        ConfigError {
            file: Some(path.to_owned()),
            line: err.location().map(|l| l.line()),
            key: String::new(),
            message: format!("not valid YAML: {err}"),
        }
    }

    pub(super) fn at(path: &Path, text: &str, key: &str, message: String) -> Self {
        ConfigError {
            file: Some(path.to_owned()),
            line: super::locate::line_of(text, key),
            key: key.to_string(),
            message,
        }
    }

    pub(super) fn flag(key: &str, message: String) -> Self {
        ConfigError {
            file: None,
            line: None,
            key: key.to_string(),
            message,
        }
    }
}

/// `FILE:LINE: `, `FILE: `, or `--set ` for an override.
fn location(file: Option<&Path>, line: Option<usize>) -> String {
    match (file, line) {
        (Some(file), Some(line)) => format!("{}:{line}: ", file.display()),
        (Some(file), None) => format!("{}: ", file.display()),
        (None, _) => "--set ".to_string(),
    }
}

/// `KEY: `, or nothing for the file as a whole.
fn key_prefix(key: &str) -> String {
    match key {
        "" => String::new(),
        key => format!("{key}: "),
    }
}
