//! The gRPC services: `AgentService` (enrollment with a join token; the per-node session over
//! mTLS) and `FleetService` (operators: an admin certificate, or root on the admin socket).
//!
//! A node can only speak for itself: the session's Hello must name the node its certificate
//! names. Desired config is pushed on every session start and on every accepted change.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lfleet_proto::v1;
use lfleet_proto::v1::agent_message::Body;
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::config::{self, ConfigErrors};
use crate::fleet::{Fleet, NodeState};
use crate::pki::{PeerIdentity, Pki, peer_identity};
use crate::store::{Store, StoredEvent, StoredNode};

type Outbound = mpsc::Sender<Result<v1::CoordinatorMessage, Status>>;

/// How long an agent has to send its Hello.
const HELLO_DEADLINE: Duration = Duration::from_secs(10);

/// The coordinator's state, shared by the services.
#[derive(Debug)]
pub struct Coordinator {
    pub fleet: Mutex<Fleet>,
    pub store: Store,
    pub pki: Pki,
    join_token: String,
    cert_hours: u32,
    sessions: Mutex<BTreeMap<String, (u64, Outbound)>>,
    next_session: AtomicU64,
    /// Slurm, when drains are enabled.
    pub slurm: Option<crate::slurm::Scontrol>,
    pub policy: crate::policy::Policy,
    /// One drain pass or manual undrain at a time.
    pub drainer: tokio::sync::Mutex<crate::drain::Drainer>,
}

pub fn now_ms() -> i64 {
    use lfleet_host::Clock;
    lfleet_host::SystemClock.wall_unix_ms() as i64
}

/// Why the coordinator could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("the stored config (generation {generation}) no longer parses: {errors}")]
    StoredConfig {
        generation: u64,
        errors: ConfigErrors,
    },
}

impl Coordinator {
    /// Builds the state from the store and the config file: the file becomes a new
    /// generation when it changed since the last start (or the store is empty); otherwise the
    /// stored generation (perhaps applied with `lfleet config apply`) stays.
    pub fn start(
        file: config::CoordinatorFile,
        store: Store,
        pki: Pki,
        join_token: String,
    ) -> Result<Coordinator, StartError> {
        let file_text = file.desired.text.clone();
        let (generation, desired) = match store.current_config()? {
            Some((generation, text)) if store.meta("file_text")?.as_deref() == Some(&file_text) => {
                let parsed = config::parse(&text)
                    .map_err(|errors| StartError::StoredConfig { generation, errors })?;
                (generation, parsed.desired)
            }
            _ => {
                let generation = store.add_config(&file_text, "file", now_ms())?;
                store.set_meta("file_text", &file_text)?;
                (generation, file.desired)
            }
        };
        let mut nodes = BTreeMap::new();
        for stored in store.nodes()? {
            nodes.insert(
                stored.name.clone(),
                NodeState {
                    hello: v1::Hello::decode(stored.hello.as_slice()).unwrap_or_default(),
                    last_seen_ms: stored.last_seen_ms,
                    applied_generation: stored.applied_generation,
                    status: v1::StatusReport::decode(stored.status.as_slice()).unwrap_or_default(),
                    connected: false,
                    ..NodeState::default()
                },
            );
        }
        Ok(Coordinator {
            fleet: Mutex::new(Fleet {
                desired,
                generation,
                nodes,
            }),
            store,
            pki,
            join_token,
            cert_hours: file.server.agent_certificate_hours,
            sessions: Mutex::new(BTreeMap::new()),
            next_session: AtomicU64::new(1),
            slurm: file.slurm.enabled.then(|| crate::slurm::Scontrol {
                program: file.slurm.scontrol.clone(),
                slurm_conf: file.slurm.slurm_conf.clone(),
                timeout: Duration::from_secs(file.slurm.timeout_seconds.max(1)),
            }),
            policy: file.policy,
            drainer: tokio::sync::Mutex::new(crate::drain::Drainer::default()),
        })
    }

    pub fn fleet(&self) -> std::sync::MutexGuard<'_, Fleet> {
        self.fleet.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, (u64, Outbound)>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a fleet event (stored, logged).
    pub fn record(&self, node: &str, kind: &str, detail: impl Into<String>) {
        let event = StoredEvent {
            at_ms: now_ms(),
            node: node.to_owned(),
            kind: kind.to_owned(),
            detail: detail.into(),
        };
        tracing::info!(node, kind, detail = %event.detail, "fleet event");
        if let Err(error) = self.store.add_event(&event) {
            tracing::error!(%error, "cannot store an event");
        }
    }

