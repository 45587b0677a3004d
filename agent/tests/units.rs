//! The systemd units in systemd/ pass `systemd-analyze verify` (Debian's systemd), with
//! ExecStart pointed at the built binary, since verify checks that the program exists.
#![allow(
    clippy::disallowed_methods,
    reason = "the test copies unit files to a scratch directory and runs systemd-analyze"
)]

use std::fs;
use std::path::Path;
use std::process::Command;

const AGENT: &str = env!("CARGO_BIN_EXE_lfleet-agent");

#[test]
fn every_agent_unit_passes_systemd_analyze_verify() {
    let units = Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd");
    let scratch = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for entry in fs::read_dir(&units).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".service") {
            continue;
        }
        let text = fs::read_to_string(entry.path())
            .unwrap()
            .replace("/usr/bin/lfleet-agent", AGENT)
            .replace("/usr/bin/lfleet-coordinator", &coordinator());
        let copy = scratch.path().join(&name);
        fs::write(&copy, text).unwrap();
        let output = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&copy)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success() && stderr.trim().is_empty(),
            "{name}: {stderr}"
        );
        checked += 1;
    }
    assert!(checked >= 3, "found {checked} units in {}", units.display());
}

/// The coordinator binary, built beside the agent's by the workspace build.
fn coordinator() -> String {
    let path = Path::new(AGENT).with_file_name("lfleet-coordinator");
    assert!(
        path.is_file(),
        "{} is missing: build the workspace",
        path.display()
    );
    path.display().to_string()
}

#[test]
fn tmpfiles_make_lfleets_directories_with_their_modes() {
    use std::os::unix::fs::PermissionsExt;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd/tmpfiles.d");
    let root = tempfile::tempdir().unwrap();
    for conf in ["lfleet-agent.conf", "lfleet-coordinator.conf"] {
        let output = Command::new("systemd-tmpfiles")
            .arg("--create")
            .arg(format!("--root={}", root.path().display()))
            .arg(dir.join(conf))
            .output()
            .unwrap();
        assert!(output.status.success(), "{conf}: {output:?}");
    }
    for (dir, mode) in [
        ("var/lib/lfleet", 0o700),
        ("var/lib/lfleet-coordinator", 0o700),
        ("run/lfleet", 0o755),
    ] {
        let meta = fs::metadata(root.path().join(dir)).unwrap_or_else(|e| panic!("{dir}: {e}"));
        assert!(meta.is_dir(), "{dir}");
        assert_eq!(meta.permissions().mode() & 0o7777, mode, "{dir}");
    }
}

#[test]
fn verify_catches_a_broken_unit() {
    let scratch = tempfile::tempdir().unwrap();
    let copy = scratch.path().join("broken.service");
    fs::write(
        &copy,
        "[Service]\nType=oneshot\nExecStart=/nonexistent/lfleet-agent lnet-up\n",
    )
    .unwrap();
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    assert!(!output.status.success());
}
