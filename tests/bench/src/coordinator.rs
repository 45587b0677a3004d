//! Section c: coordinator scale. N simulated agents, each enrolled with its own key and
//! certificate and holding its own TLS connection and session on loopback, report six
//! conditions once (one in a hundred failing), send telemetry every 10 s (their mount's
//! read and write rates and 20 OST samples) and ack every desired config. Measured: the
//! coordinator's RSS and CPU, the ingest rate, the time from `lfleet config apply` until
//! each agent acked, and the dashboard's fleet page at that scale in headless Chromium
//! (render time by the browser's own performance timing).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use lfleet_harness::Cluster;
use lfleet_harness::browser::Browser;
use lfleet_proto::v1;
use lfleet_proto::v1::agent_service_client::AgentServiceClient;
use tokio::sync::{Mutex, mpsc, watch};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::proc_stat::measure;
use crate::{Options, percentiles};

#[derive(Debug, Default)]
struct Stats {
    connected: AtomicUsize,
    sent: AtomicUsize,
    acked: AtomicUsize,
    failed: AtomicUsize,
    /// Connection attempts that failed and were tried again, as real agents do.
    retried: AtomicUsize,
}

/// Attempts per simulated agent before it counts as failed.
const ATTEMPTS: u32 = 6;

async fn channel(address: &str, ca: &str, identity: Option<Identity>) -> Result<Channel, String> {
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
    if let Some(identity) = identity {
        tls = tls.identity(identity);
    }
    Endpoint::from_shared(format!("https://{address}"))
        .map_err(|e| e.to_string())?
        .tls_config(tls)
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(30))
        .connect()
        .await
        .map_err(|e| e.to_string())
}

/// The first status report of a simulated node: six checks as a real agent reports them,
/// `lustre.imports` failing on one node in a hundred.
fn status(seq: u64, index: usize) -> v1::AgentMessage {
    let condition = |check: &str, subject: &str, fail: bool| v1::Condition {
        check: check.into(),
        subject: subject.into(),
        outcome: if fail {
            v1::Outcome::Fail
        } else {
            v1::Outcome::Pass
        } as i32,
        code: if fail {
            "import-not-full".into()
        } else {
            String::new()
        },
        detail: if fail {
            "lustrefs-OST0003 DISCONN".into()
        } else {
            String::new()
        },
        since_unix_ms: 0,
        observed_unix_ms: 0,
    };
    v1::AgentMessage {
        seq,
        body: Some(v1::agent_message::Body::Status(v1::StatusReport {
            applied_generation: 1,
            conditions: vec![
                condition("mount.present", "/lustre", false),
                condition("mount.responsive", "/lustre", false),
                condition("lustre.imports", "/lustre", index % 100 == 7),
                condition("lustre.lbug", "client", false),
                condition("lustre.client", "client", false),
                condition("lnet", "10.0.0.5@tcp", false),
            ],
            ..Default::default()
        })),
    }
}

/// A telemetry batch: the mount's read and write rates (kept an hour for the dashboard) and
/// 20 OST samples.
fn telemetry(seq: u64) -> v1::AgentMessage {
    let llite = [
        (lfleet_types::metric::LLITE_READ_BYTES_PER_S, 2.0e6),
        (lfleet_types::metric::LLITE_WRITE_BYTES_PER_S, 5.0e6),
    ]
    .map(|(metric, value)| v1::Sample {
        seq,
        at_unix_ms: 0,
        metric: metric.into(),
        labels: vec![v1::Label {
            key: "subject".into(),
            value: "/lustre".into(),
        }],
        value: Some(v1::sample::Value::Gauge(value)),
        reset: false,
        unavailable: false,
        unavailable_reason: String::new(),
    });
    let samples = llite
        .into_iter()
        .chain((0..20).map(|i| v1::Sample {
            seq,
            at_unix_ms: 0,
            metric: format!("osc.write_bytes_per_s.{i}"),
            labels: vec![v1::Label {
                key: "subject".into(),
                value: format!("/lustre OST{i:04x}"),
            }],
            value: Some(v1::sample::Value::Gauge(1.0e6)),
            reset: false,
            unavailable: false,
            unavailable_reason: String::new(),
        }))
        .collect();
    v1::AgentMessage {
        seq,
        body: Some(v1::agent_message::Body::Telemetry(v1::TelemetryBatch {
            first_seq: seq,
            dropped_samples: 0,
            samples,
        })),
    }
}

