//! Telemetry against lfleet-sim nodes: every Lustre layout from 2.10 to 2.17 is found in
//! lctl's search order and gives exact rates from the kernel's snapshot times (and each OST's
//! and MDT's `req_waittime` count and sum as deltas); a node under
//! real-time load reports its write rate within 2% through `lfleet-agent collect`, and a
//! remount in the middle is a flagged reset, never a spike.
#![allow(
    clippy::disallowed_methods,
    reason = "the test runs the agent and reads its output and the node's files"
)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use lfleet_agent::collect::{CollectOptions, Collector};
use lfleet_agent::telemetry::Sample;
use lfleet_host::{HostRoot, SystemClock, SystemCommandRunner};
use lfleet_sim::{LoadSpec, LustreVersion, NodeSpec, SimNode};

const AGENT: &str = env!("CARGO_BIN_EXE_lfleet-agent");
const EXAMPLE: &str = include_str!("../../packaging/examples/agent.toml");

use common::path_with;

/// A node of `version`, converged by the agent (client installed, LNet up, /lustre mounted).
fn mounted_node(dir: &Path, version: LustreVersion, ib_hcas: u32) -> SimNode {
    let mut spec = NodeSpec::new("ubuntu-22.04", "5.15.0-1075-azure", version);
    spec.ib_hcas = ib_hcas;
    let node = SimNode::create(&dir.join("node"), &spec).unwrap();
    let config = dir.join("agent.toml");
    std::fs::write(
        &config,
        EXAMPLE.replace("2.15.7-33-g79ddf99", version.amlfs_version()),
    )
    .unwrap();
    let output = Command::new(AGENT)
        .args(["apply", "--root", node.root().to_str().unwrap(), "--config"])
        .arg(&config)
        .env("PATH", path_with(node.root()))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{version:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    node
}

/// The agent's collector on a sim node, with the node's commands first on the path.
fn collector_for(node: &SimNode) -> (SystemCommandRunner, SystemClock, Collector) {
    let runner = SystemCommandRunner::with_prepended(&[node.bin_dir()]);
    let clock = SystemClock;
    let collector = Collector::new(
        HostRoot::new(node.root()),
        CollectOptions::default(),
        &clock,
    );
    (runner, clock, collector)
}

fn find<'a>(samples: &'a [Sample], collector: &str, subject: &str) -> &'a Sample {
    samples
        .iter()
        .find(|s| s.collector == collector && s.subject == subject)
        .unwrap_or_else(|| panic!("no {collector} sample for {subject:?} in {samples:#?}"))
}

