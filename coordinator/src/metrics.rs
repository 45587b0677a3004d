//! The coordinator's Prometheus endpoint, in the text exposition format (the `prometheus`
//! crate's encoder: HELP and TYPE on every family, families grouped, labels escaped).
//! Conventions: counters end in `_total` and count base units (bytes); rates are left to
//! PromQL; one label per dimension (`filesystem`, `node`, `health`, `state`).
//!
//! Families: nodes by health and each node's health; mounts by state; config generation and
//! nodes behind it; drains, incidents; per filesystem clients expected and mounted, bytes
//! read and written (counters integrated from the agents' rates), per node and mount bytes;
//! status reports and telemetry batches taken from agents; what the coordinator refused or
//! dropped (connections, enrollments, agent events, telemetry samples, store writes);
//! slow-node detection (`Coordinator::slow_metrics`: windows, judged pairs, nodes flagged
//! with their ratio per target, target incidents).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use lfleet_types::fleet::Health;
use prometheus::{CounterVec, Encoder, IntCounter, IntGauge, IntGaugeVec, Opts, Registry};

use crate::app::Coordinator;

/// Registers `metric` in `registry` and returns it.
pub(crate) fn add<M: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: M,
) -> M {
    registry
        .register(Box::new(metric.clone()))
        .expect("each family is registered once, with a valid name");
    metric
}

pub(crate) fn gauge(registry: &Registry, name: &str, help: &str, value: i64) {
    add(registry, IntGauge::new(name, help).expect("valid name")).set(value);
}

pub(crate) fn counter(registry: &Registry, name: &str, help: &str, value: u64) {
    add(registry, IntCounter::new(name, help).expect("valid name")).inc_by(value);
}

fn gauges(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    add(
        registry,
        IntGaugeVec::new(Opts::new(name, help), labels).expect("valid name and labels"),
    )
}

