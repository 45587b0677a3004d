//! Drains against a real Slurm (munged, slurmctld, four `slurmd -N`), the coordinator and
//! four agents on sim nodes, all real processes. Faults come from lfleet-sim.
#![allow(
    clippy::disallowed_methods,
    reason = "the test runs Slurm, the coordinator and agents as processes"
)]

use std::time::{Duration, Instant};

use lfleet_harness::slurm::Slurm;
use lfleet_harness::{Cluster, lfleet_json};
use lfleet_sim::Fault;

const NODES: [&str; 4] = ["n1", "n2", "n3", "n4"];

/// Slurm, then the coordinator with `[slurm]` pointing at it and `policy`, then the agents;
/// waits until every node is healthy.
fn setup(policy: &str) -> (Cluster, Slurm) {
    Cluster::with_slurm(&NODES, "", policy)
}

/// The coordinator's log and events, for a failure message.
fn dump(cluster: &Cluster) -> String {
    format!(
        "{}\n{:#?}",
        std::fs::read_to_string(cluster.dir.path().join("coordinator.log")).unwrap_or_default(),
        events(cluster)
    )
}

fn import_fault(cluster: &Cluster, index: usize) {
    cluster.nodes[index]
        .sim
        .fault(&Fault::import("OST0001", "DISCONN"))
        .unwrap();
}

/// Polls Slurm every 100 ms until `done` holds for the node; returns how long it took.
fn wait_slurm(
    cluster: &Cluster,
    slurm: &Slurm,
    node: &str,
    limit: Duration,
    done: impl Fn(&str, &str) -> bool,
) -> Duration {
    let started = Instant::now();
    let mut last = (String::new(), String::new());
    while started.elapsed() <= limit {
        last = slurm.node(node);
        if done(&last.0, &last.1) {
            return started.elapsed();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "{node} not as wanted within {limit:?}: {last:?}\n{}",
        dump(cluster)
    );
}

fn events(cluster: &Cluster) -> Vec<serde_json::Value> {
    lfleet_json(&cluster.lfleet(&["events", "--json"]))
        .as_array()
        .unwrap()
        .clone()
}

fn drains(cluster: &Cluster) -> Vec<serde_json::Value> {
    lfleet_json(&cluster.lfleet(&["drains", "--json"]))
        .as_array()
        .unwrap()
        .clone()
}

const FAST: &str = "grace_seconds = 2\nundrain_after_seconds = 3\nflap_penalty_seconds = 60\nmax_drained_share = 0.5\n";

#[test]
fn a_failing_node_is_drained_within_grace_and_undrained_after_recovery() {
    let (cluster, slurm) = setup(FAST);
    import_fault(&cluster, 0);
    let took = wait_slurm(
        &cluster,
        &slurm,
        "n1",
        Duration::from_secs(8),
        |state, _| state.contains("DRAIN"),
    );
    assert!(took <= Duration::from_secs(2 + 2), "drained after {took:?}");
    let (state, reason) = slurm.node("n1");
    assert!(
        reason.starts_with("lfleet: import-not-full lustre.imports /lustre"),
        "{state} {reason}"
    );
    assert!(reason.contains(" id="), "{reason}");
    for other in ["n2", "n3", "n4"] {
        assert_eq!(slurm.node(other).0, "IDLE", "{other}");
    }
    cluster.nodes[0].sim.heal(None).unwrap();
    wait_slurm(
        &cluster,
        &slurm,
        "n1",
        Duration::from_secs(10),
        |state, reason| state == "IDLE" && reason.is_empty(),
    );
    let ledger = drains(&cluster);
    let ours: Vec<&serde_json::Value> = ledger.iter().filter(|d| d["by_lfleet"] == true).collect();
    assert_eq!(ours.len(), 1, "{ledger:#?}");
    assert_eq!(ours[0]["node"], "n1");
    assert_eq!(ours[0]["status"], "undrained");
    assert_eq!(ours[0]["check"], "lustre.imports");
    let kinds: Vec<String> = events(&cluster)
        .iter()
        .filter(|e| e["node"] == "n1")
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        kinds.contains(&"drained".to_owned()) && kinds.contains(&"undrained".to_owned()),
        "{kinds:?}"
    );
}

