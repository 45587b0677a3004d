//! What agents send, wire to domain and back: Hello, status reports (conditions, item
//! results, events), acks and telemetry.
//!
//! Text an agent supplies is bounded here ([`agent_text`]): subjects and codes to 256 bytes,
//! details and messages to [`MAX_DETAIL_BYTES`], control characters escaped, so nothing an
//! agent writes can flood a store or drive a terminal. Enum values this build does not know
//! become explicit `Unknown`/`Unrecognized` values with the original number or name kept in
//! the text; an event kind that is not the protocol's is refused.

use lfleet_types::{
    AckRefusal, AgentEvent, AgentEventKind, AgentHello, CheckId, Condition, ConfigAck,
    FailureClass, HelloClaims, ItemKind, ItemResult, Outcome, ReconcileStatus, Role, SampleValue,
    SpecError, StatusReport, TelemetryBatch, TelemetrySample,
};

use crate::v1;

/// The most bytes of a detail or message kept from an agent.
pub const MAX_DETAIL_BYTES: usize = 1024;
/// The most bytes of a subject, code, id or label kept from an agent.
pub const MAX_NAME_BYTES: usize = 256;
/// The most conditions, items, events or labels taken from one message; the rest are cut.
pub const MAX_ENTRIES: usize = 4096;

pub use lfleet_types::safe_text as agent_text;

fn name(text: &str) -> String {
    agent_text(text, MAX_NAME_BYTES)
}

fn detail(text: &str) -> String {
    agent_text(text, MAX_DETAIL_BYTES)
}

// === Role ===

/// A role from the wire; unset or unknown is `None` (a claim nobody made).
pub fn role_from_wire(role: i32) -> Option<Role> {
    match v1::NodeRole::try_from(role).ok()? {
        v1::NodeRole::Head => Some(Role::Head),
        v1::NodeRole::Compute => Some(Role::Compute),
        v1::NodeRole::Login => Some(Role::Login),
        v1::NodeRole::Unspecified => None,
    }
}

pub fn role_to_wire(role: Option<Role>) -> i32 {
    (match role {
        Some(Role::Head) => v1::NodeRole::Head,
        Some(Role::Compute) => v1::NodeRole::Compute,
        Some(Role::Login) => v1::NodeRole::Login,
        None => v1::NodeRole::Unspecified,
    }) as i32
}

// === Hello ===

impl TryFrom<&v1::Hello> for AgentHello {
    type Error = SpecError;

    fn try_from(wire: &v1::Hello) -> Result<AgentHello, SpecError> {
        Ok(AgentHello {
            node_name: wire.node_name.parse()?,
            claims: HelloClaims {
                slurm_node_name: name(&wire.slurm_node_name),
                role: role_from_wire(wire.role),
                nodearray: name(&wire.nodearray),
            },
            distro: name(&wire.distro),
            kernel_release: name(&wire.kernel_release),
            agent_version: name(&wire.agent_version),
            vm_id: name(&wire.vm_id),
            lustre_client_version: name(&wire.lustre_client_version),
            applied_generation: wire.applied_generation.into(),
        })
    }
}

impl From<&AgentHello> for v1::Hello {
    fn from(hello: &AgentHello) -> v1::Hello {
        v1::Hello {
            node_name: hello.node_name.to_string(),
            slurm_node_name: hello.claims.slurm_node_name.clone(),
            role: role_to_wire(hello.claims.role),
            nodearray: hello.claims.nodearray.clone(),
            distro: hello.distro.clone(),
            kernel_release: hello.kernel_release.clone(),
            agent_version: hello.agent_version.clone(),
            vm_id: hello.vm_id.clone(),
            lustre_client_version: hello.lustre_client_version.clone(),
            applied_generation: hello.applied_generation.get(),
        }
    }
}

// === Condition ===

fn outcome_to_wire(outcome: Outcome) -> i32 {
    (match outcome {
        Outcome::Pass => v1::Outcome::Pass,
        Outcome::Fail => v1::Outcome::Fail,
        Outcome::Unknown => v1::Outcome::Unknown,
    }) as i32
}

impl TryFrom<&v1::Condition> for Condition {
    type Error = SpecError;

    /// An outcome number this build does not know is Unknown, with the number in the detail.
    fn try_from(wire: &v1::Condition) -> Result<Condition, SpecError> {
        let check: CheckId = wire.check.parse()?;
        let (outcome, detail) = match v1::Outcome::try_from(wire.outcome) {
            Ok(v1::Outcome::Pass) => (Outcome::Pass, detail(&wire.detail)),
            Ok(v1::Outcome::Fail) => (Outcome::Fail, detail(&wire.detail)),
            Ok(v1::Outcome::Unknown) => (Outcome::Unknown, detail(&wire.detail)),
            Ok(v1::Outcome::Unspecified) | Err(_) => (
                Outcome::Unknown,
                detail(&format!(
                    "outcome {} not understood by this coordinator: {}",
                    wire.outcome, wire.detail
                )),
            ),
        };
        Ok(Condition {
            check,
            subject: name(&wire.subject),
            outcome,
            code: name(&wire.code),
            detail,
            since_unix_ms: wire.since_unix_ms,
            observed_unix_ms: wire.observed_unix_ms,
        })
    }
}

