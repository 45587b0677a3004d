//! The coordinator and agents as real processes: real TLS on loopback with certificates the
//! coordinator made, sim nodes for the agents, the `lfleet` CLI on the admin socket.
//!
//! - Five agents: `lfleet config apply` with a new filesystem is mounted and acked by all
//!   within 2 s; `lfleet nodes --json` shows five healthy nodes at the new generation; a
//!   fault on one node is in `lfleet nodes --unhealthy` within 2 s.
//! - The coordinator restarted mid-run: agents reconnect, no mount changes, nodes and
//!   generations survive.
//! - A bad config file is refused with line and field; the running config is unchanged.
#![allow(
    clippy::disallowed_methods,
    reason = "the test runs the coordinator, agents and CLI as processes and reads node files"
)]

use std::time::{Duration, Instant};

use lfleet_harness::{Cluster, lfleet_json};
use lfleet_sim::Fault;

const SCRATCH: &str = "\n[[filesystems]]\nname = \"scratch\"\nmgs_nids = \"10.0.1.5@tcp\"\nfsname = \"scratch\"\nmount_point = \"/scratch\"\n";

#[test]
fn five_agents_take_a_new_filesystem_and_a_fault_shows_within_2_s() {
    let cluster = Cluster::start(5);
    cluster.wait_until(
        "5 nodes healthy at generation 1",
        Duration::from_secs(30),
        |nodes| {
            nodes.len() == 5
                && nodes
                    .iter()
                    .all(|n| n["health"] == "healthy" && n["applied_generation"] == 1)
        },
    );

    let file = cluster.dir.path().join("new.toml");
    std::fs::write(&file, format!("{}{SCRATCH}", cluster.config_text)).unwrap();
    let applied = cluster.lfleet(&["config", "apply", file.to_str().unwrap()]);
    assert!(applied.status.success(), "{applied:?}");
    assert!(String::from_utf8_lossy(&applied.stdout).contains("applied: generation 2"));
    let started = Instant::now();
    let took = cluster.wait_until(
        "5 nodes mounted /scratch at generation 2",
        Duration::from_secs(2),
        |nodes| {
            nodes.len() == 5
                && nodes.iter().all(|n| {
                    n["applied_generation"] == 2
                        && n["desired_generation"] == 2
                        && n["health"] == "healthy"
                        && n["mounts"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .any(|m| m["mount_point"] == "/scratch" && m["mounted"] == true)
                })
        },
    );
    assert!(took <= Duration::from_secs(2), "took {took:?}");
    // Every node acked generation 2, and the mount is real on every sim node.
    let events = lfleet_json(&cluster.lfleet(&["events", "--json"]));
    for node in &cluster.nodes {
        assert!(
            events
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["node"] == node.name.as_str()
                    && e["kind"] == "config-acked"
                    && e["detail"].as_str().unwrap().starts_with("generation 2")),
            "{} did not ack generation 2: {events:#}",
            node.name
        );
        let mountinfo =
            std::fs::read_to_string(node.sim.root().join("proc/self/mountinfo")).unwrap();
        assert!(
            mountinfo.contains(" /scratch "),
            "{}: {mountinfo}",
            node.name
        );
    }
    assert!(started.elapsed() < Duration::from_secs(3));
    let filesystems = lfleet_json(&cluster.lfleet(&["fs", "--json"]));
    let scratch = filesystems
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "scratch")
        .unwrap();
    assert_eq!(
        (
            scratch["clients_mounted"].as_u64(),
            scratch["clients_expected"].as_u64()
        ),
        (Some(5), Some(5))
    );
    let node = lfleet_json(&cluster.lfleet(&["node", "hpc-pg0-1", "--json"]));
    assert!(
        node["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["kind"] == "mount" && i["failure"].is_null()),
        "{node:#}"
    );
    let metrics = cluster.scrape();
    assert!(
        metrics.contains("lfleet_nodes{health=\"healthy\"} 5"),
        "{metrics}"
    );
    assert!(metrics.contains("lfleet_config_generation 2"), "{metrics}");
    assert!(
        metrics.contains("lfleet_filesystem_clients{filesystem=\"scratch\",state=\"mounted\"} 5"),
        "{metrics}"
    );

    cluster.nodes[2].sim.fault(&Fault::Lbug).unwrap();
    let took = cluster.wait_unhealthy(&cluster.nodes[2].name, Duration::from_secs(2));
    assert!(took <= Duration::from_secs(2), "took {took:?}");
    let unhealthy = lfleet_json(&cluster.lfleet(&["nodes", "--unhealthy", "--json"]));
    let names: Vec<&str> = unhealthy
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec![cluster.nodes[2].name.as_str()]);
    assert!(
        cluster
            .scrape()
            .contains("lfleet_nodes{health=\"unhealthy\"} 1")
    );
}

