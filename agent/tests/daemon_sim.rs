//! `lfleet-agent run` as a real process on a sim node, with its Prometheus endpoint on
//! loopback: results and samples are served; with the managed mount truly hung for 60 s
//! (bindfs frozen with SIGSTOP; needs root and FUSE) and a 1 s check interval, the endpoint
//! keeps answering, `mount.responsive` reports the hang within its deadline plus a check
//! interval, and at no moment is more than one task (a thread of the agent or a process it
//! started, `lfs getname` included: the filesystem is mounted twice, so `lustre.imports`
//! needs it) blocked on the mount, counted by the kernel's wchan; after SIGCONT the check
//! passes again. Reconcile passes run every 5 s meanwhile and touch nothing on the hung
//! mount (the endpoint, served by the same runtime, answers throughout).
#![allow(
    clippy::disallowed_methods,
    reason = "the test runs the agent and a FUSE daemon and talks HTTP to the agent"
)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lfleet_sim::{LustreVersion, NodeSpec, SimNode};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const AGENT: &str = env!("CARGO_BIN_EXE_lfleet-agent");
const EXAMPLE: &str = include_str!("../../packaging/examples/agent.toml");

use common::{Owned, path_with, scrape};

/// How many of the agent's threads are probing `/lustre` (named `lfb-<key>`).
fn probe_threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|tasks| {
            tasks
                .flatten()
                .filter(|t| {
                    std::fs::read_to_string(t.path().join("comm"))
                        .is_ok_and(|c| c.trim() == "lfb-/lustre")
                })
                .count()
        })
        .unwrap_or(0)
}

/// The tasks of `pid` and of every process descending from it that are blocked on a FUSE
/// request (wchan `request_wait_answer`, or any `fuse_` function): `comm (tid) wchan` each.
fn blocked_on_fuse(pid: u32) -> Vec<String> {
    let mut parents = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parents.insert(child, ppid);
        }
    }
    let descends = |mut p: u32| {
        for _ in 0..64 {
            if p == pid {
                return true;
            }
            match parents.get(&p) {
                Some(&parent) if parent > 1 => p = parent,
                _ => return false,
            }
        }
        false
    };
    let mut blocked = Vec::new();
    for process in parents.keys().copied().filter(|p| descends(*p)) {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{process}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let wchan = std::fs::read_to_string(task.path().join("wchan")).unwrap_or_default();
            if wchan == "request_wait_answer" || wchan.starts_with("fuse_") {
                let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
                blocked.push(format!(
                    "{} ({}) {wchan}",
                    comm.trim(),
                    task.file_name().to_string_lossy()
                ));
            }
        }
    }
    blocked
}

/// Scrapes until `wanted` is in the text (at most `tries` times, 100 ms apart); every scrape
/// must answer within a second.
fn wait_for(address: &str, wanted: &str, tries: usize) -> (bool, String) {
    let mut last = String::new();
    for _ in 0..tries {
        let (text, took) = scrape(address);
        assert!(took < Duration::from_secs(1), "a scrape took {took:?}");
        if text.contains(wanted) {
            return (true, text);
        }
        last = text;
        std::thread::sleep(Duration::from_millis(100));
    }
    (false, last)
}

