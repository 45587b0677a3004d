//! Commands to one agent through the coordinator, end to end with real processes: `lfleet
//! node NAME remount MOUNT` remounts (the sim mount instance changes) and the result is an
//! event; a remount of a mount the agent does not own is refused with the reason; `probe`
//! and `reconcile` answer; `lfleet node NAME --json` shows the reconciler's state and the
//! installed client version, which the agent installed after its session began.
//!
//! The reconciler beside the session: through a 20 s DKMS build (the sim's `dkms-slow`) the
//! coordinator takes a status report and a telemetry batch on every interval it asked for,
//! counted on its /metrics; a [health] setting edited in agent.toml takes effect at the
//! agent's restart although the coordinator's pushed generation is newer than the file's.
#![allow(
    clippy::disallowed_methods,
    reason = "the test runs the coordinator, an agent and the CLI as processes"
)]

use std::process::Command;
use std::time::{Duration, Instant};

use lfleet_harness::{Cluster, lfleet_json};
use lfleet_sim::Fault;

fn instance(cluster: &Cluster, point: &str) -> String {
    cluster.nodes[0]
        .sim
        .state()
        .unwrap()
        .mounts
        .iter()
        .find(|m| m.mount_point == point)
        .map(|m| m.instance.clone())
        .unwrap_or_default()
}