fn instant_load(node: &SimNode, read_mbps: f64, write_mbps: f64, seconds: f64) {
    node.load(&LoadSpec {
        read_mbps,
        write_mbps,
        seconds,
        instant: true,
        mount: None,
    })
    .unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn every_layout_from_2_10_to_2_17_gives_exact_rates_from_kernel_snapshots() {
    for version in [
        LustreVersion::V2_10,
        LustreVersion::V2_12,
        LustreVersion::V2_15,
        LustreVersion::V2_16,
        LustreVersion::V2_17,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let node = mounted_node(dir.path(), version, 1);
        let (runner, clock, mut collector) = collector_for(&node);
        collector.cycle(&runner, &clock, &[]).await;
        let first = collector.buffer.take(usize::MAX);
        assert!(
            first.iter().all(|s| s.unavailable.is_none()),
            "{version:?}: a source was not found: {first:#?}"
        );
        for collector_name in [
            "llite", "osc", "mdc", "import", "lnet", "netdev", "ib", "agent",
        ] {
            assert!(
                first.iter().any(|s| s.collector == collector_name),
                "{version:?}: no {collector_name} sample"
            );
        }
        let llite = find(&first, "llite", "/lustre");
        assert!(llite.flags.iter().any(|f| f.starts_with("first reading")));
        assert!(llite.values.is_empty(), "no rate from one reading");

        // The node's clock (snapshot_time) moves 4 s while far less real time passes: the
        // rate must come from the kernel's snapshots, not from the agent's clock.
        instant_load(&node, 40.0, 100.0, 4.0);
        collector.cycle(&runner, &clock, &[]).await;
        let second = collector.buffer.take(usize::MAX);
        let llite = find(&second, "llite", "/lustre");
        assert_eq!(llite.interval_s, Some(4.0), "{version:?}: {llite:?}");
        assert_eq!(
            llite.values.get("write_bytes_per_s"),
            Some(&100e6),
            "{version:?}: {llite:?}"
        );
        assert_eq!(
            llite.values.get("read_bytes_per_s"),
            Some(&40e6),
            "{version:?}"
        );
        assert!(!llite.reset);
        // The OSCs carry the same bytes on the wire, spread over the OSTs.
        let wire: f64 = second
            .iter()
            .filter(|s| s.collector == "osc" && s.subject.starts_with("/lustre OST"))
            .map(|s| s.values["write_bytes_per_s"])
            .sum();
        assert!((wire - 100e6).abs() < 1.0, "{version:?}: osc total {wire}");
        // req_waittime's count and sum as deltas over the kernel's interval, per OST and MDT:
        // 100 MB written and 40 MB read per OST in 1 MiB RPCs; an MDT request per open.
        for (collector, subject, rpcs) in [
            ("osc", "/lustre OST0001", 96 + 39),
            ("mdc", "/lustre MDT0000", 2),
        ] {
            let sample = find(&second, collector, subject);
            let count = sample.deltas["rpcs"];
            let wait = sample.deltas["rpc_wait_us"];
            assert_eq!(
                (count.delta, count.interval_ms),
                (rpcs, 4000),
                "{version:?} {sample:?}"
            );
            assert_eq!(wait.interval_ms, 4000);
            let mean = wait.delta as f64 / count.delta as f64;
            assert!((1000.0..3500.0).contains(&mean), "{version:?}: {mean}");
            assert_eq!(sample.values["rpc_wait_mean_us"], mean);
        }
        let import = find(&second, "import", "/lustre OST0000");
        assert_eq!(import.labels["state"], "FULL");
        assert_eq!(import.values["healthy"], 1.0);
        // Sequence numbers run on across cycles without gaps.
        let seqs: Vec<u64> = first.iter().chain(&second).map(|s| s.seq).collect();
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
        assert_eq!(collector.buffer.dropped(), 0);
    }
}

#[tokio::test(flavor = "current_thread")]
async fn an_unreadable_source_is_unavailable_never_zero() {
    let dir = tempfile::tempdir().unwrap();
    let node = mounted_node(dir.path(), LustreVersion::V2_15, 0);
    let (runner, clock, mut collector) = collector_for(&node);
    collector.cycle(&runner, &clock, &[]).await;
    collector.buffer.take(usize::MAX);
    // The llite stats file becomes garbage, and LNet's stats file disappears.
    let stats = node.root().join("sys/kernel/debug/lustre/llite");
    let device = std::fs::read_dir(&stats)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::write(device.join("stats"), "snapshot_time nonsense\n").unwrap();
    std::fs::remove_file(node.root().join("sys/kernel/debug/lnet/stats")).unwrap();
    collector.cycle(&runner, &clock, &[]).await;
    let samples = collector.buffer.take(usize::MAX);
    let llite = find(&samples, "llite", "/lustre");
    assert!(llite.values.is_empty(), "{llite:?}");
    assert!(
        llite
            .unavailable
            .as_deref()
            .is_some_and(|u| u.contains("line 1")),
        "{llite:?}"
    );
    let lnet = find(&samples, "lnet", "lnet");
    assert!(lnet.values.is_empty());
    assert!(lnet.unavailable.is_some());
}

#[test]
fn a_node_under_load_reports_500_mbps_within_2_percent_and_a_remount_is_a_reset() {
    let dir = tempfile::tempdir().unwrap();
    let node = mounted_node(dir.path(), LustreVersion::V2_15, 0);
    let root = node.root().to_path_buf();
    // 9 s of real-time load at 500 MB/s (MB = 10^6 bytes), one clock step per second.
    let loader = {
        let root = root.clone();
        std::thread::spawn(move || {
            SimNode::open(&root)
                .unwrap()
                .load(&LoadSpec {
                    read_mbps: 0.0,
                    write_mbps: 500.0,
                    seconds: 9.0,
                    instant: false,
                    mount: None,
                })
                .unwrap();
        })
    };
    let collect = Command::new(AGENT)
        .args([
            "collect",
            "--root",
            root.to_str().unwrap(),
            "--interval",
            "1s",
            "--count",
            "10",
            "--json",
        ])
        .env("PATH", path_with(&root))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Halfway through, the filesystem is unmounted and the agent mounts it again: a new
    // instance whose counters start from zero.
    std::thread::sleep(Duration::from_millis(4500));
    let umount = Command::new(root.join("bin/umount"))
        .arg("/lustre")
        .env("PATH", path_with(&root))
        .output()
        .unwrap();
    assert!(umount.status.success(), "{umount:?}");
    let config = dir.path().join("agent.toml");
    let apply = Command::new(AGENT)
        .args(["apply", "--root", root.to_str().unwrap(), "--config"])
        .arg(&config)
        .env("PATH", path_with(&root))
        .output()
        .unwrap();
    assert!(apply.status.success(), "{apply:?}");
    let output = collect.wait_with_output().unwrap();
    loader.join().unwrap();
    assert!(output.status.success());
    let samples: Vec<serde_json::Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let llite: Vec<&serde_json::Value> = samples
        .iter()
        .filter(|s| s["collector"] == "llite" && s["subject"] == "/lustre")
        .collect();
    let rates: Vec<f64> = llite
        .iter()
        .filter_map(|s| s["values"]["write_bytes_per_s"].as_f64())
        .collect();
    let resets: Vec<&&serde_json::Value> = llite.iter().filter(|s| s["reset"] == true).collect();
    let report = serde_json::to_string_pretty(&llite).unwrap();
    assert!(rates.len() >= 4, "too few rates: {rates:?}\n{report}");
    for rate in &rates {
        assert!(
            (rate - 500e6).abs() <= 500e6 * 0.02,
            "{rate} B/s is not 500 MB/s within 2% (a spike?)\n{report}"
        );
    }
    assert_eq!(resets.len(), 1, "one remount, one reset\n{report}");
    assert!(
        resets[0]["flags"][0]
            .as_str()
            .is_some_and(|f| f.contains("identity changed")),
        "{report}"
    );
    assert!(resets[0]["values"].as_object().unwrap().is_empty());
}

#[tokio::test(flavor = "current_thread")]
async fn infiniband_error_deltas_and_saturation_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let node = mounted_node(dir.path(), LustreVersion::V2_15, 1);
    let (runner, clock, mut collector) = collector_for(&node);
    collector.cycle(&runner, &clock, &[]).await;
    collector.buffer.take(usize::MAX);
    node.fault(&lfleet_sim::Fault::IbErrors {
        hca: "mlx5_0".into(),
        counter: "symbol_error".into(),
        by: 5,
    })
    .unwrap();
    node.fault(&lfleet_sim::Fault::IbSaturate {
        hca: "mlx5_0".into(),
        counter: "link_downed".into(),
    })
    .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    collector.cycle(&runner, &clock, &[]).await;
    let samples = collector.buffer.take(usize::MAX);
    let ib = find(&samples, "ib", "mlx5_0/1");
    assert_eq!(ib.values.get("symbol_error_delta"), Some(&5.0), "{ib:?}");
    assert_eq!(ib.values.get("port_rcv_errors_delta"), Some(&0.0), "{ib:?}");
    assert!(
        ib.flags
            .iter()
            .any(|f| f == "saturated link_downed (8-bit): rises no longer seen"),
        "{ib:?}"
    );
    assert_eq!(ib.labels["state"], "ACTIVE");
    assert_eq!(ib.values["link_rate_gbps"], 25.0);
}

