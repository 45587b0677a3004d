//! The metrics fit Prometheus: `promtool check metrics` (Debian's prometheus package) has
//! nothing to say about the coordinator's exposition with two filesystems, nodes in several
//! states and events present; the counters are counters, in bytes. A real Prometheus scrapes
//! a running coordinator and two agents (their endpoints on, InfiniBand on their nodes) and
//! answers every expression of the three Grafana dashboards with data. The agent's own
//! exposition is checked with promtool in `agent/tests/metrics_sim.rs`.
#![allow(
    clippy::disallowed_methods,
    reason = "the test runs the coordinator, agents and promtool as processes"
)]

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use lfleet_harness::{Cluster, lfleet_json};
use lfleet_sim::Fault;

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
    let applied = cluster.apply_config_with(
        "two.toml",
        "\n[[filesystems]]\nname = \"scratch\"\nmgs_nids = \"10.0.1.5@tcp\"\nfsname = \"scratch\"\nmount_point = \"/scratch\"\n",
    );
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
    let (code, said) = lfleet_harness::promtool(text);
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
    let (code, said) = lfleet_harness::promtool("# TYPE x_total gauge\nx_total 1\n");
    assert_ne!(code, 0, "{said}");
}

/// A GET on loopback (HTTP/1.0: a large answer comes whole, never chunked): the body.
fn get(address: &str, path: &str) -> String {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    body(&text).to_owned()
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every `expr` of every panel of a Grafana dashboard, with its template variables matching
/// everything.
fn expressions(dashboard: &serde_json::Value) -> Vec<String> {
    dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().iter())
        .map(|t| {
            t["expr"]
                .as_str()
                .unwrap()
                .replace("\"$filesystem\"", "\".+\"")
                .replace("\"$instance\"", "\".+\"")
                .replace("\"$node\"", "\".+\"")
        })
        .collect()
}

/// How many times Prometheus scraped each target of `job` in the last minute, the fewest.
fn scrapes(prometheus: &str, job: &str) -> f64 {
    let answer = get(
        prometheus,
        &format!(
            "/api/v1/query?query={}",
            percent_encode(&format!("min(count_over_time(up{{job=\"{job}\"}}[1m]))"))
        ),
    );
    let value: serde_json::Value = serde_json::from_str(&answer).unwrap_or_default();
    value["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
}

#[test]
fn a_real_prometheus_answers_every_grafana_expression() {
    // Agents on nodes with an InfiniBand HCA, their endpoints on, scraped beside the
    // coordinator: the node dashboard reads the agents' metrics, the others the coordinator's.
    let mut spec = Cluster::node_spec();
    spec.ib_hcas = 1;
    let names = ["hpc-pg0-1".to_owned(), "hpc-pg0-2".to_owned()];
    let mut cluster = Cluster::start_nodes(tempfile::tempdir().unwrap(), &names, "", "", &spec);
    let agents: Vec<String> = names
        .iter()
        .map(|name| cluster.enable_agent_metrics(name))
        .collect();
    cluster.wait_until("2 healthy", Duration::from_secs(40), |nodes| {
        nodes.len() == 2 && nodes.iter().all(|n| n["health"] == "healthy")
    });
    // Something for every panel to show: a node failing.
    cluster.nodes[1]
        .sim
        .fault(&Fault::Import {
            mount: None,
            target: "OST0001".into(),
            state: "EVICTED".into(),
        })
        .unwrap();
    cluster.wait_unhealthy("hpc-pg0-2", Duration::from_secs(20));
    // And I/O on the other, in real time, while Prometheus scrapes.
    let _load = lfleet_harness::Owned(
        Command::new(lfleet_harness::binary("lfleet-sim"))
            .arg("load")
            .arg(cluster.nodes[0].sim.root())
            .args([
                "--write-mbps",
                "100",
                "--read-mbps",
                "50",
                "--seconds",
                "60",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("lfleet-sim load runs"),
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = cluster.dir.path().join("prometheus");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: lfleet-coordinator\n    static_configs:\n      - targets: ['{}']\n  - job_name: lfleet-agent\n    static_configs:\n      - targets: ['{}']\n",
            cluster.metrics,
            agents.join("', '")
        ),
    )
    .unwrap();
    let mut server = lfleet_harness::Owned(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus (Debian's package) runs"),
    );
    let address = format!("127.0.0.1:{port}");
    // Until it has scraped the coordinator and every agent a few times.
    let started = std::time::Instant::now();
    loop {
        if std::net::TcpStream::connect(&address).is_ok()
            && scrapes(&address, "lfleet-coordinator") >= 4.0
            && scrapes(&address, "lfleet-agent") >= 4.0
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "Prometheus never scraped"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let grafana = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../packaging/grafana");
    let mut checked = 0;
    let mut by_file = Vec::new();
    for file in ["fleet.json", "filesystems.json", "node.json"] {
        let before = checked;
        let dashboard: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(grafana.join(file)).unwrap()).unwrap();
        for expr in expressions(&dashboard) {
            let answer = get(
                &address,
                &format!("/api/v1/query?query={}", percent_encode(&expr)),
            );
            let value: serde_json::Value = serde_json::from_str(&answer)
                .unwrap_or_else(|e| panic!("{file}: {expr}: {e}: {answer}"));
            assert_eq!(value["status"], "success", "{file}: {expr}: {answer}");
            let result = value["data"]["result"].as_array().unwrap();
            assert!(
                !result.is_empty(),
                "{file}: {expr} returned no data: {answer}"
            );
            checked += 1;
        }
        by_file.push((file, checked - before));
    }
    assert!(
        by_file.iter().all(|(_, n)| *n >= 5) && checked >= 40,
        "{by_file:?}"
    );
    // Every agent answered up = 1 for the whole run.
    let answer = get(
        &address,
        &format!(
            "/api/v1/query?query={}",
            percent_encode("min_over_time(up{job=\"lfleet-agent\"}[1m])")
        ),
    );
    let value: serde_json::Value = serde_json::from_str(&answer).unwrap();
    let ups: Vec<&str> = value["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["value"][1].as_str())
        .collect();
    assert_eq!(ups, ["1", "1"], "{answer}");
    server.stop();
}
