//! The agent's session with the coordinator, and the agent's edge: everything it sends or
//! receives is built in domain types and converted only through `lfleet_proto::convert`.
//!
//! It enrolls with the join token when it has no valid certificate, then keeps one
//! long-lived mTLS stream, over which the certificate is renewed before half its life
//! (`identity`). It sends Hello; a status report at once when a condition, an item or the
//! reconciler's state changes, and every status interval the coordinator asked for
//! otherwise; telemetry batches every telemetry interval. A desired config is checked like a
//! file, recorded in the ledger, handed to the reconciler, and acked when its pass ends (with
//! the first failed item's class), while the session keeps reporting. Commands (reconcile
//! now, remount, probe now) are answered with a CommandResult when they have run.
//!
//! When the stream breaks it reconnects with jittered exponential backoff (0.5 s doubling to
//! 30 s, full jitter), so a coordinator restart does not bring every agent back in the same
//! second; meanwhile the agent keeps running from its ledger, and telemetry waits in a
//! bounded buffer that counts what it drops.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lfleet_host::{Clock, HostRoot};
use lfleet_proto::v1;
use lfleet_proto::v1::agent_service_client::AgentServiceClient;
use lfleet_types::{
    AckRefusal, AgentCommand, AgentEvent, AgentHello, CheckId, CommandOutcome, CommandRequest,
    Condition, ConfigAck, DesiredConfig, ErrorChain, Generation, HelloClaims, NodeName,
    SampleValue, StatusReport, TelemetryBatch, TelemetrySample, error_chain,
};
use tokio::sync::{mpsc, oneshot, watch};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::checks::{CheckResult, Event};
use crate::config::{CoordinatorPolicy, NodeConfig};
use crate::daemon::ProbeRequest;
use crate::identity::{self, NodeTls};
use crate::ledger::{DEFAULT_LEDGER_PATH, Ledger, LedgerError};
use crate::reconciler::{PassResult, ReconcilerHandle, ReconcilerStatus};
use crate::telemetry::{Sample, SampleBuffer};

pub use crate::identity::TLS_DIR;

/// One round of checks, as the daemon hands it over.
#[derive(Debug, Clone, Default)]
pub struct CheckRound {
    pub seq: u64,
    pub results: Vec<CheckResult>,
    pub events: Vec<Event>,
}

