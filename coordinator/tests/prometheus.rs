//! The metrics fit Prometheus: `promtool check metrics` (Debian's prometheus package) has
//! nothing to say about the coordinator's exposition with two filesystems, nodes in several
//! states and events present; the counters are counters, in bytes.
#![allow(
    clippy::disallowed_methods,
    reason = "the test runs the coordinator, agents and promtool as processes"
)]

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use lfleet_harness::{Cluster, lfleet_json};
use lfleet_sim::Fault;

/// `promtool check metrics` on `text`: (exit code, what it said).
fn promtool(text: &str) -> (i32, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package) runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

/// The body of an HTTP response.
fn body(response: &str) -> &str {
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body)
        .unwrap_or(response)
}

#[test]
fn promtool_finds_nothing_in_the_coordinators_metrics() {
    let mut cluster = Cluster::start(2);
    cluster.add_agent("hpc-pg0-3");
    cluster.wait_until("3 healthy", Duration::from_secs(40), |nodes| {
        nodes.len() == 3 && nodes.iter().all(|n| n["health"] == "healthy")
    });
    // A second filesystem, a failing node (an event and an unhealthy state), a silent one.
    let file = cluster.dir.path().join("two.toml");
    std::fs::write(
        &file,
        format!(
            "{}\n[[filesystems]]\nname = \"scratch\"\nmgs_nids = \"10.0.1.5@tcp\"\nfsname = \"scratch\"\nmount_point = \"/scratch\"\n",
            cluster.config_text
        ),
    )
    .unwrap();
    let applied = cluster.lfleet(&["config", "apply", file.to_str().unwrap()]);
    assert!(applied.status.success(), "{applied:?}");
    cluster.nodes[0]
        .sim
        .fault(&Fault::Import {
            mount: None,
            target: "OST0001".into(),
            state: "EVICTED".into(),
        })
        .unwrap();
    cluster.wait_unhealthy("hpc-pg0-1", Duration::from_secs(20));
    cluster.nodes[2].process.stop();
    let events = lfleet_json(&cluster.lfleet(&["events", "--json"]));
    assert!(!events.as_array().unwrap().is_empty());

    let scraped = cluster.scrape();
    assert!(scraped.contains("text/plain; version=0.0.4"), "{scraped}");
    let text = body(&scraped);
    let (code, said) = promtool(text);
    assert_eq!((code, said.as_str()), (0, ""), "promtool on:\n{text}");
    for family in [
        "# TYPE lfleet_filesystem_read_bytes_total counter",
        "# TYPE lfleet_filesystem_clients gauge",
        "lfleet_filesystem_clients{filesystem=\"scratch\",state=\"expected\"} 3",
        "lfleet_nodes{health=\"unhealthy\"} 1",
        "lfleet_node_health{health=\"unhealthy\",node=\"hpc-pg0-1\",nodearray=\"\"} 1",
    ] {
        assert!(text.contains(family), "{family} in:\n{text}");
    }
    // The check can fail: a family without HELP, or a gauge named like a counter.
    let (code, said) = promtool("# TYPE x_total gauge\nx_total 1\n");
    assert_ne!(code, 0, "{said}");
}
