//! The coordinator under faults and load, all real processes: a frozen agent goes SILENT
//! and comes back; idle connections and stalled TLS handshakes cannot starve enrollment or
//! the admin socket; a crash between scontrol and the ledger leaves no orphan drain;
//! SIGTERM with 100 sessions ends the process within 5 s and everyone comes back; a flood of
//! telemetry subjects is capped and freed; Slurm's power states make nodes powered-down,
//! not silent; an edited coordinator.toml is reported, not applied silently.
#![allow(
    clippy::disallowed_methods,
    reason = "the test runs the coordinator, agents and Slurm as processes and reads /proc"
)]

use std::time::{Duration, Instant};

use lfleet_coordinator::pki::node_csr;
use lfleet_harness::slurm::Slurm;
use lfleet_harness::{Cluster, lfleet_json, now_ms, rss_kib, tls_channel};
use lfleet_proto::v1;
use lfleet_proto::v1::agent_service_client::AgentServiceClient;
use lfleet_sim::Fault;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::sync::mpsc;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

fn signal(pid: u32, signal: Signal) {
    kill(Pid::from_raw(pid as i32), signal).unwrap();
}

fn node_json(cluster: &Cluster, name: &str) -> serde_json::Value {
    lfleet_json(&cluster.lfleet(&["nodes", "--json"]))
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("{name} listed"))
}

fn events(cluster: &Cluster) -> Vec<serde_json::Value> {
    lfleet_json(&cluster.lfleet(&["events", "--json", "--minutes", "60"]))
        .as_array()
        .unwrap()
        .clone()
}

fn ca_and_token(cluster: &Cluster) -> (String, String) {
    (
        std::fs::read_to_string(cluster.dir.path().join("data/ca.pem")).unwrap(),
        std::fs::read_to_string(cluster.dir.path().join("token"))
            .unwrap()
            .trim()
            .to_owned(),
    )
}

