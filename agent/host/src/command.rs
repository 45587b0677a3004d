//! `CommandRunner`: the one way the agent runs an external program.
//!
//! Argument vectors only, never a shell; the program is resolved on a configured search path;
//! every run has a deadline, at which the whole process group is killed with SIGKILL; every
//! failure is one [`CommandError`] that carries the command line, the exit status and the
//! captured stdout and stderr.
//!
//! Entry points: [`CommandSpec`], the [`CommandRunner`] trait, [`SystemCommandRunner`].

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::future::Future;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

/// A boxed, sendable future; the return type of [`CommandRunner::run`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How much of stdout and of stderr a run keeps; the rest is read and dropped.
pub const DEFAULT_OUTPUT_LIMIT: usize = 4 * 1024 * 1024;

/// One program to run: its name, arguments, extra environment, optional stdin, deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSpec {
    /// A bare name resolved on the runner's search path, or a path containing `/`.
    pub program: String,
    pub args: Vec<OsString>,
    /// Variables set on top of the runner's environment.
    pub env: Vec<(OsString, OsString)>,
    pub stdin: Option<Vec<u8>>,
    pub timeout: Duration,
}

// === impl CommandSpec ===

impl CommandSpec {
    /// A run of `program` with no arguments and the given deadline.
    pub fn new(program: impl Into<String>, timeout: Duration) -> Self {
        CommandSpec {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            stdin: None,
            timeout,
        }
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn stdin(mut self, input: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(input.into());
        self
    }

    /// The arguments as lossy UTF-8 strings, for fakes and logs.
    pub fn args_lossy(&self) -> Vec<String> {
        self.args
            .iter()
            .map(|arg| arg.to_string_lossy().into_owned())
            .collect()
    }

    /// The command line quoted for people to read (and paste). Never executed by a shell.
    pub fn display(&self) -> String {
        let mut line = quote_for_display(OsStr::new(&self.program));
        for arg in &self.args {
            line.push(' ');
            line.push_str(&quote_for_display(arg));
        }
        line
    }
}

fn quote_for_display(word: &OsStr) -> String {
    let text = word.to_string_lossy();
    let plain = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@+%".contains(&b));
    if plain {
        text.into_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Code(i32),
    Signal(i32),
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitStatus::Code(code) => write!(f, "exit code {code}"),
            ExitStatus::Signal(signal) => write!(f, "signal {signal}"),
        }
    }
}

impl From<std::process::ExitStatus> for ExitStatus {
    fn from(status: std::process::ExitStatus) -> Self {
        match (status.code(), status.signal()) {
            (Some(code), _) => ExitStatus::Code(code),
            (None, Some(signal)) => ExitStatus::Signal(signal),
            (None, None) => ExitStatus::Code(-1),
        }
    }
}

/// What a successful (exit code 0) run printed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CommandOutput {
    pub stdout: String,
    pub stderr: String,
}

/// Why a run failed. Every variant names the command line.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("{command}: program not found on search path {search_path:?}")]
    NotFound {
        command: String,
        search_path: String,
    },
    #[error("{command}: could not start")]
    Spawn {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error("{command}: timed out after {after:?} and was killed")]
    TimedOut {
        command: String,
        after: Duration,
        stdout: String,
        stderr: String,
    },
    #[error("{command}: failed with {status}: {}", tail(stderr, stdout))]
    Exited {
        command: String,
        status: ExitStatus,
        stdout: String,
        stderr: String,
    },
}

/// The last line or two of what a failed command said, for one-line error messages.
fn tail(stderr: &str, stdout: &str) -> String {
    let text = if stderr.trim().is_empty() {
        stdout
    } else {
        stderr
    };
    let text = text.trim();
    if text.is_empty() {
        return "no output".to_owned();
    }
    const MAX: usize = 400;
    if text.len() <= MAX {
        return text.replace('\n', " | ");
    }
    let mut start = text.len() - MAX;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("...{}", text[start..].replace('\n', " | "))
}

// === impl CommandError ===

impl CommandError {
    /// The command line, as shown to people.
    pub fn command(&self) -> &str {
        match self {
            CommandError::NotFound { command, .. }
            | CommandError::Spawn { command, .. }
            | CommandError::TimedOut { command, .. }
            | CommandError::Exited { command, .. } => command,
        }
    }

