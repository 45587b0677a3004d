//! The harness's reboot path against a real Slurm (needs root, as every Slurm test): a
//! reboot asked with `scontrol reboot ASAP nextstate=RESUME` reaches the RebootProgram of
//! the right node among several `slurmd -N` on one host, and a slurmd started with `-b`
//! ends the reboot, so slurmctld returns the node to service and clears the drain.
#![allow(
    clippy::disallowed_methods,
    reason = "the test runs Slurm as processes"
)]

use std::time::{Duration, Instant};

use lfleet_harness::slurm::Slurm;

fn wait(slurm: &Slurm, node: &str, what: &str, done: impl Fn(&str, &str) -> bool) {
    let started = Instant::now();
    let mut last = (String::new(), String::new());
    while started.elapsed() < Duration::from_secs(30) {
        last = slurm.node(node);
        if done(&last.0, &last.1) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{node}: not {what} within 30 s: {last:?}");
}

#[test]
fn a_reboot_slurm_asks_for_reaches_its_node_and_a_booted_slurmd_returns_it_to_service() {
    let dir = tempfile::tempdir().unwrap();
    let mut slurm = Slurm::start(dir.path(), &["n1", "n2"]);
    assert!(slurm.reboot_requests().is_empty());
    let drained = slurm.scontrol(&[
        "update",
        "NodeName=n2",
        "State=DRAIN",
        "Reason=lfleet: upgrade u1 id=d1",
    ]);
    assert!(drained.status.success(), "{drained:?}");
    let asked = slurm.scontrol(&[
        "reboot",
        "ASAP",
        "nextstate=RESUME",
        "reason=lfleet: upgrade u1 reboot id=d1",
        "n2",
    ]);
    assert!(asked.status.success(), "{asked:?}");
    let started = Instant::now();
    let mut requests = Vec::new();
    while requests.is_empty() && started.elapsed() < Duration::from_secs(30) {
        requests = slurm.reboot_requests();
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(requests, vec!["n2".to_string()]);
    wait(&slurm, "n2", "rebooting", |state, reason| {
        state.contains("REBOOT_ISSUED") && reason.starts_with("lfleet: upgrade u1 reboot id=d1")
    });
    // A slurmd restarted without -b is the same boot: the reboot stays pending.
    slurm.restart_slurmd("n2");
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        slurm.node("n2").0.contains("REBOOT_ISSUED"),
        "{:?}",
        slurm.node("n2")
    );
    slurm.kill_slurmd("n2");
    slurm.boot_slurmd("n2");
    wait(&slurm, "n2", "back in service", |state, reason| {
        state == "IDLE" && reason.is_empty()
    });
    assert_eq!(slurm.node("n1").0, "IDLE");
    assert!(slurm.reboot_requests().is_empty(), "asked once");
}
