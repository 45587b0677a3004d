//! The coordinator's Prometheus endpoint: nodes by health, mounts by state, per-filesystem
//! throughput and clients, config lag (nodes behind the desired generation).

use std::fmt::Write;
use std::sync::Arc;

use lfleet_proto::v1;

use crate::service::{Coordinator, now_ms};

fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The exposition text.
pub fn render(coordinator: &Coordinator) -> String {
    let now = now_ms();
    let fleet = coordinator.fleet();
    let mut out = String::new();
    let mut by_health = std::collections::BTreeMap::new();
    let mut mounts = std::collections::BTreeMap::new();
    let mut behind = 0;
    for name in fleet.nodes.keys() {
        let Some(summary) = fleet.summary(name, now) else {
            continue;
        };
        let health = v1::Health::try_from(summary.health).unwrap_or_default();
        *by_health
            .entry(
                health
                    .as_str_name()
                    .trim_start_matches("HEALTH_")
                    .to_lowercase(),
            )
            .or_insert(0) += 1;
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
    for health in ["healthy", "unhealthy", "unknown", "silent"] {
        let _ = writeln!(
            out,
            "lfleet_nodes{{health=\"{health}\"}} {}",
            by_health.get(health).copied().unwrap_or(0)
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
    let _ = writeln!(
        out,
        "# TYPE lfleet_config_generation gauge\nlfleet_config_generation {}",
        fleet.generation
    );
    let _ = writeln!(
        out,
        "# TYPE lfleet_nodes_behind_config gauge\nlfleet_nodes_behind_config {behind}"
    );
    drop(fleet);
    let drains = coordinator.store.drains().unwrap_or_default();
    let incidents = coordinator.store.incidents().unwrap_or_default();
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
        incidents.iter().filter(|i| i.closed_ms.is_none()).count()
    );
    let fleet = coordinator.fleet();
    out.push_str(
        "# TYPE lfleet_filesystem_clients gauge\n# TYPE lfleet_filesystem_bytes_per_second gauge\n",
    );
    for fs in fleet.filesystems(now) {
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