/// What the daemon, the reconciler and the session share.
#[derive(Debug)]
pub struct SessionLink {
    pub rounds: watch::Receiver<CheckRound>,
    pub samples: Arc<Mutex<SampleBuffer>>,
    /// The config the checks and telemetry use; the session replaces it after an apply.
    pub config: watch::Sender<NodeConfig>,
    pub reconciler: ReconcilerHandle,
    /// What the reconciler did (installs, remounts, failed passes), to report.
    pub reconciler_events: mpsc::Receiver<AgentEvent>,
    /// Asks the daemon for a check round now.
    pub probes: mpsc::Sender<ProbeRequest>,
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("{what}")]
    Setup {
        what: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    #[error("the coordinator answered")]
    Rpc(#[from] tonic::Status),
    #[error("connecting to the coordinator")]
    Transport(#[from] tonic::transport::Error),
}

fn setup(what: impl std::fmt::Display) -> SessionError {
    SessionError::Setup {
        what: what.to_string(),
        source: None,
    }
}

/// A setup step that failed, with its cause kept as the error's source.
fn setup_from<E>(what: impl std::fmt::Display) -> impl FnOnce(E) -> SessionError
where
    E: std::error::Error + Send + Sync + 'static,
{
    let what = what.to_string();
    move |source| SessionError::Setup {
        what,
        source: Some(Box::new(source)),
    }
}

/// The node's name: configured, or /etc/hostname.
pub fn node_name(host: &HostRoot, policy: &CoordinatorPolicy) -> Result<String, SessionError> {
    if let Some(name) = &policy.node_name {
        return Ok(name.clone());
    }
    let text = host
        .read_to_string("etc/hostname")
        .map_err(setup_from("the node name"))?;
    let name = text.trim().to_owned();
    name.parse::<lfleet_types::NodeName>()
        .map_err(setup_from("/etc/hostname"))?;
    Ok(name)
}

fn now_unix(clock: &dyn Clock) -> i64 {
    (clock.wall_unix_ms() / 1000) as i64
}

/// A file the configuration names: a node path, under the node root like every other.
fn read_file(host: &HostRoot, path: &str) -> Result<String, SessionError> {
    host.read_to_string(path).map_err(setup_from(path))
}

/// The key and certificate: the stored ones while they are valid (renewal happens over the
/// session), or a new enrollment with the join token.
async fn node_tls(
    host: &HostRoot,
    clock: &dyn Clock,
    policy: &CoordinatorPolicy,
    name: &str,
    ca: &str,
) -> Result<NodeTls, SessionError> {
    if let Some(tls) = identity::load(host, name).filter(|t| !t.expired(now_unix(clock))) {
        return Ok(tls);
    }
    let token = read_file(host, &policy.join_token_file)
        .map_err(|e| {
            setup(format!(
                "no valid certificate, and no join token to enroll: {e}"
            ))
        })?
        .trim()
        .to_owned();
    let channel = channel(&policy.url, ca, None).await?;
    identity::enroll(host, clock, channel, name, token)
        .await
        .map_err(|e| setup(ErrorChain(&e)))
}

async fn channel(url: &str, ca: &str, identity: Option<Identity>) -> Result<Channel, SessionError> {
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
    if let Some(identity) = identity {
        tls = tls.identity(identity);
    }
    Ok(Endpoint::from_shared(url.to_owned())
        .map_err(setup_from(url))?
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(5))
        .http2_keep_alive_interval(Duration::from_secs(15))
        .keep_alive_timeout(Duration::from_secs(10))
        .connect()
        .await?)
}

/// The agent's edge: a check result as the domain's condition. The agent's since-time is
/// evidence only (the coordinator times windows by its own receive time).
#[derive(Debug, Default)]
struct Conditions {
    since: BTreeMap<(String, String), (String, i64)>,
}

impl Conditions {
    fn report(&mut self, results: &[CheckResult]) -> Vec<Condition> {
        results
            .iter()
            .map(|r| {
                let key = (r.check.as_str().to_owned(), r.subject.clone());
                let state = format!("{}/{}", r.outcome, r.code);
                let started = r.started_unix_ms as i64;
                let entry = self.since.entry(key).or_insert((state.clone(), started));
                if entry.0 != state {
                    *entry = (state, started);
                }
                Condition {
                    check: CheckId::Known(r.check),
                    subject: r.subject.clone(),
                    outcome: r.outcome,
                    code: r.code.clone(),
                    detail: r.detail.clone(),
                    since_unix_ms: entry.1,
                    observed_unix_ms: started,
                }
            })
            .collect()
    }
}

/// What decides whether a report must go out now: each condition's shape, the reconciler's
/// applied generation, failed items and classes, pass error and client version.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Shape {
    conditions: Vec<(String, String, String)>,
    generation: Generation,
    failed: Vec<(String, String, String)>,
    error: Option<String>,
    client: String,
}

fn shape(results: &[CheckResult], reconciler: &ReconcilerStatus) -> Shape {
    Shape {
        conditions: results
            .iter()
            .map(|r| {
                (
                    r.check.as_str().to_owned(),
                    r.subject.clone(),
                    format!("{} {}", r.outcome, r.code),
                )
            })
            .collect(),
        generation: reconciler.applied_generation,
        failed: reconciler
            .items
            .iter()
            .filter_map(|item| {
                let class = item.failure?;
                Some((item.kind.to_string(), item.id.clone(), class.to_string()))
            })
            .collect(),
        error: reconciler.error.clone(),
        client: reconciler.lustre_client_version.clone(),
    }
}

