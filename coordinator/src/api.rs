//! The gRPC services, thin: each handler authenticates the peer, turns the request into
//! domain values (`lfleet_proto::convert`), calls one [`Coordinator`] function and turns its
//! answer back; [`status`] is the one place errors become gRPC statuses.
//!
//! `AgentService`: enrollment (join token, no certificate needed) and the per-node session
//! over mTLS. `FleetService`: operators, with an admin certificate or as root on the admin
//! socket.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use lfleet_proto::convert::{agent_text, role_from_wire, status_from_wire};
use lfleet_proto::v1;
use lfleet_proto::v1::agent_message::Body;
use lfleet_types::{
    AgentHello, CommandOutcome, CommandRequest, ConfigAck, ErrorChain, TelemetryBatch,
};
use tokio_stream::{Stream, StreamExt, wrappers::ReceiverStream};
use tonic::{Request, Response, Status, Streaming};

use crate::app::agents::Enrolled;
use crate::app::{ApiError, Coordinator};
use crate::config::FieldError;
use crate::pki::{PeerCertificate, PeerIdentity, peer_certificate};
use crate::sessions::Outgoing;

/// How long an agent has to send its Hello.
const HELLO_DEADLINE: Duration = Duration::from_secs(10);

/// The one mapping from domain errors to gRPC statuses; internal errors are logged whole
/// and shown with their whole cause chain.
pub fn status(error: ApiError) -> Status {
    match error {
        ApiError::InvalidArgument(m) => Status::invalid_argument(m),
        ApiError::PermissionDenied(m) => Status::permission_denied(m),
        ApiError::NotFound(m) => Status::not_found(m),
        ApiError::AlreadyExists(m) => Status::already_exists(m),
        ApiError::FailedPrecondition(m) => Status::failed_precondition(m),
        ApiError::Unavailable(m) => Status::unavailable(m),
        ApiError::ResourceExhausted(m) => Status::resource_exhausted(m),
        internal @ ApiError::Internal { .. } => {
            let text = ErrorChain(&internal).to_string();
            tracing::error!(error = %text, "an operator call failed");
            Status::internal(text)
        }
    }
}

/// The node a session's certificate names, with the certificate.
fn node_of<T>(request: &Request<T>) -> Result<(String, PeerCertificate), Status> {
    let certs = request
        .peer_certs()
        .ok_or_else(|| Status::unauthenticated("this call needs the node's client certificate"))?;
    match certs.first().and_then(|c| peer_certificate(c)) {
        Some(
            peer @ PeerCertificate {
                identity: PeerIdentity::Node(_),
                ..
            },
        ) => {
            let PeerIdentity::Node(name) = &peer.identity else {
                unreachable!("matched above")
            };
            Ok((name.as_str().to_owned(), peer.clone()))
        }
        _ => Err(Status::permission_denied(
            "the certificate does not name a node",
        )),
    }
}

/// The operator behind a call: root on the admin socket, or an admin certificate that was
/// not revoked.
pub fn operator_of<T>(coordinator: &Coordinator, request: &Request<T>) -> Result<String, Status> {
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
        .and_then(|certs| certs.first().and_then(|c| peer_certificate(c)))
    {
        Some(PeerCertificate {
            identity: PeerIdentity::Admin(name),
            serial,
            ..
        }) => {
            if coordinator.identities().admin_allowed(&name, &serial) {
                Ok(name)
            } else {
                Err(Status::permission_denied(format!(
                    "the certificate of operator {name:?} was revoked"
                )))
            }
        }
        _ => Err(Status::permission_denied(
            "operator calls need an admin certificate or root on the admin socket",
        )),
    }
}