    fn persist(&self, name: &str, node: &NodeState) {
        let stored = StoredNode {
            name: name.to_owned(),
            hello: node.hello.encode_to_vec(),
            last_seen_ms: node.last_seen_ms,
            applied_generation: node.applied_generation,
            status: node.status.encode_to_vec(),
        };
        if let Err(error) = self.store.upsert_node(&stored) {
            tracing::error!(%error, node = name, "cannot store a node");
        }
    }

    /// Checks a candidate config; on success stores it as the next generation and pushes it.
    pub fn apply_config(&self, text: &str, source: &str) -> Result<u64, ConfigErrors> {
        let parsed = config::parse(text)?;
        let generation = self.store.add_config(text, source, now_ms()).map_err(|e| {
            ConfigErrors(vec![config::FieldError {
                line: 0,
                field: "store".into(),
                message: e.to_string(),
            }])
        })?;
        {
            let mut fleet = self.fleet();
            fleet.desired = parsed.desired;
            fleet.generation = generation;
        }
        self.record(
            "",
            "config-applied",
            format!("generation {generation} from {source}"),
        );
        self.push_all();
        Ok(generation)
    }

    /// Sends every connected node its desired config now.
    pub fn push_all(&self) {
        let sessions: Vec<(String, Outbound)> = self
            .sessions()
            .iter()
            .map(|(name, (_, tx))| (name.clone(), tx.clone()))
            .collect();
        for (name, tx) in sessions {
            let message = {
                let fleet = self.fleet();
                let Some(node) = fleet.nodes.get(&name) else {
                    continue;
                };
                fleet.desired_for(&node.identity())
            };
            let message = v1::CoordinatorMessage {
                body: Some(v1::coordinator_message::Body::Config(message)),
            };
            if tx.try_send(Ok(message)).is_err() {
                tracing::warn!(
                    node = name,
                    "session queue full or closed; the node gets the config when it reconnects"
                );
            }
        }
    }

    fn handle(&self, name: &str, message: v1::AgentMessage) {
        let now = now_ms();
        let mut fleet = self.fleet();
        let Some(node) = fleet.nodes.get_mut(name) else {
            return;
        };
        node.last_seen_ms = now;
        match message.body {
            Some(Body::Status(report)) => {
                let changed = node
                    .status
                    .conditions
                    .iter()
                    .map(|c| (&c.check, &c.subject, c.outcome, &c.code))
                    .collect::<Vec<_>>()
                    != report
                        .conditions
                        .iter()
                        .map(|c| (&c.check, &c.subject, c.outcome, &c.code))
                        .collect::<Vec<_>>();
                node.applied_generation = report.applied_generation;
                let events = report.events.clone();
                node.status = report;
                let snapshot = node.clone();
                drop(fleet);
                self.persist(name, &snapshot);
                if changed {
                    let failing: Vec<String> = snapshot
                        .status
                        .conditions
                        .iter()
                        .filter(|c| c.outcome == v1::Outcome::Fail as i32)
                        .map(|c| format!("{} {} {}", c.check, c.subject, c.code))
                        .collect();
                    self.record(
                        name,
                        "conditions",
                        if failing.is_empty() {
                            "all pass".to_owned()
                        } else {
                            failing.join("; ")
                        },
                    );
                }
                for event in events {
                    self.record(
                        name,
                        &event.kind,
                        format!("{} {}", event.subject, event.detail),
                    );
                }
            }
            Some(Body::Ack(ack)) => {
                drop(fleet);
                self.record(
                    name,
                    if ack.accepted {
                        "config-acked"
                    } else {
                        "config-refused"
                    },
                    format!("generation {} {}", ack.generation, ack.message),
                );
            }
            Some(Body::Telemetry(batch)) => node.take_telemetry(&batch, now),
            Some(Body::Hello(_)) | Some(Body::CommandResult(_)) | None => {}
        }
    }
}

/// The node a session's certificate names.
fn node_of<T>(request: &Request<T>) -> Result<String, Status> {
    let certs = request
        .peer_certs()
        .ok_or_else(|| Status::unauthenticated("a session needs the node's client certificate"))?;
    match certs.first().and_then(|c| peer_identity(c)) {
        Some(PeerIdentity::Node(name)) => Ok(name.as_str().to_owned()),
        _ => Err(Status::permission_denied(
            "the certificate does not name a node",
        )),
    }
}