impl From<&Condition> for v1::Condition {
    fn from(condition: &Condition) -> v1::Condition {
        v1::Condition {
            check: condition.check.to_string(),
            subject: condition.subject.clone(),
            outcome: outcome_to_wire(condition.outcome),
            code: condition.code.clone(),
            detail: condition.detail.clone(),
            since_unix_ms: condition.since_unix_ms,
            observed_unix_ms: condition.observed_unix_ms,
        }
    }
}

// === ItemResult ===

impl From<&v1::ItemResult> for ItemResult {
    /// A kind or class this build does not know is `Unrecognized`, the original name kept at
    /// the front of the message.
    fn from(wire: &v1::ItemResult) -> ItemResult {
        let mut notes = Vec::new();
        let kind = wire.kind.parse().unwrap_or_else(|_| {
            notes.push(format!("kind {:?}", name(&wire.kind)));
            ItemKind::Unrecognized
        });
        let failure = if wire.ok {
            None
        } else {
            Some(wire.error_class.parse().unwrap_or_else(|_| {
                notes.push(format!("class {:?}", name(&wire.error_class)));
                FailureClass::Unrecognized
            }))
        };
        let message = if notes.is_empty() {
            detail(&wire.message)
        } else {
            detail(&format!("({}) {}", notes.join(", "), wire.message))
        };
        ItemResult {
            kind,
            id: name(&wire.id),
            failure,
            message,
        }
    }
}

impl From<&ItemResult> for v1::ItemResult {
    fn from(item: &ItemResult) -> v1::ItemResult {
        v1::ItemResult {
            kind: item.kind.to_string(),
            id: item.id.clone(),
            ok: item.ok(),
            error_class: item.failure.map(|c| c.to_string()).unwrap_or_default(),
            message: item.message.clone(),
        }
    }
}

// === AgentEvent ===

impl TryFrom<&v1::Event> for AgentEvent {
    type Error = SpecError;

    /// Only the protocol's event kinds; anything else (`manual-undrain`, `drained`) is refused.
    fn try_from(wire: &v1::Event) -> Result<AgentEvent, SpecError> {
        let kind: AgentEventKind = wire.kind.parse().map_err(|_| {
            SpecError::new(
                "events.kind",
                &name(&wire.kind),
                "is not an agent event kind",
            )
        })?;
        Ok(AgentEvent {
            kind,
            subject: name(&wire.subject),
            detail: detail(&wire.detail),
            at_unix_ms: wire.at_unix_ms,
        })
    }
}

impl From<&AgentEvent> for v1::Event {
    fn from(event: &AgentEvent) -> v1::Event {
        v1::Event {
            kind: event.kind.to_string(),
            subject: event.subject.clone(),
            detail: event.detail.clone(),
            at_unix_ms: event.at_unix_ms,
        }
    }
}

// === StatusReport ===

pub(crate) fn reconcile_from_wire(status: i32) -> ReconcileStatus {
    match v1::ReconcileStatus::try_from(status) {
        Ok(v1::ReconcileStatus::NotYetRun) | Ok(v1::ReconcileStatus::Unspecified) => {
            ReconcileStatus::NotYetRun
        }
        Ok(v1::ReconcileStatus::Running) => ReconcileStatus::Running,
        Ok(v1::ReconcileStatus::Idle) => ReconcileStatus::Idle,
        Err(_) => ReconcileStatus::Unrecognized,
    }
}

pub(crate) fn reconcile_to_wire(status: ReconcileStatus) -> i32 {
    (match status {
        ReconcileStatus::NotYetRun => v1::ReconcileStatus::NotYetRun,
        ReconcileStatus::Running => v1::ReconcileStatus::Running,
        ReconcileStatus::Idle => v1::ReconcileStatus::Idle,
        ReconcileStatus::Unrecognized => v1::ReconcileStatus::Unspecified,
    }) as i32
}

/// A status report as the coordinator takes it, with what it refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedStatus {
    pub report: StatusReport,
    /// Events whose kind is not the protocol's, and entries past [`MAX_ENTRIES`].
    pub refused: Vec<SpecError>,
}

