//! `SpecError`: why a value was refused, naming the field and the reason.

/// A refused value: which field, the value as given, and why.
///
/// `Display` reads `<field>: <value escaped with {:?}> <reason>`, for example
/// `mgs_nids: "@tcp" has no address before '@'`, so a NUL or a newline in the value shows as
/// `\0` or `\n` and cannot forge a second log line. There is no source error: every refusal
/// is decided here, and the reason says it all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {value:?} {reason}")]
pub struct SpecError {
    /// The field, as the configuration or the wire names it: `mount_point`,
    /// `mounts[1].options`.
    pub field: String,
    /// The refused value, unescaped.
    pub value: String,
    /// Why, as the rest of a sentence: `is under /etc, which lfleet never mounts over`.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_field_escapes_the_value_and_gives_the_reason() {
        let error = SpecError::new("mount_point", "/a\nb\0", "contains a control character")
            .within("mounts[1]");
        assert_eq!(
            error.to_string(),
            r#"mounts[1].mount_point: "/a\nb\0" contains a control character"#
        );
        assert!(std::error::Error::source(&error).is_none());
    }
}
