//! Slow-node detection wired into the coordinator: agents' telemetry feeds the pure
//! [`SlowDetector`] ([`Coordinator::slow_ingest`], from `on_telemetry`); a task closes a
//! window every `window_seconds` ([`Coordinator::run_slow`]) and carries out what it
//! decided: each node's `lustre.slow` condition into the fleet (shown by `lfleet nodes` and
//! `lfleet node`, planned on by the drain planner only where `policy.required` lists it),
//! an event when a finding appears or clears, and a target's own slowness as an incident in
//! the store. [`Coordinator::slow_metrics`] adds its families to /metrics.

use std::sync::Arc;

use lfleet_types::{ErrorChain, Outcome, TelemetryBatch};

use super::Coordinator;
use crate::events::{CoordinatorKind, Source};
use crate::metrics::{add, counter, gauge};
use crate::slow::{PeerView, SlowDetector, WindowReport, likely_causes};
use crate::store::Write;

impl Coordinator {
    fn slow(&self) -> std::sync::MutexGuard<'_, SlowDetector> {
        self.slow.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a node's telemetry batch into the open window.
    pub(crate) fn slow_ingest(&self, name: &str, batch: &TelemetryBatch) {
        let mut slow = self.slow();
        if slow.config().enabled {
            slow.ingest(name, &batch.samples);
        }
    }

    /// Closes a window every `window_seconds` until `stop` is set; does nothing when slow-node
    /// detection is off.
    pub async fn run_slow(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let (enabled, window_ms) = {
            let slow = self.slow();
            (slow.config().enabled, slow.config().window_ms())
        };
        if !enabled {
            return;
        }
        let period = std::time::Duration::from_millis(window_ms.max(1) as u64);
        let mut every = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            self.slow_window().await;
        }
    }

    /// Closes the open window now and carries out its decisions.
    pub async fn slow_window(&self) {
        let now = self.now_ms();
        let peers: Vec<PeerView> = self.with_fleet(|fleet| {
            fleet
                .nodes
                .iter()
                .map(|(name, node)| PeerView {
                    name: name.clone(),
                    nodearray: node.identity.nodearray.clone(),
                    live: node.is_live(now, fleet.silence_ms),
                    causes: likely_causes(&node.status.conditions),
                })
                .collect()
        });
        let report = self.slow().close_window(&peers, now);
        self.take_slow_report(report).await;
    }

    async fn take_slow_report(&self, report: WindowReport) {
        let WindowReport {
            conditions,
            changes,
            opened,
            closed,
            judged,
        } = report;
        {
            let mut fleet = self.fleet();
            for (name, derived) in conditions {
                if let Some(node) = fleet.nodes.get_mut(&name) {
                    node.derived = derived;
                }
            }
        }
        tracing::debug!(judged, "slow-node window closed");
        for change in changes {
            let kind = if change.outcome == Outcome::Fail {
                CoordinatorKind::SlowNode
            } else {
                CoordinatorKind::SlowNodeCleared
            };
            tracing::info!(
                node = change.node,
                mount = change.mount,
                detail = change.detail,
                "{}",
                kind.as_str()
            );
            self.record(
                Source::Coordinator,
                &change.node,
                kind,
                format!("lustre.slow {}: {}", change.mount, change.detail),
            );
        }
        for (incident, evidence, kind) in opened
            .into_iter()
            .map(|(i, e)| (i, e, CoordinatorKind::IncidentOpened))
            .chain(
                closed
                    .into_iter()
                    .map(|(i, e)| (i, e, CoordinatorKind::IncidentClosed)),
            )
        {
            if let Err(error) = self
                .store
                .commit(vec![Write::Incident(incident.clone())])
                .await
            {
                tracing::error!(error = %ErrorChain(&error), incident = incident.id, "a slow-target incident could not be stored");
            }
            self.record(
                Source::Coordinator,
                "",
                kind,
                format!("{} on {}: {evidence}", incident.check, incident.subject),
            );
        }
    }

    /// The detector's families in the coordinator's Prometheus registry.
    pub fn slow_metrics(&self, registry: &prometheus::Registry) {
        let slow = self.slow();
        let flagged = slow.flagged();
        let nodes: std::collections::BTreeSet<&str> =
            flagged.iter().map(|f| f.node.as_str()).collect();
        counter(
            registry,
            "lfleet_slow_windows_total",
            "Slow-node windows closed since start.",
            slow.windows_closed,
        );
        gauge(
            registry,
            "lfleet_slow_judged",
            "Node-target pairs judged in the last slow-node window.",
            slow.last_judged as i64,
        );
        gauge(
            registry,
            "lfleet_slow_nodes",
            "Nodes with a lustre.slow finding now.",
            nodes.len() as i64,
        );
        gauge(
            registry,
            "lfleet_slow_target_incidents",
            "Targets slow for all their clients (open lustre.slow incidents).",
            slow.open_incidents().len() as i64,
        );
        counter(
            registry,
            "lfleet_slow_samples_dropped_total",
            "RPC-wait samples refused by the per-node target cap.",
            slow.dropped,
        );
        let ratio = add(
            registry,
            prometheus::GaugeVec::new(
                prometheus::Opts::new(
                    "lfleet_node_slow_ratio",
                    "A flagged node's mean RPC wait on a target over its peer group's median, in its last slow window.",
                ),
                &["node", "mount", "target"],
            )
            .expect("valid name and labels"),
        );
        for f in &flagged {
            ratio
                .with_label_values(&[
                    f.node.as_str(),
                    f.target.mount.as_str(),
                    f.target.name.as_str(),
                ])
                .set(f.ratio);
        }
    }
}
