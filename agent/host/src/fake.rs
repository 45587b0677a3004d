//! Stateful fakes of the host traits, for unit tests of the agent's logic.
//!
//! [`FakeCommandRunner`] keeps a log of every invocation and answers each program with a
//! handler the test installs; a handler can keep state (a fake package database, a fake
//! mount table) and inject failures. Tests assert on the final state and the log, not on call
//! choreography. Programs with no handler are "not found", as they would be on a bare host.
//! For files, a [`crate::HostRoot`] over a temporary directory is the fake: it is the real
//! code on a scratch tree.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::command::{
    BoxFuture, CommandError, CommandOutput, CommandRunner, CommandSpec, ExitStatus,
};

/// What a fake program does when run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FakeResponse {
    /// Exits with `code`, printing `stdout` and `stderr`.
    Exit {
        code: i32,
        stdout: String,
        stderr: String,
    },
    /// Never finishes: the run times out at its deadline (in tokio time).
    Hang,
}

impl FakeResponse {
    /// Exit code 0 with `stdout`.
    pub fn ok(stdout: impl Into<String>) -> Self {
        FakeResponse::Exit {
            code: 0,
            stdout: stdout.into(),
            stderr: String::new(),
        }
    }

    /// A non-zero exit with `stderr`.
    pub fn fail(code: i32, stderr: impl Into<String>) -> Self {
        FakeResponse::Exit {
            code,
            stdout: String::new(),
            stderr: stderr.into(),
        }
    }
}

/// One recorded run: the program as given and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub program: String,
    pub args: Vec<String>,
}

impl Invocation {
    /// `program arg arg`, space-joined, for compact assertions.
    pub fn line(&self) -> String {
        std::iter::once(self.program.as_str())
            .chain(self.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

type Handler = Box<dyn FnMut(&[String]) -> FakeResponse + Send>;

/// A command runner whose programs are closures.
#[derive(Clone, Default)]
pub struct FakeCommandRunner {
    inner: Arc<Mutex<FakeState>>,
}

#[derive(Default)]
struct FakeState {
    handlers: HashMap<String, Handler>,
    log: Vec<Invocation>,
}

impl fmt::Debug for FakeCommandRunner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut programs: Vec<_> = state.handlers.keys().collect();
        programs.sort();
        f.debug_struct("FakeCommandRunner")
            .field("programs", &programs)
            .field("runs", &state.log.len())
            .finish()
    }
}

// === impl FakeCommandRunner ===

impl FakeCommandRunner {
    pub fn new() -> Self {
        Self::default()
    }

    /// Installs (or replaces) the handler for `program`.
    pub fn on(
        &self,
        program: impl Into<String>,
        handler: impl FnMut(&[String]) -> FakeResponse + Send + 'static,
    ) -> &Self {
        self.lock()
            .handlers
            .insert(program.into(), Box::new(handler));
        self
    }

    /// Makes `program` always answer `response`.
    pub fn respond(&self, program: impl Into<String>, response: FakeResponse) -> &Self {
        self.on(program, move |_| response.clone())
    }

    /// Every run so far, in order.
    pub fn log(&self) -> Vec<Invocation> {
        self.lock().log.clone()
    }

    /// The runs so far as `program arg ...` lines.
    pub fn log_lines(&self) -> Vec<String> {
        self.lock().log.iter().map(Invocation::line).collect()
    }

    /// Forgets the log, keeping the handlers.
    pub fn clear_log(&self) {
        self.lock().log.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn run_inner(&self, spec: &CommandSpec) -> Result<CommandOutput, CommandError> {
        let args = spec.args_lossy();
        let response = {
            let mut state = self.lock();
            state.log.push(Invocation {
                program: spec.program.clone(),
                args: args.clone(),
            });
            state
                .handlers
                .get_mut(&spec.program)
                .map(|handler| handler(&args))
        };
        let command = spec.display();
        match response {
            None => Err(CommandError::NotFound {
                command,
                search_path: "<fake>".into(),
            }),
            Some(FakeResponse::Hang) => {
                tokio::time::sleep(spec.timeout).await;
                Err(CommandError::TimedOut {
                    command,
                    after: spec.timeout,
                    stdout: String::new(),
                    stderr: String::new(),
                })
            }
            Some(FakeResponse::Exit {
                code: 0,
                stdout,
                stderr,
            }) => Ok(CommandOutput { stdout, stderr }),
            Some(FakeResponse::Exit {
                code,
                stdout,
                stderr,
            }) => Err(CommandError::Exited {
                command,
                status: ExitStatus::Code(code),
                stdout,
                stderr,
            }),
        }
    }
}

impl CommandRunner for FakeCommandRunner {
    fn run<'a>(
        &'a self,
        spec: &'a CommandSpec,
    ) -> BoxFuture<'a, Result<CommandOutput, CommandError>> {
        Box::pin(self.run_inner(spec))
    }
}

/// A default deadline for fakes' specs in tests.
pub const FAKE_TIMEOUT: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// A tiny stateful "package manager", as tests of the installer would build one.
    fn fake_with_package_db() -> (FakeCommandRunner, Arc<Mutex<BTreeSet<String>>>) {
        let runner = FakeCommandRunner::new();
        let installed = Arc::new(Mutex::new(BTreeSet::new()));
        let db = installed.clone();
        runner.on("apt-get", move |args| match args {
            [install, package] if install == "install" && package.starts_with("amlfs-") => {
                db.lock().unwrap().insert(package.clone());
                FakeResponse::ok("")
            }
            [_, package] => {
                FakeResponse::fail(100, format!("E: Unable to locate package {package}\n"))
            }
            _ => FakeResponse::fail(100, "E: Invalid operation\n"),
        });
        (runner, installed)
    }

    #[tokio::test]
    async fn handlers_keep_state_and_the_log_records_every_run() {
        let (runner, installed) = fake_with_package_db();
        let ok = CommandSpec::new("apt-get", FAKE_TIMEOUT).args(["install", "amlfs-x"]);
        runner.run(&ok).await.unwrap();
        let bad = CommandSpec::new("apt-get", FAKE_TIMEOUT).args(["install", "nope"]);
        let err = runner.run(&bad).await.unwrap_err();
        assert_eq!(err.status(), Some(ExitStatus::Code(100)));
        assert!(err.stderr().contains("Unable to locate package nope"));
        let missing = runner
            .run(&CommandSpec::new("dnf", FAKE_TIMEOUT))
            .await
            .unwrap_err();
        assert!(matches!(missing, CommandError::NotFound { .. }));
        assert_eq!(
            installed
                .lock()
                .unwrap()
                .iter()
                .cloned()
                .collect::<Vec<_>>(),
            vec!["amlfs-x".to_string()]
        );
        assert_eq!(
            runner.log_lines(),
            vec!["apt-get install amlfs-x", "apt-get install nope", "dnf"]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_program_times_out_at_its_deadline() {
        let runner = FakeCommandRunner::new();
        runner.respond("mount", FakeResponse::Hang);
        let started = tokio::time::Instant::now();
        let err = runner
            .run(&CommandSpec::new("mount", Duration::from_secs(30)))
            .await
            .unwrap_err();
        assert!(err.is_timeout());
        assert_eq!(started.elapsed(), Duration::from_secs(30));
    }
}
