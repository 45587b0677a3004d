//! lfleet-parse: the formats the agent reads, parsed without panics and without guessing.
//!
//! Every parser takes text and returns values or a typed error naming the line; none reads a
//! file or runs a program. The rules come from the format notes in the research (lprocfs
//! stats, `lprocfs_import_seq_show`, health_check, LNet, Linux IB sysfs) and every parser is
//! tested on the real samples in tests/fixtures plus the cases no sample shows.
//!
//! Modules: [`stats`], [`import`], [`health`], [`lnet`], [`netdev`], [`ib`].

pub mod health;
pub mod ib;
pub mod import;
pub mod lnet;
pub mod netdev;
pub mod stats;

/// A line that does not have the expected shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}: {text:?}")]
pub struct ParseError {
    pub line: usize,
    pub reason: &'static str,
    pub text: String,
}

impl ParseError {
    pub(crate) fn new(line: usize, reason: &'static str, text: &str) -> Self {
        ParseError {
            line,
            reason,
            text: text.chars().take(120).collect(),
        }
    }
}
