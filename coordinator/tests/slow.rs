//! Slow-node detection end to end: a real coordinator and 16 agents on sim nodes, as
//! processes, with 5 s windows. Each round of load (`lfleet-sim load --instant`, 60 s of the
//! node's own clock: 150 MB/s read, 300 MB/s write, 20 metadata operations a second, RPC
//! waits drawn with ±30% noise per node and round) starts right after the coordinator closed
//! a window (seen on /metrics), so each window judges one round.
//!
//! - One node slowed 3x on every target and one slowed 3x on OST0003 alone are flagged after
//!   three rounds of slow load and no more, with the evidence; a third node 10x slower but
//!   doing fewer RPCs than the floor is never judged.
//! - Ten rounds of normal noisy load (ten minutes of the nodes' time): every node judged in
//!   every window, none flagged.
//! - OST0002 slowed on every node: one incident naming OST0002, no node flagged; healed, it
//!   closes.
//! - With a real Slurm (munged, slurmctld, six `slurmd -N`) and `lustre.slow` in
//!   `policy.required`, the slow node is drained with the finding as its reason, while a
//!   target's incident, open beside it, is left open by the drain planner.
#![allow(
    clippy::disallowed_methods,
    reason = "the test runs the coordinator, agents and CLI as processes and reads node files"
)]

use std::time::{Duration, Instant};

use lfleet_harness::slurm::Slurm;
use lfleet_harness::{Cluster, lfleet_json};
use lfleet_sim::{Fault, LoadShape, LoadSpec};

const AGENTS: usize = 16;
const WINDOW_SECONDS: f64 = 5.0;

fn names() -> Vec<String> {
    (1..=AGENTS).map(|i| format!("n{i:02}")).collect()
}

/// Agents named `names`, windows of 5 s and `extra` in coordinator.toml; every node healthy
/// and mounted. The agents check every 2 s (not every 300 ms): sixteen of them on two cores
/// must still collect and send within a window.
fn cluster_of(dir: tempfile::TempDir, names: &[String], extra: &str) -> Cluster {
    let extra = format!("{extra}\n[slow]\nwindow_seconds = {WINDOW_SECONDS}\n");
    let mut cluster = Cluster::start_with(dir, &[], &extra);
    cluster.agent_check_interval = "2s".into();
    for name in names {
        cluster.add_agent(name);
    }
    cluster.wait_until("every node healthy", Duration::from_secs(90), |nodes| {
        nodes.len() == names.len() && nodes.iter().all(|n| n["health"] == "healthy")
    });
    cluster
}

/// 16 agents.
fn cluster() -> Cluster {
    cluster_of(tempfile::tempdir().unwrap(), &names(), "")
}