/// Takes a status report: a condition whose check name is malformed refuses the whole
/// report (the agent is broken or hostile); refused events are listed, not fatal.
pub fn status_from_wire(wire: &v1::StatusReport) -> Result<ReceivedStatus, SpecError> {
    let mut refused = Vec::new();
    let mut cut = |what: &str, total: usize| {
        if total > MAX_ENTRIES {
            refused.push(SpecError::new(
                what,
                &total.to_string(),
                format!("entries: only the first {MAX_ENTRIES} are kept"),
            ));
        }
    };
    cut("conditions", wire.conditions.len());
    cut("items", wire.items.len());
    cut("events", wire.events.len());
    let conditions = wire
        .conditions
        .iter()
        .take(MAX_ENTRIES)
        .enumerate()
        .map(|(index, c)| {
            Condition::try_from(c).map_err(|e| e.within(&format!("conditions[{index}]")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let items = wire
        .items
        .iter()
        .take(MAX_ENTRIES)
        .map(ItemResult::from)
        .collect();
    let mut events = Vec::new();
    for event in wire.events.iter().take(MAX_ENTRIES) {
        match AgentEvent::try_from(event) {
            Ok(event) => events.push(event),
            Err(error) => refused.push(error),
        }
    }
    Ok(ReceivedStatus {
        report: StatusReport {
            applied_generation: wire.applied_generation.into(),
            reconcile: reconcile_from_wire(wire.reconcile_status),
            conditions,
            items,
            events,
            lustre_client_version: name(&wire.lustre_client_version),
            next_retry_unix_ms: (wire.next_retry_unix_ms > 0).then_some(wire.next_retry_unix_ms),
        },
        refused,
    })
}

impl From<&StatusReport> for v1::StatusReport {
    fn from(report: &StatusReport) -> v1::StatusReport {
        v1::StatusReport {
            applied_generation: report.applied_generation.get(),
            reconcile_status: reconcile_to_wire(report.reconcile),
            conditions: report.conditions.iter().map(v1::Condition::from).collect(),
            items: report.items.iter().map(v1::ItemResult::from).collect(),
            events: report.events.iter().map(v1::Event::from).collect(),
            lustre_client_version: report.lustre_client_version.clone(),
            next_retry_unix_ms: report.next_retry_unix_ms.unwrap_or(0).max(0),
        }
    }
}

// === ConfigAck ===

/// A config ack (an `Ack` with no command id).
impl From<&v1::Ack> for ConfigAck {
    fn from(wire: &v1::Ack) -> ConfigAck {
        ConfigAck {
            generation: wire.generation.into(),
            refusal: (!wire.accepted)
                .then(|| wire.error_class.parse().unwrap_or(AckRefusal::Unrecognized)),
            failed_class: (wire.accepted && !wire.error_class.is_empty()).then(|| {
                wire.error_class
                    .parse()
                    .unwrap_or(FailureClass::Unrecognized)
            }),
            message: detail(&wire.message),
        }
    }
}

impl From<&ConfigAck> for v1::Ack {
    fn from(ack: &ConfigAck) -> v1::Ack {
        v1::Ack {
            generation: ack.generation.get(),
            command_id: String::new(),
            accepted: ack.refusal.is_none(),
            error_class: match (ack.refusal, ack.failed_class) {
                (Some(refusal), _) => refusal.to_string(),
                (None, Some(class)) => class.to_string(),
                (None, None) => String::new(),
            },
            message: ack.message.clone(),
        }
    }
}

// === Telemetry ===

impl From<&v1::Sample> for TelemetrySample {
    fn from(wire: &v1::Sample) -> TelemetrySample {
        TelemetrySample {
            seq: wire.seq,
            at_unix_ms: wire.at_unix_ms,
            metric: name(&wire.metric),
            labels: wire
                .labels
                .iter()
                .take(32)
                .map(|l| (name(&l.key), name(&l.value)))
                .collect(),
            value: match wire.value {
                Some(v1::sample::Value::Gauge(value)) => Some(SampleValue::Gauge(value)),
                Some(v1::sample::Value::Delta(delta)) => Some(SampleValue::Delta {
                    delta: delta.delta,
                    interval_ms: delta.interval_ms,
                }),
                None => None,
            },
            reset: wire.reset,
            unavailable: wire.unavailable.then(|| name(&wire.unavailable_reason)),
        }
    }
}

impl From<&TelemetrySample> for v1::Sample {
    fn from(sample: &TelemetrySample) -> v1::Sample {
        v1::Sample {
            seq: sample.seq,
            at_unix_ms: sample.at_unix_ms,
            metric: sample.metric.clone(),
            labels: sample
                .labels
                .iter()
                .map(|(key, value)| v1::Label {
                    key: key.clone(),
                    value: value.clone(),
                })
                .collect(),
            value: sample.value.map(|value| match value {
                SampleValue::Gauge(value) => v1::sample::Value::Gauge(value),
                SampleValue::Delta { delta, interval_ms } => {
                    v1::sample::Value::Delta(v1::CounterDelta { delta, interval_ms })
                }
            }),
            reset: sample.reset,
            unavailable: sample.unavailable.is_some(),
            unavailable_reason: sample.unavailable.clone().unwrap_or_default(),
        }
    }
}

impl From<&v1::TelemetryBatch> for TelemetryBatch {
    fn from(wire: &v1::TelemetryBatch) -> TelemetryBatch {
        TelemetryBatch {
            first_seq: wire.first_seq,
            dropped_samples: wire.dropped_samples,
            samples: wire.samples.iter().map(TelemetrySample::from).collect(),
        }
    }
}

impl From<&TelemetryBatch> for v1::TelemetryBatch {
    fn from(batch: &TelemetryBatch) -> v1::TelemetryBatch {
        v1::TelemetryBatch {
            first_seq: batch.first_seq,
            dropped_samples: batch.dropped_samples,
            samples: batch.samples.iter().map(v1::Sample::from).collect(),
        }
    }
}
