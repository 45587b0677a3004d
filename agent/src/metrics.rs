//! The agent's optional Prometheus endpoint (`[prometheus] enabled = true`; loopback by
//! default): the last result of every check, the last sample of every collector, event and
//! drop counts, the reconciler's state (failed items with their class, the next retry), in
//! the text exposition format. It serves what the loops last stored and never
//! reads the node itself, so it answers at once even while a mount is hung.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};

use crate::checks::{CheckResult, Outcome};
use crate::telemetry::Sample;

/// What the loops last found.
#[derive(Debug, Default)]
pub struct MetricsState {
    pub results: Vec<CheckResult>,
    /// (collector, subject) -> the last sample.
    pub samples: BTreeMap<(String, String), Sample>,
    /// Event kind -> how many since the start.
    pub events: BTreeMap<String, u64>,
    pub dropped_samples: u64,
    /// The reconciler's last published status (none when it does not run).
    pub reconcile: Option<crate::reconciler::ReconcilerStatus>,
}

pub type SharedMetrics = Arc<Mutex<MetricsState>>;

/// A Prometheus label value: `\`, `"` and newlines escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A metric name part: anything but `[a-zA-Z0-9_]` becomes `_`.
fn name(part: &str) -> String {
    part.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// The exposition text.
pub fn render(state: &MetricsState) -> String {
    let mut out = String::new();
    out.push_str("# HELP lfleet_check_state 1 for the current outcome of a check on a subject.\n# TYPE lfleet_check_state gauge\n");
    for result in &state.results {
        let outcome = result.outcome.as_str();
        let code = match result.outcome {
            Outcome::Fail => result.code.as_str(),
            Outcome::Pass | Outcome::Unknown => "",
        };
        let _ = writeln!(
            out,
            "lfleet_check_state{{check=\"{}\",subject=\"{}\",state=\"{outcome}\",code=\"{}\"}} 1",
            label(result.check.as_str()),
            label(&result.subject),
            label(code)
        );
    }
    let mut families: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for sample in state.samples.values() {
        let subject = label(&sample.subject);
        if let Some(why) = &sample.unavailable {
            families
                .entry("lfleet_source_unavailable".into())
                .or_default()
                .push(format!(
                    "{{collector=\"{}\",subject=\"{subject}\",reason=\"{}\"}} 1",
                    sample.collector,
                    label(why)
                ));
        }
        for (key, value) in &sample.values {
            let metric = format!("lfleet_{}_{}", name(sample.collector), name(key));
            families
                .entry(metric)
                .or_default()
                .push(format!("{{subject=\"{subject}\"}} {value}"));
        }
        if !sample.labels.is_empty() {
            let labels: Vec<String> = sample
                .labels
                .iter()
                .map(|(k, v)| format!("{}=\"{}\"", name(k), label(v)))
                .collect();
            families
                .entry(format!("lfleet_{}_info", name(sample.collector)))
                .or_default()
                .push(format!("{{subject=\"{subject}\",{}}} 1", labels.join(",")));
        }
    }
    for (metric, lines) in families {
        let _ = writeln!(out, "# TYPE {metric} gauge");
        for line in lines {
            let _ = writeln!(out, "{metric}{line}");
        }
    }
    out.push_str("# TYPE lfleet_events_total counter\n");
    for (kind, count) in &state.events {
        let _ = writeln!(
            out,
            "lfleet_events_total{{kind=\"{}\"}} {count}",
            label(kind)
        );
    }
    let _ = writeln!(
        out,
        "# TYPE lfleet_dropped_samples_total counter\nlfleet_dropped_samples_total {}",
        state.dropped_samples
    );
    if let Some(reconcile) = &state.reconcile {
        render_reconcile(&mut out, reconcile);
    }
    out
}

/// The reconciler: state, passes, applied generation, each failed item and the next retry.
fn render_reconcile(out: &mut String, status: &crate::reconciler::ReconcilerStatus) {
    use lfleet_types::ReconcileStatus;
    let state = match status.state {
        ReconcileStatus::NotYetRun => "not-yet-run",
        ReconcileStatus::Running => "running",
        ReconcileStatus::Idle => "idle",
        ReconcileStatus::Unrecognized => "unrecognized",
    };
    let _ = writeln!(
        out,
        "# TYPE lfleet_reconcile_state gauge\nlfleet_reconcile_state{{state=\"{state}\"}} 1"
    );
    let _ = writeln!(
        out,
        "# TYPE lfleet_reconcile_passes_total counter\nlfleet_reconcile_passes_total {}",
        status.passes
    );
    let _ = writeln!(
        out,
        "# TYPE lfleet_reconcile_applied_generation gauge\nlfleet_reconcile_applied_generation {}",
        status.applied_generation
    );
    out.push_str("# TYPE lfleet_reconcile_item_failed gauge\n");
    for item in &status.items {
        if let Some(class) = item.failure {
            let _ = writeln!(
                out,
                "lfleet_reconcile_item_failed{{kind=\"{}\",id=\"{}\",class=\"{}\"}} 1",
                item.kind,
                label(&item.id),
                class.code()
            );
        }
    }
    if let Some(at) = status.next_retry_unix_ms() {
        let _ = writeln!(
            out,
            "# TYPE lfleet_reconcile_next_retry_timestamp_seconds gauge\nlfleet_reconcile_next_retry_timestamp_seconds {:.3}",
            at as f64 / 1000.0
        );
    }
}

/// Serves `GET /metrics` on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, state: SharedMetrics) -> std::io::Result<()> {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let state = state.clone();
            async move {
                let text = render(&state.lock().unwrap_or_else(|e| e.into_inner()));
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    text,
                )
            }
        }),
    );
    axum::serve(listener, app).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped_and_names_sanitized() {
        let mut state = MetricsState::default();
        state.results.push(CheckResult::new(
            lfleet_types::KnownCheck::MountResponsive,
            "/lus\"tre\n",
            crate::checks::Verdict::Fail {
                code: "hung".into(),
                detail: "x".into(),
            },
            0,
        ));
        let mut sample = Sample::new("agent", "lfleet-agent", 0);
        sample.values.insert("check_ms.mount.present".into(), 2.5);
        state
            .samples
            .insert(("agent".into(), "lfleet-agent".into()), sample);
        let text = render(&state);
        assert!(text.contains(
            "lfleet_check_state{check=\"mount.responsive\",subject=\"/lus\\\"tre\\n\",state=\"fail\",code=\"hung\"} 1"
        ), "{text}");
        assert!(
            text.contains("lfleet_agent_check_ms_mount_present{subject=\"lfleet-agent\"} 2.5"),
            "{text}"
        );
    }
}
