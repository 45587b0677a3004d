//! Shared by the agent's integration tests: the PATH a sim node's shims need, one run of the
//! agent binary against a sim node ([`AgentRun`]), and the installer over a node root. The frozen FUSE mount for hung-mount
//! tests is `lfleet_harness::bindfs::Bindfs`.
#![allow(
    dead_code,
    clippy::disallowed_methods,
    reason = "each test binary uses part of this; it runs the agent and writes its config"
)]

use std::path::Path;
use std::process::Command;

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