/// Samples as telemetry travels: one per value and per counter delta, `<collector>.<name>`,
/// the subject a label.
fn telemetry_samples(samples: Vec<Sample>) -> Vec<TelemetrySample> {
    let mut out = Vec::new();
    for sample in samples {
        let mut labels = vec![("subject".to_owned(), sample.subject.clone())];
        labels.extend(sample.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        if sample.values.is_empty() && sample.deltas.is_empty() {
            out.push(TelemetrySample {
                seq: sample.seq,
                at_unix_ms: sample.unix_ms as i64,
                metric: sample.collector.to_owned(),
                labels,
                value: None,
                reset: sample.reset,
                unavailable: sample.unavailable.clone(),
            });
            continue;
        }
        let gauges = sample
            .values
            .iter()
            .map(|(name, value)| (name, SampleValue::Gauge(*value)));
        let deltas = sample.deltas.iter().map(|(name, counter)| {
            (
                name,
                SampleValue::Delta {
                    delta: counter.delta,
                    interval_ms: counter.interval_ms,
                },
            )
        });
        for (name, value) in gauges.chain(deltas) {
            out.push(TelemetrySample {
                seq: sample.seq,
                at_unix_ms: sample.unix_ms as i64,
                metric: format!("{}.{name}", sample.collector),
                labels: labels.clone(),
                value: Some(value),
                reset: sample.reset,
                unavailable: None,
            });
        }
    }
    out
}

/// The node config a desired config makes: the coordinator's part (generation, mounts,
/// client, LNet) over this node's own settings, validated like a file.
fn node_config(local: &NodeConfig, desired: &v1::DesiredConfig) -> Result<NodeConfig, String> {
    let desired = DesiredConfig::try_from(desired).map_err(|error| error_chain(&error))?;
    // Through the file's validation, so a coordinator cannot send what a file could not say.
    local
        .with_desired_state(desired)
        .revalidated()
        .map_err(|error| error_chain(&error))
}

/// What the agent tells the coordinator about the node when a session starts.
fn hello(
    host: &HostRoot,
    name: NodeName,
    config: &NodeConfig,
    policy: &CoordinatorPolicy,
    reconciler: &ReconcilerStatus,
) -> AgentHello {
    let read = |path: &str| {
        host.read_optional(path)
            .ok()
            .flatten()
            .map(|t| t.trim().to_owned())
            .unwrap_or_default()
    };
    let distro = read("etc/os-release")
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_owned())
        .unwrap_or_default();
    AgentHello {
        node_name: name,
        claims: HelloClaims {
            slurm_node_name: String::new(),
            role: Some(config.role),
            nodearray: policy.nodearray.clone(),
        },
        distro,
        kernel_release: read("proc/sys/kernel/osrelease"),
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        vm_id: read("sys/class/dmi/id/product_uuid"),
        lustre_client_version: read("sys/module/lustre/version"),
        applied_generation: reconciler.applied_generation,
    }
}

/// The session's own state, kept across reconnects.
#[derive(Debug)]
struct Carried {
    conditions: Conditions,
    /// Reconciler events not yet sent (bounded by the channel they came from).
    events: VecDeque<AgentEvent>,
}

