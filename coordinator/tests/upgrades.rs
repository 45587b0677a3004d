//! Client upgrades in waves against a real Slurm (munged, slurmctld, eight `slurmd -N`), the
//! coordinator and eight agents on sim nodes whose repository also publishes Lustre 2.16
//! (needs root, as every Slurm test): waves never wider than asked, a running job waited
//! for, an operator's drain left alone, a coordinator killed mid-wave, a failed node that
//! pauses the rollout until `resume`, and a stale module rebooted through Slurm.
#![allow(
    clippy::disallowed_methods,
    reason = "the test runs Slurm, the coordinator, agents and a job as processes"
)]

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lfleet_harness::slurm::Slurm;
use lfleet_harness::{Cluster, Owned, lfleet_json};
use lfleet_sim::{Fault, LustreVersion};

const NODES: [&str; 8] = ["n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8"];
const TARGET: &str = "2.16.1-12-g8e3f1a2";

/// Slurm with the eight nodes, then the coordinator (planning every 0.2 s) and eight
/// healthy agents on 2.15 whose repository also publishes 2.16.
fn setup() -> (Cluster, Slurm) {
    let dir = tempfile::tempdir().unwrap();
    let slurm = Slurm::start(dir.path(), &NODES);
    let extra = format!(
        "\n[slurm]\nenabled = true\nslurm_conf = \"{}\"\ntimeout_seconds = 5\n\n[policy]\ninterval_seconds = 0.2\n",
        slurm.conf.display()
    );
    let names: Vec<String> = NODES.iter().map(|n| n.to_string()).collect();
    let mut spec = Cluster::node_spec();
    spec.repo_versions = vec![LustreVersion::V2_16];
    let cluster = Cluster::start_nodes(dir, &names, "", &extra, &spec);
    cluster.wait_until("8 healthy nodes", Duration::from_secs(60), |listed| {
        listed.len() == NODES.len() && listed.iter().all(|n| n["health"] == "healthy")
    });
    (cluster, slurm)
}

/// `lfleet upgrade status --json`; None while the coordinator does not answer.
fn status(cluster: &Cluster) -> Option<serde_json::Value> {
    let out = cluster.lfleet(&["upgrade", "status", "--json"]);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).unwrap())
}