/// The exposition text.
pub fn render(coordinator: &Coordinator) -> String {
    let registry = Registry::new();
    let nodes = coordinator.list_nodes(false);

    let by_health = gauges(&registry, "lfleet_nodes", "Nodes by health.", &["health"]);
    let node_health = gauges(
        &registry,
        "lfleet_node_health",
        "1 for each node's health now (healthy, unhealthy, unknown, silent, powered-down).",
        &["node", "nodearray", "health"],
    );
    let mounts = gauges(
        &registry,
        "lfleet_mounts",
        "Desired mounts on all nodes, by whether they are mounted.",
        &["state"],
    );
    let mut counts: BTreeMap<Health, i64> = Health::ALL.iter().map(|h| (*h, 0)).collect();
    let (mut mounted, mut not_mounted, mut behind) = (0, 0, 0);
    for node in &nodes {
        *counts.entry(node.health).or_default() += 1;
        node_health
            .with_label_values(&[&node.name, &node.nodearray, node.health.as_str()])
            .set(1);
        for mount in &node.mounts {
            if mount.mounted {
                mounted += 1;
            } else {
                not_mounted += 1;
            }
        }
        if node.applied_generation < node.desired_generation {
            behind += 1;
        }
    }
    for (health, count) in counts {
        by_health.with_label_values(&[health.as_str()]).set(count);
    }
    mounts.with_label_values(&["mounted"]).set(mounted);
    mounts.with_label_values(&["not_mounted"]).set(not_mounted);
    let (generation, _) = coordinator.config();
    gauge(
        &registry,
        "lfleet_config_generation",
        "The running configuration's generation.",
        generation.get() as i64,
    );
    gauge(
        &registry,
        "lfleet_nodes_behind_config",
        "Nodes that have not applied the running generation.",
        behind,
    );

    let drains = coordinator.store().drains().unwrap_or_default();
    gauge(
        &registry,
        "lfleet_drains_active",
        "Drains lfleet made that are in force.",
        drains.iter().filter(|d| d.ended_ms.is_none()).count() as i64,
    );
    counter(
        &registry,
        "lfleet_drains_total",
        "Drains lfleet made (its ledger).",
        drains.len() as u64,
    );
    gauge(
        &registry,
        "lfleet_incidents_open",
        "Filesystem incidents open (a check failing on a large share of a filesystem's nodes).",
        coordinator.incidents(true).map(|i| i.len()).unwrap_or(0) as i64,
    );

    let clients = gauges(
        &registry,
        "lfleet_filesystem_clients",
        "Clients of a filesystem, expected and mounted.",
        &["filesystem", "state"],
    );
    let read = add(
        &registry,
        CounterVec::new(
            Opts::new(
                "lfleet_filesystem_read_bytes_total",
                "Bytes read through a filesystem's mounts on all nodes (from the agents' rates).",
            ),
            &["filesystem"],
        )
        .expect("valid"),
    );
    let write = add(
        &registry,
        CounterVec::new(
            Opts::new(
                "lfleet_filesystem_write_bytes_total",
                "Bytes written through a filesystem's mounts on all nodes (from the agents' rates).",
            ),
            &["filesystem"],
        )
        .expect("valid"),
    );
    let node_bytes = add(
        &registry,
        CounterVec::new(
            Opts::new(
                "lfleet_node_mount_bytes_total",
                "Bytes a node read or wrote through one mount (from its agent's rates).",
            ),
            &["node", "mount", "direction"],
        )
        .expect("valid"),
    );
    for fs in coordinator.filesystems(None) {
        clients
            .with_label_values(&[&fs.name, "expected"])
            .set(i64::from(fs.clients_expected));
        clients
            .with_label_values(&[&fs.name, "mounted"])
            .set(i64::from(fs.clients_mounted));
        read.with_label_values(&[&fs.name]).inc_by(0.0);
        write.with_label_values(&[&fs.name]).inc_by(0.0);
    }
    coordinator.with_fleet(|fleet| {
        for fs in &fleet.desired.filesystems {
            let point = fs.spec.mount_point.as_str();
            for (name, node) in fleet
                .nodes
                .iter()
                .filter(|(_, n)| fs.applies_to(&n.identity))
            {
                if let Some(rates) = node.telemetry.mounts.get(point) {
                    read.with_label_values(&[&fs.name])
                        .inc_by(rates.read_bytes_total);
                    write
                        .with_label_values(&[&fs.name])
                        .inc_by(rates.write_bytes_total);
                    node_bytes
                        .with_label_values(&[name, point, "read"])
                        .inc_by(rates.read_bytes_total);
                    node_bytes
                        .with_label_values(&[name, point, "write"])
                        .inc_by(rates.write_bytes_total);
                }
            }
        }
    });

    counter(
        &registry,
        "lfleet_agent_events_dropped_total",
        "Agent events refused by the per-node rate limit.",
        coordinator.events().dropped(),
    );
    counter(
        &registry,
        "lfleet_enroll_refused_total",
        "Enrollments refused before anyone was known (a wrong, expired or out-of-scope token).",
        coordinator.refusals().enroll.load(Ordering::Relaxed),
    );
    if let Some(admission) = coordinator.admission() {
        gauge(
            &registry,
            "lfleet_connections_open",
            "Connections held on the TLS port.",
            admission.open() as i64,
        );
        counter(
            &registry,
            "lfleet_connections_refused_total",
            "Connections closed at once by the connection caps.",
            admission.refused.load(Ordering::Relaxed),
        );
    }
    let messages = add(
        &registry,
        prometheus::IntCounterVec::new(
            Opts::new(
                "lfleet_agent_messages_total",
                "Status reports and telemetry batches taken from agents, by kind.",
            ),
            &["kind"],
        )
        .expect("valid name and labels"),
    );
    messages
        .with_label_values(&["status"])
        .inc_by(coordinator.received.status_reports.load(Ordering::Relaxed));
    messages.with_label_values(&["telemetry"]).inc_by(
        coordinator
            .received
            .telemetry_batches
            .load(Ordering::Relaxed),
    );
    counter(
        &registry,
        "lfleet_telemetry_samples_dropped_total",
        "Telemetry samples refused by the per-node caps.",
        coordinator.telemetry_dropped.load(Ordering::Relaxed),
    );
    counter(
        &registry,
        "lfleet_store_writes_dropped_total",
        "Store writes dropped because the writer's queue was full.",
        coordinator.store().dropped(),
    );
    coordinator.slow_metrics(&registry);

    let mut out = Vec::new();
    prometheus::TextEncoder::new()
        .encode(&registry.gather(), &mut out)
        .expect("encoding to memory cannot fail");
    String::from_utf8(out).expect("the text format is UTF-8")
}

pub async fn serve(
    listener: tokio::net::TcpListener,
    coordinator: Arc<Coordinator>,
) -> std::io::Result<()> {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let coordinator = coordinator.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        prometheus::TEXT_FORMAT.to_owned(),
                    )],
                    render(&coordinator),
                )
            }
        }),
    );
    axum::serve(listener, app).await
}