/// A constructed port tree: a QLogic-era HCA with the legacy `counters_ext/*_64` files and
/// a RoCE port whose PMA counters read `N/A (no PMA)`.
#[tokio::test(flavor = "current_thread")]
async fn legacy_64_bit_counters_are_preferred_and_no_pma_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let port = root.join("sys/class/infiniband/qib0/ports/1");
    std::fs::create_dir_all(port.join("counters")).unwrap();
    std::fs::create_dir_all(port.join("counters_ext")).unwrap();
    std::fs::write(port.join("state"), "4: ACTIVE\n").unwrap();
    std::fs::write(port.join("counters/port_xmit_data"), "4294967295\n").unwrap();
    std::fs::write(port.join("counters_ext/port_xmit_data_64"), "5000000000\n").unwrap();
    let roce = root.join("sys/class/infiniband/rxe0/ports/1");
    std::fs::create_dir_all(roce.join("counters")).unwrap();
    std::fs::write(roce.join("counters/port_xmit_data"), "N/A (no PMA)\n").unwrap();
    let mut telemetry = lfleet_agent::telemetry::Telemetry::default();
    let host = HostRoot::new(root);
    let input = |at: f64| lfleet_agent::telemetry::CycleInput {
        host: &host,
        mounts: &[],
        lnet_interfaces: &[],
        unix_ms: 0,
        monotonic_s: at,
    };
    telemetry.cycle(&input(0.0));
    std::fs::write(port.join("counters_ext/port_xmit_data_64"), "5250000000\n").unwrap();
    let samples = telemetry.cycle(&input(2.0));
    let qib = find(&samples, "ib", "qib0/1");
    // 250,000,000 words of 4 octets in 2 s; the 32-bit file sitting at 2^32-1 is not used.
    assert_eq!(qib.values.get("xmit_bytes_per_s"), Some(&500e6), "{qib:?}");
    assert!(
        !qib.flags.iter().any(|f| f.contains("saturated")),
        "{qib:?}"
    );
    let rxe = find(&samples, "ib", "rxe0/1");
    assert!(rxe.values.is_empty(), "{rxe:?}");
    assert!(rxe.unavailable.is_some(), "{rxe:?}");
}

