//! Commands to one agent through the coordinator, end to end with real processes: `lfleet
//! node NAME remount MOUNT` remounts (the sim mount instance changes) and the result is an
//! event; a remount of a mount the agent does not own is refused with the reason; `probe`
//! and `reconcile` answer; `lfleet node NAME --json` shows the reconciler's state and the
//! installed client version, which the agent installed after its session began.
#![allow(
    clippy::disallowed_methods,
    reason = "the test runs the coordinator, an agent and the CLI as processes"
)]

use std::process::Command;
use std::time::Duration;

use lfleet_harness::{Cluster, lfleet_json};

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
