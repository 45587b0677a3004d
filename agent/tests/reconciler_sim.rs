//! `lfleet-agent run` converges continuously, with no coordinator: a real agent process on a
//! sim node with a short resync interval. A hand-deleted managed fstab line and a
//! hand-unmounted managed mount come back within 5 s; a foreign fstab line and a foreign
//! mount are never touched; in steady state, over 30 s of passes, nothing is written under
//! the node root and the command log shows no mutating command. A client the repository does
//! not publish yet (published 10 s after the start) is retried on its schedule and installed,
//! then mounted, as soon as it is published, without a restart; the retry and its class are
//! served by the agent's endpoint meanwhile.
#![allow(
    clippy::disallowed_methods,
    reason = "the test runs the agent and the sim's shims and inspects the node root"
)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Owned, scrape};
use lfleet_sim::{Fault, LustreVersion, NodeSpec, SimNode};

const EXAMPLE: &str = include_str!("../../packaging/examples/agent.toml");
const KERNEL: &str = "5.15.0-1075-azure";

fn sim_node(dir: &Path) -> SimNode {
    let spec = NodeSpec::new("ubuntu-22.04", KERNEL, LustreVersion::V2_15);
    SimNode::create(&dir.join("node"), &spec).unwrap()
}

/// Starts `run` with its endpoint on loopback and a command log; the process and address.
fn start(root: &Path, config: &Path, log: &Path, resync: &str) -> (Owned, String) {
    let mut args: Vec<std::ffi::OsString> = [
        "--check-interval",
        "500ms",
        "--collect-interval",
        "1s",
        "--resync-interval",
        resync,
        "--config",
    ]
    .iter()
    .map(Into::into)
    .collect();
    args.push(config.into());
    args.push("--command-log".into());
    args.push(log.into());
    common::spawn_run(root, &args)
}