/// The operator behind a call: root on the admin socket, or an admin certificate.
pub fn operator_of<T>(request: &Request<T>) -> Result<String, Status> {
    if let Some(info) = request
        .extensions()
        .get::<tonic::transport::server::UdsConnectInfo>()
    {
        return match info.peer_cred.map(|c| c.uid()) {
            Some(0) => Ok("root (admin socket)".into()),
            other => Err(Status::permission_denied(format!(
                "only root may use the admin socket (caller uid {other:?})"
            ))),
        };
    }
    match request
        .peer_certs()
        .and_then(|certs| certs.first().and_then(|c| peer_identity(c)))
    {
        Some(PeerIdentity::Admin(name)) => Ok(name),
        _ => Err(Status::permission_denied(
            "operator calls need an admin certificate or root on the admin socket",
        )),
    }
}

/// `AgentService`.
#[derive(Debug, Clone)]
pub struct AgentApi(pub Arc<Coordinator>);

/// Compares without stopping at the first difference.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[tonic::async_trait]
impl v1::agent_service_server::AgentService for AgentApi {
    async fn enroll(
        &self,
        request: Request<v1::EnrollRequest>,
    ) -> Result<Response<v1::EnrollResponse>, Status> {
        let request = request.into_inner();
        let node = lfleet_proto::convert::node_name_from_wire(&request.node_name)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        if self.0.join_token.is_empty() || !same_secret(&request.join_token, &self.0.join_token) {
            self.0
                .record(node.as_str(), "enroll-refused", "wrong join token");
            return Err(Status::permission_denied("wrong join token"));
        }
        let (certificate_pem, not_after) = self
            .0
            .pki
            .sign_node(&node, &request.csr_pem, self.0.cert_hours)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        self.0.record(
            node.as_str(),
            "enrolled",
            format!("certificate valid until {not_after}"),
        );
        Ok(Response::new(v1::EnrollResponse {
            certificate_pem,
            ca_certificate_pem: self.0.pki.ca_pem.clone(),
            not_after_unix: not_after,
        }))
    }

    type SessionStream = ReceiverStream<Result<v1::CoordinatorMessage, Status>>;

