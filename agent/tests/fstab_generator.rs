//! The fstab the agent writes, judged by Debian's real systemd-fstab-generator: the managed
//! line becomes a mount unit that requires and follows the LNet unit and is ordered before
//! remote-fs.target, and every foreign line produces exactly the units it produced before.
#![allow(
    clippy::disallowed_methods,
    reason = "the test runs systemd's generator on scratch files and reads its output"
)]

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

use lfleet_agent::config::NodeConfig;
use lfleet_mount::Fstab;

const GENERATOR: &str = "/lib/systemd/system-generators/systemd-fstab-generator";
const EXAMPLE: &str = include_str!("../../packaging/examples/agent.toml");

/// Runs the generator on `fstab` (always at the same path) and returns every file and link
/// it produced, relative to its output directory.
fn generate(work: &Path, fstab: &str) -> BTreeMap<String, String> {
    let fstab_path = work.join("fstab");
    fs::write(&fstab_path, fstab).unwrap();
    let out = work.join("out");
    let _ = fs::remove_dir_all(&out);
    for dir in ["normal", "early", "late"] {
        fs::create_dir_all(out.join(dir)).unwrap();
    }
    let status = Command::new(GENERATOR)
        .args([out.join("normal"), out.join("early"), out.join("late")])
        .env("SYSTEMD_FSTAB", &fstab_path)
        .env("SYSTEMD_PROC_CMDLINE", "")
        .env("SYSTEMD_LOG_LEVEL", "err")
        .status()
        .expect("systemd-fstab-generator runs (Debian package systemd)");
    assert!(status.success());
    let mut units = BTreeMap::new();
    let mut pending = vec![out.clone()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let key = path.strip_prefix(&out).unwrap().display().to_string();
            if path.is_symlink() {
                units.insert(
                    key,
                    format!("-> {}", fs::read_link(&path).unwrap().display()),
                );
            } else if path.is_dir() {
                pending.push(path);
            } else {
                units.insert(key, fs::read_to_string(&path).unwrap());
            }
        }
    }
    units
}

#[test]
fn managed_lines_get_lnet_ordering_and_foreign_lines_keep_their_units() {
    let work = tempfile::tempdir().unwrap();
    let original = lfleet_sim::node::INITIAL_FSTAB.to_owned()
        + "/swapfile none swap sw 0 0\n/data/src /data/bind none bind 0 0\n";
    let mut config = NodeConfig::from_toml(EXAMPLE).unwrap();
    let scratch = lfleet_types::MountSpec::new(
        "10.0.1.5@tcp:10.0.1.6@tcp",
        "scratch",
        "/mnt/scratch",
        &["localflock"],
    )
    .unwrap();
    config.mounts.push(scratch);
    let managed: Vec<_> = config
        .desired_mounts()
        .iter()
        .map(|m| m.fstab_entry())
        .collect();
    let written = Fstab::parse(&original)
        .unwrap()
        .with_managed(managed)
        .render();

    let before = generate(work.path(), &original);
    let after = generate(work.path(), &written);

    for (unit, mount_point) in [
        ("normal/lustre.mount", "/lustre"),
        ("normal/mnt-scratch.mount", "/mnt/scratch"),
    ] {
        let text = after
            .get(unit)
            .unwrap_or_else(|| panic!("no {unit}: {:?}", after.keys()));
        for line in [
            "Requires=lfleet-lnet.service",
            "After=lfleet-lnet.service",
            "Before=remote-fs.target",
            &format!("Where={mount_point}"),
            "Type=lustre",
            "TimeoutSec=2min",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{unit} lacks {line:?}:\n{text}"
            );
        }
        // nofail: wanted by remote-fs.target, so a missing filesystem does not fail the boot.
        let wants = unit.replace("normal/", "normal/remote-fs.target.wants/");
        assert!(
            after.contains_key(&wants),
            "{wants} missing: {:?}",
            after.keys()
        );
    }
    // Every unit the foreign lines produced is produced again, identically.
    for (key, text) in &before {
        assert_eq!(after.get(key), Some(text), "foreign unit {key} changed");
    }
    let new: Vec<&String> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    assert!(
        new.iter()
            .all(|k| k.contains("lustre.mount") || k.contains("mnt-scratch.mount")),
        "unexpected new units {new:?}"
    );
}
