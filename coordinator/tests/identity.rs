//! Node identity and authority, attacked as a rogue would: a tonic client inside the test
//! that enrolls with the join token (which root on any compute node has) and then lies.
//! Real coordinator, real agents on sim nodes, and a real Slurm where a drain is involved.
//!
//! - A rogue claiming another node's Slurm name with a backdated failure drains nobody and
//!   spends no budget; a real fault on that node still drains it.
//! - A rogue enrolling under a bound name is refused (AlreadyExists); the real node keeps
//!   reporting; a security event names the attempt. After `lfleet node remove`, the old
//!   certificate is refused and a fresh enrollment under the name succeeds.
//! - Certificates of 20 s: an agent without its token file, after a token rotation, stays
//!   connected for 60 s, renewing over mTLS.
//! - `lfleet token rotate`: the old token is refused; enrolled nodes keep reporting.
//! - Forged event kinds are refused; oversized details capped; 10,000 events and 5,000
//!   wrong-token enrollments leave the CLI working, add no rows, and are counted.
//! - A lost store numbers generations above what agents accepted; a refusing node makes
//!   `config apply` exit 1 naming it.
//! - Mount points: nosuid, nodev, noexec accepted; roots outside the allowlist refused by the
//!   coordinator and by the agent when pushed raw; a symlinked mount point refused.
//! - `lfleet nodes | head -1` ends quietly; an ESC in node text is shown escaped.
#![allow(
    clippy::disallowed_methods,
    reason = "the test runs the coordinator, agents and Slurm as processes and reads their files"
)]

use std::time::{Duration, Instant};

use lfleet_coordinator::pki::node_csr;
use lfleet_harness::{Cluster, lfleet_binary, lfleet_json, now_ms, tls_channel};
use lfleet_proto::v1;
use lfleet_proto::v1::agent_service_client::AgentServiceClient;
use lfleet_sim::Fault;
use tokio::sync::mpsc;
use tonic::transport::Identity;

/// What a rogue needs: the coordinator's address, its CA and the join token.
struct Rogue {
    address: String,
    ca: String,
}

impl Rogue {
    fn of(cluster: &Cluster) -> Rogue {
        Rogue {
            address: cluster.address.clone(),
            ca: std::fs::read_to_string(cluster.dir.path().join("data/ca.pem")).unwrap(),
        }
    }

    /// Enrolls `name` with `token` and a new key: (certificate, key) or the refusal.
    async fn enroll(&self, name: &str, token: &str) -> Result<(String, String), tonic::Status> {
        let (key, csr) = node_csr(&name.parse().unwrap()).unwrap();
        let response =
            AgentServiceClient::new(tls_channel(&self.address, &self.ca, None).await.unwrap())
                .enroll(v1::EnrollRequest {
                    join_token: token.to_owned(),
                    node_name: name.to_owned(),
                    csr_pem: csr,
                    vm_id: String::new(),
                })
                .await?;
        Ok((response.into_inner().certificate_pem, key))
    }

