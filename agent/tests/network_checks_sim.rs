//! The network-facing rules by behaviour, through `lfleet-agent apply` and `check` as real
//! processes on lfleet-sim nodes:
//! - LNet goes on the synthetic NIC when the route to the MGS leaves through its VF (as on a
//!   misconfigured accelerated-networking node), never on the VF;
//! - accelnet: a missing VF is degraded during the grace and fails after it; a down VF, an
//!   idle VF, and mlx4, mlx5 and mana VFs each get their own verdict;
//! - ib.ports: a port trained at half its inventory rate fails with both rates;
//! - lnet: a health value held low past the window fails, a dip shorter than it does not,
//!   and a new dip starts a new window.
//!
//! Windows are a few seconds of real time: the one-shot `check` keeps its since-times in the
//! node's check memory between runs, on the wall clock.
#![allow(
    clippy::disallowed_methods,
    reason = "the test runs the agent binary and waits out short windows"
)]

mod common;

use std::time::{Duration, Instant};

use common::AgentRun;
use lfleet_sim::{Fault, LoadSpec, LustreVersion, NodeSpec, SimNode};
use serde_json::Value;

const EXAMPLE: &str = include_str!("../../packaging/examples/agent.toml");
const VF: &str = lfleet_sim::render::VF;

/// The example configuration (one mount of 10.0.1.4@tcp:/lustrefs) with `health` added.
fn config(health: &str) -> String {
    format!("{EXAMPLE}\n[health]\n{health}\n")
}

fn node(dir: &std::path::Path, edit: impl FnOnce(&mut NodeSpec)) -> SimNode {
    let mut spec = NodeSpec::new("ubuntu-22.04", "5.15.0-1075-azure", LustreVersion::V2_15);
    spec.accelnet = true;
    edit(&mut spec);
    SimNode::create(&dir.join("node"), &spec).unwrap()
}

fn converge(node: &SimNode, config: &str) {
    let run = AgentRun::apply_text(node.root(), config);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
}

/// `check --json`: the exit code and each result of `check` as (outcome, code, text).
fn check(node: &SimNode, config: &str, name: &str) -> (i32, Vec<(String, String, String)>) {
    let run = AgentRun::run(node.root(), &["check", "--json"], config);
    let report: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", run.stdout, run.stderr));
    let results = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["check"] == name)
        .map(|r| {
            let text = |key: &str| r[key].as_str().unwrap_or("").to_owned();
            let detail = [text("detail"), text("error")].concat();
            (text("outcome"), text("code"), detail)
        })
        .collect();
    (run.code, results)
}

/// The one result of `name`, for a node with one subject of it.
fn one(node: &SimNode, config: &str, name: &str) -> (i32, (String, String, String)) {
    let (code, mut results) = check(node, config, name);
    assert_eq!(results.len(), 1, "{name}: {results:?}");
    (code, results.remove(0))
}

/// 50 MB read through the mount, at once.
fn read_50_mb(node: &SimNode) {
    node.load(&LoadSpec {
        read_mbps: 50.0,
        write_mbps: 0.0,
        seconds: 1.0,
        instant: true,
        mount: None,
    })
    .unwrap();
}

fn sleep_until(start: Instant, offset: Duration) {
    if let Some(left) = (start + offset).checked_duration_since(Instant::now()) {
        std::thread::sleep(left);
    }
}

#[test]
fn lnet_goes_on_the_synthetic_nic_when_the_route_to_the_mgs_leaves_through_its_vf() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(dir.path(), |_| {});
    node.fault(&Fault::MgsViaVf).unwrap();
    // The node really routes the MGS through the VF, so the rule is what keeps LNet off it.
    let route = std::process::Command::new(node.root().join("bin/ip"))
        .args(["route", "get", "10.0.1.4"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&route.stdout).contains(&format!(" dev {VF} ")),
        "{route:?}"
    );
    let run = AgentRun::apply_text(node.root(), &config(""));
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.commands
            .iter()
            .any(|c| c == "lnetctl net add --net tcp --if eth0"),
        "{:?}",
        run.commands
    );
    assert_eq!(
        node.state().unwrap().lnet_nets,
        vec![("tcp".to_string(), "eth0".to_string())],
        "LNet on the synthetic NIC, never the VF"
    );
}

#[test]
fn accelnet_a_missing_vf_is_degraded_during_the_grace_and_fails_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(dir.path(), |_| {});
    let config = config("accelnet = true\naccelnet_grace_seconds = 2");
    converge(&node, &config);
    assert_eq!(one(&node, &config, "accelnet").1.0, "pass");
    node.fault(&Fault::VfRemoved).unwrap();
    let removed = Instant::now();
    let (code, (outcome, _, text)) = one(&node, &config, "accelnet");
    assert_eq!((code, outcome.as_str()), (2, "unknown"), "{text}");
    assert!(
        text.starts_with("degraded: eth0 has had no VF for "),
        "{text}"
    );
    assert!(text.contains("fails after 2 s"), "{text}");
    sleep_until(removed, Duration::from_millis(2300));
    let (code, (outcome, failure, text)) = one(&node, &config, "accelnet");
    assert_eq!(
        (code, outcome.as_str(), failure.as_str()),
        (1, "fail", "vf-missing"),
        "{text}"
    );
    assert!(text.contains("eth0 has had no VF for 2 s"), "{text}");
    // It comes back: pass again.
    node.heal(Some("vf-removed")).unwrap();
    assert_eq!(one(&node, &config, "accelnet").1.0, "pass");
}

