//! The arguments every subcommand shares, proved on the real binary against lfleet-sim nodes:
//! `--procfs` and `--sysfs` are where `check` and `run` read /proc and /sys from (copies that
//! differ from the node's own tell which was read); `--command-log` records what every
//! subcommand that runs commands ran; an I/O failure is reported with the OS's own words; the
//! checks' memory directory is private.
#![allow(
    clippy::disallowed_methods,
    reason = "the test builds node roots, runs the agent binary and reads what it wrote"
)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{Owned, scrape};
use lfleet_sim::{Fault, LustreVersion, NodeSpec, SimNode};

const AGENT: &str = env!("CARGO_BIN_EXE_lfleet-agent");
const EXAMPLE: &str = include_str!("../../packaging/examples/agent.toml");

fn sim_node(dir: &Path) -> SimNode {
    let spec = NodeSpec::new("ubuntu-22.04", "5.15.0-1075-azure", LustreVersion::V2_15);
    SimNode::create(&dir.join("node"), &spec).unwrap()
}

fn write_config(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("agent.toml");
    std::fs::write(&path, format!("{EXAMPLE}\n{extra}")).unwrap();
    path
}

fn agent(root: &Path, args: &[&str], config: &Path) -> Output {
    Command::new(AGENT)
        .args(args)
        .arg("--root")
        .arg(root)
        .arg("--config")
        .arg(config)
        .env("PATH", common::path_with(root))
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The verdict `check` printed for a check (its first line).
fn verdict<'a>(stdout: &'a str, check: &str) -> &'a str {
    stdout
        .lines()
        .find(|line| line.split_whitespace().nth(1) == Some(check))
        .and_then(|line| line.split_whitespace().next())
        .unwrap_or_else(|| panic!("no {check} line in {stdout}"))
}