/// Enrolls `name`; (certificate, key).
async fn enroll(address: &str, ca: &str, token: &str, name: &str) -> (String, String) {
    let (key, csr) = node_csr(&name.parse().unwrap()).unwrap();
    let cert = AgentServiceClient::new(tls_channel(address, ca, None).await.unwrap())
        .enroll(v1::EnrollRequest {
            join_token: token.to_owned(),
            node_name: name.to_owned(),
            csr_pem: csr,
            vm_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .certificate_pem;
    (cert, key)
}

fn passing_status(seq: u64) -> v1::AgentMessage {
    v1::AgentMessage {
        seq,
        body: Some(v1::agent_message::Body::Status(v1::StatusReport {
            applied_generation: 1,
            reconcile_status: v1::ReconcileStatus::Idle as i32,
            conditions: vec![v1::Condition {
                check: "mount.present".into(),
                subject: "/lustre".into(),
                outcome: v1::Outcome::Pass as i32,
                ..Default::default()
            }],
            items: Vec::new(),
            events: Vec::new(),
            ..Default::default()
        })),
    }
}

/// A minimal agent inside the test: a session that says Hello and reports every 500 ms,
/// and reconnects (every 200 ms, for at most `give_up`) whenever its stream ends.
fn light_agent(address: String, ca: String, name: String, cert: String, key: String) {
    tokio::spawn(async move {
        let give_up = Instant::now() + Duration::from_secs(120);
        while Instant::now() < give_up {
            let (tx, rx) = mpsc::channel(8);
            let _ = tx
                .send(v1::AgentMessage {
                    seq: 0,
                    body: Some(v1::agent_message::Body::Hello(v1::Hello {
                        node_name: name.clone(),
                        ..v1::Hello::default()
                    })),
                })
                .await;
            let connected = Endpoint::from_shared(format!("https://{address}"))
                .unwrap()
                .tls_config(
                    ClientTlsConfig::new()
                        .ca_certificate(Certificate::from_pem(&ca))
                        .identity(Identity::from_pem(&cert, &key)),
                )
                .unwrap()
                .connect_timeout(Duration::from_secs(2))
                .connect()
                .await;
            if let Ok(channel) = connected
                && let Ok(response) = AgentServiceClient::new(channel)
                    .session(tokio_stream::wrappers::ReceiverStream::new(rx))
                    .await
            {
                let mut inbound = response.into_inner();
                let mut seq = 1;
                loop {
                    tokio::select! {
                        message = inbound.message() => {
                            if !matches!(message, Ok(Some(_))) {
                                break;
                            }
                        }
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {
                            seq += 1;
                            if tx.send(passing_status(seq)).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
}

#[test]
fn a_frozen_agent_goes_silent_unmounted_and_unknown_then_returns() {
    let names: Vec<String> = ["n1", "n2"].iter().map(|n| n.to_string()).collect();
    let cluster = Cluster::start_configured(
        tempfile::tempdir().unwrap(),
        &names,
        "silence_seconds = 3\nkeepalive_seconds = 1\n",
        "",
    );
    cluster.wait_until("2 healthy", Duration::from_secs(30), |nodes| {
        nodes.len() == 2 && nodes.iter().all(|n| n["health"] == "healthy")
    });
    let pid = cluster.nodes[1].process.0.id();
    signal(pid, Signal::SIGSTOP);
    let frozen = Instant::now();
    let took = cluster.wait_until("n2 silent", Duration::from_secs(10), |nodes| {
        nodes
            .iter()
            .any(|n| n["name"] == "n2" && n["health"] == "silent")
    });
    println!("n2 silent {took:?} after SIGSTOP (silence 3 s + keepalive 1 s)");
    assert!(
        frozen.elapsed() <= Duration::from_secs(3 + 1 + 2),
        "{:?}",
        frozen.elapsed()
    );
    let n2 = node_json(&cluster, "n2");
    assert!(n2["mounts"][0]["read_bytes_per_second"].is_null(), "{n2:#}");
    assert!(
        n2["mounts"][0]["write_bytes_per_second"].is_null(),
        "{n2:#}"
    );
    assert_eq!(n2["mounts"][0]["mounted"], false, "{n2:#}");
    let fs = lfleet_json(&cluster.lfleet(&["fs", "--json"]));
    assert_eq!(fs[0]["clients_mounted"], 1, "{fs:#}");
    signal(pid, Signal::SIGCONT);
    cluster.wait_until("n2 healthy again", Duration::from_secs(20), |nodes| {
        nodes.iter().all(|n| n["health"] == "healthy")
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_and_stalled_handshakes_do_not_starve_anyone() {
    // This test holds thousands of sockets.
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    let mut cluster = Cluster::start_configured(
        tempfile::tempdir().unwrap(),
        &["n1".to_string(), "n2".to_string()],
        "tls_handshake_seconds = 10\n",
        "",
    );
    // The coordinator under an open-file limit of 4096.
    cluster.restart_coordinator_under(&["prlimit", "--nofile=4096:4096", "--"]);
    cluster.wait_until("2 healthy", Duration::from_secs(40), |nodes| {
        nodes.len() == 2 && nodes.iter().all(|n| n["health"] == "healthy")
    });
    let pid = cluster.coordinator_pid();
    let rss_before = rss_kib(pid);
    let address: std::net::SocketAddr = cluster.address.parse().unwrap();
    // 5,000 idle TCP connections from one source, 500 stalled TLS handshakes from another.
    let mut held = Vec::new();
    let mut refused_connects = 0;
    for (source, count, hello) in [("127.0.0.2", 5000, false), ("127.0.0.3", 500, true)] {
        for _ in 0..count {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
            match tokio::time::timeout(Duration::from_secs(2), socket.connect(address)).await {
                Ok(Ok(mut stream)) => {
                    if hello {
                        use tokio::io::AsyncWriteExt;
                        // The first bytes of a TLS ClientHello record, then nothing.
                        let _ = stream
                            .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
                            .await;
                    }
                    held.push(stream);
                }
                _ => refused_connects += 1,
            }
        }
    }
    println!(
        "opened {} connections ({refused_connects} not connected)",
        held.len()
    );
    let (ca, token) = ca_and_token(&cluster);
    let since = now_ms();
    // Throughout: a new node enrolls, `lfleet nodes` answers, existing agents report.
    for round in 0..3 {
        let started = Instant::now();
        let (cert, _) = enroll(&cluster.address, &ca, &token, &format!("new-{round}")).await;
        assert!(!cert.is_empty());
        let enrolled = started.elapsed();
        let started = Instant::now();
        let listed = cluster.lfleet(&["nodes", "--json"]);
        let answered = started.elapsed();
        assert!(listed.status.success(), "{listed:?}");
        println!("round {round}: enrolled in {enrolled:?}, lfleet nodes in {answered:?}");
        assert!(enrolled < Duration::from_secs(2) && answered < Duration::from_secs(2));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    for name in ["n1", "n2"] {
        let seen = node_json(&cluster, name)["last_seen_unix_ms"]
            .as_i64()
            .unwrap();
        assert!(seen > since, "{name} kept reporting");
    }
    let rss_during = rss_kib(pid);
    println!("coordinator RSS {rss_before} KiB before, {rss_during} KiB with the flood held");
    assert!(
        rss_during < rss_before + 256 * 1024,
        "RSS grew by more than 256 MiB"
    );
    let scrape = cluster.scrape();
    let refused: f64 = scrape
        .lines()
        .find_map(|l| l.strip_prefix("lfleet_connections_refused_total "))
        .unwrap()
        .parse()
        .unwrap();
    println!("refused by the caps: {refused}");
    assert!(refused >= 5000.0 - 64.0 + 500.0 - 64.0, "{refused}");
    drop(held);
}

#[test]
fn a_crash_between_scontrol_and_the_ledger_leaves_no_orphan_drain() {
    const NODES: [&str; 3] = ["n1", "n2", "n3"];
    let dir = tempfile::tempdir().unwrap();
    let slurm = Slurm::start(dir.path(), &NODES);
    // scontrol that drains, then takes its time answering.
    let wrapper = dir.path().join("slow-scontrol");
    std::fs::write(
        &wrapper,
        "#!/bin/sh\nscontrol \"$@\"\nstatus=$?\ncase \"$*\" in *State=DRAIN*) sleep 15;; esac\nexit $status\n",
    )
    .unwrap();
    std::process::Command::new("chmod")
        .args(["755", wrapper.to_str().unwrap()])
        .status()
        .unwrap();
    let extra = format!(
        "\n[slurm]\nenabled = true\nscontrol = \"{}\"\nslurm_conf = \"{}\"\ntimeout_seconds = 30\n\n[policy]\ninterval_seconds = 0.3\ngrace_seconds = 1\nundrain_after_seconds = 2\nincident_share = 0.9\nmax_drained_share = 0.5\n",
        wrapper.display(),
        slurm.conf.display()
    );
    let names: Vec<String> = NODES.iter().map(|n| n.to_string()).collect();
    let mut cluster = Cluster::start_with(dir, &names, &extra);
    cluster.wait_until("3 healthy", Duration::from_secs(40), |nodes| {
        nodes.len() == 3 && nodes.iter().all(|n| n["health"] == "healthy")
    });
    cluster.nodes[0]
        .sim
        .fault(&Fault::Import {
            mount: None,
            target: "OST0001".into(),
            state: "DISCONN".into(),
        })
        .unwrap();
    // The moment Slurm shows the drain, the coordinator is still waiting on scontrol: kill it.
    let started = Instant::now();
    loop {
        let (state, _) = slurm.node("n1");
        if state.contains("DRAIN") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no drain: {state}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    signal(cluster.coordinator_pid(), Signal::SIGKILL);
    let (_, reason) = slurm.node("n1");
    assert!(reason.starts_with("lfleet:"), "{reason}");
    cluster.restart_coordinator();
    cluster.nodes[0].sim.heal(None).unwrap();
    let started = Instant::now();
    loop {
        let (state, reason) = slurm.node("n1");
        if state == "IDLE" && reason.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "not undrained: {state} {reason}\n{:#?}",
            events(&cluster)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let ledger = lfleet_json(&cluster.lfleet(&["drains", "--json"]));
    let ours: Vec<&serde_json::Value> = ledger
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["by_lfleet"] == true)
        .collect();
    assert_eq!(ours.len(), 1, "{ledger:#}");
    assert_eq!(ours[0]["status"], "undrained", "{ledger:#}");
    assert!(
        events(&cluster)
            .iter()
            .any(|e| e["kind"] == "drain-recovered" && e["node"] == "n1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_100_sessions_exits_within_5_s_and_everyone_comes_back() {
    let names: Vec<String> = ["real-1", "real-2"].iter().map(|n| n.to_string()).collect();
    let mut cluster = Cluster::start_configured(
        tempfile::tempdir().unwrap(),
        &names,
        "max_connections_per_address = 1000\n",
        "",
    );
    cluster.wait_until("2 healthy", Duration::from_secs(30), |nodes| {
        nodes.len() == 2 && nodes.iter().all(|n| n["health"] == "healthy")
    });
    let (ca, token) = ca_and_token(&cluster);
    for i in 0..98 {
        let name = format!("light-{i}");
        let (cert, key) = enroll(&cluster.address, &ca, &token, &name).await;
        light_agent(cluster.address.clone(), ca.clone(), name, cert, key);
    }
    cluster.wait_until("100 sessions", Duration::from_secs(60), |nodes| {
        nodes.len() == 100 && nodes.iter().all(|n| n["connected"] == true)
    });
    let files = |cluster: &Cluster| -> Vec<Vec<u8>> {
        cluster
            .nodes
            .iter()
            .flat_map(|n| {
                ["etc/fstab", "proc/self/mountinfo"]
                    .map(|f| std::fs::read(n.sim.root().join(f)).unwrap())
            })
            .collect()
    };
    let before = files(&cluster);
    let pid = cluster.coordinator_pid();
    signal(pid, Signal::SIGTERM);
    let started = Instant::now();
    let exited = loop {
        if let Ok(Some(status)) = cluster.coordinator.as_mut().unwrap().0.try_wait() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "still running 5 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    println!("exited {exited:?} {:?} after SIGTERM", started.elapsed());
    assert!(exited.success(), "{exited:?}");
    let restarted = now_ms();
    cluster.restart_coordinator();
    cluster.wait_until(
        "all 100 report to the restarted coordinator",
        Duration::from_secs(60),
        |nodes| {
            nodes.len() == 100
                && nodes.iter().all(|n| {
                    n["connected"] == true && n["last_seen_unix_ms"].as_i64().unwrap() > restarted
                })
        },
    );
    assert_eq!(files(&cluster), before, "no mount or fstab byte changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_telemetry_subjects_is_capped_counted_and_freed() {
    let cluster = Cluster::start(1);
    cluster.wait_until("1 healthy", Duration::from_secs(30), |nodes| {
        nodes.len() == 1 && nodes[0]["health"] == "healthy"
    });
    let (ca, token) = ca_and_token(&cluster);
    let (cert, key) = enroll(&cluster.address, &ca, &token, "flood").await;
    let (tx, rx) = mpsc::channel(4);
    tx.send(v1::AgentMessage {
        seq: 0,
        body: Some(v1::agent_message::Body::Hello(v1::Hello {
            node_name: "flood".into(),
            ..v1::Hello::default()
        })),
    })
    .await
    .unwrap();
    let channel = tls_channel(&cluster.address, &ca, Some(Identity::from_pem(&cert, &key)))
        .await
        .unwrap();
    let _inbound = AgentServiceClient::new(channel)
        .max_encoding_message_size(lfleet_proto::MAX_MESSAGE_BYTES)
        .session(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap();
    let pid = cluster.coordinator_pid();
    let rss_before = rss_kib(pid);
    // 1,000,000 distinct subjects in 100 batches of 10,000.
    for batch in 0..100u64 {
        let samples = (0..10_000u64)
            .map(|i| v1::Sample {
                seq: batch * 10_000 + i,
                at_unix_ms: now_ms(),
                metric: "llite.write_bytes_per_s".into(),
                labels: vec![v1::Label {
                    key: "subject".into(),
                    value: format!("/lustre-{batch}-{i}"),
                }],
                value: Some(v1::sample::Value::Gauge(1.0)),
                ..Default::default()
            })
            .collect();
        tx.send(v1::AgentMessage {
            seq: batch + 1,
            body: Some(v1::agent_message::Body::Telemetry(v1::TelemetryBatch {
                first_seq: batch * 10_000,
                dropped_samples: 0,
                samples,
            })),
        })
        .await
        .unwrap();
    }
    // Until the coordinator took them all.
    let started = Instant::now();
    let dropped = loop {
        let dropped: f64 = cluster
            .scrape()
            .lines()
            .find_map(|l| l.strip_prefix("lfleet_telemetry_samples_dropped_total "))
            .unwrap()
            .parse()
            .unwrap();
        if dropped >= 999_000.0 || started.elapsed() > Duration::from_secs(60) {
            break dropped;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let rss_flooded = rss_kib(pid);
    drop(tx);
    let removed = cluster.lfleet(&["node", "remove", "flood"]);
    assert!(removed.status.success(), "{removed:?}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_removed = rss_kib(pid);
    println!(
        "RSS {rss_before} KiB before, {rss_flooded} KiB after 1,000,000 subjects ({dropped} dropped), {rss_removed} KiB after the node was removed"
    );
    assert_eq!(
        dropped,
        1_000_000.0 - 64.0,
        "all but the 64 kept were dropped and counted"
    );
    assert!(
        rss_flooded < rss_before + 64 * 1024,
        "RSS grew by more than 64 MiB"
    );
    assert!(
        !lfleet_json(&cluster.lfleet(&["nodes", "--json"]))
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["name"] == "flood"),
        "the node's state is gone"
    );
}

#[test]
fn a_node_slurm_powers_down_is_powered_down_not_silent_and_rejoins() {
    const NODES: [&str; 3] = ["n1", "n2", "n3"];
    let dir = tempfile::tempdir().unwrap();
    let mut slurm = Slurm::start_with(
        dir.path(),
        &NODES,
        "SuspendProgram=/bin/true\nResumeProgram=/bin/true\nSuspendTime=3600\nSuspendTimeout=5\nResumeTimeout=60\n",
    );
    let extra = format!(
        "\n[slurm]\nenabled = true\nslurm_conf = \"{}\"\ntimeout_seconds = 5\n\n[policy]\ninterval_seconds = 0.3\ngrace_seconds = 1\nincident_share = 0.5\n",
        slurm.conf.display()
    );
    let names: Vec<String> = NODES.iter().map(|n| n.to_string()).collect();
    let mut cluster = Cluster::start_configured(dir, &names, "silence_seconds = 3\n", &extra);
    cluster.wait_until("3 healthy", Duration::from_secs(40), |nodes| {
        nodes.len() == 3 && nodes.iter().all(|n| n["health"] == "healthy")
    });
    // Slurm powers n2 down, and the VM (its agent) goes away.
    let powered = slurm.scontrol(&["update", "NodeName=n2", "State=POWER_DOWN"]);
    assert!(powered.status.success(), "{powered:?}");
    cluster.nodes[1].process.stop();
    let took = cluster.wait_until("n2 powered-down", Duration::from_secs(10), |nodes| {
        nodes
            .iter()
            .any(|n| n["name"] == "n2" && n["health"] == "powered-down")
    });
    println!("powered-down shown {took:?} after scontrol");
    assert!(took < Duration::from_secs(2), "{took:?}");
    // Long past the silence limit: still powered-down, not counted, no incident, no drain.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(node_json(&cluster, "n2")["health"], "powered-down");
    let fs = lfleet_json(&cluster.lfleet(&["fs", "--json"]));
    assert_eq!(fs[0]["clients_expected"], 2, "{fs:#}");
    assert_eq!(fs[0]["clients_mounted"], 2, "{fs:#}");
    let incidents = lfleet_json(&cluster.lfleet(&["incidents", "--json"]));
    assert!(incidents.as_array().unwrap().is_empty(), "{incidents:#}");
    let drains = lfleet_json(&cluster.lfleet(&["drains", "--json"]));
    assert!(
        !drains
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["by_lfleet"] == true),
        "{drains:#}"
    );
    assert!(
        cluster
            .scrape()
            .contains("lfleet_nodes{health=\"powered-down\"} 1")
    );
    // Powered up, the node boots (its agent starts) and rejoins.
    let up = slurm.scontrol(&["update", "NodeName=n2", "State=POWER_UP"]);
    assert!(up.status.success(), "{up:?}");
    slurm.restart_slurmd("n2");
    cluster.restart_agent("n2");
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        if node_json(&cluster, "n2")["health"] == "healthy" {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "n2 not healthy again: lfleet {} / Slurm {:?}",
        node_json(&cluster, "n2"),
        slurm.node("n2")
    );
}

#[test]
fn an_edited_coordinator_toml_changes_no_generation_and_says_what_differs() {
    let mut cluster = Cluster::start(1);
    cluster.wait_until("1 healthy", Duration::from_secs(30), |nodes| {
        nodes.len() == 1 && nodes[0]["health"] == "healthy"
    });
    let before = lfleet_json(&cluster.lfleet(&["config", "show", "--json"]));
    let edited = format!(
        "{}\n[[filesystems]]\nname = \"scratch\"\nmgs_nids = \"10.0.1.5@tcp\"\nfsname = \"scratch\"\nmount_point = \"/scratch\"\n",
        cluster.config_text.replace("# ", "#  ")
    );
    std::fs::write(cluster.dir.path().join("coordinator.toml"), &edited).unwrap();
    cluster.restart_coordinator();
    let after = lfleet_json(&cluster.lfleet(&["config", "show", "--json"]));
    assert_eq!(after["generation"], before["generation"], "{after:#}");
    assert_eq!(after["toml"], before["toml"]);
    let said: Vec<serde_json::Value> = events(&cluster)
        .into_iter()
        .filter(|e| e["kind"] == "config-file-differs")
        .collect();
    assert_eq!(said.len(), 1, "{said:#?}");
    let detail = said[0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("filesystem scratch added") && detail.contains("lfleet config apply"),
        "{detail}"
    );
    // A comment-only edit says nothing.
    std::fs::write(
        cluster.dir.path().join("coordinator.toml"),
        cluster.config_text.replace("# ", "#   "),
    )
    .unwrap();
    cluster.restart_coordinator();
    let said = events(&cluster)
        .into_iter()
        .filter(|e| e["kind"] == "config-file-differs")
        .count();
    assert_eq!(said, 1, "a comment-only edit is no difference");
}
