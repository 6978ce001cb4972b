//! What the store says about connections it closes: each kind of trouble once as a warning
//! (a misconfigured rank shows at once), then at debug level only, so that a flood of bad
//! connections cannot flood the log.

use std::collections::HashSet;
use std::sync::Mutex;

/// The kinds of trouble already warned of.
#[derive(Default)]
pub struct Warnings(Mutex<HashSet<&'static str>>);

impl Warnings {
    /// Warns of `message` if it is the first of its `kind`, else logs it at debug level.
    pub fn once(&self, kind: &'static str, message: String) {
        if self.0.lock().unwrap().insert(kind) {
            tracing::warn!("{message} (further ones are logged at debug level)");
        } else {
            tracing::debug!("{message}");
        }
    }
}
