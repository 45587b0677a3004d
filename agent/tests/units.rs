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
            .replace("/usr/bin/lfleet-agent", AGENT);
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
    assert!(checked >= 1, "no units found in {}", units.display());
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
