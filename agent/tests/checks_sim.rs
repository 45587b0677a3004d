//! `lfleet-agent check` as a real process against lfleet-sim nodes: each fault flips exactly
//! the checks it should, heal restores Pass, and a truly hung mount (bindfs frozen with
//! SIGSTOP at the managed mount point; needs root and FUSE) is reported within its deadline
//! while every other check completes.
#![allow(
    clippy::disallowed_methods,
    reason = "the test runs the agent and a FUSE daemon and reads their output"
)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use lfleet_sim::{Fault, LustreVersion, NodeSpec, SimNode};

const AGENT: &str = env!("CARGO_BIN_EXE_lfleet-agent");
const CONFIG: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../packaging/examples/agent.toml"
);

/// The example configuration with the health inventory of the sim node (one mlx5 HCA at the
/// sample's 25 Gb/s, accelerated networking) and no grace, so each fault shows at once.
fn config(dir: &Path) -> String {
    let mut text = std::fs::read_to_string(CONFIG).unwrap();
    text.push_str(
        "\n[health]\nib_ports = [{ hca = \"mlx5_0\", port = 1, rate_gbps = 25 }]\naccelnet = true\naccelnet_grace_seconds = 0\nlnet_health_sustain_seconds = 0\n",
    );
    let path = dir.join("agent.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn agent(node: &Path, args: &[&str]) -> (i32, String) {
    let config = config(node.parent().unwrap());
    let output = Command::new(AGENT)
        .args(args)
        .args(["--root", node.to_str().unwrap(), "--config", &config])
        .env(
            "PATH",
            format!(
                "{}:/usr/sbin:/usr/bin:/sbin:/bin",
                node.join("bin").display()
            ),
        )
        .output()
        .unwrap();
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        text.push_str(&String::from_utf8_lossy(&output.stderr));
    }
    (output.status.code().unwrap_or(-1), text)
}

/// check -> its worst verdict over its subjects ("FAIL" over "UNKNOWN" over "PASS").
fn verdicts(stdout: &str) -> BTreeMap<String, String> {
    let rank = |v: &str| match v {
        "FAIL" => 2,
        "UNKNOWN" => 1,
        _ => 0,
    };
    let mut worst: BTreeMap<String, String> = BTreeMap::new();
    for line in stdout.lines() {
        let mut words = line.split_whitespace();
        let (Some(verdict), Some(check)) = (words.next(), words.next()) else {
            continue;
        };
        if !["PASS", "FAIL", "UNKNOWN"].contains(&verdict) {
            continue;
        }
        let entry = worst
            .entry(check.to_owned())
            .or_insert_with(|| verdict.to_owned());
        if rank(verdict) > rank(entry) {
            *entry = verdict.to_owned();
        }
    }
    worst
}

fn converged_node(dir: &Path) -> SimNode {
    let mut spec = NodeSpec::new("ubuntu-22.04", "5.15.0-1075-azure", LustreVersion::V2_15);
    spec.ib_hcas = 1;
    spec.accelnet = true;
    let node = SimNode::create(&dir.join("node"), &spec).unwrap();
    let (code, stdout) = agent(node.root(), &["apply"]);
    assert_eq!(code, 0, "{stdout}");
    node
}

/// Every check of the registry, as the agent names them.
const CHECKS: [&str; 8] = [
    "mount.present",
    "mount.responsive",
    "lustre.imports",
    "lustre.lbug",
    "lustre.client",
    "lnet",
    "ib.ports",
    "accelnet",
];