#[test]
fn accelnet_down_and_idle_vfs_and_each_vf_driver_get_their_own_verdicts() {
    let config = config("accelnet = true\naccelnet_grace_seconds = 0");
    for driver in ["mlx4_core", "mlx5_core", "mana"] {
        let dir = tempfile::tempdir().unwrap();
        let node = node(dir.path(), |spec| spec.vf_driver = driver.into());
        converge(&node, &config);
        let (code, result) = one(&node, &config, "accelnet");
        assert_eq!(
            (code, result.0.as_str()),
            (0, "pass"),
            "{driver}: {result:?}"
        );

        node.fault(&Fault::VfDown).unwrap();
        let (code, (outcome, failure, text)) = one(&node, &config, "accelnet");
        assert_eq!(
            (code, outcome.as_str(), failure.as_str()),
            (1, "fail", "vf-down"),
            "{driver}: {text}"
        );
        assert_eq!(text, format!("VF {VF} of eth0 is down"));
        node.heal(None).unwrap();

        // Idle: the synthetic NIC moves 50 MB between two runs, its VF nothing.
        node.fault(&Fault::VfIdle).unwrap();
        assert_eq!(one(&node, &config, "accelnet").1.0, "pass", "{driver}");
        read_50_mb(&node);
        let (code, (outcome, failure, text)) = one(&node, &config, "accelnet");
        assert_eq!(
            (code, outcome.as_str(), failure.as_str()),
            (1, "fail", "vf-idle"),
            "{driver}: {text}"
        );
        assert_eq!(
            text,
            format!("eth0 moved 50000000 bytes but its VF {VF} none: traffic bypasses the VF")
        );
        // The same load through a working VF passes.
        node.heal(None).unwrap();
        assert_eq!(one(&node, &config, "accelnet").1.0, "pass", "{driver}");
        read_50_mb(&node);
        assert_eq!(one(&node, &config, "accelnet").1.0, "pass", "{driver}");
    }
}

#[test]
fn ib_ports_a_port_trained_at_half_its_rate_fails_with_both_rates() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(dir.path(), |spec| {
        spec.ib_hcas = 1;
        spec.ib_rate_gbps = 200;
    });
    let config = config("ib_ports = [{ hca = \"mlx5_0\", port = 1, rate_gbps = 200 }]");
    converge(&node, &config);
    assert_eq!(one(&node, &config, "ib.ports").1.0, "pass");
    node.fault(&Fault::IbDegraded {
        hca: "mlx5_0".into(),
        width: 2,
    })
    .unwrap();
    let (code, (outcome, failure, text)) = one(&node, &config, "ib.ports");
    assert_eq!(
        (code, outcome.as_str(), failure.as_str()),
        (1, "fail", "rate-degraded"),
        "{text}"
    );
    assert_eq!(
        text,
        "mlx5_0/1 runs at 100 Gb/sec (2X HDR) (expected 200 Gb/sec)"
    );
}

#[test]
fn lnet_low_health_held_past_the_window_fails_and_a_shorter_dip_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(dir.path(), |_| {});
    let config = config("lnet_health_sustain_seconds = 2");
    converge(&node, &config);
    let verdict = || one(&node, &config, "lnet");
    assert_eq!(verdict().1.0, "pass");

    // A dip that recovers within a second: degraded, then pass, never fail.
    let dip = Instant::now();
    node.fault(&Fault::LnetHealth {
        value: 400,
        recover_after: Some(1),
    })
    .unwrap();
    let (code, (outcome, _, text)) = verdict();
    assert_eq!((code, outcome.as_str()), (2, "unknown"), "{text}");
    assert!(
        text.starts_with("NI 10.0.0.5@tcp health value 400 for 0 s; fails after 2 s"),
        "{text}"
    );
    sleep_until(dip, Duration::from_millis(1200));
    assert_eq!(
        verdict(),
        (0, ("pass".into(), String::new(), String::new()))
    );

    // Held low from now on: the window starts now, not at the dip. Still degraded once the
    // dip's start is past the window; failed once this drop's is.
    let held = Instant::now();
    node.fault(&Fault::LnetHealth {
        value: 400,
        recover_after: None,
    })
    .unwrap();
    assert_eq!(verdict().1.0, "unknown");
    sleep_until(dip, Duration::from_millis(2500));
    assert!(
        held.elapsed() < Duration::from_millis(1900),
        "the machine is too slow for this window"
    );
    let (_, (outcome, _, text)) = verdict();
    assert_eq!(outcome, "unknown", "a new dip starts a new window: {text}");
    sleep_until(held, Duration::from_millis(2300));
    let (code, (outcome, failure, text)) = verdict();
    assert_eq!(
        (code, outcome.as_str(), failure.as_str()),
        (1, "fail", "ni-health-low"),
        "{text}"
    );
    assert_eq!(
        text,
        "NI 10.0.0.5@tcp health value 400 (below 1000 for 2 s)"
    );
}