#[test]
fn remount_probe_and_reconcile_reach_the_agent_and_their_results_are_events() {
    let cluster = Cluster::start(1);
    let name = cluster.nodes[0].name.clone();
    cluster.wait_until(
        "the node mounted /lustre",
        Duration::from_secs(30),
        |nodes| {
            nodes.len() == 1
                && nodes[0]["health"] == "healthy"
                && nodes[0]["mounts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|m| m["mount_point"] == "/lustre" && m["mounted"] == true)
        },
    );
    // The client was installed by the agent's first pass, after its Hello: the version shown
    // is the one its status reported.
    // The pass that mounted may still be finishing its last items (a loaded machine shows
    // it `running`): wait, bounded, for the idle state it reports at its end.
    let mut detail = serde_json::Value::Null;
    for _ in 0..100 {
        detail = lfleet_json(&cluster.lfleet(&["node", &name, "--json"]));
        if detail["reconcile"] == "idle" {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(detail["reconcile"], "idle", "{detail:#}");
    assert_eq!(detail["lustre_client_version"], "2.15.7", "{detail:#}");

    let before = instance(&cluster, "/lustre");
    assert!(!before.is_empty());
    let remount = cluster.lfleet(&["node", &name, "remount", "/lustre"]);
    let said = String::from_utf8_lossy(&remount.stdout).into_owned();
    assert!(remount.status.success(), "{remount:?}");
    assert!(said.contains(" ok: "), "{said}");
    assert!(
        said.contains("mount 10.0.1.4@tcp:/lustrefs at /lustre"),
        "{said}"
    );
    let after = instance(&cluster, "/lustre");
    assert_ne!(before, after, "the mount instance changed");
    let command_id = said.split_whitespace().nth(1).unwrap().to_owned();
    let events = lfleet_json(&cluster.lfleet(&["events", "--json"]));
    let events = events.as_array().unwrap();
    for kind in ["command-sent", "command-result"] {
        assert!(
            events.iter().any(|e| e["node"] == name.as_str()
                && e["kind"] == kind
                && e["detail"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("{command_id} "))),
            "no {kind} for {command_id}: {events:#?}"
        );
    }

    // A mount made by hand is not the agent's to remount.
    let root = cluster.nodes[0].sim.root().to_path_buf();
    std::fs::create_dir_all(root.join("handmade")).unwrap();
    let made = Command::new(root.join("bin/mount"))
        .args(["-t", "lustre", "10.0.9.9@tcp:/other", "/handmade"])
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let handmade = instance(&cluster, "/handmade");
    let refused = cluster.lfleet(&["node", &name, "remount", "/handmade"]);
    let said = String::from_utf8_lossy(&refused.stdout).into_owned();
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    assert!(
        said.contains("FAILED: refused: /handmade is not a mount lfleet manages"),
        "{said}"
    );
    assert_eq!(instance(&cluster, "/handmade"), handmade, "left alone");

    let probe = cluster.lfleet(&["node", &name, "probe", "--json"]);
    let probe = lfleet_json(&probe);
    assert_eq!(probe["ok"], true, "{probe:#}");
    assert!(
        probe["message"].as_str().unwrap().contains("checks pass"),
        "{probe:#}"
    );
    let reconcile = lfleet_json(&cluster.lfleet(&["node", &name, "reconcile", "--json"]));
    assert_eq!(reconcile["ok"], true, "{reconcile:#}");
    assert_eq!(reconcile["message"], "no changes", "{reconcile:#}");

    // A node with no session gets nothing, and says so.
    let unknown = cluster.lfleet(&["node", "no-such-node", "reconcile"]);
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("no-such-node"),
        "{unknown:?}"
    );
}

/// The coordinator's count of `kind` (`status`, `telemetry`) messages taken from agents.
fn received(cluster: &Cluster, kind: &str) -> u64 {
    let wanted = format!("lfleet_agent_messages_total{{kind=\"{kind}\"}} ");
    cluster
        .scrape()
        .lines()
        .find_map(|l| l.strip_prefix(&wanted)?.trim().parse().ok())
        .unwrap_or(0)
}

/// The longest time without a new message, from `from` to `to`, given when the count rose.
fn longest_gap(rises: &[Instant], from: Instant, to: Instant) -> Duration {
    let mut last = from;
    let mut longest = Duration::ZERO;
    for at in rises.iter().copied().chain([to]) {
        longest = longest.max(at.saturating_duration_since(last));
        last = at;
    }
    longest
}

#[test]
fn status_and_telemetry_keep_their_intervals_through_a_20_s_dkms_build() {
    // The running kernel's client is not published; DKMS is allowed (Secure Boot off), and
    // each build takes 20 s.
    let mut spec = Cluster::node_spec();
    spec.secure_boot = Some(false);
    spec.repo_kernels = vec!["5.15.0-1070-azure".into()];
    let mut cluster = Cluster::start_nodes(tempfile::tempdir().unwrap(), &[], "", "", &spec);
    let file = cluster.dir.path().join("dkms.toml");
    let text = cluster
        .config_text
        .replace("dkms = \"forbidden\"", "dkms = \"allowed\"");
    assert_ne!(text, cluster.config_text);
    std::fs::write(&file, text).unwrap();
    let applied = cluster.lfleet(&["config", "apply", file.to_str().unwrap()]);
    assert!(applied.status.success(), "{applied:?}");
    cluster.add_agent_prepared("n1", &spec, |sim| {
        sim.fault(&Fault::RepoMissing {
            kernel: "5.15.0-1075-azure".into(),
        })
        .unwrap();
        sim.fault(&Fault::DkmsSlow { seconds: 20 }).unwrap();
    });
    let root = cluster.nodes[0].sim.root().to_path_buf();

    // From the session's start to the mount, every 100 ms: when the coordinator's counts
    // rose, and what `lfleet node` said of the reconciler.
    let connected = |nodes: &[serde_json::Value]| {
        nodes
            .iter()
            .any(|n| n["name"] == "n1" && n["connected"] == true)
    };
    cluster.wait_until("n1 connected", Duration::from_secs(30), connected);
    let start = Instant::now();
    let (mut status, mut telemetry) = (
        received(&cluster, "status"),
        received(&cluster, "telemetry"),
    );
    let (mut status_rises, mut telemetry_rises) = (Vec::new(), Vec::new());
    let mut running_seen = false;
    let mut end = None;
    while start.elapsed() < Duration::from_secs(60) {
        let now_status = received(&cluster, "status");
        let now_telemetry = received(&cluster, "telemetry");
        let at = Instant::now();
        if now_status > status {
            status_rises.push(at);
            status = now_status;
        }
        if now_telemetry > telemetry {
            telemetry_rises.push(at);
            telemetry = now_telemetry;
        }
        let detail = lfleet_json(&cluster.lfleet(&["node", "n1", "--json"]));
        running_seen |= detail["reconcile"] == "running";
        let mounted = std::fs::read_to_string(root.join("proc/self/mountinfo"))
            .unwrap_or_default()
            .contains(" /lustre ");
        if mounted {
            end = Some(at);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let end = end.expect("mounted after the DKMS build");
    let window = end - start;
    let status_gap = longest_gap(&status_rises, start, end);
    let telemetry_gap = longest_gap(&telemetry_rises, start, end);
    println!(
        "build window {window:?}: {} status reports (longest gap {status_gap:?}), {} telemetry batches (longest gap {telemetry_gap:?})",
        status_rises.len(),
        telemetry_rises.len()
    );
    assert!(
        window >= Duration::from_secs(18),
        "the build did not take its 20 s: {window:?}"
    );
    assert!(
        root.join("lib/modules/5.15.0-1075-azure/updates/dkms/lustre.ko")
            .exists(),
        "built with DKMS"
    );
    assert!(running_seen, "the reconciler was shown running meanwhile");
    // The coordinator's intervals: status every 10 s, telemetry every 2 s (plus a second of
    // scheduling and polling slack).
    assert!(status_gap <= Duration::from_secs(11), "{status_gap:?}");
    assert!(telemetry_gap <= Duration::from_secs(3), "{telemetry_gap:?}");
    assert!(
        telemetry_rises.len() as u64 >= window.as_secs() / 2 - 1,
        "{} batches in {window:?}",
        telemetry_rises.len()
    );
}

#[test]
fn a_changed_health_setting_takes_effect_at_restart_under_a_newer_pushed_generation() {
    let mut cluster = Cluster::start(1);
    let name = cluster.nodes[0].name.clone();
    // A pushed generation 2 (a second filesystem): newer than agent.toml's generation 1.
    let applied = cluster.apply_config_with(
        "gen2.toml",
        "\n[[filesystems]]\nname = \"scratch\"\nmgs_nids = \"10.0.1.5@tcp\"\nfsname = \"scratch\"\nmount_point = \"/scratch\"\n",
    );
    assert!(applied.status.success(), "{applied:?}");
    let lnet = |nodes: &[serde_json::Value], outcome: &str, words: &str| {
        nodes.iter().any(|n| {
            n["applied_generation"] == 2
                && n["conditions"].as_array().unwrap().iter().any(|c| {
                    c["check"] == "lnet"
                        && c["outcome"] == outcome
                        && c["detail"].as_str().unwrap_or("").contains(words)
                })
        })
    };
    cluster.wait_until("generation 2 applied", Duration::from_secs(30), |nodes| {
        nodes.len() == 1 && nodes[0]["applied_generation"] == 2 && nodes[0]["health"] == "healthy"
    });
    // LNet's NI health held low: with the default 60 s sustain it is unknown, not failed.
    cluster.nodes[0]
        .sim
        .fault(&Fault::LnetHealth {
            value: 300,
            recover_after: None,
        })
        .unwrap();
    cluster.wait_until(
        "lnet unknown, fails after 60 s",
        Duration::from_secs(20),
        |nodes| lnet(nodes, "unknown", "fails after 60 s"),
    );
    // agent.toml's [health] edited (its generation still 1), the agent restarted: the new
    // sustain is in force at once, and the pushed generation 2 still runs (/scratch stays).
    let config = cluster.dir.path().join(format!("{name}.toml"));
    let mut text = std::fs::read_to_string(&config).unwrap();
    assert!(text.starts_with("generation = 1\n"), "{text}");
    text.push_str("\n[health]\nlnet_health_sustain_seconds = 1\n");
    std::fs::write(&config, text).unwrap();
    cluster.restart_agent(&name);
    cluster.wait_until("lnet failed after 1 s", Duration::from_secs(30), |nodes| {
        lnet(nodes, "fail", "below 1000")
            && nodes[0]["mounts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["mount_point"] == "/scratch" && m["mounted"] == true)
    });
    let detail = lfleet_json(&cluster.lfleet(&["node", &name, "--json"]));
    assert_eq!(detail["applied_generation"], 2, "{detail:#}");
    assert_eq!(detail["desired_generation"], 2, "{detail:#}");
}