/// Waits (at most `limit`) until `done` holds; how long it took.
fn within(limit: Duration, mut done: impl FnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if done() {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

fn read(root: &Path, path: &str) -> String {
    std::fs::read_to_string(root.join(path)).unwrap_or_default()
}

/// Every file under the root with its bytes, but the agent's own state (check memory,
/// status file, lock) and the sim's bookkeeping, which change by design.
fn snapshot(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, into: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            let key = path.strip_prefix(base).unwrap().display().to_string();
            if ["run/lfleet", "var/lib/lfleet/checks.json", ".sim"]
                .iter()
                .any(|skip| key.starts_with(skip))
            {
                continue;
            }
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                walk(base, &path, into);
            } else if meta.is_file() {
                into.insert(key, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut tree = BTreeMap::new();
    walk(root, root, &mut tree);
    tree
}

/// Command-log lines that change a node (everything but the read-only queries).
fn mutating(log: &str) -> Vec<String> {
    let read_only = [
        "ip route get",
        "ip -o link show",
        "lnetctl net show",
        "lfs getname",
        "modinfo ",
    ];
    log.lines()
        .filter(|line| !read_only.iter().any(|r| line.starts_with(r)))
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_lost_fstab_line_and_a_lost_mount_come_back_and_foreign_ones_are_never_touched() {
    let dir = tempfile::tempdir().unwrap();
    let node = sim_node(dir.path());
    let root = node.root().to_path_buf();
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!("{EXAMPLE}\n[prometheus]\nenabled = true\nlisten = \"127.0.0.1:0\"\n"),
    )
    .unwrap();
    let log = dir.path().join("commands.log");
    let (_agent, _address) = start(&root, &config, &log, "2s");
    assert!(
        within(Duration::from_secs(30), || read(
            &root,
            "proc/self/mountinfo"
        )
        .contains(" /lustre "))
        .is_some(),
        "the first pass mounted /lustre"
    );

    // Someone else's: a foreign fstab line and a Lustre mount made by hand.
    let foreign_line = "nfs-server:/export /data nfs defaults,_netdev 0 0\n";
    let mut fstab = read(&root, "etc/fstab");
    fstab.push_str(foreign_line);
    std::fs::write(root.join("etc/fstab"), &fstab).unwrap();
    std::fs::create_dir_all(root.join("handmade")).unwrap();
    let made = Command::new(root.join("bin/mount"))
        .args(["-t", "lustre", "10.0.9.9@tcp:/other", "/handmade"])
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");

    // The managed line deleted by hand: back within 5 s, the foreign line kept.
    let without: String = read(&root, "etc/fstab")
        .lines()
        .filter(|line| !line.contains("lustrefs /lustre"))
        .map(|line| format!("{line}\n"))
        .collect();
    assert_ne!(without, read(&root, "etc/fstab"));
    std::fs::write(root.join("etc/fstab"), &without).unwrap();
    let took = within(Duration::from_secs(5), || {
        read(&root, "etc/fstab").contains("10.0.1.4@tcp:/lustrefs /lustre lustre ")
    });
    assert!(took.is_some(), "fstab: {}", read(&root, "etc/fstab"));
    assert!(read(&root, "etc/fstab").contains(foreign_line));

    // The managed mount unmounted by hand: mounted again within 5 s.
    let unmounted = Command::new(root.join("bin/umount"))
        .arg("/lustre")
        .output()
        .unwrap();
    assert!(unmounted.status.success(), "{unmounted:?}");
    assert!(!read(&root, "proc/self/mountinfo").contains(" /lustre "));
    let took = within(Duration::from_secs(5), || {
        read(&root, "proc/self/mountinfo").contains(" /lustre ")
    });
    assert!(took.is_some(), "{}", read(&root, "proc/self/mountinfo"));

    // Steady state for 30 s (a pass every 2 s): no mutating command, no write, and the
    // foreign mount and line untouched.
    std::thread::sleep(Duration::from_secs(1));
    let before = snapshot(&root);
    let log_before = std::fs::read_to_string(&log).unwrap();
    let passes_before = log_before.matches("ip route get").count();
    std::thread::sleep(Duration::from_secs(30));
    let log_after = std::fs::read_to_string(&log).unwrap();
    let new_lines = &log_after[log_before.len()..];
    assert!(
        log_after.matches("ip route get").count() >= passes_before + 10,
        "at least ten passes ran: {new_lines}"
    );
    assert_eq!(mutating(new_lines), Vec::<String>::new(), "{new_lines}");
    let after = snapshot(&root);
    let changed: Vec<&String> = after
        .iter()
        .filter(|(path, bytes)| before.get(*path) != Some(bytes))
        .map(|(path, _)| path)
        .chain(before.keys().filter(|path| !after.contains_key(*path)))
        .collect();
    assert!(changed.is_empty(), "written in steady state: {changed:?}");
    assert!(!mutating(&log_after).iter().any(|c| c.contains("/handmade")));
    assert!(read(&root, "proc/self/mountinfo").contains(" /handmade "));
    assert!(read(&root, "etc/fstab").contains(foreign_line));
}

#[test]
fn a_client_published_after_the_agent_started_is_installed_and_mounted_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let node = sim_node(dir.path());
    let root = node.root().to_path_buf();
    // The repository serves the series (an older kernel is installed and published), just not
    // the running kernel yet: "not yet published", a retry on a schedule.
    node.fault(&Fault::KernelUpgrade {
        kernel: "5.15.0-1070-azure".into(),
    })
    .unwrap();
    node.fault(&Fault::RepoMissing {
        kernel: KERNEL.into(),
    })
    .unwrap();
    let config = dir.path().join("agent.toml");
    // Retries at most a second apart, so the test need not wait for the 15 min schedule.
    std::fs::write(
        &config,
        EXAMPLE.replace(
            "mount_timeout_seconds = 120",
            "mount_timeout_seconds = 120\nretry_max_seconds = 1",
        ) + "\n[prometheus]\nenabled = true\nlisten = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    assert!(
        std::fs::read_to_string(&config)
            .unwrap()
            .contains("retry_max_seconds = 1")
    );
    let log = dir.path().join("commands.log");
    let (_agent, address) = start(&root, &config, &log, "60s");
    let started = Instant::now();

    // Meanwhile the endpoint shows the failed item with its class and the next retry.
    let failed = "lfleet_reconcile_item_failed{kind=\"package\",id=\"5.15.0-1075-azure\",class=\"not-yet-published\"} 1";
    let mut served = String::new();
    let seen = within(Duration::from_secs(20), || {
        served = scrape(&address).0;
        served.contains(failed) && served.contains("lfleet_reconcile_next_retry_timestamp_seconds")
    });
    assert!(seen.is_some(), "{served}");
    assert!(!read(&root, "proc/self/mountinfo").contains(" /lustre "));
    let tries_before = std::fs::read_to_string(&log)
        .unwrap()
        .matches("apt-get install")
        .count();

    // Published 10 s after the start: installed and mounted by the retry schedule, no
    // restart, no new config.
    std::thread::sleep(Duration::from_secs(10).saturating_sub(started.elapsed()));
    assert!(!read(&root, "proc/self/mountinfo").contains(" /lustre "));
    node.heal(Some("repo-missing")).unwrap();
    let took = within(Duration::from_secs(15), || {
        read(&root, "proc/self/mountinfo").contains(" /lustre ")
    });
    assert!(took.is_some(), "{}", std::fs::read_to_string(&log).unwrap());
    assert!(node.state().unwrap().clients.contains(KERNEL));
    // The pass that mounted it publishes a clean status when it ends.
    let mut served = String::new();
    let clean = within(Duration::from_secs(5), || {
        served = scrape(&address).0;
        !served.contains("lfleet_reconcile_item_failed{")
    });
    assert!(clean.is_some(), "{served}");
    assert!(tries_before >= 1);
}
