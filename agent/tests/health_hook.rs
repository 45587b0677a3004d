//! Slurm's health hook and the NHC check (packaging/slurm) follow the running agent: with
//! `lfleet-agent run` on a sim node, the HealthCheckProgram hook exits 0 while the mount is
//! healthy, 1 naming `mount.present` once a fault loses the mount, and 0 again once it is
//! healed; the NHC check fails (NHC's `die`) and passes with it. With no running agent the
//! hook says unknown (exit 2). NHC itself is not packaged in Debian, so the NHC check runs in
//! bash with NHC's two documented entry points a check uses, `die` and `log`, defined to
//! record what they are given.
#![allow(
    clippy::disallowed_methods,
    reason = "the test runs the agent, the hook script and bash"
)]

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use lfleet_sim::{Fault, LustreVersion, NodeSpec, SimNode};

const AGENT: &str = env!("CARGO_BIN_EXE_lfleet-agent");
const EXAMPLE: &str = include_str!("../../packaging/examples/agent.toml");
const HOOK: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../packaging/slurm/lfleet-health-check"
);
const NHC_CHECK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../packaging/slurm/lfleet.nhc");

fn hook(root: &Path) -> Output {
    Command::new("sh")
        .arg(HOOK)
        .env("LFLEET_AGENT", AGENT)
        .env("LFLEET_ROOT", root)
        .output()
        .unwrap()
}

/// Runs `check_lfleet --root ROOT` as NHC would: its exit status and what it gave `die`
/// and `log`.
fn nhc(root: &Path) -> (i32, String) {
    let script = format!(
        "die() {{ echo \"die $1: $2\"; return \"$1\"; }}\nlog() {{ echo \"log: $*\"; }}\n. '{NHC_CHECK}'\ncheck_lfleet --root '{}'\necho \"status $?\"\n",
        root.display()
    );
    let output = Command::new("bash")
        .args(["-c", &script])
        .env("LFLEET_AGENT", AGENT)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let status = text
        .lines()
        .find_map(|l| l.strip_prefix("status "))
        .and_then(|s| s.parse().ok())
        .unwrap_or(-1);
    (status, text)
}

/// Waits (at most 10 s) until the hook exits with `code`; its last output otherwise.
fn hook_until(root: &Path, code: i32) -> Result<String, String> {
    let mut last = String::new();
    for _ in 0..100 {
        let output = hook(root);
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        if output.status.code() == Some(code) {
            return Ok(text);
        }
        last = format!("{:?} {text}", output.status.code());
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(last)
}

#[test]
fn the_health_hook_and_the_nhc_check_follow_an_injected_fault() {
    let dir = tempfile::tempdir().unwrap();
    let node = SimNode::create(
        &dir.path().join("node"),
        &NodeSpec::new("ubuntu-22.04", "5.15.0-1075-azure", LustreVersion::V2_15),
    )
    .unwrap();
    let root = node.root().to_path_buf();

    // No agent has run: unknown, never unhealthy.
    let before = hook(&root);
    assert_eq!(before.status.code(), Some(2), "{before:?}");
    assert!(String::from_utf8_lossy(&before.stdout).starts_with("UNKNOWN"));

    let config = dir.path().join("agent.toml");
    std::fs::write(&config, EXAMPLE).unwrap();
    common::apply(&root, &config);
    let _daemon = lfleet_harness::Owned(
        Command::new(AGENT)
            .args(["run", "--check-interval", "200ms", "--root"])
            .arg(&root)
            .arg("--config")
            .arg(&config)
            .env("PATH", common::path_with(&root))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    let healthy = hook_until(&root, 0).unwrap_or_else(|last| panic!("never healthy: {last}"));
    assert!(healthy.starts_with("OK"), "{healthy}");
    assert_eq!(nhc(&root).0, 0);

    node.fault(&Fault::MountLost { mount: None }).unwrap();
    let sick = hook_until(&root, 1).unwrap_or_else(|last| panic!("never unhealthy: {last}"));
    assert!(sick.contains("mount.present /lustre"), "{sick}");
    let (status, said) = nhc(&root);
    assert_eq!(status, 1, "{said}");
    assert!(
        said.contains("die 1: lfleet: FAIL lfleet-agent: mount.present"),
        "{said}"
    );

    node.heal(None).unwrap();
    hook_until(&root, 0).unwrap_or_else(|last| panic!("never healthy again: {last}"));
    assert_eq!(nhc(&root).0, 0);
}