#[test]
fn drains_lfleet_did_not_make_are_never_touched() {
    let (cluster, slurm) = setup(FAST);
    // An operator's drain on a healthy node.
    assert!(
        slurm
            .scontrol(&["update", "NodeName=n3", "State=DRAIN", "Reason=disk swap"])
            .status
            .success()
    );
    let operator = slurm.node("n3");
    // lfleet drains n1, then an operator re-reasons that drain.
    import_fault(&cluster, 0);
    wait_slurm(
        &cluster,
        &slurm,
        "n1",
        Duration::from_secs(8),
        |state, _| state.contains("DRAIN"),
    );
    assert!(
        slurm
            .scontrol(&[
                "update",
                "NodeName=n1",
                "State=DRAIN",
                "Reason=keep for vendor"
            ])
            .status
            .success()
    );
    let reasoned = slurm.node("n1");
    cluster.nodes[0].sim.heal(None).unwrap();
    // Well past the undrain window: both stay exactly as the operator left them.
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(slurm.node("n3"), operator);
    assert_eq!(slurm.node("n1"), reasoned);
    let ledger = drains(&cluster);
    let n1 = ledger
        .iter()
        .find(|d| d["node"] == "n1" && d["by_lfleet"] == true)
        .unwrap();
    assert_eq!(n1["status"], "taken-over", "{ledger:#?}");
    assert!(
        ledger
            .iter()
            .any(|d| d["node"] == "n3" && d["by_lfleet"] == false && d["reason"] == "disk swap")
    );
    assert!(
        !events(&cluster)
            .iter()
            .any(|e| e["node"] == "n3" && (e["kind"] == "drained" || e["kind"] == "undrained"))
    );
}