#[allow(
    clippy::too_many_arguments,
    reason = "one simulated agent's whole context"
)]
async fn agent(
    name: String,
    address: String,
    ca: String,
    identity: Identity,
    stats: Arc<Stats>,
    applied_at: watch::Receiver<Option<Instant>>,
    latencies: Arc<Mutex<Vec<Duration>>>,
    mut stop: watch::Receiver<bool>,
) {
    let index: usize = name
        .rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    // Connect and open the session like a real agent: a failed attempt (a handshake the
    // coordinator's deadline cut off in the start-up burst) is tried again after a
    // full-jitter backoff, at most ATTEMPTS times.
    let mut attempt = 0;
    let (tx, mut inbound) = loop {
        let (tx, rx) = mpsc::channel(16);
        let hello = v1::AgentMessage {
            seq: 1,
            body: Some(v1::agent_message::Body::Hello(v1::Hello {
                node_name: name.clone(),
                role: v1::NodeRole::Compute as i32,
                ..Default::default()
            })),
        };
        let _ = tx.send(hello).await;
        let _ = tx.send(status(2, index)).await;
        let opened = match channel(&address, &ca, Some(identity.clone())).await {
            Ok(channel) => AgentServiceClient::new(channel)
                .session(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await
                .map_err(|status| status.to_string()),
            Err(error) => Err(error),
        };
        match opened {
            Ok(response) => break (tx, response.into_inner()),
            Err(_) if attempt + 1 < ATTEMPTS => {
                attempt += 1;
                stats.retried.fetch_add(1, Ordering::SeqCst);
                let ceiling_ms = 1000u64 << attempt.min(5);
                tokio::time::sleep(Duration::from_millis(rand::random_range(0..ceiling_ms))).await;
            }
            Err(_) => {
                stats.failed.fetch_add(1, Ordering::SeqCst);
                return;
            }
        }
    };
    stats.connected.fetch_add(1, Ordering::SeqCst);
    // Spread the telemetry over the interval, as real agents started at different times are.
    let offset = Duration::from_millis(name.bytes().map(u64::from).sum::<u64>() * 37 % 10_000);
    let mut every = tokio::time::interval_at(
        tokio::time::Instant::now() + offset,
        Duration::from_secs(10),
    );
    let mut seq = 3;
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            message = inbound.message() => match message {
                Ok(Some(v1::CoordinatorMessage { body: Some(v1::coordinator_message::Body::Config(config)) })) => {
                    seq += 1;
                    let ack = v1::AgentMessage { seq, body: Some(v1::agent_message::Body::Ack(v1::Ack { generation: config.generation, accepted: true, ..Default::default() })) };
                    if tx.send(ack).await.is_err() { break; }
                    let applied = *applied_at.borrow();
                    if config.generation >= 2 && let Some(at) = applied {
                        latencies.lock().await.push(at.elapsed());
                        stats.acked.fetch_add(1, Ordering::SeqCst);
                    }
                }
                Ok(Some(_)) => {}
                _ => break,
            },
            _ = every.tick() => {
                seq += 1;
                if tx.send(telemetry(seq)).await.is_err() { break; }
                stats.sent.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

/// Loads the dashboard's fleet page in Chromium `loads` times: the browser's own timing of
/// each render (from navigation start to the first frame after every cell was drawn), and
/// the size of the heatmap's JSON.
fn fleet_page(cluster: &Cluster, loads: usize) -> serde_json::Value {
    let browser = Browser::start(
        &cluster.dir.path().join("browser"),
        &cluster.dir.path().join("data/ca.pem"),
        None,
    );
    let mut rendered = Vec::new();
    let mut last = serde_json::Value::Null;
    for _ in 0..loads {
        browser.goto(&cluster.dashboard);
        browser.wait_for(
            "the fleet page rendered",
            "return performance.getEntriesByName('lfleet-fleet-rendered').length > 0",
            Duration::from_secs(120),
        );
        last = browser.eval(
            "const api = performance.getEntriesByType('resource').find(r => r.name.endsWith('/api/fleet'));
             return {
               rendered_ms: performance.getEntriesByName('lfleet-fleet-rendered')[0].startTime,
               fleet_json_ms: api.responseEnd - api.startTime,
               fleet_json_bytes: api.encodedBodySize,
               cells: document.querySelectorAll('#heatmap .cell').length,
             };",
            serde_json::json!([]),
        );
        rendered.push(Duration::from_secs_f64(
            last["rendered_ms"].as_f64().unwrap_or(f64::NAN) / 1000.0,
        ));
    }
    serde_json::json!({
        "loads": loads,
        "render": percentiles(rendered),
        "last": last,
    })
}

fn one(n: usize, quick: bool) -> serde_json::Value {
    // Every simulated agent connects from 127.0.0.1: lift the per-address cap meant for real
    // nodes (one connection each), and open files for tens of thousands of connections.
    {
        use nix::sys::resource::{Resource, getrlimit, setrlimit};
        if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
    let cluster = Cluster::start_configured(
        tempfile::tempdir().expect("scratch"),
        &[],
        "max_connections = 100000\nmax_connections_per_address = 100000\n",
        "",
    );
    let ca = std::fs::read_to_string(cluster.dir.path().join("data/ca.pem")).expect("ca");
    let token = std::fs::read_to_string(cluster.dir.path().join("token"))
        .expect("token")
        .trim()
        .to_owned();
    let address = cluster.address.clone();
    let pid = cluster.coordinator_pid();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let stats = Arc::new(Stats::default());
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let (applied_tx, applied_rx) = watch::channel(None);
    let (stop_tx, stop_rx) = watch::channel(false);
    let started = Instant::now();
    // Enroll every simulated node (its own key and certificate).
    let identities: Vec<(String, Identity)> = runtime.block_on(async {
        let enroll =
            AgentServiceClient::new(channel(&address, &ca, None).await.expect("enroll channel"));
        let mut out = Vec::with_capacity(n);
        let mut pending = tokio::task::JoinSet::new();
        for i in 0..n {
            let name = format!("sim-{i:05}");
            let mut client = enroll.clone();
            let token = token.clone();
            pending.spawn(async move {
                let key = rcgen::KeyPair::generate().expect("key");
                let mut params =
                    rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
                params
                    .distinguished_name
                    .push(rcgen::DnType::CommonName, name.as_str());
                let csr = params
                    .serialize_request(&key)
                    .and_then(|c| c.pem())
                    .expect("csr");
                let cert = client
                    .enroll(v1::EnrollRequest {
                        join_token: token,
                        node_name: name.clone(),
                        csr_pem: csr,
                        ..Default::default()
                    })
                    .await
                    .expect("enroll")
                    .into_inner()
                    .certificate_pem;
                (name, Identity::from_pem(cert, key.serialize_pem()))
            });
            if pending.len() >= 64 {
                out.push(pending.join_next().await.expect("task").expect("join"));
            }
        }
        while let Some(done) = pending.join_next().await {
            out.push(done.expect("join"));
        }
        out
    });
    let enrolled = started.elapsed();
    for (name, identity) in identities {
        runtime.spawn(agent(
            name,
            address.clone(),
            ca.clone(),
            identity,
            stats.clone(),
            applied_rx.clone(),
            latencies.clone(),
            stop_rx.clone(),
        ));
    }
    let connect_started = Instant::now();
    while stats.connected.load(Ordering::SeqCst) + stats.failed.load(Ordering::SeqCst) < n
        && connect_started.elapsed() < Duration::from_secs(600)
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    let connected = stats.connected.load(Ordering::SeqCst);
    let connect_time = connect_started.elapsed();
    std::thread::sleep(Duration::from_secs(5));
    let window = Duration::from_secs(if quick { 20 } else { 60 });
    let sent_before = stats.sent.load(Ordering::SeqCst);
    let usage = measure(pid, window);
    let ingest = (stats.sent.load(Ordering::SeqCst) - sent_before) as f64 / window.as_secs_f64();
    // A config change, pushed to every node.
    let file = cluster.dir.path().join("new.toml");
    std::fs::write(
        &file,
        format!("{}\n[[filesystems]]\nname = \"scratch\"\nmgs_nids = \"10.0.1.5@tcp\"\nfsname = \"scratch\"\nmount_point = \"/scratch\"\n", cluster.config_text),
    )
    .expect("config");
    applied_tx.send_replace(Some(Instant::now()));
    let applied = cluster.lfleet(&[
        "config",
        "apply",
        file.to_str().unwrap_or(""),
        "--wait",
        "0",
    ]);
    assert!(applied.status.success(), "{applied:?}");
    let apply_started = Instant::now();
    while stats.acked.load(Ordering::SeqCst) < connected
        && apply_started.elapsed() < Duration::from_secs(300)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let acks = runtime.block_on(async { latencies.lock().await.clone() });
    let page = fleet_page(&cluster, if quick { 2 } else { 5 });
    let _ = stop_tx.send(true);
    runtime.shutdown_timeout(Duration::from_secs(5));
    let summary = percentiles(acks.clone());
    let page_ms = |key: &str| {
        page["render"][key]
            .as_f64()
            .map(|v| format!("{v:.0}"))
            .unwrap_or_else(|| "-".into())
    };
    println!(
        "{:>7} {:>10} {:>12.1} {:>10.1} {:>10.1} {:>10} {:>12.1} {:>10} {:>10} {:>10} {:>10} {:>10}",
        n,
        connected,
        enrolled.as_secs_f64() + connect_time.as_secs_f64(),
        usage["cpu_percent"].as_f64().unwrap_or(f64::NAN),
        usage["rss_kib"].as_f64().unwrap_or(f64::NAN) / 1024.0,
        usage["open_fds"].as_u64().unwrap_or(0),
        ingest,
        summary["p50_ms"]
            .as_f64()
            .map(|v| format!("{v:.0}"))
            .unwrap_or_else(|| "-".into()),
        summary["p99_ms"]
            .as_f64()
            .map(|v| format!("{v:.0}"))
            .unwrap_or_else(|| "-".into()),
        summary["max_ms"]
            .as_f64()
            .map(|v| format!("{v:.0}"))
            .unwrap_or_else(|| "-".into()),
        page_ms("p50_ms"),
        page_ms("max_ms"),
    );
    serde_json::json!({
        "agents": n,
        "connected": connected,
        "failed": stats.failed.load(Ordering::SeqCst),
        "retried": stats.retried.load(Ordering::SeqCst),
        "enroll_s": enrolled.as_secs_f64(),
        "connect_s": connect_time.as_secs_f64(),
        "coordinator": usage,
        "ingest_batches_per_s": ingest,
        "ingest_samples_per_s": ingest * 20.0,
        "config_apply_to_ack": summary,
        "acked": acks.len(),
        "fleet_page": page,
    })
}

pub fn run(options: &Options) -> serde_json::Value {
    println!(
        "\n== c. Coordinator scale (telemetry every 10 s per agent, 22 samples a batch) and the dashboard's fleet page"
    );
    println!(
        "{:>7} {:>10} {:>12} {:>10} {:>10} {:>10} {:>12} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "agents",
        "connected",
        "join s",
        "CPU %",
        "RSS MiB",
        "open fds",
        "batches/s",
        "ack p50",
        "ack p99",
        "ack max",
        "page p50",
        "page max"
    );
    serde_json::json!(
        options
            .agents
            .iter()
            .map(|n| one(*n, options.quick))
            .collect::<Vec<_>>()
    )
}
