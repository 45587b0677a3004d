//! The agent's metrics fit Prometheus: `lfleet-agent run` on a sim node with two
//! filesystems mounted, two InfiniBand HCAs and an import eviction (an event) serves text
//! on which `promtool check metrics` (Debian's prometheus package) has nothing to say, with
//! counters as counters in base units and one label per dimension; and the same text is
//! written for node_exporter's textfile collector, atomically, once its directory exists
//! (the agent keeps running and serving while it does not).
#![allow(
    clippy::disallowed_methods,
    reason = "the test reads and lists what the agent writes under the node root"
)]

mod common;

use std::time::{Duration, Instant};

use lfleet_sim::{Fault, LustreVersion, NodeSpec, SimNode};

const EXAMPLE: &str = include_str!("../../packaging/examples/agent.toml");
const TEXTFILE: &str = "/var/lib/prometheus/node-exporter/lfleet.prom";

/// Scrapes until every one of `wanted` is in the body (30 s at most).
fn scrape_until(address: &str, wanted: &[&str]) -> String {
    let started = Instant::now();
    loop {
        let (response, _) = common::scrape(address);
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
            .unwrap_or_default();
        if wanted.iter().all(|w| body.contains(w)) {
            assert!(response.contains("text/plain; version=0.0.4"), "{response}");
            return body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "missing {:?} in:\n{body}",
            wanted
                .iter()
                .filter(|w| !body.contains(*w))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn promtool_finds_nothing_in_the_agents_metrics_and_the_textfile() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = NodeSpec::new("ubuntu-22.04", "5.15.0-1075-azure", LustreVersion::V2_15);
    spec.ib_hcas = 2;
    let node = SimNode::create(&dir.path().join("node"), &spec).unwrap();
    let root = node.root().to_path_buf();
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "{EXAMPLE}\n[[mounts]]\nmgs_nids = \"10.0.1.5@tcp\"\nfsname = \"scratch\"\nmount_point = \"/scratch\"\n\n[prometheus]\nenabled = true\nlisten = \"127.0.0.1:0\"\ntextfile = \"{TEXTFILE}\"\n"
        ),
    )
    .unwrap();
    common::apply(&root, &config);

    let (_agent, address) = common::spawn_run(
        &root,
        &[
            "--check-interval".as_ref(),
            "300ms".as_ref(),
            "--collect-interval".as_ref(),
            "300ms".as_ref(),
            "--config".as_ref(),
            config.as_os_str(),
        ],
    );
    // Two filesystems with their targets, both HCAs' ports, an eviction and its event.
    scrape_until(
        &address,
        &[
            "lfleet_llite_write_bytes_total{mount=\"/scratch\",fsname=\"scratch\"}",
            "lfleet_infiniband_port_data_received_bytes_total{device=\"mlx5_1\",port=\"1\"}",
        ],
    );
    node.fault(&Fault::Import {
        mount: Some("/lustre".into()),
        target: "OST0001".into(),
        state: "EVICTED".into(),
    })
    .unwrap();
    let text = scrape_until(
        &address,
        &[
            "lfleet_events_total{kind=\"import-reconnect\"}",
            "lfleet_import_healthy{mount=\"/lustre\",fsname=\"lustrefs\",target=\"OST0001\"} 0",
            "lfleet_check_state{check=\"lustre.imports\",mount=\"/lustre\",fsname=\"lustrefs\",state=\"fail\"",
            "lfleet_osc_write_bytes_total{mount=\"/scratch\",fsname=\"scratch\",target=\"OST0000\"}",
            "lfleet_mdc_requests_total{mount=\"/lustre\",fsname=\"lustrefs\",target=\"MDT0000\"}",
            "lfleet_llite_avail_bytes{mount=\"/lustre\",fsname=\"lustrefs\"}",
            "lfleet_infiniband_state_id{device=\"mlx5_0\",port=\"1\"} 4",
            "# TYPE lfleet_infiniband_link_downed_total counter",
            "# TYPE lfleet_lnet_sent_bytes_total counter",
            "# TYPE lfleet_osc_request_wait_seconds_total counter",
        ],
    );
    let (code, said) = lfleet_harness::promtool(&text);
    assert_eq!((code, said.as_str()), (0, ""), "promtool on:\n{text}");
    // One label per dimension, base units, no rates.
    assert!(!text.contains("subject="), "{text}");
    let families: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|line| line.split(' ').next())
        .collect();
    assert!(families.len() >= 40, "{families:?}");
    for family in families {
        for wrong in ["_per_s", "_ms", "_us", "_delta", "_gbps", "_percent"] {
            assert!(!family.ends_with(wrong), "{family}");
        }
    }
    // The check can fail: a rate exported as a counter.
    let (code, said) =
        lfleet_harness::promtool("# HELP x_per_s x\n# TYPE x_per_s counter\nx_per_s 1\n");
    assert_ne!(code, 0, "{said}");

    // The textfile's directory does not exist yet: nothing written, the agent serves on.
    let written = root.join(TEXTFILE.trim_start_matches('/'));
    assert!(!written.exists());
    std::fs::create_dir_all(written.parent().unwrap()).unwrap();
    let started = Instant::now();
    let file = loop {
        if let Ok(file) = std::fs::read_to_string(&written)
            && file.contains("lfleet_events_total{kind=\"import-reconnect\"}")
        {
            break file;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{} never written",
            written.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let (code, said) = lfleet_harness::promtool(&file);
    assert_eq!((code, said.as_str()), (0, ""), "promtool on:\n{file}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&written).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o644, "node_exporter's user reads it");
    // Rewritten every interval, and only by rename: no temporary file left behind.
    let first = std::fs::metadata(&written).unwrap().modified().unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    let later = std::fs::metadata(&written).unwrap().modified().unwrap();
    assert!(later > first, "the file is rewritten every collection");
    let names: Vec<String> = std::fs::read_dir(written.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| n == "lfleet.prom" || !n.ends_with(".prom")),
        "{names:?}"
    );
}
