//! The coordinator's Prometheus endpoint: nodes by health, mounts by state, per-filesystem
//! throughput and clients, config lag (nodes behind the desired generation).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

use lfleet_types::fleet::Health;

use crate::app::Coordinator;

fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The exposition text.
pub fn render(coordinator: &Coordinator) -> String {
    let nodes = coordinator.list_nodes(false);
    let mut out = String::new();
    let mut by_health: BTreeMap<Health, usize> = BTreeMap::new();
    let mut mounts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut behind = 0;
    for summary in &nodes {
        *by_health.entry(summary.health).or_insert(0) += 1;
        for mount in &summary.mounts {
            *mounts
                .entry(if mount.mounted {
                    "mounted"
                } else {
                    "not_mounted"
                })
                .or_insert(0) += 1;
        }
        if summary.applied_generation < summary.desired_generation {
            behind += 1;
        }
    }
    out.push_str("# TYPE lfleet_nodes gauge\n");
    for health in Health::ALL {
        let _ = writeln!(
            out,
            "lfleet_nodes{{health=\"{health}\"}} {}",
            by_health.get(&health).copied().unwrap_or(0)
        );
    }
    out.push_str("# TYPE lfleet_mounts gauge\n");
    for state in ["mounted", "not_mounted"] {
        let _ = writeln!(
            out,
            "lfleet_mounts{{state=\"{state}\"}} {}",
            mounts.get(state).copied().unwrap_or(0)
        );
    }
    let (generation, _) = coordinator.config();
    let _ = writeln!(
        out,
        "# TYPE lfleet_config_generation gauge\nlfleet_config_generation {generation}"
    );
    let _ = writeln!(
        out,
        "# TYPE lfleet_nodes_behind_config gauge\nlfleet_nodes_behind_config {behind}"
    );
    let drains = coordinator.store().drains().unwrap_or_default();
    let incidents = coordinator.incidents(true).unwrap_or_default();
    let _ = writeln!(
        out,
        "# TYPE lfleet_drains_active gauge\nlfleet_drains_active {}",
        drains.iter().filter(|d| d.ended_ms.is_none()).count()
    );
    let _ = writeln!(
        out,
        "# TYPE lfleet_drains_total counter\nlfleet_drains_total {}",
        drains.len()
    );
    let _ = writeln!(
        out,
        "# TYPE lfleet_incidents_open gauge\nlfleet_incidents_open {}",
        incidents.len()
    );
    let _ = writeln!(
        out,
        "# TYPE lfleet_agent_events_dropped_total counter\nlfleet_agent_events_dropped_total {}",
        coordinator.events().dropped()
    );
    let _ = writeln!(
        out,
        "# TYPE lfleet_enroll_refused_total counter\nlfleet_enroll_refused_total {}",
        coordinator
            .refusals()
            .enroll
            .load(std::sync::atomic::Ordering::Relaxed)
    );
    if let Some(admission) = coordinator.admission() {
        let _ = writeln!(
            out,
            "# TYPE lfleet_connections_open gauge\nlfleet_connections_open {}",
            admission.open()
        );
        let _ = writeln!(
            out,
            "# TYPE lfleet_connections_refused_total counter\nlfleet_connections_refused_total {}",
            admission.refused.load(std::sync::atomic::Ordering::Relaxed)
        );
    }
    let _ = writeln!(
        out,
        "# TYPE lfleet_telemetry_samples_dropped_total counter\nlfleet_telemetry_samples_dropped_total {}",
        coordinator
            .telemetry_dropped
            .load(std::sync::atomic::Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "# TYPE lfleet_store_writes_dropped_total counter\nlfleet_store_writes_dropped_total {}",
        coordinator.store().dropped()
    );
    let filesystems = coordinator.filesystems(None);
    out.push_str("# TYPE lfleet_filesystem_clients gauge\n");
    for fs in &filesystems {
        let name = label(&fs.name);
        let _ = writeln!(
            out,
            "lfleet_filesystem_clients{{filesystem=\"{name}\",state=\"expected\"}} {}",
            fs.clients_expected
        );
        let _ = writeln!(
            out,
            "lfleet_filesystem_clients{{filesystem=\"{name}\",state=\"mounted\"}} {}",
            fs.clients_mounted
        );
    }
    out.push_str("# TYPE lfleet_filesystem_bytes_per_second gauge\n");
    for fs in &filesystems {
        let name = label(&fs.name);
        let _ = writeln!(
            out,
            "lfleet_filesystem_bytes_per_second{{filesystem=\"{name}\",direction=\"read\"}} {}",
            fs.read_bytes_per_second
        );
        let _ = writeln!(
            out,
            "lfleet_filesystem_bytes_per_second{{filesystem=\"{name}\",direction=\"write\"}} {}",
            fs.write_bytes_per_second
        );
    }
    out
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
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    render(&coordinator),
                )
            }
        }),
    );
    axum::serve(listener, app).await
}