fn outgoing_to_wire(message: Outgoing) -> Result<v1::CoordinatorMessage, Status> {
    use v1::coordinator_message::Body as Out;
    let body = match message {
        Outgoing::Accepted {
            node_name,
            status_interval_seconds,
            telemetry_interval_seconds,
        } => Out::Accepted(v1::SessionAccepted {
            node_name,
            status_interval_seconds,
            telemetry_interval_seconds,
        }),
        Outgoing::Config(config) => Out::Config(v1::DesiredConfig::from(&config)),
        Outgoing::Command(command) => Out::Command(v1::Command::from(&command)),
        Outgoing::GoingAway(why) => return Err(Status::unavailable(format!("going away: {why}"))),
    };
    Ok(v1::CoordinatorMessage { body: Some(body) })
}

// === impl AgentApi ===

/// `AgentService`.
#[derive(Debug, Clone)]
pub struct AgentApi(pub Arc<Coordinator>);

type SessionStream = Pin<Box<dyn Stream<Item = Result<v1::CoordinatorMessage, Status>> + Send>>;

#[tonic::async_trait]
impl v1::agent_service_server::AgentService for AgentApi {
    async fn enroll(
        &self,
        request: Request<v1::EnrollRequest>,
    ) -> Result<Response<v1::EnrollResponse>, Status> {
        let request = request.into_inner();
        let enrolled = self
            .0
            .enroll(
                &request.node_name,
                &request.join_token,
                &request.csr_pem,
                &request.vm_id,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(enrolled_to_wire(enrolled)))
    }

    async fn renew(
        &self,
        request: Request<v1::RenewRequest>,
    ) -> Result<Response<v1::EnrollResponse>, Status> {
        let (name, peer) = node_of(&request)?;
        let enrolled = self
            .0
            .renew(&peer, &name, &request.get_ref().csr_pem)
            .map_err(status)?;
        Ok(Response::new(enrolled_to_wire(enrolled)))
    }

    type SessionStream = SessionStream;

    async fn session(
        &self,
        request: Request<Streaming<v1::AgentMessage>>,
    ) -> Result<Response<SessionStream>, Status> {
        let (name, peer) = node_of(&request)?;
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
        let hello =
            AgentHello::try_from(&hello).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let (id, outbound) = self.0.open_session(&peer, &name, hello).map_err(status)?;
        let coordinator = self.0.clone();
        tokio::spawn(async move {
            loop {
                match inbound.message().await {
                    Ok(Some(message)) => take(&coordinator, &name, message),
                    Ok(None) => break,
                    Err(status) => {
                        tracing::info!(node = name, %status, "session ended with an error");
                        break;
                    }
                }
                if !coordinator.sessions().is_live(&name) {
                    break;
                }
            }
            coordinator.close_session(&name, id);
        });
        let stream = ReceiverStream::new(outbound).map(outgoing_to_wire);
        Ok(Response::new(Box::pin(stream)))
    }
}

fn enrolled_to_wire(enrolled: Enrolled) -> v1::EnrollResponse {
    v1::EnrollResponse {
        certificate_pem: enrolled.certificate_pem,
        ca_certificate_pem: enrolled.ca_certificate_pem,
        not_after_unix: enrolled.not_after_unix,
    }
}

/// One message of a session, into the coordinator.
fn take(coordinator: &Coordinator, name: &str, message: v1::AgentMessage) {
    match message.body {
        Some(Body::Status(report)) => match status_from_wire(&report) {
            Ok(received) => coordinator.on_status(name, received),
            Err(error) => coordinator.on_refused(name, &[error]),
        },
        Some(Body::Telemetry(batch)) => {
            coordinator.on_telemetry(name, &TelemetryBatch::from(&batch));
        }
        // An ack naming a command is the agent refusing it (a kind it does not know).
        Some(Body::Ack(ack)) if !ack.command_id.is_empty() => coordinator.on_command_result(
            name,
            CommandOutcome {
                id: agent_text(&ack.command_id, 128),
                ok: false,
                message: format!(
                    "refused ({}): {}",
                    agent_text(&ack.error_class, 64),
                    agent_text(&ack.message, 1024)
                ),
            },
        ),
        Some(Body::Ack(ack)) => coordinator.on_ack(name, ConfigAck::from(&ack)),
        Some(Body::CommandResult(result)) => {
            coordinator.on_command_result(name, CommandOutcome::from(&result))
        }
        Some(Body::Hello(_)) | None => coordinator.on_heard(name),
    }
}

