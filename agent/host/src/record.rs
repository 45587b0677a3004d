//! `RecordingRunner`: a runner that writes each command line to a log before running it, so
//! operators (and tests) can see exactly what the agent ran on a node.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use crate::command::{BoxFuture, CommandError, CommandOutput, CommandRunner, CommandSpec};

/// Wraps a runner; appends `program arg ...` (display-quoted) per run to a file.
#[derive(Debug)]
pub struct RecordingRunner<R> {
    inner: R,
    log: Mutex<PathBuf>,
}

impl<R: CommandRunner> RecordingRunner<R> {
    pub fn new(inner: R, log: PathBuf) -> Self {
        RecordingRunner {
            inner,
            log: Mutex::new(log),
        }
    }

    fn record(&self, spec: &CommandSpec) {
        let path = self.log.lock().unwrap_or_else(|e| e.into_inner());
        let written = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&*path)
            .and_then(|mut file| writeln!(file, "{}", spec.display()));
        if let Err(error) = written {
            tracing::warn!(path = %path.display(), %error, "could not write the command log");
        }
    }
}

impl<R: CommandRunner> CommandRunner for RecordingRunner<R> {
    fn run<'a>(
        &'a self,
        spec: &'a CommandSpec,
    ) -> BoxFuture<'a, Result<CommandOutput, CommandError>> {
        self.record(spec);
        self.inner.run(spec)
    }
}
