//! What agents ask: enrollment (a join token and a CSR for a certificate), and the session
//! (Hello, then status reports, telemetry and acks), in domain types.
//!
//! A node can only speak for itself: its certificate's key must be the one bound to its name
//! (`identity`), and the session's Hello must name that node. The node's role, nodearray
//! and Slurm name are the coordinator's facts (token scope and enrollment rules); the
//! Hello's claims are ignored. Desired config is pushed on every session start and on every
//! accepted change.

use lfleet_proto::convert::ReceivedStatus;
use lfleet_types::{
    AckRefusal, AgentHello, ConfigAck, ErrorChain, Generation, NodeName, SpecError, TelemetryBatch,
};
use tokio::sync::mpsc;

use super::{ApiError, Coordinator};
use crate::events::{CoordinatorKind, Source};
use crate::fleet::NodeState;
use crate::identity::EnrollFailure;
use crate::pki::{PeerCertificate, csr_key_fingerprint};
use crate::sessions::Outgoing;
use crate::store::Write;

/// How often agents should report when nothing changes.
pub const STATUS_INTERVAL_SECONDS: u32 = 10;
/// Agents honour it: every 2 s keeps the throughput view and liveness fresh (a batch is a
/// few hundred samples).
pub const TELEMETRY_INTERVAL_SECONDS: u32 = 2;

/// A signed certificate for a node.
#[derive(Debug, Clone)]
pub struct Enrolled {
    pub certificate_pem: String,
    pub ca_certificate_pem: String,
    pub not_after_unix: i64,
}

impl Coordinator {
    /// Signs a node's CSR when the join token is right and the name is free or bound to the
    /// CSR's key (and VM). A wrong token is counted, not stored; a bound name claimed with
    /// another key is a security event and changes nothing.
    pub async fn enroll(
        &self,
        name: &str,
        token: &str,
        csr_pem: &str,
        vm_id: &str,
    ) -> Result<Enrolled, ApiError> {
        let now = self.now_ms();
        let node: NodeName = name
            .parse()
            .map_err(|e: SpecError| ApiError::InvalidArgument(e.to_string()))?;
        let token_role = match self
            .identities
            .check_token(node.as_str(), token, now / 1000)
        {
            Ok(role) => role,
            Err(refusal) => {
                self.refusals
                    .enroll_refused(now, node.as_str(), &refusal.to_string());
                return Err(ApiError::PermissionDenied(refusal.to_string()));
            }
        };
        let key = csr_key_fingerprint(csr_pem)
            .map_err(|e| ApiError::InvalidArgument(ErrorChain(&e).to_string()))?;
        let vm_id = lfleet_types::safe_text(vm_id, 128);
        let (certificate_pem, not_after) = self
            .pki
            .sign_node(&node, csr_pem, self.certificate_seconds)
            .map_err(|e| ApiError::InvalidArgument(ErrorChain(&e).to_string()))?;
        match self
            .identities
            .enroll(node.as_str(), &key, &vm_id, token_role, not_after, now)
            .await
        {
            Ok(()) => {}
            Err(EnrollFailure::Refused(refusal)) => {
                self.events.record_limited(
                    Source::Security,
                    node.as_str(),
                    CoordinatorKind::EnrollRefused,
                    format!("{refusal} (key {}, VM {vm_id:?})", &key[..16]),
                );
                return Err(ApiError::AlreadyExists(refusal.to_string()));
            }
            Err(failure @ EnrollFailure::Store(_)) => {
                return Err(ApiError::internal("recording the enrollment", failure));
            }
        }
        self.record(
            Source::Coordinator,
            node.as_str(),
            CoordinatorKind::Enrolled,
            format!("key {}, certificate valid until {not_after}", &key[..16]),
        );
        Ok(Enrolled {
            certificate_pem,
            ca_certificate_pem: self.pki.ca_pem.clone(),
            not_after_unix: not_after,
        })
    }

    /// Checks a node's certificate against its binding (sessions and renewals).
    fn check_node_certificate(&self, peer: &PeerCertificate, name: &str) -> Result<(), ApiError> {
        self.identities
            .check_certificate(name, &peer.key_fingerprint, peer.not_before_unix)
            .map(|_| ())
            .map_err(|refusal| {
                self.events.record_limited(
                    Source::Security,
                    name,
                    CoordinatorKind::SessionRefused,
                    refusal.to_string(),
                );
                ApiError::PermissionDenied(refusal.to_string())
            })
    }