// === impl FleetApi ===

/// `FleetService`.
#[derive(Debug, Clone)]
pub struct FleetApi(pub Arc<Coordinator>);

fn field_errors(errors: Vec<FieldError>) -> Vec<v1::FieldError> {
    errors
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
        operator_of(&self.0, &request)?;
        let nodes = self.0.list_nodes(request.get_ref().unhealthy_only);
        Ok(Response::new(v1::ListNodesResponse {
            nodes: nodes.iter().map(v1::NodeSummary::from).collect(),
        }))
    }

    async fn get_node(
        &self,
        request: Request<v1::GetNodeRequest>,
    ) -> Result<Response<v1::NodeDetail>, Status> {
        operator_of(&self.0, &request)?;
        let detail = self
            .0
            .node_detail(&request.get_ref().node_name)
            .map_err(status)?;
        Ok(Response::new(v1::NodeDetail::from(&detail)))
    }

    async fn list_filesystems(
        &self,
        request: Request<v1::ListFilesystemsRequest>,
    ) -> Result<Response<v1::ListFilesystemsResponse>, Status> {
        operator_of(&self.0, &request)?;
        let name = &request.get_ref().name;
        let filesystems = self
            .0
            .filesystems((!name.is_empty()).then_some(name.as_str()));
        Ok(Response::new(v1::ListFilesystemsResponse {
            filesystems: filesystems
                .iter()
                .map(v1::FilesystemSummary::from)
                .collect(),
        }))
    }

    async fn get_config(
        &self,
        request: Request<v1::GetConfigRequest>,
    ) -> Result<Response<v1::ConfigDocument>, Status> {
        operator_of(&self.0, &request)?;
        let (generation, toml) = self.0.config();
        Ok(Response::new(v1::ConfigDocument {
            generation: generation.get(),
            toml,
        }))
    }

    async fn diff_config(
        &self,
        request: Request<v1::DiffConfigRequest>,
    ) -> Result<Response<v1::DiffConfigResponse>, Status> {
        operator_of(&self.0, &request)?;
        let diff = self.0.diff_config(&request.into_inner().toml);
        Ok(Response::new(v1::DiffConfigResponse {
            diff: diff.diff,
            errors: field_errors(diff.errors),
            affected_nodes: diff.affected_nodes,
        }))
    }

    async fn apply_config(
        &self,
        request: Request<v1::ApplyConfigRequest>,
    ) -> Result<Response<v1::ApplyConfigResponse>, Status> {
        let who = operator_of(&self.0, &request)?;
        let request = request.into_inner();
        let (running, _) = self.0.config();
        if request.dry_run {
            let errors = crate::config::parse(&request.toml)
                .err()
                .map(|e| e.0)
                .unwrap_or_default();
            return Ok(Response::new(v1::ApplyConfigResponse {
                generation: running.get(),
                errors: field_errors(errors),
                ..Default::default()
            }));
        }
        let wait = Duration::from_secs(u64::from(request.wait_seconds.min(600)));
        Ok(Response::new(
            match self.0.apply_config(&request.toml, &who, wait).await {
                Ok(applied) => v1::ApplyConfigResponse {
                    generation: applied.generation.get(),
                    errors: Vec::new(),
                    acks: applied
                        .acks
                        .iter()
                        .map(|(node, ack)| {
                            let wire = v1::Ack::from(ack);
                            v1::NodeAck {
                                node_name: node.clone(),
                                accepted: wire.accepted,
                                error_class: wire.error_class,
                                message: wire.message,
                            }
                        })
                        .collect(),
                    unanswered: applied.unanswered,
                },
                Err(errors) => v1::ApplyConfigResponse {
                    generation: running.get(),
                    errors: field_errors(errors.0),
                    ..Default::default()
                },
            },
        ))
    }

    async fn list_drains(
        &self,
        request: Request<v1::ListDrainsRequest>,
    ) -> Result<Response<v1::ListDrainsResponse>, Status> {
        operator_of(&self.0, &request)?;
        let drains = self.0.drains().await.map_err(status)?;
        Ok(Response::new(v1::ListDrainsResponse {
            drains: drains.iter().map(v1::DrainRecord::from).collect(),
        }))
    }

    async fn undrain(
        &self,
        request: Request<v1::UndrainRequest>,
    ) -> Result<Response<v1::UndrainResponse>, Status> {
        let who = operator_of(&self.0, &request)?;
        let request = request.into_inner();
        let (undrained, message) = self
            .0
            .undrain(&request.node_name, &who, &request.operator_note)
            .await
            .map_err(status)?;
        Ok(Response::new(v1::UndrainResponse { undrained, message }))
    }

    async fn list_incidents(
        &self,
        request: Request<v1::ListIncidentsRequest>,
    ) -> Result<Response<v1::ListIncidentsResponse>, Status> {
        operator_of(&self.0, &request)?;
        let incidents = self
            .0
            .incidents(request.get_ref().open_only)
            .map_err(status)?;
        Ok(Response::new(v1::ListIncidentsResponse {
            incidents: incidents.iter().map(v1::Incident::from).collect(),
        }))
    }

    async fn list_events(
        &self,
        request: Request<v1::ListEventsRequest>,
    ) -> Result<Response<v1::ListEventsResponse>, Status> {
        operator_of(&self.0, &request)?;
        let request = request.into_inner();
        let events = self
            .0
            .list_events(request.since_unix_ms, request.limit)
            .map_err(status)?;
        Ok(Response::new(v1::ListEventsResponse {
            events: events.iter().map(v1::FleetEvent::from).collect(),
        }))
    }

    async fn get_policy(
        &self,
        request: Request<v1::GetPolicyRequest>,
    ) -> Result<Response<v1::PolicyDocument>, Status> {
        operator_of(&self.0, &request)?;
        let policy = self.0.policy();
        Ok(Response::new(v1::PolicyDocument {
            toml: toml::to_string(&policy)
                .map_err(|e| status(ApiError::internal("the policy as TOML", e)))?,
            dry_run: policy.dry_run,
        }))
    }

    async fn send_command(
        &self,
        request: Request<v1::SendCommandRequest>,
    ) -> Result<Response<v1::SendCommandResponse>, Status> {
        let who = operator_of(&self.0, &request)?;
        let request = request.into_inner();
        let command = request
            .command
            .as_ref()
            .ok_or_else(|| Status::invalid_argument("command: is missing"))
            .and_then(|command| {
                CommandRequest::try_from(command)
                    .map_err(|e| Status::invalid_argument(e.to_string()))
            })?;
        let command_id = self
            .0
            .send_command(&request.node_name, command.command, &who)
            .map_err(status)?;
        Ok(Response::new(v1::SendCommandResponse { command_id }))
    }

    async fn plan_upgrade(
        &self,
        request: Request<v1::UpgradeRequest>,
    ) -> Result<Response<v1::Upgrade>, Status> {
        let who = operator_of(&self.0, &request)?;
        let wire = request.into_inner();
        let upgrade = crate::upgrade::UpgradeRequest::parse(
            &wire.client,
            &wire.nodes,
            &wire.wave,
            wire.max_failures,
        )
        .map_err(Status::invalid_argument)?;
        let view = if wire.start {
            let options = crate::app::upgrades::UpgradeOptions {
                reboot: !wire.no_reboot,
                step_timeout_seconds: match wire.step_timeout_seconds {
                    0 => 1800,
                    seconds => u64::from(seconds),
                },
            };
            self.0.upgrade_start(&upgrade, &options, &who).await
        } else {
            self.0.upgrade_plan(&upgrade).await
        }
        .map_err(status)?;
        Ok(Response::new(v1::Upgrade::from(&view)))
    }

    async fn get_upgrade(
        &self,
        request: Request<v1::GetUpgradeRequest>,
    ) -> Result<Response<v1::Upgrade>, Status> {
        operator_of(&self.0, &request)?;
        let view = self.0.upgrade_status().await;
        Ok(Response::new(v1::Upgrade::from(&view)))
    }

    async fn control_upgrade(
        &self,
        request: Request<v1::ControlUpgradeRequest>,
    ) -> Result<Response<v1::Upgrade>, Status> {
        use crate::app::upgrades::UpgradeControl;
        let who = operator_of(&self.0, &request)?;
        let control = match request.get_ref().action.as_str() {
            "pause" => UpgradeControl::Pause,
            "resume" => UpgradeControl::Resume,
            "abort" => UpgradeControl::Abort,
            other => {
                return Err(Status::invalid_argument(format!(
                    "action {other:?}: pause, resume or abort"
                )));
            }
        };
        let view = self
            .0
            .upgrade_control(control, &who)
            .await
            .map_err(status)?;
        Ok(Response::new(v1::Upgrade::from(&view)))
    }

    async fn set_dry_run(
        &self,
        request: Request<v1::SetDryRunRequest>,
    ) -> Result<Response<v1::SetDryRunResponse>, Status> {
        let who = operator_of(&self.0, &request)?;
        let request = request.into_inner();
        let policy = self
            .0
            .set_dry_run(&request.check, request.dry_run, &who)
            .await
            .map_err(status)?;
        Ok(Response::new(v1::SetDryRunResponse {
            dry_run: policy.dry_run,
        }))
    }

    async fn remove_node(
        &self,
        request: Request<v1::RemoveNodeRequest>,
    ) -> Result<Response<v1::RemoveNodeResponse>, Status> {
        let who = operator_of(&self.0, &request)?;
        let request = request.into_inner();
        let message = self
            .0
            .remove_node(&request.node_name, request.rekey_only, &who)
            .await
            .map_err(status)?;
        Ok(Response::new(v1::RemoveNodeResponse { message }))
    }

    async fn rotate_token(
        &self,
        request: Request<v1::RotateTokenRequest>,
    ) -> Result<Response<v1::RotateTokenResponse>, Status> {
        let who = operator_of(&self.0, &request)?;
        let request = request.into_inner();
        let expires = (request.expires_unix != 0).then_some(request.expires_unix);
        let token = self
            .0
            .rotate_token(role_from_wire(request.role), &request.nodes, expires, &who)
            .await
            .map_err(status)?;
        Ok(Response::new(v1::RotateTokenResponse {
            token,
            expires_unix: request.expires_unix,
        }))
    }

    async fn list_certificates(
        &self,
        request: Request<v1::ListCertificatesRequest>,
    ) -> Result<Response<v1::ListCertificatesResponse>, Status> {
        operator_of(&self.0, &request)?;
        let certificates = self.0.certificates().map_err(status)?;
        Ok(Response::new(v1::ListCertificatesResponse {
            certificates: certificates
                .into_iter()
                .map(|c| v1::CertificateRecord {
                    kind: c.kind.into(),
                    name: c.name,
                    id: c.id,
                    not_after_unix: c.not_after_unix,
                    state: c.state.into(),
                    vm_id: c.vm_id,
                })
                .collect(),
        }))
    }

    async fn revoke_admin(
        &self,
        request: Request<v1::RevokeAdminRequest>,
    ) -> Result<Response<v1::RevokeAdminResponse>, Status> {
        let who = operator_of(&self.0, &request)?;
        let name = request.into_inner().name;
        let revoked = self.0.revoke_admin(&name, &who).await.map_err(status)?;
        Ok(Response::new(v1::RevokeAdminResponse {
            revoked: revoked as u32,
            message: format!("operator {name:?}: {revoked} certificate(s) revoked"),
        }))
    }
}
