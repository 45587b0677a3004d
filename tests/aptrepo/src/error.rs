//! Error type of lfleet-aptrepo: every variant carries the command or path it is about.

use std::path::PathBuf;
use std::process::ExitStatus;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong while building a repository or preparing a scratch root.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A filesystem operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done ("write", "create directory", ...).
        op: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A program could not be started (not installed, not executable, ...).
    #[error("could not run `{command}`: {source}")]
    Spawn {
        /// The command line, for the message.
        command: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A program this crate relies on (dpkg-deb, dpkg-scanpackages, dpkg-query) failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    CommandFailed {
        /// The command line, for the message.
        command: String,
        /// How it exited.
        status: ExitStatus,
        /// Its standard error, lossily decoded.
        stderr: String,
    },
    /// A [`crate::PackageSpec`] cannot be turned into a valid package.
    #[error("invalid package spec {name:?}: {reason}")]
    InvalidSpec {
        /// The package name as given.
        name: String,
        /// Why it is refused.
        reason: String,
    },
    /// Two different specs share one name and version.
    #[error("two different specs for {name} {version} in one repository")]
    Duplicate {
        /// Package name.
        name: String,
        /// Package version.
        version: String,
    },
    /// [`crate::AptRepo::remove`] was asked for something not published.
    #[error("{name} {version} is not published in {repo}")]
    NotPublished {
        /// Package name.
        name: String,
        /// Package version.
        version: String,
        /// The repository directory.
        repo: PathBuf,
    },
    /// A path cannot be written into an apt configuration or `file:` URI as is.
    #[error("path {path} cannot be used in an apt configuration: {reason}")]
    UnusablePath {
        /// The offending path.
        path: PathBuf,
        /// Why.
        reason: &'static str,
    },
    /// Taking an fcntl lock failed.
    #[error("fcntl lock on {path}: {source}")]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The errno.
        #[source]
        source: nix::Error,
    },
    /// `dpkg-query` printed something this crate cannot read.
    #[error("unexpected output from `{command}`: {output:?}")]
    UnexpectedOutput {
        /// The command line.
        command: String,
        /// What it printed.
        output: String,
    },
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
