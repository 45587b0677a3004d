//! Running the Debian tools this crate builds on (dpkg-deb, dpkg-scanpackages, ...), with the
//! command line kept for error messages.

use std::process::{Command, Output, Stdio};

use crate::error::{Error, Result};

/// The command line of `cmd` as one string, for messages.
pub(crate) fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        s.push(' ');
        s.push_str(&arg.to_string_lossy());
    }
    s
}

/// Runs `cmd` to completion with stdin closed and output captured, whatever its exit status.
pub(crate) fn output(cmd: &mut Command) -> Result<Output> {
    cmd.stdin(Stdio::null())
        .output()
        .map_err(|source| Error::Spawn {
            command: describe(cmd),
            source,
        })
}

/// Runs `cmd` and fails with [`Error::CommandFailed`] unless it exits 0.
pub(crate) fn run_ok(cmd: &mut Command) -> Result<Output> {
    let out = output(cmd)?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(Error::CommandFailed {
            command: describe(cmd),
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}