/// Each node's step in a status.
fn steps(status: &serde_json::Value) -> BTreeMap<String, String> {
    status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["name"].as_str().unwrap().to_owned(),
                n["step"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The nodes Slurm shows drained by an upgrade now.
fn drained_by_upgrade(slurm: &Slurm) -> Vec<String> {
    let out = slurm.scontrol(&["-o", "show", "node"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("Reason=lfleet: upgrade"))
        .filter_map(|l| l.split_whitespace().next())
        .map(|f| f.trim_start_matches("NodeName=").to_owned())
        .collect()
}

fn client_version(cluster: &Cluster, node: &str) -> String {
    let detail = lfleet_json(&cluster.lfleet(&["node", node, "--json"]));
    detail["lustre_client_version"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn start(cluster: &Cluster, extra: &[&str]) {
    let mut args = vec![
        "upgrade",
        "start",
        "--client",
        TARGET,
        "--wave",
        "2",
        "--step-timeout",
        "60",
    ];
    args.extend_from_slice(extra);
    let started = cluster.lfleet(&args);
    assert!(started.status.success(), "{started:?}");
}

#[test]
fn waves_of_two_wait_for_a_job_skip_an_operators_drain_and_survive_a_coordinator_kill() {
    let (mut cluster, slurm) = setup();
    let drained = slurm.scontrol(&["update", "NodeName=n5", "State=DRAIN", "Reason=disk swap"]);
    assert!(drained.status.success(), "{drained:?}");
    // Its drain: state and reason, with Slurm's [user@time].
    let before = slurm.node("n5");
    assert!(before.1.starts_with("disk swap ["), "{before:?}");

    // A job on n3, running until 20 s from now.
    let mut job = Owned(
        Command::new("srun")
            .args(["-w", "n3", "sleep", "20"])
            .env("SLURM_CONF", &slurm.conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let begun = Instant::now();
    while !slurm.node("n3").0.starts_with("ALLOCATED") {
        assert!(
            begun.elapsed() < Duration::from_secs(20),
            "the job did not start on n3: {:?}",
            slurm.node("n3")
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let plan = lfleet_json(&cluster.lfleet(&[
        "upgrade", "plan", "--client", TARGET, "--wave", "2", "--json",
    ]));
    assert_eq!(plan["nodes"].as_array().unwrap().len(), 7, "{plan:#}");
    assert_eq!(plan["skipped"][0]["name"], "n5", "{plan:#}");
    assert!(
        plan["skipped"][0]["why"]
            .as_str()
            .unwrap()
            .contains("disk swap"),
        "{plan:#}"
    );

    start(&cluster, &[]);
    let begun = Instant::now();
    let mut most = 0;
    let mut job_ended = None;
    let mut killed = false;
    loop {
        let out = drained_by_upgrade(&slurm);
        most = most.max(out.len());
        assert!(
            out.len() <= 2,
            "{} nodes drained at once: {out:?}",
            out.len()
        );
        let running = job.0.try_wait().unwrap().is_none();
        if !running && job_ended.is_none() {
            job_ended = Some(begun.elapsed());
        }
        if let Some(now) = status(&cluster) {
            let steps = steps(&now);
            if running {
                // n3 is drained (DRAINING) but not upgraded while its job runs.
                assert!(
                    ["pending", "draining", "wait-drained"].contains(&steps["n3"].as_str()),
                    "n3 {} while its job runs: {now:#}",
                    steps["n3"]
                );
            }
            if now["state"] == "done" {
                break;
            }
            // Mid-wave, once a wave has ended: SIGKILL, then a start on the same store.
            let done = steps.values().filter(|s| *s == "done").count();
            if !killed && done >= 2 && steps.values().any(|s| s == "upgrading") {
                cluster.crash_coordinator();
                killed = true;
            }
        }
        assert!(
            begun.elapsed() < Duration::from_secs(150),
            "not done: {:#}\n{}",
            status(&cluster).unwrap_or_default(),
            upgrade_log(&cluster)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(killed, "the coordinator was never killed mid-wave");
    assert!(job_ended.is_some(), "the job outlived the rollout");
    assert_eq!(most, 2, "the sampler never saw a full wave");
    let done = status(&cluster).unwrap();
    for (node, step) in steps(&done) {
        assert_eq!(step, "done", "{node}: {done:#}");
    }

    // Only the upgraded nodes had a new configuration: none is behind, n5 included.
    cluster.wait_until(
        "7 healthy nodes, none behind its configuration",
        Duration::from_secs(30),
        |listed| {
            listed
                .iter()
                .filter(|n| n["name"] != "n5")
                .all(|n| n["health"] == "healthy")
                && listed
                    .iter()
                    .all(|n| n["applied_generation"] == n["desired_generation"])
        },
    );
    assert!(
        cluster
            .scrape()
            .contains("\nlfleet_nodes_behind_config 0\n"),
        "{}",
        cluster.scrape()
    );
    for node in NODES.iter().filter(|n| **n != "n5") {
        // IDLE, with NOT_RESPONDING tolerated (slurmctld's pings lag on a loaded machine).
        let (state, reason) = slurm.node(node);
        assert_eq!(state.split('+').next(), Some("IDLE"), "{node}: {reason}");
        assert!(!state.contains("DRAIN"), "{node}: {state} {reason}");
        assert_eq!(client_version(&cluster, node), "2.16.1", "{node}");
    }
    assert_eq!(client_version(&cluster, "n5"), "2.15.7");
    assert_eq!(slurm.node("n5"), before);
    // Each node drained once by the rollout (never upgraded twice), every drain lifted.
    let drains = lfleet_json(&cluster.lfleet(&["drains", "--json"]));
    let mut per_node: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for drain in drains.as_array().unwrap() {
        if drain["by_lfleet"] == true {
            per_node
                .entry(drain["node"].as_str().unwrap().to_owned())
                .or_default()
                .push(drain["status"].as_str().unwrap().to_owned());
        }
    }
    let expected: BTreeMap<String, Vec<String>> = NODES
        .iter()
        .filter(|n| **n != "n5")
        .map(|n| (n.to_string(), vec!["upgraded".to_string()]))
        .collect();
    assert_eq!(per_node, expected, "{drains:#}");
}

/// The coordinator's log lines about the upgrade, for a failure's message.
fn upgrade_log(cluster: &Cluster) -> String {
    std::fs::read_to_string(cluster.dir.path().join("coordinator.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("upgrade") || l.contains("WARN") || l.contains("ERROR"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Polls until `done` holds for the rollout's status, 90 s at most; each round may act on
/// the cluster first.
fn until(
    cluster: &mut Cluster,
    what: &str,
    mut round: impl FnMut(&mut Cluster),
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let begun = Instant::now();
    loop {
        round(cluster);
        let now = status(cluster).unwrap();
        if done(&now) {
            return now;
        }
        assert!(
            begun.elapsed() < Duration::from_secs(90),
            "not {what}: {now:#}\n{}",
            upgrade_log(cluster)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_failed_node_pauses_the_rollout_until_resume_and_a_stale_module_reboots_through_slurm() {
    let (mut cluster, mut slurm) = setup();
    let node = |cluster: &Cluster, name: &str| {
        let root = cluster.dir.path().join(name);
        lfleet_sim::SimNode::open(&root).unwrap()
    };
    // n1's repository lacks 2.16; on n2 a process holds /lustre open.
    node(&cluster, "n1")
        .fault(&Fault::RepoMissingVersion {
            version: LustreVersion::V2_16,
        })
        .unwrap();
    node(&cluster, "n2")
        .fault(&Fault::MountBusy {
            mount: Some("/lustre".into()),
        })
        .unwrap();

    start(&cluster, &["--nodes", "n[1-3]", "--max-failures", "1"]);
    let mut rebooted = false;
    let paused = until(
        &mut cluster,
        "paused with n1 failed and n2 back from its reboot",
        |cluster| {
            if !rebooted && slurm.reboot_requests() == vec!["n2".to_string()] {
                // The RebootProgram ran on n2: power-cycle the node and boot its slurmd.
                cluster.reboot_node("n2");
                slurm.kill_slurmd("n2");
                slurm.boot_slurmd("n2");
                rebooted = true;
            }
        },
        |now| {
            let steps = steps(now);
            now["state"] == "paused" && steps["n1"] == "failed" && steps["n2"] == "done"
        },
    );
    assert!(rebooted, "Slurm never ran the reboot for n2");
    assert_eq!(steps(&paused)["n3"], "pending", "{paused:#}");
    assert!(
        paused["state_detail"]
            .as_str()
            .unwrap()
            .contains("--max-failures 1"),
        "{paused:#}"
    );
    let (state, reason) = slurm.node("n1");
    assert!(state.contains("DRAIN"), "{state} {reason}");
    assert!(
        reason.starts_with(&format!(
            "lfleet: upgrade {} failed: ",
            paused["id"].as_str().unwrap()
        )),
        "{reason}"
    );
    let evidence = paused["nodes"][0]["detail"].as_str().unwrap();
    assert!(evidence.starts_with("package "), "{paused:#}");
    assert!(reason.contains(evidence), "{reason} / {evidence}");
    assert_eq!(client_version(&cluster, "n1"), "2.15.7");
    assert_eq!(client_version(&cluster, "n2"), "2.16.1");
    assert!(
        !slurm.node("n2").0.contains("DRAIN"),
        "{:?}",
        slurm.node("n2")
    );

    // The package appears; resume tries n1 again and goes on to n3.
    node(&cluster, "n1")
        .heal(Some("repo-missing-version"))
        .unwrap();
    let resumed = cluster.lfleet(&["upgrade", "resume", "--json"]);
    let resumed = lfleet_json(&resumed);
    assert_eq!(resumed["state"], "running", "{resumed:#}");
    until(&mut cluster, "done", |_| (), |now| now["state"] == "done");
    for name in ["n1", "n2", "n3"] {
        let (state, reason) = slurm.node(name);
        assert_eq!(state.split('+').next(), Some("IDLE"), "{name}: {reason}");
        assert!(!state.contains("DRAIN"), "{name}: {state} {reason}");
        assert_eq!(client_version(&cluster, name), "2.16.1", "{name}");
    }
    for name in ["n4", "n8"] {
        assert_eq!(client_version(&cluster, name), "2.15.7", "{name}");
    }
    assert!(slurm.reboot_requests().is_empty(), "one reboot only");
}