    /// Opens a session with `hello`; returns the sender for later messages (the session
    /// lasts while it lives) or the refusal.
    async fn session(
        &self,
        cert: &str,
        key: &str,
        hello: v1::Hello,
    ) -> Result<
        (
            mpsc::Sender<v1::AgentMessage>,
            tonic::Streaming<v1::CoordinatorMessage>,
        ),
        tonic::Status,
    > {
        let (tx, rx) = mpsc::channel(16);
        tx.send(v1::AgentMessage {
            seq: 1,
            body: Some(v1::agent_message::Body::Hello(hello)),
        })
        .await
        .unwrap();
        let channel = tls_channel(&self.address, &self.ca, Some(Identity::from_pem(cert, key)))
            .await
            .unwrap();
        let inbound = AgentServiceClient::new(channel)
            .max_encoding_message_size(lfleet_proto::MAX_MESSAGE_BYTES)
            .session(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await?
            .into_inner();
        Ok((tx, inbound))
    }
}

fn status(conditions: Vec<v1::Condition>, events: Vec<v1::Event>) -> v1::AgentMessage {
    v1::AgentMessage {
        seq: 2,
        body: Some(v1::agent_message::Body::Status(v1::StatusReport {
            applied_generation: 1,
            reconcile_status: v1::ReconcileStatus::Idle as i32,
            conditions,
            items: Vec::new(),
            events,
            ..Default::default()
        })),
    }
}

fn failing_import(detail: &str) -> v1::Condition {
    v1::Condition {
        check: "lustre.imports".into(),
        subject: "/lustre".into(),
        outcome: v1::Outcome::Fail as i32,
        code: "import-not-full".into(),
        detail: detail.into(),
        since_unix_ms: 0,
        observed_unix_ms: 0,
    }
}

fn token(cluster: &Cluster) -> String {
    std::fs::read_to_string(cluster.dir.path().join("token"))
        .unwrap()
        .trim()
        .to_owned()
}

fn events(cluster: &Cluster) -> Vec<serde_json::Value> {
    lfleet_json(&cluster.lfleet(&["events", "--json", "--minutes", "60"]))
        .as_array()
        .unwrap()
        .clone()
}

fn last_seen(cluster: &Cluster, name: &str) -> i64 {
    let nodes = lfleet_json(&cluster.lfleet(&["nodes", "--json"]));
    nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .unwrap_or_else(|| panic!("{name} is listed: {nodes:#}"))["last_seen_unix_ms"]
        .as_i64()
        .unwrap()
}

/// Waits until `name` reported after `since`.
fn reports_after(cluster: &Cluster, name: &str, since: i64, limit: Duration) {
    let started = Instant::now();
    while started.elapsed() < limit {
        if last_seen(cluster, name) > since {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{name} did not report after the attempt");
}

fn scrape_value(cluster: &Cluster, metric: &str) -> f64 {
    cluster
        .scrape()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{metric} ")))
        .unwrap_or_else(|| panic!("{metric} in /metrics"))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rogue_cannot_drain_another_node_or_spend_the_budget() {
    const NODES: [&str; 3] = ["n1", "n2", "n3"];
    // One drain at most (a third of four nodes), a short grace; incidents need most nodes.
    let (cluster, slurm) = Cluster::with_slurm(
        &NODES,
        "",
        "grace_seconds = 2\nundrain_after_seconds = 600\nmax_drained_share = 0.34\nincident_share = 0.9",
    );
    let rogue = Rogue::of(&cluster);
    let (cert, key) = rogue.enroll("rogue1", &token(&cluster)).await.unwrap();
    let (tx, _inbound) = rogue
        .session(
            &cert,
            &key,
            v1::Hello {
                node_name: "rogue1".into(),
                slurm_node_name: "n2".into(),
                role: v1::NodeRole::Compute as i32,
                ..v1::Hello::default()
            },
        )
        .await
        .unwrap();
    tx.send(status(
        vec![failing_import("spoofed by rogue1")],
        Vec::new(),
    ))
    .await
    .unwrap();
    // Well past grace: n2 is untouched, and the coordinator says it is rogue1's own failure
    // on a node Slurm does not have.
    std::thread::sleep(Duration::from_secs(5));
    let (state, reason) = slurm.node("n2");
    assert_eq!(
        (state.as_str(), reason.as_str()),
        ("IDLE", ""),
        "n2 untouched"
    );
    let rogue_node = lfleet_json(&cluster.lfleet(&["node", "rogue1", "--json"]));
    assert_eq!(rogue_node["slurm_node_name"], "rogue1", "{rogue_node:#}");
    // A real fault on n1 drains n1 within grace + 2 s: the budget was not spent.
    cluster.nodes[0]
        .sim
        .fault(&Fault::Import {
            mount: None,
            target: "OST0001".into(),
            state: "DISCONN".into(),
        })
        .unwrap();
    let fault = Instant::now();
    loop {
        let (state, reason) = slurm.node("n1");
        if state.contains("DRAIN") {
            assert!(reason.starts_with("lfleet: import-not-full"), "{reason}");
            break;
        }
        assert!(
            fault.elapsed() < Duration::from_secs(2 + 2 + 3),
            "n1 not drained within grace + 2 s (+ the agent's check interval): {state} {reason}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let ledger = lfleet_json(&cluster.lfleet(&["drains", "--json"]));
    let ours: Vec<&serde_json::Value> = ledger
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["by_lfleet"] == true)
        .collect();
    assert_eq!(ours.len(), 1, "{ledger:#}");
    assert_eq!(ours[0]["node"], "n1");
    for name in ["n2", "n3"] {
        assert_eq!(slurm.node(name).0, "IDLE", "{name}");
    }
    drop(tx);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_name_cannot_be_taken_and_a_removed_node_is_refused() {
    let cluster = Cluster::start(1);
    let name = "hpc-pg0-1";
    cluster.wait_until("the node is healthy", Duration::from_secs(30), |nodes| {
        nodes.len() == 1 && nodes[0]["health"] == "healthy"
    });
    let rogue = Rogue::of(&cluster);
    let since = now_ms();
    let refused = rogue.enroll(name, &token(&cluster)).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::AlreadyExists, "{refused:?}");
    reports_after(&cluster, name, since, Duration::from_secs(15));
    let security: Vec<serde_json::Value> = events(&cluster)
        .into_iter()
        .filter(|e| e["source"] == "security" && e["node"] == name)
        .collect();
    assert!(
        security.iter().any(|e| e["kind"] == "enroll-refused"
            && e["detail"].as_str().unwrap().contains("another key")),
        "{security:#?}"
    );
    let node = lfleet_json(&cluster.lfleet(&["nodes", "--json"]));
    assert_eq!(node[0]["connected"], true, "{node:#}");

    // Removed: the real node's certificate is refused; a fresh enrollment binds the name.
    let tls = cluster.nodes[0].sim.root().join("var/lib/lfleet/tls");
    let (old_cert, old_key) = (
        std::fs::read_to_string(tls.join("node.pem")).unwrap(),
        std::fs::read_to_string(tls.join("node.key")).unwrap(),
    );
    let removed = cluster.lfleet(&["node", "remove", name]);
    assert!(removed.status.success(), "{removed:?}");
    let refused = rogue
        .session(
            &old_cert,
            &old_key,
            v1::Hello {
                node_name: name.into(),
                ..v1::Hello::default()
            },
        )
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    assert!(refused.message().contains("removed"), "{refused:?}");
    let (cert, key) = rogue.enroll(name, &token(&cluster)).await.unwrap();
    let (_tx, _inbound) = rogue
        .session(
            &cert,
            &key,
            v1::Hello {
                node_name: name.into(),
                ..v1::Hello::default()
            },
        )
        .await
        .unwrap();
    let certs = lfleet_json(&cluster.lfleet(&["certs", "--json"]));
    assert!(
        certs
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == name && c["state"] == "valid"),
        "{certs:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_of_20_s_are_renewed_over_the_session_without_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start_with(dir, &[], "");
    // Certificates of 20 s, set before the node enrolls.
    let config = cluster.config_text.replace(
        "agent_certificate_hours = 24",
        "agent_certificate_hours = 24\nagent_certificate_seconds = 20",
    );
    std::fs::write(cluster.dir.path().join("coordinator.toml"), &config).unwrap();
    cluster.restart_coordinator();
    cluster.add_agent("hpc-pg0-1");
    cluster.wait_until("the node is healthy", Duration::from_secs(30), |nodes| {
        nodes.len() == 1 && nodes[0]["health"] == "healthy"
    });
    std::fs::remove_file(cluster.nodes[0].sim.root().join("etc/lfleet/join-token")).unwrap();
    let rotated = cluster.lfleet(&["token", "rotate"]);
    assert!(rotated.status.success(), "{rotated:?}");
    let started = Instant::now();
    let mut seen = last_seen(&cluster, "hpc-pg0-1");
    while started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_secs(3));
        let nodes = lfleet_json(&cluster.lfleet(&["nodes", "--json"]));
        let node = &nodes[0];
        assert_eq!(
            node["connected"],
            true,
            "dropped after {:?}: {node:#}",
            started.elapsed()
        );
        let now_seen = node["last_seen_unix_ms"].as_i64().unwrap();
        assert!(
            now_seen > seen,
            "no report in 3 s at {:?}",
            started.elapsed()
        );
        seen = now_seen;
    }
    let renewed = events(&cluster)
        .iter()
        .filter(|e| e["kind"] == "certificate-renewed" && e["node"] == "hpc-pg0-1")
        .count();
    assert!(
        renewed >= 4,
        "60 s of 20 s certificates renew at least 4 times: {renewed}"
    );
    assert!(
        !events(&cluster)
            .iter()
            .any(|e| e["kind"] == "disconnected" && e["node"] == "hpc-pg0-1"),
        "never dropped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_token_refuses_new_enrollments_with_the_old_one_and_keeps_nodes() {
    let cluster = Cluster::start(2);
    cluster.wait_until("2 healthy nodes", Duration::from_secs(30), |nodes| {
        nodes.len() == 2 && nodes.iter().all(|n| n["health"] == "healthy")
    });
    let old = token(&cluster);
    let rotated = cluster.lfleet(&["token", "rotate", "--json", "--expires", "1d"]);
    let new = lfleet_json(&rotated)["token"].as_str().unwrap().to_owned();
    assert_ne!(old, new);
    assert_eq!(token(&cluster), new, "the token file holds the new token");
    let since = now_ms();
    let rogue = Rogue::of(&cluster);
    let refused = rogue.enroll("new-node", &old).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    rogue.enroll("new-node", &new).await.unwrap();
    for name in ["hpc-pg0-1", "hpc-pg0-2"] {
        reports_after(&cluster, name, since, Duration::from_secs(15));
    }
    assert!(
        events(&cluster)
            .iter()
            .any(|e| e["kind"] == "token-rotated" && e["source"] == "operator")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_events_are_refused_floods_are_bounded_and_wrong_tokens_only_counted() {
    let cluster = Cluster::start(1);
    cluster.wait_until("the node is healthy", Duration::from_secs(30), |nodes| {
        nodes.len() == 1 && nodes[0]["health"] == "healthy"
    });
    // An audit record to keep.
    assert!(cluster.lfleet(&["dry-run", "on"]).status.success());
    assert!(cluster.lfleet(&["dry-run", "off"]).status.success());
    let rogue = Rogue::of(&cluster);
    let (cert, key) = rogue.enroll("rogue1", &token(&cluster)).await.unwrap();
    let (tx, _inbound) = rogue
        .session(
            &cert,
            &key,
            v1::Hello {
                node_name: "rogue1".into(),
                ..v1::Hello::default()
            },
        )
        .await
        .unwrap();
    let event = |kind: &str, detail: String| v1::Event {
        kind: kind.into(),
        subject: "lustrefs-OST0001".into(),
        detail,
        at_unix_ms: 1,
    };
    tx.send(status(
        vec![failing_import("\u{1b}[2J\u{1b}[31mhacked")],
        vec![
            event("manual-undrain", "by alice".into()),
            event("drained", "fake".into()),
            event("evicted", "E".repeat(3 * 1024 * 1024)),
        ],
    ))
    .await
    .unwrap();
    // 10,000 events of the largest detail kept, in messages under the size limit.
    for _ in 0..4 {
        let events: Vec<v1::Event> = (0..2500)
            .map(|_| event("evicted", "D".repeat(1024)))
            .collect();
        tx.send(status(
            vec![failing_import("\u{1b}[2J\u{1b}[31mhacked")],
            events,
        ))
        .await
        .unwrap();
    }
    std::thread::sleep(Duration::from_secs(2));
    let all = events(&cluster);
    let from_rogue: Vec<&serde_json::Value> =
        all.iter().filter(|e| e["node"] == "rogue1").collect();
    assert!(
        !from_rogue
            .iter()
            .any(|e| e["kind"] == "manual-undrain" || e["kind"] == "drained"),
        "forged kinds stored: {from_rogue:#?}"
    );
    assert!(
        from_rogue
            .iter()
            .any(|e| e["kind"] == "report-refused" && e["source"] == "security")
    );
    let evicted: Vec<&&serde_json::Value> = from_rogue
        .iter()
        .filter(|e| e["kind"] == "evicted")
        .collect();
    assert!(
        !evicted.is_empty() && evicted.len() <= 100,
        "{}",
        evicted.len()
    );
    assert!(
        evicted
            .iter()
            .all(|e| e["detail"].as_str().unwrap().len() <= 1024)
    );
    assert!(scrape_value(&cluster, "lfleet_agent_events_dropped_total") >= 9_900.0);
    let detail = cluster.lfleet(&["node", "rogue1", "--json"]);
    assert!(detail.status.success(), "{detail:?}");
    // The rogue's ESC sequence is shown escaped, never raw.
    let shown = cluster.lfleet(&["node", "rogue1"]);
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        !shown.stdout.contains(&0x1b),
        "raw ESC on the terminal: {text}"
    );
    assert!(text.contains("\\u{1b}[2J"), "{text}");

    // 5,000 wrong-token enrollments: refused, counted, not stored.
    let rows_before = all.len();
    let (_, csr) = node_csr(&"flood".parse().unwrap()).unwrap();
    let anonymous = tls_channel(&rogue.address, &rogue.ca, None).await.unwrap();
    let mut pending = Vec::new();
    for i in 0..5000 {
        let mut client = AgentServiceClient::new(anonymous.clone());
        let csr = csr.clone();
        pending.push(tokio::spawn(async move {
            client
                .enroll(v1::EnrollRequest {
                    join_token: format!("wrong-{i}"),
                    node_name: "flood".into(),
                    csr_pem: csr,
                    vm_id: String::new(),
                })
                .await
                .unwrap_err()
                .code()
        }));
        if pending.len() == 100 {
            for task in pending.drain(..) {
                assert_eq!(task.await.unwrap(), tonic::Code::PermissionDenied);
            }
        }
    }
    for task in pending {
        assert_eq!(task.await.unwrap(), tonic::Code::PermissionDenied);
    }
    assert_eq!(
        scrape_value(&cluster, "lfleet_enroll_refused_total"),
        5000.0
    );
    let after = events(&cluster);
    assert!(
        !after.iter().any(|e| e["node"] == "flood"),
        "a wrong token stored a row"
    );
    assert!(
        after.len() <= rows_before + 20,
        "{} -> {}",
        rows_before,
        after.len()
    );
    assert!(
        after
            .iter()
            .filter(|e| e["kind"] == "dry-run" && e["source"] == "operator")
            .count()
            == 2,
        "the audit records are intact"
    );
    let listed = cluster.lfleet(&["events"]);
    assert!(listed.status.success(), "{listed:?}");
    drop(tx);
}

/// Writes `text` as a config file and applies it with `lfleet config apply`.
fn apply(cluster: &Cluster, text: &str) -> std::process::Output {
    let file = cluster.dir.path().join("apply.toml");
    std::fs::write(&file, text).unwrap();
    cluster.lfleet(&["config", "apply", file.to_str().unwrap(), "--wait", "10"])
}

fn with_filesystem(base: &str, name: &str, point: &str, options: &str) -> String {
    format!(
        "{base}\n[[filesystems]]\nname = \"{name}\"\nmgs_nids = \"10.0.1.5@tcp\"\nfsname = \"{name}\"\nmount_point = \"{point}\"\noptions = [{options}]\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_store_numbers_generations_above_what_agents_accepted() {
    let mut cluster = Cluster::start(2);
    cluster.wait_until("2 healthy nodes", Duration::from_secs(30), |nodes| {
        nodes.len() == 2 && nodes.iter().all(|n| n["health"] == "healthy")
    });
    let base = cluster.config_text.clone();
    for (fs, point) in [("scratch", "/scratch"), ("work", "/work")] {
        let text = with_filesystem(&base, fs, point, "");
        let applied = apply(&cluster, &text);
        assert!(applied.status.success(), "{applied:?}");
    }
    cluster.wait_until("both at generation 3", Duration::from_secs(20), |nodes| {
        nodes.iter().all(|n| n["applied_generation"] == 3)
    });
    // The store is lost; the coordinator starts from its file again.
    cluster.coordinator.as_mut().unwrap().stop();
    for file in ["coordinator.db", "coordinator.db-wal", "coordinator.db-shm"] {
        let _ = std::fs::remove_file(cluster.dir.path().join("data").join(file));
    }
    cluster.restart_coordinator();
    cluster.wait_until(
        "both nodes back, above generation 3",
        Duration::from_secs(40),
        |nodes| {
            nodes.len() == 2
                && nodes.iter().all(|n| {
                    n["applied_generation"].as_u64().unwrap() > 3
                        && n["applied_generation"] == n["desired_generation"]
                })
        },
    );
    let text = with_filesystem(&base, "projects", "/projects", "");
    let applied = apply(&cluster, &text);
    assert!(applied.status.success(), "{applied:?}");
    let said = String::from_utf8_lossy(&applied.stdout);
    assert!(said.contains("acked by 2 of 2"), "{said}");
    let generation: u64 = said
        .split_whitespace()
        .skip_while(|w| *w != "generation")
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!(generation > 4, "{said}");

    // A node whose own mount policy refuses the new filesystem makes the apply fail.
    let narrow = cluster.dir.path().join("hpc-pg0-2.toml");
    let local = std::fs::read_to_string(&narrow).unwrap();
    std::fs::write(
        &narrow,
        format!("{local}[mount_policy]\nallowed_roots = [\"/lustre\", \"/scratch\", \"/work\", \"/projects\"]\n"),
    )
    .unwrap();
    cluster.restart_agent("hpc-pg0-2");
    // The old process is gone when restart_agent returns; the new one has not connected yet.
    let restarted = now_ms();
    // Back means the new process said Hello: until the coordinator notices the old stream
    // ended, the old session still reads as connected, and a push to it is never answered.
    cluster.wait_until("hpc-pg0-2 back", Duration::from_secs(30), |nodes| {
        nodes.iter().all(|n| {
            n["connected"] == true
                && n["health"] == "healthy"
                && (n["name"] != "hpc-pg0-2"
                    || n["last_seen_unix_ms"].as_i64().unwrap() > restarted)
        })
    });
    let text = with_filesystem(&text, "data", "/data/x", "");
    let refused = apply(&cluster, &text);
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    let said = String::from_utf8_lossy(&refused.stdout);
    assert!(
        said.contains("refused by hpc-pg0-2: invalid-config") && said.contains("/data/x"),
        "{said}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mount_points_follow_the_allowlist_and_never_a_symlink() {
    let cluster = Cluster::start(1);
    cluster.wait_until("the node is healthy", Duration::from_secs(30), |nodes| {
        nodes.len() == 1 && nodes[0]["health"] == "healthy"
    });
    let base = cluster.config_text.clone();
    // nosuid, nodev, noexec are accepted and written.
    let text = with_filesystem(
        &base,
        "scratch",
        "/scratch",
        "\"nosuid\", \"nodev\", \"noexec\"",
    );
    let applied = apply(&cluster, &text);
    assert!(applied.status.success(), "{applied:?}");
    let fstab_path = cluster.nodes[0].sim.root().join("etc/fstab");
    let started = Instant::now();
    loop {
        let fstab = std::fs::read_to_string(&fstab_path).unwrap();
        if let Some(line) = fstab.lines().find(|l| l.contains(" /scratch ")) {
            assert!(
                line.contains("nosuid") && line.contains("nodev") && line.contains("noexec"),
                "{line}"
            );
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "{fstab}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Roots outside the allowlist: refused by the coordinator, nothing changes.
    for bad in [
        "/root",
        "/var/spool/cron/x",
        "/var/lib/dpkg/x",
        "/opt/cycle/x",
    ] {
        let refused = apply(&cluster, &with_filesystem(&text, "bad", bad, ""));
        assert_eq!(refused.status.code(), Some(1), "{bad}: {refused:?}");
        let said = String::from_utf8_lossy(&refused.stderr);
        assert!(said.contains("allowed root"), "{bad}: {said}");
    }
    // A mount point below a symlink on the node: refused by the agent, the node unchanged.
    let root = cluster.nodes[0].sim.root();
    std::fs::create_dir_all(root.join("srv-elsewhere")).unwrap();
    std::os::unix::fs::symlink(root.join("srv-elsewhere"), root.join("data")).unwrap();
    let fstab_before = std::fs::read(&fstab_path).unwrap();
    let mountinfo_before = std::fs::read(root.join("proc/self/mountinfo")).unwrap();
    let refused = apply(&cluster, &with_filesystem(&text, "data", "/data/fs", ""));
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    let said = String::from_utf8_lossy(&refused.stdout);
    assert!(said.contains("symbolic link /data"), "{said}");
    assert_eq!(std::fs::read(&fstab_path).unwrap(), fstab_before);
    assert_eq!(
        std::fs::read(root.join("proc/self/mountinfo")).unwrap(),
        mountinfo_before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_refuses_a_forbidden_root_pushed_raw_by_a_coordinator_that_skipped_its_check() {
    // A coordinator that checks nothing: a test gRPC server with its own CA, which signs
    // the agent's CSR and pushes /root.
    let dir = tempfile::tempdir().unwrap();
    let fake = fake_coordinator::start(dir.path()).await;
    let spec = lfleet_sim::NodeSpec::new(
        "ubuntu-22.04",
        "5.15.0-1075-azure",
        lfleet_sim::LustreVersion::V2_15,
    );
    let sim = lfleet_sim::SimNode::create(&dir.path().join("node"), &spec).unwrap();
    let etc = sim.root().join("etc/lfleet");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(etc.join("ca.pem"), &fake.ca_pem).unwrap();
    std::fs::write(etc.join("join-token"), "any-token-0123456789\n").unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "generation = 1\n[client]\nlustre_version = \"2.15.7-33-g79ddf99\"\n[coordinator]\nurl = \"https://{}\"\nca_file = \"/etc/lfleet/ca.pem\"\njoin_token_file = \"/etc/lfleet/join-token\"\nnode_name = \"fake-1\"\n",
            fake.address
        ),
    )
    .unwrap();
    let fstab_before = std::fs::read(sim.root().join("etc/fstab")).unwrap();
    let mut agent = lfleet_harness::Owned(
        std::process::Command::new(lfleet_harness::agent_binary())
            .args(["run", "--check-interval", "1s", "--root"])
            .arg(sim.root())
            .arg("--config")
            .arg(&config)
            .env(
                "PATH",
                format!(
                    "{}:/usr/sbin:/usr/bin:/sbin:/bin",
                    sim.root().join("bin").display()
                ),
            )
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let ack = tokio::time::timeout(Duration::from_secs(30), fake.acks.lock().await.recv())
        .await
        .expect("an ack within 30 s")
        .unwrap();
    agent.stop();
    assert!(!ack.accepted, "{ack:?}");
    assert_eq!(ack.error_class, "invalid-config", "{ack:?}");
    assert!(ack.message.contains("allowed root"), "{ack:?}");
    assert_eq!(
        std::fs::read(sim.root().join("etc/fstab")).unwrap(),
        fstab_before
    );
    assert!(
        !std::fs::read_to_string(sim.root().join("proc/self/mountinfo"))
            .unwrap()
            .contains(" /root "),
    );
}

#[test]
fn a_closed_pipe_ends_the_cli_quietly() {
    let cluster = Cluster::start(1);
    cluster.wait_until("1 node", Duration::from_secs(30), |nodes| nodes.len() == 1);
    // A configuration far larger than a pipe's buffer, so the reader is gone while lfleet
    // still writes: `lfleet config show | head -1`.
    let big = format!(
        "{}\n{}",
        cluster.config_text,
        "# padding to outgrow a pipe buffer\n".repeat(8_000)
    );
    let file = cluster.dir.path().join("big.toml");
    std::fs::write(&file, big).unwrap();
    let applied = cluster.lfleet(&["config", "apply", file.to_str().unwrap(), "--wait", "0"]);
    assert!(applied.status.success(), "{applied:?}");
    let piped = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "'{}' --socket '{}' config show | head -1; echo \"status=${{PIPESTATUS[0]}}\"",
            lfleet_binary().display(),
            cluster.socket().display()
        ))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&piped.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    let stdout = String::from_utf8_lossy(&piped.stdout);
    assert!(stdout.starts_with("# generation"), "{stdout}");
    assert!(stdout.trim_end().ends_with("status=0"), "{stdout}");
}

/// A stand-in coordinator that checks nothing: its own CA, Enroll signs anything, Session
/// pushes a desired config with a mount on /root and hands the agent's ack to the test.
mod fake_coordinator {
    use std::sync::Arc;

    use lfleet_proto::v1;
    use lfleet_proto::v1::agent_service_server::{AgentService, AgentServiceServer};
    use tokio::sync::{Mutex, mpsc};
    use tonic::transport::{Identity, Server, ServerTlsConfig};
    use tonic::{Request, Response, Status, Streaming};

    pub struct Fake {
        pub address: String,
        pub ca_pem: String,
        pub acks: Arc<Mutex<mpsc::Receiver<v1::Ack>>>,
    }

    struct Service {
        pki: Arc<lfleet_coordinator::pki::Pki>,
        acks: mpsc::Sender<v1::Ack>,
    }

    #[tonic::async_trait]
    impl AgentService for Service {
        async fn enroll(
            &self,
            request: Request<v1::EnrollRequest>,
        ) -> Result<Response<v1::EnrollResponse>, Status> {
            let request = request.into_inner();
            let (certificate_pem, not_after_unix) = self
                .pki
                .sign_node(&request.node_name.parse().unwrap(), &request.csr_pem, 3600)
                .unwrap();
            Ok(Response::new(v1::EnrollResponse {
                certificate_pem,
                ca_certificate_pem: self.pki.ca_pem.clone(),
                not_after_unix,
            }))
        }

        async fn renew(
            &self,
            _: Request<v1::RenewRequest>,
        ) -> Result<Response<v1::EnrollResponse>, Status> {
            Err(Status::unimplemented("not in this test"))
        }

        type SessionStream =
            tokio_stream::wrappers::ReceiverStream<Result<v1::CoordinatorMessage, Status>>;

        async fn session(
            &self,
            request: Request<Streaming<v1::AgentMessage>>,
        ) -> Result<Response<Self::SessionStream>, Status> {
            let mut inbound = request.into_inner();
            let (tx, rx) = mpsc::channel(4);
            let raw = v1::DesiredConfig {
                generation: 5,
                mounts: vec![v1::MountSpec {
                    mgs_nids: "10.0.1.4@tcp".into(),
                    fsname: "lustrefs".into(),
                    mount_point: "/root".into(),
                    options: Vec::new(),
                }],
                client: Some(v1::ClientPolicy {
                    lustre_version: "2.15.7-33-g79ddf99".into(),
                    dkms: v1::DkmsPolicy::Forbidden as i32,
                }),
                lnet: None,
            };
            tx.send(Ok(v1::CoordinatorMessage {
                body: Some(v1::coordinator_message::Body::Config(raw)),
            }))
            .await
            .unwrap();
            let acks = self.acks.clone();
            tokio::spawn(async move {
                while let Ok(Some(message)) = inbound.message().await {
                    if let Some(v1::agent_message::Body::Ack(ack)) = message.body {
                        let _ = acks.send(ack).await;
                    }
                }
                drop(tx);
            });
            Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(
                rx,
            )))
        }
    }

    pub async fn start(dir: &std::path::Path) -> Fake {
        let pki = Arc::new(
            lfleet_coordinator::pki::Pki::load_or_create(
                &dir.join("fake-ca"),
                &["127.0.0.1".to_owned(), "localhost".to_owned()],
            )
            .unwrap(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let (tx, rx) = mpsc::channel(4);
        let tls = ServerTlsConfig::new()
            .identity(Identity::from_pem(
                &pki.server_cert_pem,
                &pki.server_key_pem,
            ))
            .client_ca_root(tonic::transport::Certificate::from_pem(&pki.ca_pem))
            .client_auth_optional(true);
        let service = Service {
            pki: pki.clone(),
            acks: tx,
        };
        tokio::spawn(async move {
            Server::builder()
                .tls_config(tls)
                .unwrap()
                .add_service(AgentServiceServer::new(service))
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
                .await
        });
        Fake {
            address,
            ca_pem: pki.ca_pem.clone(),
            acks: Arc::new(Mutex::new(rx)),
        }
    }
}