#[test]
fn a_coordinator_restart_changes_no_mount_and_loses_nothing() {
    let mut cluster = Cluster::start(3);
    cluster.wait_until("3 nodes healthy", Duration::from_secs(30), |nodes| {
        nodes.len() == 3 && nodes.iter().all(|n| n["health"] == "healthy")
    });
    let file = cluster.dir.path().join("new.toml");
    std::fs::write(&file, format!("{}{SCRATCH}", cluster.config_text)).unwrap();
    assert!(
        cluster
            .lfleet(&["config", "apply", file.to_str().unwrap()])
            .status
            .success()
    );
    cluster.wait_until(
        "generation 2 everywhere",
        Duration::from_secs(10),
        |nodes| {
            nodes
                .iter()
                .all(|n| n["applied_generation"] == 2 && n["health"] == "healthy")
        },
    );
    let before: Vec<String> = cluster
        .nodes
        .iter()
        .map(|n| std::fs::read_to_string(n.sim.root().join("proc/self/mountinfo")).unwrap())
        .collect();
    let fstab_before: Vec<String> = cluster
        .nodes
        .iter()
        .map(|n| std::fs::read_to_string(n.sim.root().join("etc/fstab")).unwrap())
        .collect();

    cluster.restart_coordinator();
    // Right after the restart the store answers: nodes and generations survived.
    let nodes = lfleet_json(&cluster.lfleet(&["nodes", "--json"]));
    assert_eq!(nodes.as_array().unwrap().len(), 3, "{nodes:#}");
    assert!(
        nodes
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["applied_generation"] == 2 && n["desired_generation"] == 2)
    );
    let shown = cluster.lfleet(&["config", "show"]);
    assert!(
        String::from_utf8_lossy(&shown.stdout).starts_with("# generation 2"),
        "{shown:?}"
    );
    cluster.wait_until("3 nodes reconnected", Duration::from_secs(40), |nodes| {
        nodes.len() == 3
            && nodes
                .iter()
                .all(|n| n["connected"] == true && n["health"] == "healthy")
    });
    // Let every agent receive and ack the config again.
    std::thread::sleep(Duration::from_secs(1));
    for (index, node) in cluster.nodes.iter().enumerate() {
        let after = std::fs::read_to_string(node.sim.root().join("proc/self/mountinfo")).unwrap();
        assert_eq!(after, before[index], "{}: a mount changed", node.name);
        let fstab = std::fs::read_to_string(node.sim.root().join("etc/fstab")).unwrap();
        assert_eq!(fstab, fstab_before[index], "{}: fstab changed", node.name);
    }
}

#[test]
fn a_bad_config_file_is_refused_with_line_and_field_and_nothing_changes() {
    let cluster = Cluster::start(1);
    cluster.wait_until("1 node healthy", Duration::from_secs(30), |nodes| {
        nodes.len() == 1 && nodes[0]["health"] == "healthy"
    });
    let before = cluster.lfleet(&["config", "show"]).stdout;
    let bad = cluster
        .config_text
        .replace(
            "mgs_nids = \"10.0.1.4@tcp\"",
            "mgs_nids = \"10.0.1.4@tcp,exec\"",
        )
        .replace("mount_point = \"/lustre\"", "mount_point = \"/etc/lustre\"");
    let file = cluster.dir.path().join("bad.toml");
    std::fs::write(&file, &bad).unwrap();
    let refused = cluster.lfleet(&["config", "apply", file.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    let line_of = |needle: &str| bad.lines().position(|l| l.contains(needle)).unwrap() + 1;
    assert!(
        stderr.contains(&format!(
            "line {}: filesystems[0].mgs_nids:",
            line_of("exec")
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "line {}: filesystems[0].mount_point:",
            line_of("/etc/lustre")
        )),
        "{stderr}"
    );
    assert!(stderr.contains("the running configuration is unchanged"));
    assert_eq!(cluster.lfleet(&["config", "show"]).stdout, before);
    let nodes = lfleet_json(&cluster.lfleet(&["nodes", "--json"]));
    assert_eq!(nodes[0]["desired_generation"], 1);
}
