//! `ErrorChain`: renders an error with every cause below it, for logs and reports.
//!
//! Libraries keep `Display` free of the source (the cause is a separate link); whoever shows
//! an error to a person or a log wraps it in [`ErrorChain`] so no cause is lost:
//! `tracing::error!(error = %ErrorChain(&error), "...")`.

use std::fmt;

/// Displays an error followed by each of its sources, joined by `": "`.
#[derive(Debug, Clone, Copy)]
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'a));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

/// The whole chain as a `String`, for a field that keeps text (a report, an event).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    ErrorChain(error).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read {path}")]
    struct ReadError {
        path: String,
        #[source]
        source: std::io::Error,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("fstab")]
    struct Outer {
        #[source]
        source: ReadError,
    }

    #[test]
    fn every_cause_is_shown_once_in_order() {
        let error = Outer {
            source: ReadError {
                path: "/etc/fstab".into(),
                source: std::io::Error::from_raw_os_error(13),
            },
        };
        let text = error_chain(&error);
        assert!(
            text.starts_with("fstab: cannot read /etc/fstab: Permission denied"),
            "{text}"
        );
        assert_eq!(text.matches("Permission denied").count(), 1, "{text}");
        assert_eq!(ErrorChain(&error).to_string(), text);
    }
}
