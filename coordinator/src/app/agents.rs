//! What agents ask: enrollment (a join token and a CSR for a certificate), and the session
//! (Hello, then status reports, telemetry and acks), in domain types.
//!
//! A node can only speak for itself: the session's Hello must name the node its certificate
//! names. The node's role, nodearray and Slurm name are the coordinator's facts, decided in
//! [`Coordinator::identity_for`]; desired config is pushed on every session start and on
//! every accepted change.

use lfleet_proto::convert::ReceivedStatus;
use lfleet_types::{AgentHello, ConfigAck, ErrorChain, NodeName, SpecError, TelemetryBatch};
use tokio::sync::mpsc;

use super::{ApiError, Coordinator};
use crate::config::NodeIdentity;
use crate::events::{CoordinatorKind, Source};
use crate::fleet::{NodeState, claimed_role};
use crate::sessions::Outgoing;

/// How often agents should report when nothing changes.
pub const STATUS_INTERVAL_SECONDS: u32 = 10;
pub const TELEMETRY_INTERVAL_SECONDS: u32 = 10;

/// A signed certificate for a node.
#[derive(Debug, Clone)]
pub struct Enrolled {
    pub certificate_pem: String,
    pub ca_certificate_pem: String,
    pub not_after_unix: i64,
}

/// Compares without stopping at the first difference.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Coordinator {
    /// Signs a node's CSR when the join token is right.
    pub fn enroll(&self, name: &str, token: &str, csr_pem: &str) -> Result<Enrolled, ApiError> {
        let node: NodeName = name
            .parse()
            .map_err(|e: SpecError| ApiError::InvalidArgument(e.to_string()))?;
        let expected = &self.enrollment.join_token;
        if expected.is_empty() || !same_secret(token, expected) {
            self.record(
                Source::Security,
                node.as_str(),
                CoordinatorKind::EnrollRefused,
                "wrong join token",
            );
            return Err(ApiError::PermissionDenied("wrong join token".into()));
        }
        let (certificate_pem, not_after) = self
            .pki
            .sign_node(&node, csr_pem, self.enrollment.cert_hours)
            .map_err(|e| ApiError::InvalidArgument(ErrorChain(&e).to_string()))?;
        self.record(
            Source::Coordinator,
            node.as_str(),
            CoordinatorKind::Enrolled,
            format!("certificate valid until {not_after}"),
        );
        Ok(Enrolled {
            certificate_pem,
            ca_certificate_pem: self.pki.ca_pem.clone(),
            not_after_unix: not_after,
        })
    }

    /// The coordinator's facts about a node: its role, nodearray and Slurm name.
    pub fn identity_for(&self, name: &str, hello: &AgentHello) -> (NodeIdentity, String) {
        let identity = NodeIdentity {
            name: name.to_owned(),
            role: claimed_role(hello),
            nodearray: hello.claims.nodearray.clone(),
        };
        let slurm_name = if hello.claims.slurm_node_name.is_empty() {
            name.to_owned()
        } else {
            hello.claims.slurm_node_name.clone()
        };
        (identity, slurm_name)
    }

    /// Starts a session for the node `certificate_name` names, after its Hello: registers
    /// it, queues the session parameters and the node's desired config.
    pub fn open_session(
        &self,
        certificate_name: &str,
        hello: AgentHello,
    ) -> Result<(u64, mpsc::Receiver<Outgoing>), ApiError> {
        if hello.node_name.as_str() != certificate_name {
            self.record(
                Source::Security,
                certificate_name,
                CoordinatorKind::SessionRefused,
                format!("Hello names {:?}", hello.node_name.as_str()),
            );
            return Err(ApiError::PermissionDenied(format!(
                "this certificate is for {certificate_name}, not {:?}",
                hello.node_name.as_str()
            )));
        }
        let name = certificate_name.to_owned();
        let now = self.now_ms();
        let (identity, slurm_name) = self.identity_for(&name, &hello);
        let (id, receiver) = self.sessions.open(&name);
        let (desired, snapshot) = {
            let mut fleet = self.fleet();
            let node = fleet
                .nodes
                .entry(name.clone())
                .or_insert_with(|| NodeState::new(identity.clone(), slurm_name.clone()));
            node.identity = identity;
            node.slurm_name = slurm_name;
            node.applied_generation = hello.applied_generation;
            node.hello = Some(hello);
            node.connected = true;
            node.last_seen_ms = now;
            let snapshot = node.clone();
            (fleet.desired_for(&snapshot.identity), snapshot)
        };
        self.persist(&name, &snapshot);
        self.record(
            Source::Coordinator,
            &name,
            CoordinatorKind::Connected,
            "session started",
        );
        self.sessions.send(
            &name,
            Outgoing::Accepted {
                node_name: name.clone(),
                status_interval_seconds: STATUS_INTERVAL_SECONDS,
                telemetry_interval_seconds: TELEMETRY_INTERVAL_SECONDS,
            },
        );
        self.sessions.send(&name, Outgoing::Config(desired));
        Ok((id, receiver))
    }

    /// A status report from `name`'s session.
    pub fn on_status(&self, name: &str, received: ReceivedStatus) {
        let now = self.now_ms();
        let ReceivedStatus { report, refused } = received;
        let events = report.events.clone();
        let (changed, snapshot) = {
            let mut fleet = self.fleet();
            let Some(node) = fleet.nodes.get_mut(name) else {
                return;
            };
            let changed = node.take_status(report, now);
            (changed, node.clone())
        };
        self.persist(name, &snapshot);
        if changed {
            let failing: Vec<String> = snapshot
                .status
                .conditions
                .iter()
                .filter(|c| c.outcome == lfleet_types::Outcome::Fail)
                .map(|c| format!("{} {} {}", c.check, c.subject, c.code))
                .collect();
            self.record(
                Source::Agent,
                name,
                CoordinatorKind::Conditions,
                if failing.is_empty() {
                    "all pass".to_owned()
                } else {
                    failing.join("; ")
                },
            );
        }
        for event in events {
            self.events.record_agent(
                name,
                event.kind,
                format!("{} {}", event.subject, event.detail),
            );
        }
        if !refused.is_empty() {
            self.on_refused(name, &refused);
        }
    }

    /// Parts of a message refused at the edge (unknown event kinds, too many entries).
    pub fn on_refused(&self, name: &str, refused: &[SpecError]) {
        let detail: Vec<String> = refused.iter().take(5).map(ToString::to_string).collect();
        self.record(
            Source::Security,
            name,
            CoordinatorKind::ReportRefused,
            format!("{} refused: {}", refused.len(), detail.join("; ")),
        );
    }

    /// A telemetry batch from `name`'s session.
    pub fn on_telemetry(&self, name: &str, batch: &TelemetryBatch) {
        let now = self.now_ms();
        if let Some(node) = self.fleet().nodes.get_mut(name) {
            node.take_telemetry(batch, now);
        }
    }

    /// An ack of a desired config.
    pub fn on_ack(&self, name: &str, ack: ConfigAck) {
        let now = self.now_ms();
        if let Some(node) = self.fleet().nodes.get_mut(name) {
            node.last_seen_ms = now;
        }
        let (kind, text) = match ack.refusal {
            None => (CoordinatorKind::ConfigAcked, ack.message),
            Some(refusal) => (
                CoordinatorKind::ConfigRefused,
                format!("{refusal}: {}", ack.message),
            ),
        };
        self.record(
            Source::Agent,
            name,
            kind,
            format!("generation {} {text}", ack.generation),
        );
    }

    /// Any other message: the node is alive.
    pub fn on_heard(&self, name: &str) {
        let now = self.now_ms();
        if let Some(node) = self.fleet().nodes.get_mut(name) {
            node.last_seen_ms = now;
        }
    }

    /// The session `id` of `name` ended.
    pub fn close_session(&self, name: &str, id: u64) {
        if self.sessions.close(name, id) {
            if let Some(node) = self.fleet().nodes.get_mut(name) {
                node.connected = false;
            }
            self.record(
                Source::Coordinator,
                name,
                CoordinatorKind::Disconnected,
                "session ended",
            );
        }
    }

    /// Sends every connected node its desired config now.
    pub fn push_all(&self) {
        for name in self.sessions.names() {
            let desired = {
                let fleet = self.fleet();
                let Some(node) = fleet.nodes.get(&name) else {
                    continue;
                };
                fleet.desired_for(&node.identity)
            };
            if !self.sessions.send(&name, Outgoing::Config(desired)) {
                tracing::warn!(
                    node = name,
                    "session queue full or closed; the node gets the config when it reconnects"
                );
            }
        }
    }
}
