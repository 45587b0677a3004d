//! Shared by the agent's integration tests: the PATH a sim node's shims need, one run of the
//! agent binary against a sim node ([`AgentRun`]), a long-running agent ended by its PID
//! whatever the test does ([`Owned`]), a scrape of its Prometheus endpoint, and the installer
//! over a node root. The frozen FUSE mount for hung-mount
//! tests is `lfleet_harness::bindfs::Bindfs`.
#![allow(
    dead_code,
    clippy::disallowed_methods,
    reason = "each test binary uses part of this; it runs the agent and writes its config"
)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The installer on the node at `host`, with the wall clock.
pub fn installer<'a>(
    host: &'a lfleet_host::HostRoot,
    runner: &'a dyn lfleet_host::CommandRunner,
    distro: &'a lfleet_install::Distro,
    policy: &'a lfleet_agent::install::InstallPolicy,
) -> lfleet_agent::install::Installer<'a> {
    lfleet_agent::install::Installer {
        host,
        runner,
        clock: &lfleet_host::SystemClock,
        distro,
        policy,
    }
}

/// The node's shims first, then the system's tools.
pub fn path_with(node: &Path) -> String {
    format!(
        "{}:/usr/sbin:/usr/bin:/sbin:/bin",
        node.join("bin").display()
    )
}

/// `lfleet-agent apply --root ROOT --config CONFIG` with the node's shims on PATH, which
/// must succeed: the node converged before a test starts the long-running agent.
pub fn apply(root: &Path, config: &Path) {
    let apply = Command::new(env!("CARGO_BIN_EXE_lfleet-agent"))
        .args(["apply", "--root"])
        .arg(root)
        .arg("--config")
        .arg(config)
        .env("PATH", path_with(root))
        .output()
        .unwrap();
    assert!(apply.status.success(), "{apply:?}");
}

/// Ends a child this test started, by its PID (SIGCONT, then SIGTERM, then SIGKILL after 3 s),
/// however the test ends.
pub struct Owned(pub Child);

impl Drop for Owned {
    fn drop(&mut self) {
        let pid = Pid::from_raw(self.0.id() as i32);
        let _ = kill(pid, Signal::SIGCONT);
        let _ = kill(pid, Signal::SIGTERM);
        for _ in 0..60 {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `lfleet-agent run ARGS --root ROOT` with the node's shims on PATH and its
/// Prometheus endpoint enabled on loopback by the config; the process and the endpoint's
/// address (the first line it prints).
pub fn spawn_run<S: AsRef<std::ffi::OsStr>>(root: &Path, args: &[S]) -> (Owned, String) {
    spawn_run_with(root, args, &[])
}

/// [`spawn_run`] with more environment (the scratch root's `APT_CONFIG`).
pub fn spawn_run_with<S: AsRef<std::ffi::OsStr>>(
    root: &Path,
    args: &[S],
    env: &[(String, String)],
) -> (Owned, String) {
    use std::io::{BufRead, BufReader};
    let mut child = Owned(
        Command::new(env!("CARGO_BIN_EXE_lfleet-agent"))
            .arg("run")
            .args(args)
            .arg("--root")
            .arg(root)
            .env("PATH", path_with(root))
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut first = String::new();
    BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let address = first
        .trim()
        .strip_prefix("metrics listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_owned();
    (child, address)
}

/// GET /metrics from an agent's endpoint, with how long the answer took.
pub fn scrape(address: &str) -> (String, Duration) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: lfleet\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    (text, started.elapsed())
}

/// One run of `lfleet-agent` against a sim node: exit code, output, and every command it ran
/// (its `--command-log`).
pub struct AgentRun {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub commands: Vec<String>,
}

impl AgentRun {
    /// `lfleet-agent ARGS --root NODE --config FILE --command-log FILE`, with `config` written
    /// beside the node and the node's shims first on PATH.
    pub fn run(node: &Path, args: &[&str], config: &str) -> AgentRun {
        let dir = node.parent().expect("a node has a parent directory");
        let config_path = dir.join("agent.toml");
        let log = dir.join("commands.log");
        std::fs::write(&config_path, config).unwrap();
        let _ = std::fs::remove_file(&log);
        let output = Command::new(env!("CARGO_BIN_EXE_lfleet-agent"))
            .args(args)
            .arg("--root")
            .arg(node)
            .arg("--config")
            .arg(&config_path)
            .arg("--command-log")
            .arg(&log)
            .env("PATH", path_with(node))
            .output()
            .unwrap();
        AgentRun {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            commands: std::fs::read_to_string(&log)
                .unwrap_or_default()
                .lines()
                .map(str::to_owned)
                .collect(),
        }
    }

    /// `apply --json`.
    pub fn apply_json(node: &Path, config: &str) -> AgentRun {
        AgentRun::run(node, &["apply", "--json"], config)
    }

    /// `apply`, as an operator reads it.
    pub fn apply_text(node: &Path, config: &str) -> AgentRun {
        AgentRun::run(node, &["apply"], config)
    }
}