#[test]
fn a_shared_failure_is_one_incident_and_zero_drains() {
    let (cluster, slurm) = setup(FAST);
    import_fault(&cluster, 0);
    import_fault(&cluster, 1);
    let started = Instant::now();
    let mut open = Vec::new();
    while started.elapsed() < Duration::from_secs(10) && open.is_empty() {
        open = lfleet_json(&cluster.lfleet(&["incidents", "--open", "--json"]))
            .as_array()
            .unwrap()
            .clone();
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(open.len(), 1, "{open:#?}");
    assert_eq!(open[0]["check"], "lustre.imports");
    assert_eq!(open[0]["filesystem"], "/lustre");
    // Past the grace: nobody drained.
    std::thread::sleep(Duration::from_secs(4));
    for node in NODES {
        assert_eq!(slurm.node(node).0, "IDLE", "{node}");
    }
    assert!(drains(&cluster).is_empty());
    cluster.nodes[0].sim.heal(None).unwrap();
    cluster.nodes[1].sim.heal(None).unwrap();
    let started = Instant::now();
    loop {
        let open = lfleet_json(&cluster.lfleet(&["incidents", "--open", "--json"]));
        if open.as_array().unwrap().is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the incident did not close"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let all = lfleet_json(&cluster.lfleet(&["incidents", "--json"]));
    assert_eq!(all.as_array().unwrap().len(), 1);
    assert!(cluster.scrape().contains("lfleet_incidents_open 0"));
}

#[test]
fn drains_stop_at_the_budget_and_the_rest_are_held() {
    let (cluster, slurm) = setup(
        "grace_seconds = 2\nundrain_after_seconds = 3\nincident_share = 1.0\nmax_drained_share = 1.0\nbudget_drains_per_window = 1\n",
    );
    import_fault(&cluster, 0);
    import_fault(&cluster, 1);
    std::thread::sleep(Duration::from_secs(6));
    let drained: Vec<&str> = ["n1", "n2"]
        .into_iter()
        .filter(|n| slurm.node(n).0.contains("DRAIN"))
        .collect();
    assert_eq!(drained.len(), 1, "exactly the budget");
    let held = events(&cluster);
    assert!(
        held.iter()
            .any(|e| e["kind"] == "drain-held"
                && e["detail"].as_str().unwrap().contains("drain budget")),
        "{held:#?}"
    );
}

#[test]
fn a_flapping_node_is_drained_at_most_once_per_penalty() {
    let (cluster, slurm) = setup(
        "grace_seconds = 1\nundrain_after_seconds = 1\nflap_penalty_seconds = 300\nmax_drained_share = 0.5\n",
    );
    let node = &cluster.nodes[0];
    for _ in 0..5 {
        import_fault(&cluster, 0);
        std::thread::sleep(Duration::from_millis(2500));
        node.sim.heal(None).unwrap();
        std::thread::sleep(Duration::from_millis(2500));
    }
    let ours: Vec<serde_json::Value> = drains(&cluster)
        .into_iter()
        .filter(|d| d["by_lfleet"] == true)
        .collect();
    assert_eq!(ours.len(), 1, "{ours:#?}");
    assert!(
        events(&cluster).iter().any(|e| e["kind"] == "drain-held"
            && e["detail"].as_str().unwrap().starts_with("flap penalty"))
    );
    let _ = slurm;
}

#[test]
fn an_unreachable_slurmctld_is_retried_and_blames_no_node() {
    let (cluster, mut slurm) = setup(FAST);
    slurm.stop_slurmctld();
    import_fault(&cluster, 0);
    // scontrol gives up after the configured 5 s; the coordinator says so once and retries.
    let started = Instant::now();
    while !events(&cluster)
        .iter()
        .any(|e| e["kind"] == "slurmctld-unreachable")
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no slurmctld-unreachable event\n{}",
            dump(&cluster)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The coordinator is alive, and only n1 is unhealthy (its own fault).
    let nodes = lfleet_json(&cluster.lfleet(&["nodes", "--json"]));
    for node in nodes.as_array().unwrap() {
        let expected = if node["name"] == "n1" {
            "unhealthy"
        } else {
            "healthy"
        };
        assert_eq!(node["health"], expected, "{node:#}");
    }
    slurm.start_slurmctld();
    let took = wait_slurm(
        &cluster,
        &slurm,
        "n1",
        Duration::from_secs(15),
        |state, _| state.contains("DRAIN"),
    );
    assert!(took < Duration::from_secs(15));
    for other in ["n2", "n3", "n4"] {
        assert!(!slurm.node(other).0.contains("DRAIN"), "{other}");
    }
}

#[test]
fn a_coordinator_restart_while_drained_neither_duplicates_nor_forgets() {
    let (mut cluster, slurm) = setup(FAST);
    import_fault(&cluster, 0);
    wait_slurm(
        &cluster,
        &slurm,
        "n1",
        Duration::from_secs(8),
        |state, _| state.contains("DRAIN"),
    );
    let drained = slurm.node("n1");
    cluster.restart_coordinator();
    cluster.wait_until("n1 reconnected", Duration::from_secs(40), |nodes| {
        nodes.iter().filter(|n| n["connected"] == true).count() == 4
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(slurm.node("n1"), drained, "no second drain");
    cluster.nodes[0].sim.heal(None).unwrap();
    wait_slurm(
        &cluster,
        &slurm,
        "n1",
        Duration::from_secs(15),
        |state, reason| state == "IDLE" && reason.is_empty(),
    );
    let ours: Vec<serde_json::Value> = drains(&cluster)
        .into_iter()
        .filter(|d| d["by_lfleet"] == true)
        .collect();
    assert_eq!(ours.len(), 1, "{ours:#?}");
    assert_eq!(ours[0]["status"], "undrained");
}

#[test]
fn dry_run_writes_nothing_and_records_would_drain() {
    let (cluster, slurm) = setup(FAST);
    let switched = cluster.lfleet(&["dry-run", "on"]);
    assert!(switched.status.success(), "{switched:?}");
    let before: Vec<(String, String)> = NODES.iter().map(|n| slurm.node(n)).collect();
    import_fault(&cluster, 0);
    std::thread::sleep(Duration::from_secs(5));
    let after: Vec<(String, String)> = NODES.iter().map(|n| slurm.node(n)).collect();
    assert_eq!(after, before, "Slurm's state changed in dry-run");
    assert!(drains(&cluster).is_empty());
    let would = events(&cluster);
    assert!(
        would.iter().any(|e| e["node"] == "n1"
            && e["kind"] == "would-drain"
            && e["detail"]
                .as_str()
                .unwrap()
                .contains("lfleet: import-not-full")),
        "{would:#?}"
    );
    let policy = cluster.lfleet(&["policy", "show"]);
    assert!(String::from_utf8_lossy(&policy.stdout).contains("dry_run = true"));
}

/// A lost mount, a hung mount (bindfs at the managed mount point, frozen with SIGSTOP; needs
/// root and FUSE) and an LBUG, one on each of three nodes: each node is drained for its own
/// check with the agent's evidence in the reason, and the healthy node is left alone.
#[test]
fn root_a_lost_mount_a_hung_mount_and_an_lbug_each_drain_their_node_with_the_evidence() {
    // Three of four nodes drained at once: the share cap must allow it.
    let policy = FAST.replace("max_drained_share = 0.5", "max_drained_share = 0.75");
    let (cluster, slurm) = setup(&policy);
    cluster.nodes[0]
        .sim
        .fault(&Fault::MountLost { mount: None })
        .unwrap();
    cluster.nodes[1].sim.fault(&Fault::Lbug).unwrap();
    let mount_point = cluster.nodes[2].sim.root().join("lustre");
    let bindfs = lfleet_harness::bindfs::Bindfs::mount(
        &cluster.dir.path().join("n3-bindfs-source"),
        &mount_point,
    );
    bindfs.freeze();
    // (node, the reason's start: code, check, subject; words of the evidence)
    let expected = [
        (
            "n1",
            "lfleet: not-mounted mount.present /lustre ",
            "/lustre is not mounted",
            "mount.present",
        ),
        (
            "n2",
            "lfleet: lbug lustre.lbug client ",
            "health_check says LBUG",
            "lustre.lbug",
        ),
        (
            "n3",
            "lfleet: hung mount.responsive /lustre ",
            "statfs stuck ",
            "mount.responsive",
        ),
    ];
    for (node, _, _, _) in &expected {
        wait_slurm(
            &cluster,
            &slurm,
            node,
            Duration::from_secs(10),
            |state, _| state.contains("DRAIN"),
        );
    }
    // Thaw before asserting, so a failure cannot leave a process blocked in the mount.
    bindfs.thaw();
    let ledger = drains(&cluster);
    for (node, start, evidence, check) in expected {
        let (state, reason) = slurm.node(node);
        assert!(
            reason.starts_with(start) && reason.contains(evidence) && reason.contains(" id="),
            "{node} {state}: {reason:?}"
        );
        let entry = ledger
            .iter()
            .find(|d| d["node"] == node && d["by_lfleet"] == true)
            .unwrap_or_else(|| panic!("{node} not in {ledger:#?}"));
        assert_eq!(entry["check"], check, "{ledger:#?}");
        // Slurm shows the reason with its user and time appended.
        assert!(
            reason.starts_with(entry["reason"].as_str().unwrap()),
            "{reason:?} {entry:#?}"
        );
    }
    assert_eq!(slurm.node("n4").0, "IDLE");
    drop(bindfs);
}
