//! The kernel hook while the package lock is held, with the real apt-get and dpkg installing
//! into a scratch node root (lfleet-aptrepo over an lfleet-sim node whose package tools are
//! the real ones) and `lfleet-agent run` on it: another process holds the scratch root's
//! dpkg frontend lock with fcntl for 10 s, as the kernel package's own installation does
//! while its hooks run. The hook returns within 2 s; `lustre.client` reports the new kernel
//! reboot-unsafe while the lock is held; the client for the new kernel is installed after
//! the lock is released, with no restart, and `lustre.client` passes. Needs root, as CI runs.
#![allow(
    clippy::disallowed_methods,
    reason = "the test holds a lock file, runs the agent and a hook, and reads the node root"
)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use lfleet_aptrepo::{AptRepo, ScratchRoot, amlfs_client_packages};
use lfleet_sim::{Fault, LustreVersion, NodeSpec, SimNode};

const AGENT: &str = env!("CARGO_BIN_EXE_lfleet-agent");
const EXAMPLE: &str = include_str!("../../packaging/examples/agent.toml");
const L: &str = "2.15.7-33-g79ddf99";
const RUNNING: &str = "5.15.0-1075-azure";
const UPGRADE: &str = "5.15.0-1079-azure";

fn has_client(root: &Path, kernel: &str) -> bool {
    let dir = root.join(format!("lib/modules/{kernel}"));
    fn walk(dir: &Path) -> bool {
        std::fs::read_dir(dir).is_ok_and(|entries| {
            entries.flatten().any(|entry| {
                let path = entry.path();
                path.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("lustre.ko"))
                    || (path.is_dir() && walk(&path))
            })
        })
    }
    walk(&dir)
}

fn wait(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn root_the_kernel_hook_returns_at_once_while_dpkg_is_locked_and_the_client_follows_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = NodeSpec::new("ubuntu-22.04", RUNNING, LustreVersion::V2_15);
    spec.real_packages = true;
    let node = SimNode::create(&dir.path().join("node"), &spec).unwrap();
    let root = node.root().to_path_buf();
    let mut packages = amlfs_client_packages(L, RUNNING);
    packages.extend(amlfs_client_packages(L, UPGRADE));
    let repo = AptRepo::create(&dir.path().join("repo"), &packages).unwrap();
    let scratch = ScratchRoot::prepare(&root, &repo).unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!("{EXAMPLE}\n[prometheus]\nenabled = true\nlisten = \"127.0.0.1:0\"\n"),
    )
    .unwrap();
    let (_agent, address) = common::spawn_run_with(
        &root,
        &[
            "--check-interval".as_ref(),
            "300ms".as_ref(),
            "--collect-interval".as_ref(),
            "1s".as_ref(),
            "--config".as_ref(),
            config.as_os_str(),
        ],
        &scratch.env(),
    );
    let client_pass = "lfleet_check_state{check=\"lustre.client\",state=\"pass\"} 1";
    let mut served = String::new();
    assert!(
        wait(Duration::from_secs(60), || {
            served = common::scrape(&address).0;
            served.contains(client_pass)
        }),
        "the first pass installed the running kernel's client: {served}"
    );
    assert!(has_client(&root, RUNNING));

    // The kernel package is being installed: its files are there and dpkg holds the lock.
    node.fault(&Fault::KernelUpgrade {
        kernel: UPGRADE.into(),
    })
    .unwrap();
    let lock = scratch.hold_frontend_lock().unwrap();
    let locked_at = Instant::now();
    let hook = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../packaging/kernel/postinst.d/zz-lfleet-agent");
    let started = Instant::now();
    let output = Command::new(&hook)
        .args([UPGRADE, &format!("/boot/vmlinuz-{UPGRADE}")])
        .env("LFLEET_AGENT", AGENT)
        .env("LFLEET_ROOT", &root)
        .env("PATH", common::path_with(&root))
        .output()
        .unwrap();
    let took = started.elapsed();
    let said = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{output:?}");
    assert!(took < Duration::from_secs(2), "the hook took {took:?}");
    assert!(
        said.contains("the running agent installs the client"),
        "{said}"
    );

    // While the lock is held: reboot-unsafe, and no client for the new kernel yet.
    let unsafe_kernel = format!(
        "lfleet_check_state{{check=\"lustre.client\",kernel=\"{UPGRADE}\",state=\"fail\",code=\"reboot-unsafe\"}} 1"
    );
    assert!(
        wait(Duration::from_secs(8), || {
            served = common::scrape(&address).0;
            served.contains(&unsafe_kernel)
        }),
        "{served}"
    );
    assert!(!has_client(&root, UPGRADE));
    std::thread::sleep(Duration::from_secs(10).saturating_sub(locked_at.elapsed()));
    assert!(!has_client(&root, UPGRADE), "installed through a held lock");
    drop(lock);

    // Released: the pass that was waiting for it installs the client; the check passes.
    assert!(
        wait(Duration::from_secs(30), || has_client(&root, UPGRADE)),
        "no client for {UPGRADE} after the lock was released"
    );
    assert!(
        wait(Duration::from_secs(10), || {
            served = common::scrape(&address).0;
            served.contains(client_pass) && !served.contains("reboot-unsafe")
        }),
        "{served}"
    );
}