/// A copy of a directory tree (`cp -a`).
fn copy_tree(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

/// Starts `run` with the Prometheus endpoint on a loopback port; its address.
fn start_run(root: &Path, config: &Path, extra: &[&str]) -> (Owned, String) {
    let mut args: Vec<std::ffi::OsString> = [
        "--check-interval",
        "200ms",
        "--collect-interval",
        "200ms",
        "--config",
    ]
    .iter()
    .map(Into::into)
    .collect();
    args.push(config.into());
    args.extend(extra.iter().map(Into::into));
    common::spawn_run(root, &args)
}

/// Scrapes until every wanted fragment is there, at most 10 s.
fn wait_for_all(address: &str, wanted: &[&str]) -> String {
    let started = Instant::now();
    loop {
        let (text, _) = scrape(address);
        if wanted.iter().all(|w| text.contains(w)) || started.elapsed() > Duration::from_secs(10) {
            return text;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The endpoint's line for eth0 missing from /proc/net/dev.
const UNAVAILABLE_ETH0: &str = "lfleet_source_unavailable{collector=\"netdev\",device=\"eth0\"} 1";

#[test]
fn check_and_run_read_proc_and_sys_from_the_directories_given() {
    let dir = tempfile::tempdir().unwrap();
    let node = sim_node(dir.path());
    let root = node.root().to_path_buf();
    let config = write_config(
        dir.path(),
        "[prometheus]\nenabled = true\nlisten = \"127.0.0.1:0\"\n",
    );
    let apply = agent(&root, &["apply"], &config);
    assert!(apply.status.success(), "{}", text(&apply));

    // Copies of /proc and /sys that differ from the node's own: the client says LBUG, the
    // Lustre mount is missing from mountinfo, and eth0 is missing from /proc/net/dev.
    let procfs = dir.path().join("procfs");
    let sysfs = dir.path().join("sysfs");
    copy_tree(&root.join("proc"), &procfs);
    copy_tree(&root.join("sys"), &sysfs);
    std::fs::write(sysfs.join("fs/lustre/health_check"), "LBUG\n").unwrap();
    let netdev = std::fs::read_to_string(procfs.join("net/dev")).unwrap();
    assert!(netdev.contains("eth0:"), "{netdev}");
    std::fs::write(procfs.join("net/dev"), netdev.replace("eth0:", "ethX:")).unwrap();
    let redirects = [
        "--procfs",
        procfs.to_str().unwrap(),
        "--sysfs",
        sysfs.to_str().unwrap(),
    ];

    let own = agent(&root, &["check"], &config);
    let own = String::from_utf8_lossy(&own.stdout).into_owned();
    assert_eq!(verdict(&own, "lustre.lbug"), "PASS", "{own}");
    assert_eq!(verdict(&own, "mount.present"), "PASS", "{own}");

    // `run` with the redirects: the endpoint serves what the copies say.
    let (daemon, address) = start_run(&root, &config, &redirects);
    let served = wait_for_all(
        &address,
        &[
            "check=\"lustre.lbug\",state=\"fail\",code=\"lbug\"",
            UNAVAILABLE_ETH0,
        ],
    );
    drop(daemon);
    assert!(
        served.contains("check=\"lustre.lbug\",state=\"fail\",code=\"lbug\""),
        "{served}"
    );
    // eth0 is flagged unreadable, and its counters are absent, never zero.
    assert!(served.contains(UNAVAILABLE_ETH0), "{served}");
    assert!(
        !served.contains("lfleet_network_receive_bytes_total{device=\"eth0\"}"),
        "{served}"
    );

    // `check` with the redirects, after mountinfo lost its Lustre line in the copy only.
    let mountinfo = std::fs::read_to_string(procfs.join("self/mountinfo")).unwrap();
    let without: String = mountinfo
        .lines()
        .filter(|line| !line.contains(" lustre "))
        .map(|line| format!("{line}\n"))
        .collect();
    assert_ne!(without, mountinfo);
    std::fs::write(procfs.join("self/mountinfo"), without).unwrap();
    let mut args = vec!["check"];
    args.extend(redirects);
    let redirected = agent(&root, &args, &config);
    let redirected = String::from_utf8_lossy(&redirected.stdout).into_owned();
    assert_eq!(verdict(&redirected, "lustre.lbug"), "FAIL", "{redirected}");
    assert_eq!(
        verdict(&redirected, "mount.present"),
        "FAIL",
        "{redirected}"
    );
    // The node's own files were never touched.
    assert!(
        std::fs::read_to_string(root.join("proc/self/mountinfo"))
            .unwrap()
            .contains(" /lustre ")
    );
}

#[test]
fn every_subcommand_that_runs_commands_records_them_in_the_command_log() {
    let dir = tempfile::tempdir().unwrap();
    let node = sim_node(dir.path());
    let root = node.root().to_path_buf();
    let config = write_config(
        dir.path(),
        "[prometheus]\nenabled = true\nlisten = \"127.0.0.1:0\"\n",
    );
    let log_of = |name: &str| dir.path().join(format!("{name}.log"));
    let logged = |name: &str| std::fs::read_to_string(log_of(name)).unwrap_or_default();
    let with_log = |name: &str, args: &[&str]| {
        let log = log_of(name);
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--command-log", log.to_str().unwrap()]);
        agent(&root, &all, &config)
    };

    // Each in turn on the same node: apply installs and mounts, kernel-installed installs the
    // client of a kernel that arrived after that.
    let cases: [(&str, &[&str], &[&str]); 5] = [
        ("plan", &["plan"], &["ip route get 10.0.1.4"]),
        ("apply", &["apply"], &["apt-get install", "mount -t lustre"]),
        ("check", &["check"], &["lnetctl net show -v 3"]),
        ("lnet-up", &["lnet-up"], &["lnetctl net show"]),
        (
            "kernel",
            &["kernel-installed", "5.15.0-1079-azure"],
            &["apt-get install", "=5.15.0-1079-azure"],
        ),
    ];
    for (name, args, wanted) in cases {
        if name == "kernel" {
            node.fault(&Fault::KernelUpgrade {
                kernel: "5.15.0-1079-azure".into(),
            })
            .unwrap();
        }
        let output = with_log(name, args);
        assert!(output.status.success(), "{name}: {}", text(&output));
        // kernel-installed hands the work to a background process (no agent runs here).
        for _ in 0..100 {
            if wanted
                .iter()
                .all(|fragment| logged(name).contains(fragment))
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let log = logged(name);
        for fragment in wanted {
            assert!(log.contains(fragment), "{name}: no {fragment:?} in {log}");
        }
    }

    let collect_log = log_of("collect");
    let collect = Command::new(AGENT)
        .args(["collect", "--count", "1", "--root"])
        .arg(&root)
        .arg("--command-log")
        .arg(&collect_log)
        .env("PATH", common::path_with(&root))
        .output()
        .unwrap();
    assert!(collect.status.success(), "{}", text(&collect));
    assert!(
        logged("collect").contains("lnetctl net show"),
        "{}",
        logged("collect")
    );

    let run_log = log_of("run");
    let (daemon, address) = start_run(
        &root,
        &config,
        &["--command-log", run_log.to_str().unwrap()],
    );
    wait_for_all(&address, &["check=\"lnet\""]);
    drop(daemon);
    assert!(
        logged("run").contains("lnetctl net show -v 3"),
        "{}",
        logged("run")
    );
}

#[test]
fn io_failures_are_reported_with_the_operating_systems_words() {
    let dir = tempfile::tempdir().unwrap();
    let node = sim_node(dir.path());
    let root = node.root().to_path_buf();
    let config = write_config(dir.path(), "");

    // An fstab that cannot be read: apply refuses to go on, naming the file and the cause.
    let fstab = root.join("etc/fstab");
    let saved = std::fs::read(&fstab).unwrap();
    std::fs::remove_file(&fstab).unwrap();
    std::fs::create_dir(&fstab).unwrap();
    let apply = agent(&root, &["apply"], &config);
    assert_eq!(apply.status.code(), Some(2), "{}", text(&apply));
    let stderr = String::from_utf8_lossy(&apply.stderr);
    assert!(stderr.contains("/etc/fstab"), "{stderr}");
    assert!(stderr.contains("Is a directory (os error 21)"), "{stderr}");
    std::fs::remove_dir(&fstab).unwrap();
    std::fs::write(&fstab, saved).unwrap();

    // A health file that cannot be read: the check is Unknown and says why.
    let apply = agent(&root, &["apply"], &config);
    assert!(apply.status.success(), "{}", text(&apply));
    let health = root.join("sys/fs/lustre/health_check");
    std::fs::remove_file(&health).unwrap();
    std::fs::create_dir(&health).unwrap();
    let check = agent(&root, &["check"], &config);
    let stdout = String::from_utf8_lossy(&check.stdout);
    let line = stdout
        .lines()
        .find(|l| l.contains("lustre.lbug"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(line.starts_with("UNKNOWN"), "{line}");
    assert!(line.contains("Is a directory (os error 21)"), "{line}");
}

#[test]
fn the_checks_memory_is_kept_in_a_private_directory() {
    let dir = tempfile::tempdir().unwrap();
    let node = sim_node(dir.path());
    let root = node.root().to_path_buf();
    assert!(!root.join("var/lib/lfleet").exists());
    let config = write_config(dir.path(), "");
    let check = agent(&root, &["check"], &config);
    assert!(check.status.code().is_some(), "{}", text(&check));
    let mode = std::fs::metadata(root.join("var/lib/lfleet"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700, "{mode:o}");
    assert!(root.join("var/lib/lfleet/checks.json").exists());
}