/// The real 2.10.1 `llite.*.kbytesavail` sample, where 2.10 kept it (/proc/fs/lustre).
#[test]
fn capacity_reads_the_real_2_10_kbytes_sample_in_proc() {
    let dir = tempfile::tempdir().unwrap();
    let device = dir
        .path()
        .join("proc/fs/lustre/llite/lustrefs-ffff88105db50000");
    std::fs::create_dir_all(&device).unwrap();
    std::fs::write(
        device.join("kbytesavail"),
        include_str!("../../tests/fixtures/lustre-2.10.1_llite_kbytesavail.txt"),
    )
    .unwrap();
    let host = HostRoot::new(dir.path());
    let mounts = [lfleet_agent::telemetry::MountInstance {
        mount_point: "/lustre".into(),
        fsname: "lustrefs".into(),
        instance: "ffff88105db50000".into(),
    }];
    let samples =
        lfleet_agent::telemetry::capacity::collect(&lfleet_agent::telemetry::CycleInput {
            host: &host,
            mounts: &mounts,
            lnet_interfaces: &[],
            unix_ms: 0,
            monotonic_s: 0.0,
        });
    let sample = find(&samples, "capacity", "/lustre");
    assert_eq!(
        sample.values.get("bytes_avail"),
        Some(&(283_000_299_520.0 * 1024.0))
    );
    assert_eq!(sample.values.get("bytes_free"), None, "absent, not zero");
    assert_eq!(sample.values.get("bytes_total"), None, "absent, not zero");
    assert!(sample.unavailable.is_none());
}

