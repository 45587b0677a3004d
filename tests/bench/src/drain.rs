//! Section d: detection to drain with a real Slurm (munged, slurmctld, four slurmd -N) and
//! four agents on sim nodes: an import failure is injected, and the time until Slurm shows the
//! node DRAIN is measured; the node is healed and undrained before the next fault. With
//! grace 0 (20 faults) and with the default policy (grace 30 s, planning every 1 s; one fault,
//! because its undrain window and flap penalty keep a node out for minutes). The grace-0
//! series lifts the drain budget (10 per hour by default), which would otherwise hold the
//! 11th drain.

use std::time::{Duration, Instant};

use lfleet_harness::Cluster;
use lfleet_harness::slurm::Slurm;
use lfleet_sim::Fault;

use crate::{Options, percentiles};

const NODES: [&str; 4] = ["n1", "n2", "n3", "n4"];

fn wait(slurm: &Slurm, node: &str, limit: Duration, drained: bool) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        let (state, _) = slurm.node(node);
        if state.contains("DRAIN") == drained {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

fn series(policy: &str, faults: usize) -> (Vec<Duration>, usize) {
    let dir = tempfile::tempdir().expect("scratch");
    let slurm = Slurm::start(dir.path(), &NODES);
    let extra = format!(
        "\n[slurm]\nenabled = true\nslurm_conf = \"{}\"\ntimeout_seconds = 5\n\n[policy]\n{policy}\n",
        slurm.conf.display()
    );
    let names: Vec<String> = NODES.iter().map(|n| n.to_string()).collect();
    let cluster = Cluster::start_with(dir, &names, &extra);
    cluster.wait_until("4 healthy nodes", Duration::from_secs(60), |nodes| {
        nodes.len() == 4 && nodes.iter().all(|n| n["health"] == "healthy")
    });
    let mut times = Vec::new();
    let mut missed = 0;
    for i in 0..faults {
        let index = i % NODES.len();
        let node = &cluster.nodes[index];
        node.sim
            .fault(&Fault::Import {
                mount: None,
                target: "OST0001".into(),
                state: "DISCONN".into(),
            })
            .expect("fault");
        match wait(&slurm, NODES[index], Duration::from_secs(120), true) {
            Some(took) => times.push(took),
            None => missed += 1,
        }
        node.sim.heal(None).expect("heal");
        let _ = wait(&slurm, NODES[index], Duration::from_secs(60), false);
    }
    (times, missed)
}

pub fn run(options: &Options) -> serde_json::Value {
    println!("\n== d. Detection to drain (real Slurm, 4 nodes; fault -> DRAIN in slurmctld)");
    println!(
        "{:<34} {:>6} {:>10} {:>10} {:>10} {:>8}",
        "policy", "faults", "p50 ms", "p99 ms", "max ms", "missed"
    );
    let fast_faults = if options.quick { 4 } else { 20 };
    let mut rows = Vec::new();
    for (label, policy, faults) in [
        (
            "grace 0, planning every 0.5 s",
            "grace_seconds = 0\nundrain_after_seconds = 1\nflap_penalty_seconds = 0\nmax_drained_share = 0.5\nbudget_drains_per_window = 1000\ninterval_seconds = 0.5\n",
            fast_faults,
        ),
        ("default (grace 30 s, every 1 s)", "", 1),
    ] {
        let (times, missed) = series(policy, faults);
        let summary = percentiles(times);
        let cell = |key: &str| {
            summary[key]
                .as_f64()
                .map(|v| format!("{v:.0}"))
                .unwrap_or_else(|| "-".into())
        };
        println!(
            "{:<34} {:>6} {:>10} {:>10} {:>10} {:>8}",
            label,
            faults,
            cell("p50_ms"),
            cell("p99_ms"),
            cell("max_ms"),
            missed
        );
        rows.push(serde_json::json!({"policy": label, "faults": faults, "missed": missed, "fault_to_drain": summary}));
    }
    serde_json::json!(rows)
}