    /// The exit status, if the program ran and exited on its own.
    pub fn status(&self) -> Option<ExitStatus> {
        match self {
            CommandError::Exited { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// What the program printed on stdout, if it ran.
    pub fn stdout(&self) -> &str {
        match self {
            CommandError::TimedOut { stdout, .. } | CommandError::Exited { stdout, .. } => stdout,
            _ => "",
        }
    }

    /// What the program printed on stderr, if it ran.
    pub fn stderr(&self) -> &str {
        match self {
            CommandError::TimedOut { stderr, .. } | CommandError::Exited { stderr, .. } => stderr,
            _ => "",
        }
    }

    pub fn is_timeout(&self) -> bool {
        matches!(self, CommandError::TimedOut { .. })
    }
}

/// Runs external programs. The real one is [`SystemCommandRunner`]; tests use
/// [`crate::fake::FakeCommandRunner`].
pub trait CommandRunner: Send + Sync + fmt::Debug {
    fn run<'a>(
        &'a self,
        spec: &'a CommandSpec,
    ) -> BoxFuture<'a, Result<CommandOutput, CommandError>>;
}

/// Runs real processes.
#[derive(Debug, Clone)]
pub struct SystemCommandRunner {
    search_path: OsString,
    output_limit: usize,
    /// Variables every child gets (before the spec's own).
    base_env: Vec<(OsString, OsString)>,
}

// === impl SystemCommandRunner ===

impl SystemCommandRunner {
    /// A runner that resolves programs on `search_path` (a `PATH`-style list) and passes
    /// that list to children as `PATH`, so a program that runs another (mount running
    /// mount.lustre) finds the same ones.
    pub fn new(search_path: impl Into<OsString>) -> Self {
        SystemCommandRunner {
            search_path: search_path.into(),
            output_limit: DEFAULT_OUTPUT_LIMIT,
            base_env: Vec::new(),
        }
    }

    /// A runner on this process's `PATH` (or the usual system directories if unset).
    pub fn from_env() -> Self {
        let path = std::env::var_os("PATH").unwrap_or_else(|| {
            OsString::from("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        });
        Self::new(path)
    }

    /// A runner whose search path puts `dirs` in front of this process's `PATH`.
    pub fn with_prepended(dirs: &[PathBuf]) -> Self {
        let mut path = OsString::new();
        for dir in dirs {
            path.push(dir.as_os_str());
            path.push(":");
        }
        path.push(Self::from_env().search_path);
        Self::new(path)
    }

    /// Sets a variable for every program this runner starts (tests point `APT_CONFIG` and
    /// `DPKG_ADMINDIR` at a scratch root this way, so the agent runs plain commands).
    pub fn with_env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.base_env.push((key.into(), value.into()));
        self
    }

    pub fn with_output_limit(mut self, limit: usize) -> Self {
        self.output_limit = limit;
        self
    }

    pub fn search_path(&self) -> &OsStr {
        &self.search_path
    }

    /// Finds `program` on the search path: the first regular file with an execute bit.
    pub fn resolve(&self, program: &str) -> Option<PathBuf> {
        if program.is_empty() {
            return None;
        }
        if program.contains('/') {
            let path = PathBuf::from(program);
            return is_executable(&path).then_some(path);
        }
        std::env::split_paths(&self.search_path)
            .filter(|dir| !dir.as_os_str().is_empty())
            .map(|dir| dir.join(program))
            .find(|candidate| is_executable(candidate))
    }

    async fn run_inner(&self, spec: &CommandSpec) -> Result<CommandOutput, CommandError> {
        let command_line = spec.display();
        let Some(program_path) = self.resolve(&spec.program) else {
            return Err(CommandError::NotFound {
                command: command_line,
                search_path: self.search_path.to_string_lossy().into_owned(),
            });
        };
        let mut command = tokio::process::Command::new(&program_path);
        command
            .arg0(&spec.program)
            .args(&spec.args)
            .env("PATH", &self.search_path)
            // Messages we classify are the programs' untranslated ones.
            .env("LC_ALL", "C")
            .envs(self.base_env.iter().map(|(k, v)| (k, v)))
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(if spec.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so the deadline can kill everything it started.
            .process_group(0)
            .kill_on_drop(true);

        let started = tokio::time::Instant::now();
        let mut child = command.spawn().map_err(|source| CommandError::Spawn {
            command: command_line.clone(),
            source,
        })?;
        let group = GroupGuard::new(child.id());
        tracing::debug!(command = %command_line, pid = ?child.id(), "started command");

        let stdout_buffer = OutputBuffer::default();
        let stderr_buffer = OutputBuffer::default();
        let stdout_reader = child
            .stdout
            .take()
            .map(|pipe| spawn_reader(pipe, stdout_buffer.clone(), self.output_limit));
        let stderr_reader = child
            .stderr
            .take()
            .map(|pipe| spawn_reader(pipe, stderr_buffer.clone(), self.output_limit));
        if let (Some(mut pipe), Some(input)) = (child.stdin.take(), spec.stdin.clone()) {
            tokio::spawn(async move {
                // A program that exits without reading its input is not an error here.
                let _ = pipe.write_all(&input).await;
            });
        }

        // One deadline covers the process and the draining of its pipes: a background
        // grandchild that keeps a pipe open is still bounded by it.
        let deadline = started + spec.timeout;
        let finished = tokio::time::timeout_at(deadline, async {
            let status = child.wait().await;
            join_reader(stdout_reader).await;
            join_reader(stderr_reader).await;
            status
        })
        .await;

        match finished {
            Ok(status) => {
                group.disarm();
                let status = status.map_err(|source| CommandError::Spawn {
                    command: command_line.clone(),
                    source,
                })?;
                let status = ExitStatus::from(status);
                let (stdout, stderr) = (stdout_buffer.take(), stderr_buffer.take());
                tracing::debug!(
                    command = %command_line,
                    %status,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "command finished"
                );
                if status == ExitStatus::Code(0) {
                    Ok(CommandOutput { stdout, stderr })
                } else {
                    Err(CommandError::Exited {
                        command: command_line,
                        status,
                        stdout,
                        stderr,
                    })
                }
            }
            Err(_elapsed) => {
                group.kill();
                // Reap the child; a process stuck in the kernel (D state) may outlive
                // SIGKILL for a while (a frozen FUSE or Lustre request), and we do not wait
                // for it: it is reparented and reaped by init when the kernel lets it go.
                let _ = tokio::time::timeout(Duration::from_millis(250), child.wait()).await;
                tracing::warn!(
                    command = %command_line,
                    timeout = ?spec.timeout,
                    "command timed out; killed its process group"
                );
                Err(CommandError::TimedOut {
                    command: command_line,
                    after: spec.timeout,
                    stdout: stdout_buffer.take(),
                    stderr: stderr_buffer.take(),
                })
            }
        }
    }
}

impl CommandRunner for SystemCommandRunner {
    fn run<'a>(
        &'a self,
        spec: &'a CommandSpec,
    ) -> BoxFuture<'a, Result<CommandOutput, CommandError>> {
        Box::pin(self.run_inner(spec))
    }
}

fn is_executable(path: &Path) -> bool {
    match std::fs::metadata(path) {
        Ok(meta) => meta.is_file() && meta.permissions().mode() & 0o111 != 0,
        Err(_) => false,
    }
}

/// Bytes read from one pipe so far, shared with its reader task so a timed-out run still
/// reports what the program printed before the deadline.
#[derive(Debug, Clone, Default)]
struct OutputBuffer(Arc<Mutex<Vec<u8>>>);

impl OutputBuffer {
    fn take(&self) -> String {
        let bytes = std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()));
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

fn spawn_reader<R>(mut pipe: R, buffer: OutputBuffer, limit: usize) -> JoinHandle<()>
where
    R: AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut chunk = [0u8; 8192];
        loop {
            match pipe.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let mut kept = buffer.0.lock().unwrap_or_else(|e| e.into_inner());
                    let room = limit.saturating_sub(kept.len());
                    kept.extend_from_slice(&chunk[..n.min(room)]);
                }
            }
        }
    })
}

