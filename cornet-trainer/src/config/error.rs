//! Config errors that point at the file, line and key, or at the `--set` flag.

use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    /// The config file, or `None` for a `--set` override.
    pub file: Option<PathBuf>,
    pub line: Option<usize>,
    /// Dotted key path (`optim.lr`); empty for the file as a whole.
    pub key: String,
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

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, "{}:{line}: ", file.display())?,
            (Some(file), None) => write!(f, "{}: ", file.display())?,
            (None, _) => write!(f, "--set ")?,
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}