#[test]
fn each_fault_flips_exactly_the_checks_it_should_and_heal_restores_pass() {
    let dir = tempfile::tempdir().unwrap();
    let node = converged_node(dir.path());
    let (code, stdout) = agent(node.root(), &["check"]);
    assert_eq!(code, 0, "{stdout}");
    let healthy = verdicts(&stdout);
    assert_eq!(
        healthy.keys().map(String::as_str).collect::<Vec<_>>(),
        {
            let mut all = CHECKS.to_vec();
            all.sort();
            all
        },
        "every check reports on a healthy node\n{stdout}"
    );
    assert!(healthy.values().all(|v| v == "PASS"), "{stdout}");

    // (fault, the checks that must fail, an event the run must report). Every other check
    // keeps its verdict. The repository dropping a kernel's client changes nothing on the
    // node by itself: no check may flip.
    let table: Vec<(Fault, Vec<&str>, Option<&str>)> = vec![
        (
            Fault::Import {
                mount: None,
                target: "OST0001".into(),
                state: "DISCONN".into(),
            },
            vec!["lustre.imports"],
            Some("EVENT   import-reconnect  lustrefs-OST0001-osc-"),
        ),
        (
            Fault::Import {
                mount: None,
                target: "MDT0000".into(),
                state: "EVICTED".into(),
            },
            vec!["lustre.imports"],
            Some("EVENT   evicted           lustrefs-MDT0000-mdc-"),
        ),
        (
            Fault::MountLost { mount: None },
            vec!["mount.present"],
            None,
        ),
        (Fault::Lbug, vec!["lustre.lbug"], None),
        (
            Fault::NotHealthy {
                mount: None,
                target: "OST0001".into(),
            },
            vec!["lustre.lbug"],
            None,
        ),
        (
            Fault::LnetHealth {
                value: 0,
                recover_after: None,
            },
            vec!["lnet"],
            Some("EVENT   lnet-health-dropped 10.0.0.5@tcp health value 0"),
        ),
        (
            Fault::IbPortDown {
                hca: "mlx5_0".into(),
            },
            vec!["ib.ports"],
            None,
        ),
        (
            Fault::IbErrors {
                hca: "mlx5_0".into(),
                counter: "symbol_error".into(),
                by: 5,
            },
            vec!["ib.ports"],
            None,
        ),
        (
            Fault::IbSaturate {
                hca: "mlx5_0".into(),
                counter: "link_downed".into(),
            },
            vec!["ib.ports"],
            None,
        ),
        (
            Fault::VfRemoved,
            vec!["accelnet"],
            Some("EVENT   vf-absent         eth0"),
        ),
        (
            Fault::KernelUpgrade {
                kernel: "5.15.0-1079-azure".into(),
            },
            vec!["lustre.client"],
            None,
        ),
        (
            Fault::RepoMissing {
                kernel: "5.15.0-1075-azure".into(),
            },
            vec![],
            None,
        ),
    ];
    for (fault, failing, event) in table {
        node.fault(&fault).unwrap();
        let (code, stdout) = agent(node.root(), &["check"]);
        let now = verdicts(&stdout);
        let lost = matches!(fault, Fault::MountLost { .. });
        for check in CHECKS {
            // A lost mount has nothing to probe or inspect: those checks report nothing for it.
            let expected = if lost && matches!(check, "mount.responsive" | "lustre.imports") {
                None
            } else if failing.contains(&check) {
                Some("FAIL")
            } else {
                Some("PASS")
            };
            assert_eq!(
                now.get(check).map(String::as_str),
                expected,
                "{fault:?}: {check}\n{stdout}"
            );
        }
        if let Some(event) = event {
            assert!(stdout.contains(event), "{fault:?}: no {event:?}\n{stdout}");
        }
        assert_eq!(
            code,
            if failing.is_empty() { 0 } else { 1 },
            "{fault:?}\n{stdout}"
        );
        node.heal(None).unwrap();
        let (code, stdout) = agent(node.root(), &["check"]);
        assert_eq!(
            (code, verdicts(&stdout)),
            (0, healthy.clone()),
            "after healing {fault:?}\n{stdout}"
        );
    }
}

/// How many `lfleet-agent probe-statfs` processes for `mount_point` are alive (zombies of
/// this test's children count as gone).
fn probes_of(mount_point: &Path) -> usize {
    let wanted = mount_point.display().to_string();
    let mut count = 0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z'));
        if !zombie && args.iter().any(|a| a == "probe-statfs") && args.contains(&wanted) {
            count += 1;
        }
    }
    count
}

#[test]
fn root_a_hung_mount_is_reported_within_its_deadline_and_the_other_checks_complete() {
    let dir = tempfile::tempdir().unwrap();
    let node = converged_node(dir.path());
    let mount_point = node.root().join("lustre");
    let bindfs = lfleet_harness::bindfs::Bindfs::mount(&dir.path().join("src"), &mount_point);
    bindfs.freeze();

    // A one-shot check probes in a child process killed at the deadline, so the agent itself
    // must exit promptly while the mount is still frozen (a probe thread would keep it alive).
    let started = Instant::now();
    let mut child = Command::new(AGENT)
        .args([
            "check",
            "--syscall-deadline",
            "1",
            "--root",
            node.root().to_str().unwrap(),
            "--config",
            CONFIG,
        ])
        .env(
            "PATH",
            format!(
                "{}:/usr/sbin:/usr/bin:/sbin:/bin",
                node.root().join("bin").display()
            ),
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut exited = None;
    for _ in 0..60 {
        if let Some(status) = child.try_wait().unwrap() {
            exited = Some(status);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let took = started.elapsed();
    // What the check left behind while the mount is still frozen: at most its one probe.
    let left_while_frozen = probes_of(&mount_point);
    // Unfreeze before asserting, so a failure cannot leave anything blocked.
    bindfs.thaw();
    let status = match exited {
        Some(status) => status,
        None => {
            let _ = child.wait();
            panic!("the agent did not exit within 3 s while the mount was frozen");
        }
    };
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    assert!(
        took < Duration::from_secs(2),
        "exited after {took:?} with a 1 s deadline: {stdout}"
    );
    assert_eq!(status.code(), Some(1), "unhealthy: {stdout}");
    // The stuck task's wchan is the FUSE request wait (the kernel function's name).
    assert!(
        stdout.contains("FAIL    mount.responsive  /lustre hung: statfs stuck 1 s (wchan "),
        "{stdout}"
    );
    assert!(
        left_while_frozen <= 1,
        "{left_while_frozen} probes left behind while frozen"
    );
    let mut left_after = usize::MAX;
    for _ in 0..40 {
        left_after = probes_of(&mount_point);
        if left_after == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(left_after, 0, "probes still running after SIGCONT");
    let now = verdicts(&stdout);
    for check in ["mount.present", "lustre.imports", "lustre.lbug"] {
        assert_eq!(
            now.get(check).map(String::as_str),
            Some("PASS"),
            "{check} must still complete\n{stdout}"
        );
    }
    let (code, stdout) = agent(node.root(), &["check", "--syscall-deadline", "1"]);
    assert_eq!(code, 0, "after SIGCONT: {stdout}");
}