async fn join_reader(reader: Option<JoinHandle<()>>) {
    if let Some(handle) = reader {
        let _ = handle.await;
    }
}

/// Kills a child's whole process group unless disarmed, also when a run is cancelled.
struct GroupGuard {
    pgid: Option<i32>,
}

impl GroupGuard {
    fn new(pid: Option<u32>) -> Self {
        GroupGuard {
            pgid: pid.and_then(|pid| i32::try_from(pid).ok()),
        }
    }

    fn disarm(mut self) {
        self.pgid = None;
    }

    fn kill(&self) {
        if let Some(pgid) = self.pgid {
            // ESRCH means the group is already gone, which is what we want.
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_only_what_needs_it() {
        let spec = CommandSpec::new("mount", Duration::from_secs(1)).args([
            "-t",
            "lustre",
            "10.0.1.4@tcp:/lustrefs",
            "/mnt/a b",
            "it's",
        ]);
        assert_eq!(
            spec.display(),
            r"mount -t lustre 10.0.1.4@tcp:/lustrefs '/mnt/a b' 'it'\''s'"
        );
    }

    #[test]
    fn exited_error_message_names_command_status_and_stderr() {
        let err = CommandError::Exited {
            command: "apt-get install x".into(),
            status: ExitStatus::Code(100),
            stdout: "Reading package lists...\n".into(),
            stderr: "E: Unable to locate package x\n".into(),
        };
        assert_eq!(
            err.to_string(),
            "apt-get install x: failed with exit code 100: E: Unable to locate package x"
        );
    }

    #[test]
    fn resolve_finds_executables_only() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("tool");
        std::fs::write(&exe, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let data = dir.path().join("data");
        std::fs::write(&data, "").unwrap();
        let runner = SystemCommandRunner::new(dir.path().as_os_str());
        assert_eq!(runner.resolve("tool"), Some(exe));
        assert_eq!(runner.resolve("data"), None);
        assert_eq!(runner.resolve("absent"), None);
        assert_eq!(runner.resolve(""), None);
    }
}