    async fn session(
        &self,
        request: Request<Streaming<v1::AgentMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let name = node_of(&request)?;
        let mut inbound = request.into_inner();
        let hello = match tokio::time::timeout(HELLO_DEADLINE, inbound.message()).await {
            Ok(Ok(Some(v1::AgentMessage {
                body: Some(Body::Hello(hello)),
                ..
            }))) => hello,
            Ok(Err(status)) => return Err(status),
            Ok(_) => return Err(Status::invalid_argument("a session starts with Hello")),
            Err(_) => return Err(Status::deadline_exceeded("no Hello within 10 s")),
        };
        if hello.node_name != name {
            self.0.record(
                &name,
                "session-refused",
                format!("Hello names {:?}", hello.node_name),
            );
            return Err(Status::permission_denied(format!(
                "this certificate is for {name}, not {:?}",
                hello.node_name
            )));
        }
        let coordinator = self.0.clone();
        let id = coordinator.next_session.fetch_add(1, Ordering::SeqCst);
        let (tx, rx) = mpsc::channel(64);
        let desired = {
            let mut fleet = coordinator.fleet();
            let node = fleet.nodes.entry(name.clone()).or_default();
            node.applied_generation = hello.applied_generation;
            node.hello = hello;
            node.connected = true;
            node.last_seen_ms = now_ms();
            let snapshot = node.clone();
            let desired = fleet.desired_for(&snapshot.identity());
            drop(fleet);
            coordinator.persist(&name, &snapshot);
            desired
        };
        coordinator
            .sessions()
            .insert(name.clone(), (id, tx.clone()));
        coordinator.record(&name, "connected", "session started");
        let accepted = v1::CoordinatorMessage {
            body: Some(v1::coordinator_message::Body::Accepted(
                v1::SessionAccepted {
                    node_name: name.clone(),
                    status_interval_seconds: 10,
                    telemetry_interval_seconds: 10,
                },
            )),
        };
        let config = v1::CoordinatorMessage {
            body: Some(v1::coordinator_message::Body::Config(desired)),
        };
        let _ = tx.send(Ok(accepted)).await;
        let _ = tx.send(Ok(config)).await;
        tokio::spawn(async move {
            loop {
                match inbound.message().await {
                    Ok(Some(message)) => coordinator.handle(&name, message),
                    Ok(None) => break,
                    Err(status) => {
                        tracing::info!(node = name, %status, "session ended with an error");
                        break;
                    }
                }
            }
            let current = coordinator.sessions().get(&name).map(|(i, _)| *i);
            if current == Some(id) {
                coordinator.sessions().remove(&name);
                if let Some(node) = coordinator.fleet().nodes.get_mut(&name) {
                    node.connected = false;
                }
                coordinator.record(&name, "disconnected", "session ended");
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// `FleetService`.
#[derive(Debug, Clone)]
pub struct FleetApi(pub Arc<Coordinator>);

fn field_errors(errors: ConfigErrors) -> Vec<v1::FieldError> {
    errors
        .0
        .into_iter()
        .map(|e| v1::FieldError {
            line: e.line,
            field: e.field,
            message: e.message,
        })
        .collect()
}

#[tonic::async_trait]
impl v1::fleet_service_server::FleetService for FleetApi {
    async fn list_nodes(
        &self,
        request: Request<v1::ListNodesRequest>,
    ) -> Result<Response<v1::ListNodesResponse>, Status> {
        operator_of(&request)?;
        let now = now_ms();
        let fleet = self.0.fleet();
        let nodes = fleet
            .nodes
            .keys()
            .filter_map(|name| fleet.summary(name, now))
            .filter(|s| !request.get_ref().unhealthy_only || s.health != v1::Health::Healthy as i32)
            .collect();
        Ok(Response::new(v1::ListNodesResponse { nodes }))
    }

    async fn get_node(
        &self,
        request: Request<v1::GetNodeRequest>,
    ) -> Result<Response<v1::NodeDetail>, Status> {
        operator_of(&request)?;
        let name = request.get_ref().node_name.clone();
        let now = now_ms();
        let (summary, node) = {
            let fleet = self.0.fleet();
            let summary = fleet
                .summary(&name, now)
                .ok_or_else(|| Status::not_found(format!("no node {name:?}")))?;
            (summary, fleet.nodes[&name].clone())
        };
        let recent_events = self
            .0
            .store
            .events(now - 24 * 3600 * 1000, 10_000)
            .map_err(|e| Status::internal(e.to_string()))?
            .into_iter()
            .filter(|e| e.node == name)
            .rev()
            .take(50)
            .map(|e| v1::Event {
                kind: e.kind,
                subject: name.clone(),
                detail: e.detail,
                at_unix_ms: e.at_ms,
            })
            .collect();
        Ok(Response::new(v1::NodeDetail {
            summary: Some(summary),
            items: node.status.items.clone(),
            recent_events,
            distro: node.hello.distro.clone(),
            lustre_client_version: node.hello.lustre_client_version.clone(),
        }))
    }

    async fn list_filesystems(
        &self,
        request: Request<v1::ListFilesystemsRequest>,
    ) -> Result<Response<v1::ListFilesystemsResponse>, Status> {
        operator_of(&request)?;
        let want = request.get_ref().name.clone();
        let filesystems = self
            .0
            .fleet()
            .filesystems(now_ms())
            .into_iter()
            .filter(|f| want.is_empty() || f.name == want)
            .collect();
        Ok(Response::new(v1::ListFilesystemsResponse { filesystems }))
    }

    async fn get_config(
        &self,
        request: Request<v1::GetConfigRequest>,
    ) -> Result<Response<v1::ConfigDocument>, Status> {
        operator_of(&request)?;
        let fleet = self.0.fleet();
        Ok(Response::new(v1::ConfigDocument {
            generation: fleet.generation,
            toml: fleet.desired.text.clone(),
        }))
    }

    async fn diff_config(
        &self,
        request: Request<v1::DiffConfigRequest>,
    ) -> Result<Response<v1::DiffConfigResponse>, Status> {
        operator_of(&request)?;
        let text = request.into_inner().toml;
        let (current, affected) = {
            let fleet = self.0.fleet();
            let candidate = config::parse(&text);
            let affected = match &candidate {
                Ok(parsed) => fleet
                    .nodes
                    .iter()
                    .filter(|(_, n)| {
                        let id = n.identity();
                        fleet.desired.mounts_for(&id) != parsed.desired.mounts_for(&id)
                            || fleet.desired.client != parsed.desired.client
                            || fleet.desired.lnet != parsed.desired.lnet
                    })
                    .map(|(name, _)| name.clone())
                    .collect(),
                Err(_) => Vec::new(),
            };
            (fleet.desired.text.clone(), affected)
        };
        let errors = config::parse(&text)
            .err()
            .map(field_errors)
            .unwrap_or_default();
        let diff = similar::TextDiff::from_lines(&current, &text)
            .unified_diff()
            .header("running", "candidate")
            .to_string();
        Ok(Response::new(v1::DiffConfigResponse {
            diff,
            errors,
            affected_nodes: affected,
        }))
    }

    async fn apply_config(
        &self,
        request: Request<v1::ApplyConfigRequest>,
    ) -> Result<Response<v1::ApplyConfigResponse>, Status> {
        let who = operator_of(&request)?;
        let request = request.into_inner();
        if request.dry_run {
            return Ok(Response::new(v1::ApplyConfigResponse {
                generation: self.0.fleet().generation,
                errors: config::parse(&request.toml)
                    .err()
                    .map(field_errors)
                    .unwrap_or_default(),
            }));
        }
        match self
            .0
            .apply_config(&request.toml, &format!("lfleet config apply by {who}"))
        {
            Ok(generation) => Ok(Response::new(v1::ApplyConfigResponse {
                generation,
                errors: Vec::new(),
            })),
            Err(errors) => Ok(Response::new(v1::ApplyConfigResponse {
                generation: self.0.fleet().generation,
                errors: field_errors(errors),
            })),
        }
    }

    async fn list_drains(
        &self,
        request: Request<v1::ListDrainsRequest>,
    ) -> Result<Response<v1::ListDrainsResponse>, Status> {
        operator_of(&request)?;
        let ledger = self
            .0
            .store
            .drains()
            .map_err(|e| Status::internal(e.to_string()))?;
        let slurm_view = match &self.0.slurm {
            Some(slurm) => slurm
                .nodes(&lfleet_host::SystemCommandRunner::from_env())
                .await
                .map_err(|e| Status::unavailable(e.to_string()))?,
            None => Vec::new(),
        };
        let mut drains: Vec<v1::DrainRecord> = Vec::new();
        let cutoff = now_ms() - 24 * 3600 * 1000;
        for entry in ledger
            .iter()
            .filter(|e| e.ended_ms.is_none_or(|t| t >= cutoff))
        {
            let slurm_state = slurm_view
                .iter()
                .find(|n| n.name == entry.slurm_name)
                .map(|n| n.state.join("+"))
                .unwrap_or_default();
            drains.push(v1::DrainRecord {
                node_name: entry.node.clone(),
                drain_id: entry.drain_id.clone(),
                reason: entry.reason.clone(),
                reason_time_unix: entry.drained_ms / 1000,
                reason_user: entry.reason_user.clone(),
                slurm_state,
                by_lfleet: true,
                status: if entry.ended_ms.is_none() {
                    "active".into()
                } else {
                    entry.end.clone()
                },
                check: entry.check.clone(),
            });
        }
        for node in slurm_view.iter().filter(|n| n.is_out()) {
            let ours = ledger
                .iter()
                .any(|e| e.ended_ms.is_none() && e.slurm_name == node.name);
            if !ours {
                drains.push(v1::DrainRecord {
                    node_name: node.name.clone(),
                    drain_id: String::new(),
                    reason: node.reason.clone(),
                    reason_time_unix: 0,
                    reason_user: node.reason_user.clone(),
                    slurm_state: node.state.join("+"),
                    by_lfleet: false,
                    status: "not lfleet's".into(),
                    check: String::new(),
                });
            }
        }
        Ok(Response::new(v1::ListDrainsResponse { drains }))
    }

    async fn undrain(
        &self,
        request: Request<v1::UndrainRequest>,
    ) -> Result<Response<v1::UndrainResponse>, Status> {
        let who = operator_of(&request)?;
        let request = request.into_inner();
        let Some(slurm) = &self.0.slurm else {
            return Err(Status::failed_precondition(
                "Slurm drains are not enabled ([slurm] enabled = false)",
            ));
        };
        let ledger = self
            .0
            .store
            .drains()
            .map_err(|e| Status::internal(e.to_string()))?;
        let Some(entry) = ledger
            .iter()
            .find(|e| e.ended_ms.is_none() && e.node == request.node_name)
        else {
            return Ok(Response::new(v1::UndrainResponse {
                undrained: false,
                message: format!(
                    "lfleet has no drain on {}; a drain someone else made is theirs to lift",
                    request.node_name
                ),
            }));
        };
        let mut drainer = self.0.drainer.lock().await;
        let runner = lfleet_host::SystemCommandRunner::from_env();
        match drainer
            .undrain(&self.0, entry, slurm, &runner, "manual-undrain", now_ms())
            .await
        {
            Ok(true) => {
                self.0.record(
                    &request.node_name,
                    "manual-undrain",
                    format!("by {who}: {}", request.operator_note),
                );
                Ok(Response::new(v1::UndrainResponse {
                    undrained: true,
                    message: format!("drain {} lifted", entry.drain_id),
                }))
            }
            Ok(false) => Ok(Response::new(v1::UndrainResponse {
                undrained: false,
                message:
                    "Slurm no longer shows lfleet's drain (someone changed it); nothing written"
                        .into(),
            })),
            Err(error) => Err(Status::unavailable(error.to_string())),
        }
    }

    async fn list_incidents(
        &self,
        request: Request<v1::ListIncidentsRequest>,
    ) -> Result<Response<v1::ListIncidentsResponse>, Status> {
        operator_of(&request)?;
        let open_only = request.get_ref().open_only;
        let incidents = self
            .0
            .store
            .incidents()
            .map_err(|e| Status::internal(e.to_string()))?
            .into_iter()
            .filter(|i| !open_only || i.closed_ms.is_none())
            .map(|i| v1::Incident {
                id: i.id,
                check: i.check,
                filesystem: i.subject,
                opened_unix_ms: i.opened_ms,
                closed_unix_ms: i.closed_ms.unwrap_or(0),
                node_count: i.nodes.len() as u32,
                affected_nodes: i.nodes,
            })
            .collect();
        Ok(Response::new(v1::ListIncidentsResponse { incidents }))
    }

    async fn list_events(
        &self,
        request: Request<v1::ListEventsRequest>,
    ) -> Result<Response<v1::ListEventsResponse>, Status> {
        operator_of(&request)?;
        let request = request.into_inner();
        let limit = if request.limit == 0 {
            100
        } else {
            request.limit
        };
        let events = self
            .0
            .store
            .events(request.since_unix_ms, limit)
            .map_err(|e| Status::internal(e.to_string()))?
            .into_iter()
            .map(|e| v1::FleetEvent {
                at_unix_ms: e.at_ms,
                node_name: e.node,
                kind: e.kind,
                detail: e.detail,
            })
            .collect();
        Ok(Response::new(v1::ListEventsResponse { events }))
    }

    async fn get_policy(
        &self,
        request: Request<v1::GetPolicyRequest>,
    ) -> Result<Response<v1::PolicyDocument>, Status> {
        operator_of(&request)?;
        let policy = self.0.effective_policy(&self.0.policy);
        Ok(Response::new(v1::PolicyDocument {
            toml: toml::to_string(&policy).map_err(|e| Status::internal(e.to_string()))?,
            dry_run: policy.dry_run,
        }))
    }

    async fn set_dry_run(
        &self,
        request: Request<v1::SetDryRunRequest>,
    ) -> Result<Response<v1::SetDryRunResponse>, Status> {
        let who = operator_of(&request)?;
        let request = request.into_inner();
        let store = |key: &str, value: &str| {
            self.0
                .store
                .set_meta(key, value)
                .map_err(|e| Status::internal(e.to_string()))
        };
        if request.check.is_empty() {
            store("dry_run", if request.dry_run { "on" } else { "off" })?;
        } else {
            let mut checks = self.0.effective_policy(&self.0.policy).dry_run_checks;
            checks.retain(|c| *c != request.check);
            if request.dry_run {
                checks.push(request.check.clone());
            }
            store(
                "dry_run_checks",
                &serde_json::to_string(&checks).unwrap_or_default(),
            )?;
        }
        self.0.record(
            "",
            "dry-run",
            format!(
                "{} {} by {who}",
                if request.check.is_empty() {
                    "all checks".to_owned()
                } else {
                    request.check.clone()
                },
                if request.dry_run { "on" } else { "off" }
            ),
        );
        Ok(Response::new(v1::SetDryRunResponse {
            dry_run: self.0.effective_policy(&self.0.policy).dry_run,
        }))
    }
}