#[test]
fn root_the_agent_keeps_answering_while_a_mount_hangs_with_one_stuck_probe() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = NodeSpec::new("ubuntu-22.04", "5.15.0-1075-azure", LustreVersion::V2_15);
    spec.accelnet = true;
    let node = SimNode::create(&dir.path().join("node"), &spec).unwrap();
    let root = node.root().to_path_buf();
    let config = dir.path().join("agent.toml");
    // The filesystem mounted twice: its instance is not in the llite listing alone, so
    // lustre.imports asks `lfs getname`, which opens the mount point.
    std::fs::write(
        &config,
        format!(
            "{EXAMPLE}\n[[mounts]]\nmgs_nids = \"10.0.1.4@tcp\"\nfsname = \"lustrefs\"\nmount_point = \"/mnt/lustre2\"\n\n[prometheus]\nenabled = true\nlisten = \"127.0.0.1:0\"\n"
        ),
    )
    .unwrap();
    common::apply(&root, &config);

    let (mut daemon, address) = common::spawn_run(
        &root,
        &[
            "--check-interval".as_ref(),
            "1s".as_ref(),
            "--collect-interval".as_ref(),
            "1s".as_ref(),
            "--syscall-deadline".as_ref(),
            "1".as_ref(),
            "--resync-interval".as_ref(),
            "5s".as_ref(),
            "--config".as_ref(),
            config.as_os_str(),
        ],
    );
    let pid = daemon.0.id();
    assert!(address.starts_with("127.0.0.1:"), "{address}");

    let pass = "lfleet_check_state{check=\"mount.responsive\",mount=\"/lustre\",fsname=\"lustrefs\",state=\"pass\"} 1";
    let (found, text) = wait_for(&address, pass, 50);
    assert!(found, "{text}");
    let imports = |point: &str| {
        format!(
            "lfleet_check_state{{check=\"lustre.imports\",mount=\"{point}\",fsname=\"lustrefs\",state=\"pass\"}} 1"
        )
    };
    let (found, text) = wait_for(&address, &imports("/mnt/lustre2"), 50);
    assert!(found, "imports judged through lfs getname: {text}");
    assert!(text.contains(&imports("/lustre")), "{text}");
    let (found, text) = wait_for(
        &address,
        "lfleet_import_healthy{mount=\"/lustre\",fsname=\"lustrefs\",target=\"OST0000\"} 1",
        50,
    );
    assert!(found, "telemetry is served: {text}");
    assert!(text.contains(
        "lfleet_check_state{check=\"mount.present\",mount=\"/lustre\",fsname=\"lustrefs\",state=\"pass\"} 1"
    ));
    assert!(
        text.contains("\nlfleet_agent_resident_memory_bytes "),
        "{text}"
    );
    assert!(blocked_on_fuse(pid).is_empty());

    // A FUSE mount over the managed mount point, frozen.
    let mount_point = root.join("lustre");
    let bindfs = lfleet_harness::bindfs::Bindfs::mount(&dir.path().join("src"), &mount_point);
    bindfs.freeze();
    let frozen = Instant::now();

    // Reported within the check interval plus the 1 s deadline plus 1 s; every scrape on the
    // way answered within a second (wait_for asserts it).
    let hung = "mount=\"/lustre\",fsname=\"lustrefs\",state=\"fail\",code=\"hung\"} 1";
    let (found, text) = wait_for(&address, hung, 40);
    let took = frozen.elapsed();
    assert!(found, "no hang reported: {text}");
    assert!(took < Duration::from_secs(4), "reported after {took:?}");

    // Frozen for 60 s, 60 check rounds: every 200 ms, the tasks blocked on the mount are
    // counted; never more than one, and the one probe stays stuck (the count sees it).
    let mut samples = 0;
    let mut with_one = 0;
    let mut worst: Vec<String> = Vec::new();
    let mut scrapes = 0;
    while frozen.elapsed() < Duration::from_secs(60) {
        let blocked = blocked_on_fuse(pid);
        samples += 1;
        if blocked.len() == 1 {
            with_one += 1;
        }
        if blocked.len() > worst.len() {
            worst = blocked;
        }
        if samples % 25 == 0 {
            let (_, took) = scrape(&address);
            assert!(took < Duration::from_secs(1), "a scrape took {took:?}");
            scrapes += 1;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let (text_later, _) = scrape(&address);
    let stuck_threads = probe_threads(pid);
    bindfs.thaw();
    println!(
        "{samples} samples over 60 s frozen: {with_one} with one blocked task, most at once {worst:?}"
    );
    assert!(
        worst.len() <= 1,
        "tasks blocked on the hung mount at once: {worst:?}"
    );
    assert!(
        with_one * 10 >= samples * 9,
        "the stuck probe was seen in only {with_one} of {samples} samples"
    );
    assert!(scrapes >= 10);
    assert_eq!(stuck_threads, 1, "stuck probe threads");
    assert!(text_later.contains(hung), "{text_later}");
    // The other checks kept running: mount.present is still served as pass, and the other
    // mount's imports are still judged through lfs getname.
    assert!(text_later.contains(
        "lfleet_check_state{check=\"mount.present\",mount=\"/lustre\",fsname=\"lustrefs\",state=\"pass\"} 1"
    ));
    assert!(
        text_later.contains(&imports("/mnt/lustre2")),
        "{text_later}"
    );

    let (found, text) = wait_for(&address, pass, 50);
    assert!(found, "passes again after SIGCONT: {text}");
    let (found, text) = wait_for(&address, &imports("/lustre"), 50);
    assert!(found, "imports judged again after SIGCONT: {text}");
    // The stuck thread ended: from now on a probe thread lives only while a check runs (a
    // few ms every second), so within 3 s there is a moment with none, and never two.
    let mut seen = Vec::new();
    for _ in 0..30 {
        seen.push(probe_threads(pid));
        if seen.last() == Some(&0) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        seen.last(),
        Some(&0),
        "the stuck probe thread never ended: {seen:?}"
    );
    assert!(seen.iter().all(|n| *n <= 1), "{seen:?}");
    let _ = Command::new("fusermount")
        .arg("-u")
        .arg(&mount_point)
        .status();
    drop(bindfs);

    kill(Pid::from_raw(pid as i32), Signal::SIGTERM).unwrap();
    let mut status = None;
    for _ in 0..60 {
        if let Some(s) = daemon.0.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        status.is_some_and(|s| s.success()),
        "SIGTERM stops the agent cleanly: {status:?}"
    );
}

#[test]
fn the_endpoint_is_off_unless_enabled() {
    let config = lfleet_agent::config::NodeConfig::from_toml(EXAMPLE).unwrap();
    assert!(!config.prometheus.enabled);
    assert_eq!(config.prometheus.listen, "127.0.0.1:10988");
    assert_eq!(config.prometheus.textfile, None);
}

/// Under systemd (Type=notify): READY=1 only after the first reconcile has converged the node
/// (the mount is in its mountinfo by then), then WATCHDOG=1 from the main loop.
#[test]
fn ready_after_the_first_reconcile_then_watchdog_pings() {
    let dir = tempfile::tempdir().unwrap();
    let spec = NodeSpec::new("ubuntu-22.04", "5.15.0-1075-azure", LustreVersion::V2_15);
    let node = SimNode::create(&dir.path().join("node"), &spec).unwrap();
    let root = node.root().to_path_buf();
    let config = dir.path().join("agent.toml");
    std::fs::write(&config, EXAMPLE).unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let _daemon = Owned(
        Command::new(AGENT)
            .args([
                "run",
                "--check-interval",
                "200ms",
                "--collect-interval",
                "1s",
                "--root",
            ])
            .arg(&root)
            .arg("--config")
            .arg(&config)
            .env("PATH", path_with(&root))
            .arg("--log-dir")
            .arg(dir.path().join("logs"))
            .env("LFLEET_LOG", "info")
            .env("NOTIFY_SOCKET", &socket_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // The checks run beside the first pass, so watchdog pings may come before READY; READY
    // itself comes only once the pass has converged the node.
    let mut buffer = [0u8; 256];
    loop {
        let n = socket.recv(&mut buffer).expect("a notification");
        if &buffer[..n] == b"READY=1" {
            break;
        }
        assert_eq!(&buffer[..n], b"WATCHDOG=1");
    }
    let mountinfo = std::fs::read_to_string(root.join("proc/self/mountinfo")).unwrap();
    assert!(
        mountinfo.contains(" /lustre "),
        "READY before the mount: {mountinfo}"
    );
    let n = socket.recv(&mut buffer).expect("a watchdog ping");
    assert_eq!(&buffer[..n], b"WATCHDOG=1");
    // --log-dir: JSON lines with the event's fields, in a daily file (written by a
    // background thread: wait for it, at most 5 s).
    let mut start = None;
    for _ in 0..50 {
        let logs: Vec<std::path::PathBuf> = std::fs::read_dir(dir.path().join("logs"))
            .map(|entries| entries.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        if let [log] = logs.as_slice() {
            assert!(
                log.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("lfleet-agent.log.")
            );
            let text = std::fs::read_to_string(log).unwrap();
            start = text
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .find(|v| v["fields"]["message"] == "lfleet-agent run starting");
            if start.is_some() {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let start = start.expect("the start line in the log directory");
    assert_eq!(start["fields"]["generation"], 1);
    assert_eq!(start["level"], "INFO");
}