/// A value from /metrics: the first line that starts with `series` (name and labels).
fn metric(cluster: &Cluster, series: &str) -> Option<f64> {
    cluster
        .scrape()
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn windows(cluster: &Cluster) -> u64 {
    metric(cluster, "lfleet_slow_windows_total").unwrap_or(0.0) as u64
}

/// Waits until the coordinator closes the next window; returns its number.
fn next_window(cluster: &Cluster) -> u64 {
    let before = windows(cluster);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs_f64(WINDOW_SECONDS * 3.0) {
        let now = windows(cluster);
        if now > before {
            return now;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no window closed within {} s", WINDOW_SECONDS * 3.0);
}

/// One round: right after a window closes, 60 s of load on every node, at `rate(i)` times
/// the normal rate for node i. Returns how many node-target pairs the window that closed
/// before it judged (the previous round's).
fn round(cluster: &Cluster, rate: impl Fn(usize) -> f64) -> usize {
    next_window(cluster);
    let judged = metric(cluster, "lfleet_slow_judged").unwrap() as usize;
    for (index, node) in cluster.nodes.iter().enumerate() {
        let scale = rate(index);
        node.sim
            .load_shaped(
                &LoadSpec {
                    read_mbps: 150.0 * scale,
                    write_mbps: 300.0 * scale,
                    seconds: 60.0,
                    instant: true,
                    mount: None,
                },
                &LoadShape {
                    noise: 0.3,
                    md_ops_per_s: 20.0 * scale,
                },
            )
            .unwrap();
    }
    judged
}

fn nodes(cluster: &Cluster) -> Vec<serde_json::Value> {
    lfleet_json(&cluster.lfleet(&["nodes", "--json"]))
        .as_array()
        .unwrap()
        .clone()
}

/// The node's `lustre.slow` condition, if it has one.
fn finding(nodes: &[serde_json::Value], name: &str) -> Option<serde_json::Value> {
    let node = nodes.iter().find(|n| n["name"] == name)?;
    node["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "lustre.slow")
        .cloned()
}

fn flagged(nodes: &[serde_json::Value]) -> Vec<String> {
    nodes
        .iter()
        .filter(|n| {
            finding(nodes, n["name"].as_str().unwrap()).is_some_and(|c| c["outcome"] == "fail")
        })
        .map(|n| n["name"].as_str().unwrap().to_owned())
        .collect()
}

fn log(cluster: &Cluster) -> String {
    std::fs::read_to_string(cluster.dir.path().join("coordinator.log")).unwrap_or_default()
}

/// Every node on every target (4 OSTs and an MDT).
const ALL_JUDGED: usize = AGENTS * 5;

#[test]
fn slow_nodes_are_flagged_within_3_windows_with_evidence_and_an_idle_one_is_never_judged() {
    let cluster = cluster();
    let (all, one, idle) = (2, 5, 9);
    // The idle node does 2 MB/s throughout: about 28 RPCs per OST in a window, under the
    // floor of 50.
    let rate = |index: usize| if index == idle { 0.005 } else { 1.0 };
    round(&cluster, rate);
    let slow = |index: usize, fault: Fault| cluster.nodes[index].sim.fault(&fault).unwrap();
    slow(
        all,
        Fault::Slow {
            mount: None,
            target: None,
            factor_percent: 300,
        },
    );
    slow(
        one,
        Fault::Slow {
            mount: None,
            target: Some("OST0003".into()),
            factor_percent: 300,
        },
    );
    slow(
        idle,
        Fault::Slow {
            mount: None,
            target: None,
            factor_percent: 1000,
        },
    );
    for slow_round in 1..=3 {
        // The window before this round judged the previous one: every node but the idle one
        // (after the warm-up, whose load may come before an agent's first reading).
        let judged = round(&cluster, rate);
        if slow_round > 1 {
            assert_eq!(
                judged,
                ALL_JUDGED - 5,
                "round {slow_round}\n{}",
                cluster.scrape()
            );
        }
        assert_eq!(
            flagged(&nodes(&cluster)),
            Vec::<String>::new(),
            "round {slow_round}"
        );
    }
    // Three windows of slow load and no more: the window that judges the third round closes
    // with the flags. On a loaded machine an agent's report of that round can reach the
    // coordinator only after the next window closed; so wait, bounded, for the window that
    // holds it. No fourth round of slow load is ever sent, and the finding must say 3 of 3
    // windows (checked below), so a node flagged here was flagged on exactly three windows
    // of slow load.
    let names = names();
    let expected = vec![names[all].clone(), names[one].clone()];
    let mut now = Vec::new();
    for _ in 0..3 {
        next_window(&cluster);
        now = nodes(&cluster);
        if flagged(&now) == expected {
            break;
        }
    }
    assert_eq!(flagged(&now), expected, "{now:#?}\n{}", log(&cluster));
    let detail = |index: usize| {
        finding(&now, &names[index]).unwrap()["detail"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let all_detail = detail(all);
    for text in [
        // 16 nodes less the idle one, which was not judged: 14 peers.
        "RPC waits above those of its 14 peers on 5 targets: ",
        "MDT0000 ",
        "OST0000 ",
        "OST0003 ",
        "slow in 3 of the last 3 windows of 5 s",
        "no cause seen on the node",
    ] {
        assert!(all_detail.contains(text), "{text}: {all_detail}");
    }
    // Each target's ratio is the fault's 3x within the noise (±30% against the median's).
    let ratios: Vec<f64> = all_detail
        .match_indices(" (")
        .filter_map(|(at, _)| all_detail[at + 2..].split_once("x, MAD"))
        .map(|(ratio, _)| ratio.parse().unwrap())
        .collect();
    assert_eq!(ratios.len(), 5, "{all_detail}");
    for ratio in ratios {
        assert!((1.9..=4.5).contains(&ratio), "{ratio}: {all_detail}");
    }
    let one_detail = detail(one);
    assert!(one_detail.contains("on 1 target: OST0003 "), "{one_detail}");
    for other in ["OST0000", "OST0001", "OST0002", "MDT0000"] {
        assert!(!one_detail.contains(other), "{one_detail}");
    }
    // Never judged: no finding at all, though 10x slower; everyone else judged and passing.
    assert_eq!(finding(&now, &names[idle]), None);
    for (index, name) in names.iter().enumerate() {
        if ![all, one, idle].contains(&index) {
            assert_eq!(finding(&now, name).unwrap()["outcome"], "pass", "{name}");
        }
    }
    assert!(
        now.iter()
            .any(|n| n["name"] == names[all].as_str() && n["health"] == "unhealthy")
    );
    // `lfleet node` shows it; the metrics count it; the events say it.
    let shown = cluster.lfleet(&["node", &names[one]]);
    let text = String::from_utf8_lossy(&shown.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("lustre.slow"))
        .unwrap_or_else(|| panic!("{text}"));
    let words: Vec<&str> = line.split_whitespace().take(4).collect();
    assert_eq!(
        words,
        ["fail", "lustre.slow", "/lustre", "slower-than-peers"],
        "{line}"
    );
    assert!(
        line.contains("RPC waits above those of its 14 peers on 1 target: OST0003 "),
        "{line}"
    );
    // The dashboard shows it: a lustre.slow column in the heatmap, failing in the node's
    // row, and the evidence on the node's page.
    let fleet = cluster.dashboard_json("/api/fleet");
    let column = fleet["checks"]
        .as_array()
        .unwrap()
        .iter()
        .position(|c| c == "lustre.slow")
        .unwrap_or_else(|| panic!("no lustre.slow column: {fleet}"));
    let cells = |name: &str| {
        fleet["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|row| row[0] == name)
            .and_then(|row| row[3].as_str())
            .and_then(|letters| letters.chars().nth(column))
    };
    assert_eq!(cells(&names[one]), Some('F'), "{fleet}");
    // A node judged and not slow (index 0 is none of all, one, idle) passes in that column.
    assert_eq!(cells(&names[0]), Some('P'), "{fleet}");
    let page = cluster
        .dashboard_json(&format!("/api/nodes/{}", names[one]))
        .to_string();
    assert!(
        page.contains("RPC waits above those of its 14 peers on 1 target: OST0003 "),
        "{page}"
    );
    assert_eq!(metric(&cluster, "lfleet_slow_nodes"), Some(2.0));
    let scraped = cluster.scrape();
    let ratio_lines: Vec<&str> = scraped
        .lines()
        .filter(|l| l.starts_with("lfleet_node_slow_ratio{"))
        .collect();
    // The node slow on OST0003 alone, and the node slow on all 5 targets.
    assert_eq!(ratio_lines.len(), 6, "{scraped}");
    let one_line = ratio_lines
        .iter()
        .find(|l| l.contains(&format!("node=\"{}\"", names[one])))
        .unwrap_or_else(|| panic!("{scraped}"));
    assert!(
        one_line.contains("mount=\"/lustre\"") && one_line.contains("target=\"OST0003\""),
        "{one_line}"
    );
    let ratio: f64 = one_line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((1.9..=4.5).contains(&ratio), "{ratio}");
    let events = lfleet_json(&cluster.lfleet(&["events", "--json"]));
    let slow_events: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "slow-node")
        .map(|e| e["node"].as_str().unwrap())
        .collect();
    assert_eq!(slow_events.len(), 2, "{events:#}");
}

#[test]
fn ten_minutes_of_noisy_normal_load_flag_no_node() {
    let cluster = cluster();
    // A warm-up round (its load may come before an agent's first reading), then ten minutes,
    // each judged in the window that closes before the next one starts.
    round(&cluster, |_| 1.0);
    round(&cluster, |_| 1.0);
    let mut total = 0;
    for minute in 1..=10 {
        let judged = if minute < 10 {
            round(&cluster, |_| 1.0)
        } else {
            next_window(&cluster);
            metric(&cluster, "lfleet_slow_judged").unwrap() as usize
        };
        // Every node judged (one may land in the next window when the machine is busy).
        assert!(judged >= ALL_JUDGED - 5, "window {minute}: {judged} judged");
        total += judged;
        let now = nodes(&cluster);
        assert_eq!(
            flagged(&now),
            Vec::<String>::new(),
            "window {minute}: {now:#?}"
        );
        for node in &now {
            let name = node["name"].as_str().unwrap();
            assert_eq!(finding(&now, name).unwrap()["outcome"], "pass", "{name}");
        }
    }
    assert!(
        total >= 10 * ALL_JUDGED - 10,
        "{total} judged in ten windows"
    );
    assert_eq!(metric(&cluster, "lfleet_slow_nodes"), Some(0.0));
    assert_eq!(
        metric(&cluster, "lfleet_slow_windows_total").map(|w| w >= 12.0),
        Some(true)
    );
}

#[test]
fn ost0002_slow_on_every_node_is_one_incident_and_no_node_is_flagged() {
    let cluster = cluster();
    round(&cluster, |_| 1.0);
    for node in &cluster.nodes {
        node.sim
            .fault(&Fault::Slow {
                mount: None,
                target: Some("OST0002".into()),
                factor_percent: 300,
            })
            .unwrap();
    }
    for _ in 1..=3 {
        round(&cluster, |_| 1.0);
    }
    next_window(&cluster);
    let incidents = lfleet_json(&cluster.lfleet(&["incidents", "--json"]));
    let open: Vec<&serde_json::Value> = incidents
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["check"] == "lustre.slow")
        .collect();
    assert_eq!(open.len(), 1, "{incidents:#}\n{}", log(&cluster));
    assert_eq!(open[0]["filesystem"], "/lustre OST0002");
    assert!(open[0]["closed_unix_ms"].is_null(), "{incidents:#}");
    assert_eq!(open[0]["affected_nodes"].as_array().unwrap().len(), AGENTS);
    let now = nodes(&cluster);
    assert_eq!(flagged(&now), Vec::<String>::new(), "{now:#?}");
    assert_eq!(metric(&cluster, "lfleet_slow_target_incidents"), Some(1.0));
    let events = lfleet_json(&cluster.lfleet(&["events", "--json"]));
    let opened = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "incident-opened")
        .unwrap_or_else(|| panic!("{events:#}"));
    assert!(
        opened["detail"]
            .as_str()
            .unwrap()
            .contains("/lustre OST0002 is slow for its clients"),
        "{opened:#}"
    );
    // Healed: three normal windows close it.
    for node in &cluster.nodes {
        node.sim.heal(Some("slow")).unwrap();
    }
    for _ in 1..=3 {
        round(&cluster, |_| 1.0);
    }
    next_window(&cluster);
    let incidents = lfleet_json(&cluster.lfleet(&["incidents", "--json"]));
    let closed = incidents
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["check"] == "lustre.slow" && !i["closed_unix_ms"].is_null())
        .count();
    assert_eq!(closed, 1, "{incidents:#}");
    assert_eq!(metric(&cluster, "lfleet_slow_target_incidents"), Some(0.0));
}

#[test]
fn where_policy_requires_it_a_slow_node_is_drained_in_slurm_and_a_target_incident_stays_open() {
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = (1..=6).map(|i| format!("n{i}")).collect();
    let slurm = Slurm::start(
        dir.path(),
        &names.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let policy = "required = { compute = [\"mount.present\", \"lustre.slow\"] }\ngrace_seconds = 0\ninterval_seconds = 0.3\nmax_drained_share = 0.5\n";
    let extra = format!(
        "\n[slurm]\nenabled = true\nslurm_conf = \"{}\"\ntimeout_seconds = 5\n\n[policy]\n{policy}",
        slurm.conf.display()
    );
    let cluster = cluster_of(dir, &names, &extra);
    round(&cluster, |_| 1.0);
    cluster.nodes[0]
        .sim
        .fault(&Fault::Slow {
            mount: None,
            target: None,
            factor_percent: 300,
        })
        .unwrap();
    for node in &cluster.nodes {
        node.sim
            .fault(&Fault::Slow {
                mount: None,
                target: Some("OST0002".into()),
                factor_percent: 400,
            })
            .unwrap();
    }
    for _ in 1..=3 {
        round(&cluster, |_| 1.0);
    }
    next_window(&cluster);
    // Drained within a few planning passes of the finding (grace 0). On a loaded machine an
    // agent's report of the third round can reach the coordinator only after the next window
    // closed, so the finding can come one or two windows later: wait, bounded, for those
    // (no fourth round of slow load is sent).
    let started = Instant::now();
    let (mut state, mut reason) = slurm.node("n1");
    while !state.contains("DRAIN")
        && started.elapsed() < Duration::from_secs_f64(WINDOW_SECONDS * 2.0 + 5.0)
    {
        std::thread::sleep(Duration::from_millis(100));
        (state, reason) = slurm.node("n1");
    }
    assert!(
        state.contains("DRAIN"),
        "{state} {reason}\n{}",
        log(&cluster)
    );
    assert!(
        reason.starts_with("lfleet: slower-than-peers lustre.slow /lustre RPC waits above those of its 5 peers on 4 targets: "),
        "{reason}"
    );
    assert!(reason.contains(" id="), "{reason}");
    // OST0002 is the target's own incident: nobody flagged or drained for it, and the drain
    // planner's passes (every 0.3 s) do not close it.
    std::thread::sleep(Duration::from_secs(2));
    let incidents = lfleet_json(&cluster.lfleet(&["incidents", "--open", "--json"]));
    let subjects: Vec<&str> = incidents
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["filesystem"].as_str().unwrap())
        .collect();
    assert_eq!(subjects, vec!["/lustre OST0002"], "{incidents:#}");
    assert!(!reason.contains("OST0002"), "{reason}");
    for other in &names[1..] {
        assert_eq!(slurm.node(other).0, "IDLE", "{other}");
    }
}