/// The checks judge what a cycle just read: the same verdicts as their own reads, and taken
/// from the cycle (the node changed after it, and only a check that reads for itself sees
/// that).
#[tokio::test(flavor = "current_thread")]
async fn checks_right_after_a_cycle_judge_what_it_read() {
    use lfleet_agent::checks::{
        CheckContext, CheckMemory, CheckResult, Prober, ib_ports, lustre_imports,
    };
    let dir = tempfile::tempdir().unwrap();
    let node = mounted_node(dir.path(), LustreVersion::V2_15, 1);
    let (runner, clock, mut collector) = collector_for(&node);
    let config = lfleet_agent::config::NodeConfig::from_toml(&format!(
        "{EXAMPLE}\n[health]\nib_ports = [{{ hca = \"mlx5_0\", port = 1, rate_gbps = 25 }}]\n"
    ))
    .unwrap();
    let host = HostRoot::new(node.root());
    let worker = lfleet_host::BoundedWorker::new();
    let memory = std::sync::Mutex::new(CheckMemory::default());
    let context = |readings| CheckContext {
        host: &host,
        runner: &runner,
        clock: &clock,
        config: &config,
        prober: Prober::Thread(&worker),
        syscall_deadline: Duration::from_secs(5),
        memory: &memory,
        converging: false,
        readings,
        repeat_steady_for: None,
    };
    let judge = |results: Vec<CheckResult>| -> Vec<(String, String, String)> {
        results
            .into_iter()
            .map(|r| (r.subject, r.outcome.to_string(), r.detail))
            .collect()
    };
    // A baseline for the IB counters, then an eviction and counter errors.
    collector.cycle(&runner, &clock, &[]).await;
    ib_ports::run(context(None));
    node.fault(&lfleet_sim::Fault::Import {
        mount: None,
        target: "OST0001".into(),
        state: "EVICTED".into(),
    })
    .unwrap();
    node.fault(&lfleet_sim::Fault::IbErrors {
        hca: "mlx5_0".into(),
        counter: "symbol_error".into(),
        by: 5,
    })
    .unwrap();
    collector.cycle(&runner, &clock, &[]).await;
    let readings = collector
        .readings(clock_now(), Duration::from_secs(60))
        .expect("a finished cycle's readings");
    assert!(
        collector
            .readings(
                clock_now() + Duration::from_secs(61),
                Duration::from_secs(60)
            )
            .is_none(),
        "readings older than asked are not given"
    );
    let saved = memory.lock().unwrap().clone();
    let own_imports = judge(lustre_imports::run(context(None)).await);
    let own_ib = judge(ib_ports::run(context(None)));
    *memory.lock().unwrap() = saved.clone();
    let shared_imports = judge(lustre_imports::run(context(Some(&readings))).await);
    let shared_ib = judge(ib_ports::run(context(Some(&readings))));
    assert_eq!(shared_imports, own_imports);
    assert_eq!(shared_ib, own_ib);
    assert!(
        own_imports[0].2.contains("OST0001 EVICTED"),
        "{own_imports:?}"
    );
    assert!(own_ib[0].2.contains("symbol_error +5"), "{own_ib:?}");
    // Healed after the cycle: the checks still judge the cycle's reading; without it, the
    // files as they are now.
    node.heal(None).unwrap();
    *memory.lock().unwrap() = saved.clone();
    let from_cycle = judge(lustre_imports::run(context(Some(&readings))).await);
    assert_eq!(from_cycle, own_imports);
    let now = judge(lustre_imports::run(context(None)).await);
    assert_eq!(now[0].1, "pass", "{now:?}");
}

fn clock_now() -> tokio::time::Instant {
    use lfleet_host::Clock;
    SystemClock.monotonic()
}
