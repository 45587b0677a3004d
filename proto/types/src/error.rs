//! `SpecError`: why a value was refused, naming the field and the reason.

use std::fmt;

/// A refused value: which field, the value as given (escaped, so NUL or newline show), and
/// why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    pub field: String,
    pub value: String,
    pub reason: String,
}

impl SpecError {
    pub fn new(field: impl Into<String>, value: &str, reason: impl Into<String>) -> Self {
        SpecError {
            field: field.into(),
            value: value.to_owned(),
            reason: reason.into(),
        }
    }

    /// The same error, its field placed under `parent` (`mounts[2].mount_point`).
    pub fn within(mut self, parent: &str) -> Self {
        self.field = format!("{parent}.{}", self.field);
        self
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {:?} {}", self.field, self.value, self.reason)
    }
}

impl std::error::Error for SpecError {}