    /// A new certificate for the node's bound key, asked over mTLS with its current one.
    pub fn renew(
        &self,
        peer: &PeerCertificate,
        name: &str,
        csr_pem: &str,
    ) -> Result<Enrolled, ApiError> {
        self.check_node_certificate(peer, name)?;
        let key = csr_key_fingerprint(csr_pem)
            .map_err(|e| ApiError::InvalidArgument(ErrorChain(&e).to_string()))?;
        if key != peer.key_fingerprint {
            return Err(ApiError::InvalidArgument(
                "a renewal keeps the enrolled key; a new key needs `lfleet node rekey` and a \
                 join token"
                    .into(),
            ));
        }
        let node: NodeName = name
            .parse()
            .map_err(|e: SpecError| ApiError::InvalidArgument(e.to_string()))?;
        let (certificate_pem, not_after) = self
            .pki
            .sign_node(&node, csr_pem, self.certificate_seconds)
            .map_err(|e| ApiError::InvalidArgument(ErrorChain(&e).to_string()))?;
        self.identities.renewed(name, not_after);
        self.record(
            Source::Coordinator,
            name,
            CoordinatorKind::CertificateRenewed,
            format!("certificate valid until {not_after}"),
        );
        Ok(Enrolled {
            certificate_pem,
            ca_certificate_pem: self.pki.ca_pem.clone(),
            not_after_unix: not_after,
        })
    }

    /// Starts a session for the node `certificate_name` names, after its Hello: registers
    /// it, queues the session parameters and the node's desired config.
    pub fn open_session(
        &self,
        peer: &PeerCertificate,
        certificate_name: &str,
        hello: AgentHello,
    ) -> Result<(u64, mpsc::Receiver<Outgoing>), ApiError> {
        self.check_node_certificate(peer, certificate_name)?;
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
        let (identity, slurm_name) = self.identities.identity_of(&name);
        // Above what the coordinator asked of this node (the fleet's generation, or its
        // pin's): the store lost a generation the node accepted.
        if hello.applied_generation > self.fleet().desired_generation(&name) {
            self.generation_above(hello.applied_generation);
        }
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
        self.received
            .status_reports
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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
        self.received
            .telemetry_batches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dropped = match self.fleet().nodes.get_mut(name) {
            Some(node) => node.take_telemetry(batch, now),
            None => 0,
        };
        if dropped > 0 {
            self.telemetry_dropped
                .fetch_add(dropped, std::sync::atomic::Ordering::Relaxed);
        }
        self.slow_ingest(name, batch);
    }

    /// An ack of a desired config.
    pub fn on_ack(&self, name: &str, ack: ConfigAck) {
        let now = self.now_ms();
        if let Some(node) = self.fleet().nodes.get_mut(name) {
            node.last_seen_ms = now;
        }
        self.acks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_owned(), ack.clone());
        // Refused as old, or as the same number with other content: this node accepted a
        // generation from a coordinator that lost its store. Number above it.
        let applied = self
            .fleet()
            .nodes
            .get(name)
            .map(|n| n.applied_generation)
            .unwrap_or(Generation::ZERO);
        let stale = matches!(
            ack.refusal,
            Some(AckRefusal::StaleGeneration) | Some(AckRefusal::Ledger)
        );
        if stale && applied >= ack.generation {
            self.generation_above(applied);
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

    /// Makes the running generation larger than `applied` (what a node accepted) when it is
    /// not already:
    /// after a lost store the coordinator would otherwise hand out generations every agent
    /// refuses as old. The same desired state is stored again under the new number and
    /// pushed.
    pub fn generation_above(&self, applied: Generation) {
        let (generation, text) = {
            let mut fleet = self.fleet();
            if applied < fleet.generation {
                return;
            }
            fleet.generation = applied.next();
            (fleet.generation, fleet.desired.text.clone())
        };
        self.store.submit(vec![Write::Config {
            generation: generation.get(),
            text,
            source: format!("renumbered above generation {applied} a node reported"),
            at_ms: self.now_ms(),
        }]);
        self.record(
            Source::Coordinator,
            "",
            CoordinatorKind::ConfigApplied,
            format!(
                "generation {generation}: the same desired state, numbered above generation \
                 {applied} that a node accepted earlier (the store lost it)"
            ),
        );
        self.push_all();
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