/// Runs the session until `stop` resolves, reconnecting as needed.
pub async fn run(
    host: &HostRoot,
    clock: &dyn Clock,
    local: &NodeConfig,
    policy: &CoordinatorPolicy,
    mut link: SessionLink,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    let mut backoff = Duration::from_millis(500);
    let mut carried = Carried {
        conditions: Conditions::default(),
        events: VecDeque::new(),
    };
    loop {
        let attempt = connect_and_serve(host, clock, local, policy, &mut link, &mut carried);
        tokio::select! {
            _ = &mut stop => return,
            result = attempt => match result {
                Ok(()) => {
                    tracing::info!("the coordinator ended the session");
                    backoff = Duration::from_millis(500);
                }
                Err(error) => tracing::warn!(error = %ErrorChain(&error), "coordinator session"),
            },
        }
        let wait = backoff.mul_f64(rand::random::<f64>());
        backoff = (backoff * 2).min(Duration::from_secs(30));
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// A desired config handed to the reconciler, waiting for its pass.
#[derive(Debug)]
struct PendingConfig {
    generation: Generation,
    result: oneshot::Receiver<PassResult>,
}

/// The next pending config's pass; never, when none is pending.
async fn next_applied(pending: &mut VecDeque<PendingConfig>) -> (PendingConfig, PassResult) {
    let Some(front) = pending.front_mut() else {
        return std::future::pending().await;
    };
    let result = (&mut front.result)
        .await
        .unwrap_or_else(|_| Err("the reconciler stopped before applying it".to_owned()));
    let done = pending.pop_front().expect("the front was there");
    (done, result)
}

/// The reconciler's next event; never, when its channel has closed.
async fn next_event(events: &mut mpsc::Receiver<AgentEvent>, open: &mut bool) -> AgentEvent {
    if *open {
        match events.recv().await {
            Some(event) => return event,
            None => *open = false,
        }
    }
    std::future::pending().await
}

async fn connect_and_serve(
    host: &HostRoot,
    clock: &dyn Clock,
    local: &NodeConfig,
    policy: &CoordinatorPolicy,
    link: &mut SessionLink,
    carried: &mut Carried,
) -> Result<(), SessionError> {
    let name = node_name(host, policy)?;
    let node: NodeName = name.parse().map_err(setup_from("the node name"))?;
    let ca = read_file(host, &policy.ca_file)?;
    let mut tls = node_tls(host, clock, policy, &name, &ca).await?;
    let channel = channel(
        &policy.url,
        &ca,
        Some(Identity::from_pem(&tls.cert_pem, &tls.key_pem)),
    )
    .await?;
    // Renewal is checked every tenth of the certificate's life (at most a minute), over this
    // channel, while the session lasts.
    let lifetime = (tls.not_after_unix - tls.issued_unix).max(10) as u64;
    let mut renew_every = tokio::time::interval(Duration::from_secs((lifetime / 10).clamp(1, 60)));
    let mut client = AgentServiceClient::new(channel.clone())
        .max_decoding_message_size(lfleet_proto::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(lfleet_proto::MAX_MESSAGE_BYTES);
    let (tx, rx) = mpsc::channel::<v1::AgentMessage>(256);
    let mut seq = 0u64;
    let mut send = |body: v1::agent_message::Body| -> Result<(), SessionError> {
        seq += 1;
        tx.try_send(v1::AgentMessage {
            seq,
            body: Some(body),
        })
        .map_err(|_| setup("the session queue is full or closed"))
    };
    let mut reconciler = link.reconciler.status();
    let hello = hello(host, node, local, policy, &reconciler.borrow());
    send(v1::agent_message::Body::Hello(v1::Hello::from(&hello)))?;
    let mut inbound = client
        .session(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await?
        .into_inner();
    tracing::info!(node = name, "session open");
    let mut status_every = tokio::time::interval(Duration::from_secs(10));
    let mut telemetry_every = tokio::time::interval(Duration::from_secs(2));
    let mut last_shape: Option<Shape> = None;
    let mut last_round_seq = 0;
    let mut pending: VecDeque<PendingConfig> = VecDeque::new();
    let (results_tx, mut results_rx) = mpsc::channel::<CommandOutcome>(16);
    let mut events_open = true;
    loop {
        tokio::select! {
            message = inbound.message() => {
                let Some(message) = message? else { return Ok(()) };
                match message.body {
                    Some(v1::coordinator_message::Body::Accepted(accepted)) => {
                        // The coordinator's intervals are honoured (1 s at the least).
                        let status = Duration::from_secs(u64::from(accepted.status_interval_seconds.max(1)));
                        let telemetry = Duration::from_secs(u64::from(accepted.telemetry_interval_seconds.max(1)));
                        status_every = tokio::time::interval(status);
                        telemetry_every = tokio::time::interval(telemetry);
                        tracing::info!(status = ?status, telemetry = ?telemetry, "session accepted");
                    }
                    Some(v1::coordinator_message::Body::Config(desired)) => {
                        match accept(host, local, link, &desired) {
                            Ok(waiting) => pending.push_back(waiting),
                            Err(ack) => send(v1::agent_message::Body::Ack(v1::Ack::from(&ack)))?,
                        }
                    }
                    Some(v1::coordinator_message::Body::Command(command)) => {
                        match CommandRequest::try_from(&command) {
                            Ok(request) => start_command(link, request, results_tx.clone()),
                            Err(error) => {
                                let mut ack = v1::Ack::from(&ConfigAck {
                                    generation: Generation::ZERO,
                                    refusal: Some(AckRefusal::UnknownCommand),
                                    failed_class: None,
                                    message: error_chain(&error),
                                });
                                ack.command_id = command.id.clone();
                                send(v1::agent_message::Body::Ack(ack))?;
                            }
                        }
                    }
                    None => {}
                }
            }
            (done, result) = next_applied(&mut pending) => {
                let ack = config_ack(done.generation, &result);
                send(v1::agent_message::Body::Ack(v1::Ack::from(&ack)))?;
                // Report at once: the coordinator shows who is behind from these.
                last_shape = None;
                status_every.reset_immediately();
            }
            outcome = results_rx.recv() => {
                if let Some(outcome) = outcome {
                    send(v1::agent_message::Body::CommandResult(v1::CommandResult::from(&outcome)))?;
                }
            }
            event = next_event(&mut link.reconciler_events, &mut events_open) => {
                carried.events.push_back(event);
                status_every.reset_immediately();
            }
            changed = link.rounds.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                let round = link.rounds.borrow_and_update().clone();
                let now_shape = shape(&round.results, &reconciler.borrow());
                let fresh = round.seq > last_round_seq;
                last_round_seq = round.seq;
                if last_shape.as_ref() != Some(&now_shape) || (fresh && !round.events.is_empty()) {
                    last_shape = Some(now_shape);
                    let events = if fresh { round.events.clone() } else { Vec::new() };
                    let report = status(&round, &reconciler.borrow(), carried, events);
                    send(v1::agent_message::Body::Status(v1::StatusReport::from(&report)))?;
                }
            }
            changed = reconciler.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                let round = link.rounds.borrow().clone();
                let now_shape = shape(&round.results, &reconciler.borrow_and_update());
                if last_shape.as_ref() != Some(&now_shape) {
                    last_shape = Some(now_shape);
                    let report = status(&round, &reconciler.borrow(), carried, Vec::new());
                    send(v1::agent_message::Body::Status(v1::StatusReport::from(&report)))?;
                }
            }
            _ = status_every.tick() => {
                let round = link.rounds.borrow().clone();
                let report = status(&round, &reconciler.borrow(), carried, Vec::new());
                send(v1::agent_message::Body::Status(v1::StatusReport::from(&report)))?;
            }
            _ = renew_every.tick() => {
                if tls.needs_renewal(now_unix(clock)) {
                    match identity::renew(host, clock, channel.clone(), &name, &tls).await {
                        Ok(renewed) => tls = renewed,
                        Err(error) => identity::renewal_failed(&name, &error),
                    }
                }
            }
            _ = telemetry_every.tick() => {
                let (samples, dropped) = {
                    let mut buffer = link.samples.lock().unwrap_or_else(|e| e.into_inner());
                    (buffer.take(2000), buffer.take_new_drops())
                };
                // A batch carries the drops since the previous batch; drops alone are sent too.
                if !samples.is_empty() || dropped > 0 {
                    let batch = TelemetryBatch {
                        first_seq: samples.first().map(|s| s.seq).unwrap_or_default(),
                        dropped_samples: dropped,
                        samples: telemetry_samples(samples),
                    };
                    send(v1::agent_message::Body::Telemetry(v1::TelemetryBatch::from(&batch)))?;
                }
            }
        }
    }
}

/// A status report from the last check round and the reconciler, with the events not yet
/// sent (the round's and the reconciler's, which leave the carried queue here).
fn status(
    round: &CheckRound,
    reconciler: &ReconcilerStatus,
    carried: &mut Carried,
    round_events: Vec<Event>,
) -> StatusReport {
    let mut events: Vec<AgentEvent> = round_events
        .into_iter()
        .map(|e| AgentEvent {
            kind: e.kind,
            subject: e.subject,
            detail: e.detail,
            at_unix_ms: e.unix_ms as i64,
        })
        .collect();
    events.extend(carried.events.drain(..));
    StatusReport {
        applied_generation: reconciler.applied_generation,
        reconcile: reconciler.state,
        conditions: carried.conditions.report(&round.results),
        items: reconciler.items.clone(),
        events,
        lustre_client_version: reconciler.lustre_client_version.clone(),
        next_retry_unix_ms: reconciler.next_retry_unix_ms(),
    }
}

/// Checks a desired config and records it in the ledger, then hands it to the reconciler;
/// the refusal to ack when it cannot be taken.
fn accept(
    host: &HostRoot,
    local: &NodeConfig,
    link: &SessionLink,
    desired: &v1::DesiredConfig,
) -> Result<PendingConfig, ConfigAck> {
    let generation = Generation(desired.generation);
    let refuse = |refusal: AckRefusal, message: String| {
        tracing::warn!(%generation, %refusal, message, "desired config refused");
        ConfigAck {
            generation,
            refusal: Some(refusal),
            failed_class: None,
            message,
        }
    };
    let config = node_config(local, desired)
        .map_err(|message| refuse(AckRefusal::InvalidConfig, message))?;
    crate::reconcile::check_mount_points(host, &config)
        .map_err(|error| refuse(AckRefusal::InvalidConfig, error_chain(&error)))?;
    let mut ledger: Ledger<DesiredConfig> = Ledger::open(host.clone(), DEFAULT_LEDGER_PATH)
        .map_err(|error| refuse(AckRefusal::Ledger, error_chain(&error)))?;
    match ledger.accept(config.generation, config.desired_state()) {
        Ok(_) => {}
        Err(LedgerError::Stale { offered, accepted }) => {
            return Err(refuse(
                AckRefusal::StaleGeneration,
                format!("generation {offered} is older than the accepted {accepted}"),
            ));
        }
        Err(error) => return Err(refuse(AckRefusal::Ledger, error_chain(&error))),
    }
    let result = link
        .reconciler
        .apply(config.clone())
        .map_err(|error| refuse(AckRefusal::Reconcile, error_chain(&error)))?;
    // The checks judge the accepted state from now on: while its pass runs, a mount it adds
    // is reported missing, never the old configuration as healthy.
    link.config.send_replace(config);
    Ok(PendingConfig { generation, result })
}

/// The ack of a config once its pass ended: accepted, with the first failed item's class.
fn config_ack(generation: Generation, result: &PassResult) -> ConfigAck {
    match result {
        Ok(report) => {
            let failed: Vec<String> = report
                .failed()
                .map(|i| format!("{} {}: {}", i.kind, i.id, i.message))
                .collect();
            ConfigAck {
                generation,
                refusal: None,
                failed_class: report.failed().next().and_then(|item| item.failure),
                message: if failed.is_empty() {
                    format!("applied: {}", report.changes.join("; "))
                } else {
                    failed.join("; ")
                },
            }
        }
        Err(message) => ConfigAck {
            generation,
            refusal: Some(AckRefusal::Reconcile),
            failed_class: None,
            message: message.clone(),
        },
    }
}

/// Starts a command; its outcome arrives on `results` when it has run.
fn start_command(
    link: &SessionLink,
    request: CommandRequest,
    results: mpsc::Sender<CommandOutcome>,
) {
    let id = request.id.clone();
    tracing::info!(id, command = %request.command, "command from the coordinator");
    let answer = |ok: bool, message: String| CommandOutcome {
        id: id.clone(),
        ok,
        message,
    };
    let stopped = || answer(false, "the agent is stopping".to_owned());
    match request.command {
        AgentCommand::ReconcileNow => match link.reconciler.reconcile_now() {
            Ok(receiver) => answer_when_done(id, receiver, "", results),
            Err(_) => {
                let _ = results.try_send(stopped());
            }
        },
        AgentCommand::Remount { mount_point } => {
            match link.reconciler.remount(mount_point.as_str()) {
                Ok(receiver) => answer_when_done(id, receiver, "refused: ", results),
                Err(_) => {
                    let _ = results.try_send(stopped());
                }
            }
        }
        AgentCommand::ProbeNow => {
            let (reply, receiver) = oneshot::channel();
            if link.probes.try_send(reply).is_err() {
                let _ = results.try_send(answer(false, "the checks are not running".to_owned()));
                return;
            }
            tokio::spawn(async move {
                let outcome = match receiver.await {
                    Ok(round) => probe_outcome(&id, &round),
                    Err(_) => CommandOutcome {
                        id,
                        ok: false,
                        message: "the checks stopped".into(),
                    },
                };
                let _ = results.send(outcome).await;
            });
        }
    }
}

/// Sends a pass-running command's outcome when its pass ends; a refusal's reason after
/// `refusal`.
fn answer_when_done(
    id: String,
    receiver: oneshot::Receiver<PassResult>,
    refusal: &'static str,
    results: mpsc::Sender<CommandOutcome>,
) {
    tokio::spawn(async move {
        let outcome = match receiver.await {
            Ok(Ok(report)) => pass_outcome(&id, &report),
            Ok(Err(reason)) => CommandOutcome {
                id,
                ok: false,
                message: format!("{refusal}{reason}"),
            },
            Err(_) => CommandOutcome {
                id,
                ok: false,
                message: "the reconciler stopped".into(),
            },
        };
        let _ = results.send(outcome).await;
    });
}

/// A command that ran a pass: ok when no item failed; what changed or what failed.
fn pass_outcome(id: &str, report: &crate::reconcile::Report) -> CommandOutcome {
    let failed: Vec<String> = report
        .failed()
        .map(|i| {
            format!(
                "{} {} failed ({}): {}",
                i.kind,
                i.id,
                i.failure.map(|c| c.code()).unwrap_or_default(),
                i.message
            )
        })
        .collect();
    CommandOutcome {
        id: id.to_owned(),
        ok: failed.is_empty(),
        message: if failed.is_empty() {
            if report.changes.is_empty() {
                "no changes".to_owned()
            } else {
                report.changes.join("; ")
            }
        } else {
            failed.join("; ")
        },
    }
}

/// A probe-now: ok when no check failed; the failing and unknown checks.
fn probe_outcome(id: &str, round: &CheckRound) -> CommandOutcome {
    use lfleet_types::Outcome;
    let notable: Vec<String> = round
        .results
        .iter()
        .filter(|r| r.outcome != Outcome::Pass)
        .map(|r| {
            format!("{} {} {} {}", r.outcome, r.check, r.subject, r.code)
                .trim_end()
                .to_owned()
        })
        .collect();
    let failed = round.results.iter().any(|r| r.outcome == Outcome::Fail);
    CommandOutcome {
        id: id.to_owned(),
        ok: !failed,
        message: if notable.is_empty() {
            format!("{} checks pass", round.results.len())
        } else {
            notable.join("; ")
        },
    }
}

#[cfg(test)]
mod telemetry_tests {
    use lfleet_types::{SampleValue, TelemetrySample, metric};

    use super::*;
    use crate::telemetry::CounterDelta;

    #[test]
    fn rpc_wait_deltas_travel_as_counter_deltas_under_the_names_the_coordinator_reads() {
        let mut sample = Sample::new("osc", "/lustre OST0003", 1_000);
        sample.seq = 7;
        sample.values.insert("rpc_wait_mean_us".into(), 1500.0);
        for (name, delta) in [("rpcs", 200), ("rpc_wait_us", 300_000)] {
            sample.deltas.insert(
                name.into(),
                CounterDelta {
                    delta,
                    interval_ms: 10_000,
                },
            );
        }
        // Through the wire and back, as the coordinator receives them.
        let received: Vec<TelemetrySample> = telemetry_samples(vec![sample])
            .iter()
            .map(|s| TelemetrySample::from(&v1::Sample::from(s)))
            .collect();
        let value = |name: &str| {
            received
                .iter()
                .find(|s| s.metric == name)
                .and_then(|s| s.value)
        };
        assert_eq!(
            value(metric::OSC_RPCS),
            Some(SampleValue::Delta {
                delta: 200,
                interval_ms: 10_000
            })
        );
        assert_eq!(
            value(metric::OSC_RPC_WAIT_US),
            Some(SampleValue::Delta {
                delta: 300_000,
                interval_ms: 10_000
            })
        );
        assert_eq!(
            value("osc.rpc_wait_mean_us"),
            Some(SampleValue::Gauge(1500.0))
        );
        assert!(received.iter().all(|s| s.seq == 7
            && s.label("subject") == Some("/lustre OST0003")
            && s.unavailable.is_none()));
    }
}
