//! The agent's session with the coordinator: enroll with the join token when it has no valid
//! certificate, then one long-lived mTLS stream, over which the certificate is renewed
//! before half its life (`identity`). It sends Hello, a
//! status report at once when a condition changes and every status interval otherwise, and
//! telemetry batches; it receives desired configs, applies them (ledger first, then a
//! reconcile pass) and acks each with its per-item results.
//!
//! When the stream breaks it reconnects with jittered exponential backoff (0.5 s doubling to
//! 30 s, full jitter), so a coordinator restart does not bring every agent back in the same
//! second; meanwhile the agent keeps running from its ledger, and telemetry waits in a
//! bounded buffer that counts what it drops.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lfleet_host::{Clock, CommandRunner, HostRoot};
use lfleet_proto::v1;
use lfleet_proto::v1::agent_service_client::AgentServiceClient;
use lfleet_types::ErrorChain;
use tokio::sync::{mpsc, watch};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::checks::{CheckResult, Event, Outcome};
use crate::config::{CoordinatorPolicy, NodeConfig};
use crate::identity::{self, NodeTls};
use crate::ledger::{DEFAULT_LEDGER_PATH, Ledger, LedgerError};
use crate::node::NodeHandle;
use crate::reconcile::{Mode, reconcile};
use crate::telemetry::{Sample, SampleBuffer};
use lfleet_types::DesiredConfig;

pub use crate::identity::TLS_DIR;

/// One round of checks, as the daemon hands it over.
#[derive(Debug, Clone, Default)]
pub struct CheckRound {
    pub seq: u64,
    pub results: Vec<CheckResult>,
    pub events: Vec<Event>,
}

/// What the daemon and the session share.
#[derive(Debug, Clone)]
pub struct SessionLink {
    pub rounds: watch::Receiver<CheckRound>,
    pub samples: Arc<Mutex<SampleBuffer>>,
    /// The config the checks and telemetry use; the session replaces it after an apply.
    pub config: watch::Sender<NodeConfig>,
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

/// Since-times of conditions: kept while a check's outcome and code stay the same.
#[derive(Debug, Default)]
struct Conditions {
    since: BTreeMap<(String, String), (String, i64)>,
}

impl Conditions {
    fn report(&mut self, results: &[CheckResult]) -> Vec<v1::Condition> {
        results
            .iter()
            .map(|r| {
                let (outcome, code, detail) = match &r.outcome {
                    Outcome::Pass => (v1::Outcome::Pass, String::new(), String::new()),
                    Outcome::Fail { code, detail } => {
                        (v1::Outcome::Fail, code.clone(), detail.clone())
                    }
                    Outcome::Unknown { error } => {
                        (v1::Outcome::Unknown, String::new(), error.clone())
                    }
                };
                let key = (r.check.to_owned(), r.subject.clone());
                let state = format!("{outcome:?}/{code}");
                let started = r.started_unix_ms as i64;
                let entry = self.since.entry(key).or_insert((state.clone(), started));
                if entry.0 != state {
                    *entry = (state, started);
                }
                v1::Condition {
                    check: r.check.to_owned(),
                    subject: r.subject.clone(),
                    outcome: outcome as i32,
                    code,
                    detail,
                    since_unix_ms: entry.1,
                    observed_unix_ms: started,
                }
            })
            .collect()
    }
}

/// What decides whether a report must go out now: each check's outcome and code.
fn shape(results: &[CheckResult]) -> Vec<(String, String, String)> {
    results
        .iter()
        .map(|r| {
            let state = match &r.outcome {
                Outcome::Pass => "pass".to_owned(),
                Outcome::Fail { code, .. } => format!("fail {code}"),
                Outcome::Unknown { .. } => "unknown".to_owned(),
            };
            (r.check.to_owned(), r.subject.clone(), state)
        })
        .collect()
}

fn wire_samples(samples: Vec<Sample>) -> Vec<v1::Sample> {
    let mut out = Vec::new();
    for sample in samples {
        let mut labels = vec![v1::Label {
            key: "subject".into(),
            value: sample.subject.clone(),
        }];
        labels.extend(sample.labels.iter().map(|(k, v)| v1::Label {
            key: k.clone(),
            value: v.clone(),
        }));
        if sample.values.is_empty() {
            out.push(v1::Sample {
                seq: sample.seq,
                at_unix_ms: sample.unix_ms as i64,
                metric: sample.collector.to_owned(),
                labels,
                value: None,
                reset: sample.reset,
                unavailable: sample.unavailable.is_some(),
                unavailable_reason: sample.unavailable.clone().unwrap_or_default(),
            });
            continue;
        }
        for (name, value) in &sample.values {
            out.push(v1::Sample {
                seq: sample.seq,
                at_unix_ms: sample.unix_ms as i64,
                metric: format!("{}.{name}", sample.collector),
                labels: labels.clone(),
                value: Some(v1::sample::Value::Gauge(*value)),
                reset: sample.reset,
                unavailable: false,
                unavailable_reason: String::new(),
            });
        }
    }
    out
}

/// The node config a desired config makes: the coordinator's part (generation, mounts,
/// client, LNet) over this node's own settings, validated like a file.
fn node_config(local: &NodeConfig, desired: &v1::DesiredConfig) -> Result<NodeConfig, String> {
    let desired =
        DesiredConfig::try_from(desired).map_err(|error| lfleet_types::error_chain(&error))?;
    // Through the file's validation, so a coordinator cannot send what a file could not say.
    local
        .with_desired_state(desired)
        .revalidated()
        .map_err(|error| lfleet_types::error_chain(&error))
}

/// What the agent tells the coordinator about the node when a session starts.
fn hello(host: &HostRoot, config: &NodeConfig, policy: &CoordinatorPolicy) -> v1::Hello {
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
    v1::Hello {
        node_name: String::new(),
        slurm_node_name: String::new(),
        role: lfleet_proto::convert::role_to_wire(Some(config.role)),
        nodearray: policy.nodearray.clone(),
        distro,
        kernel_release: read("proc/sys/kernel/osrelease"),
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        vm_id: read("sys/class/dmi/id/product_uuid"),
        lustre_client_version: read("sys/module/lustre/version"),
        applied_generation: 0,
    }
}

/// Runs the session until `stop` resolves, reconnecting as needed.
#[allow(clippy::too_many_arguments, reason = "the session's whole context")]
pub async fn run(
    host: &HostRoot,
    local: &NodeConfig,
    policy: &CoordinatorPolicy,
    runner: &dyn CommandRunner,
    clock: &dyn Clock,
    mut link: SessionLink,
    stop: impl std::future::Future<Output = ()>,
) {
    let hello_extra = hello(host, local, policy);
    tokio::pin!(stop);
    let mut backoff = Duration::from_millis(500);
    let mut conditions = Conditions::default();
    loop {
        let attempt = connect_and_serve(
            host,
            local,
            policy,
            runner,
            clock,
            &mut link,
            &hello_extra,
            &mut conditions,
        );
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

#[allow(clippy::too_many_arguments, reason = "the session's whole context")]
async fn connect_and_serve(
    host: &HostRoot,
    local: &NodeConfig,
    policy: &CoordinatorPolicy,
    runner: &dyn CommandRunner,
    clock: &dyn Clock,
    link: &mut SessionLink,
    hello_extra: &v1::Hello,
    conditions: &mut Conditions,
) -> Result<(), SessionError> {
    let name = node_name(host, policy)?;
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
    // What this coordinator side last had applied is what the ledger accepted from it; a
    // node whose ledger is empty has applied nothing yet, whatever generation its own file
    // (written by cluster-init) carries, so the coordinator pushes its first config.
    let applied = match Ledger::<DesiredConfig>::open(host.clone(), DEFAULT_LEDGER_PATH) {
        Ok(ledger) => ledger
            .current()
            .map_or(0, |_| link.config.borrow().generation.get()),
        Err(_) => 0,
    };
    let mut hello = hello_extra.clone();
    hello.node_name = name.clone();
    hello.applied_generation = applied;
    send(v1::agent_message::Body::Hello(hello))?;
    let mut inbound = client
        .session(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await?
        .into_inner();
    tracing::info!(node = name, "session open");
    let mut status_every = tokio::time::interval(Duration::from_secs(10));
    let mut telemetry_every = tokio::time::interval(Duration::from_secs(2));
    let mut last_shape = None;
    let mut last_round_seq = 0;
    let mut items: Vec<v1::ItemResult> = Vec::new();
    loop {
        tokio::select! {
            message = inbound.message() => {
                let Some(message) = message? else { return Ok(()) };
                if let Some(v1::coordinator_message::Body::Config(desired)) = message.body {
                    let (ack, new_items) = apply(host, local, runner, clock, link, &desired).await;
                    if !new_items.is_empty() {
                        items = new_items;
                    }
                    send(v1::agent_message::Body::Ack(ack))?;
                    // Report at once: the coordinator shows who is behind from these.
                    last_shape = None;
                    status_every.reset_immediately();
                }
            }
            changed = link.rounds.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                let round = link.rounds.borrow_and_update().clone();
                let now_shape = shape(&round.results);
                let events = if round.seq > last_round_seq { round.events.clone() } else { Vec::new() };
                last_round_seq = round.seq;
                if last_shape.as_ref() != Some(&now_shape) || !events.is_empty() {
                    last_shape = Some(now_shape);
                    let report = status(link, conditions, &round, &items, events);
                    send(v1::agent_message::Body::Status(report))?;
                }
            }
            _ = status_every.tick() => {
                let round = link.rounds.borrow().clone();
                let report = status(link, conditions, &round, &items, Vec::new());
                send(v1::agent_message::Body::Status(report))?;
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
                    let first_seq = samples.first().map(|s| s.seq).unwrap_or_default();
                    let batch = v1::TelemetryBatch { first_seq, dropped_samples: dropped, samples: wire_samples(samples) };
                    send(v1::agent_message::Body::Telemetry(batch))?;
                }
            }
        }
    }
}

fn status(
    link: &SessionLink,
    conditions: &mut Conditions,
    round: &CheckRound,
    items: &[v1::ItemResult],
    events: Vec<Event>,
) -> v1::StatusReport {
    v1::StatusReport {
        applied_generation: link.config.borrow().generation.get(),
        reconcile_status: v1::ReconcileStatus::Idle as i32,
        conditions: conditions.report(&round.results),
        items: items.to_vec(),
        events: events
            .into_iter()
            .map(|e| v1::Event {
                kind: e.kind,
                subject: e.subject,
                detail: e.detail,
                at_unix_ms: e.unix_ms as i64,
            })
            .collect(),
    }
}

/// Accepts a desired config into the ledger and applies it; the ack and the item results.
async fn apply(
    host: &HostRoot,
    local: &NodeConfig,
    runner: &dyn CommandRunner,
    clock: &dyn Clock,
    link: &SessionLink,
    desired: &v1::DesiredConfig,
) -> (v1::Ack, Vec<v1::ItemResult>) {
    let refuse = |class: &str, message: String| {
        tracing::warn!(
            generation = desired.generation,
            class,
            message,
            "desired config refused"
        );
        (
            v1::Ack {
                generation: desired.generation,
                command_id: String::new(),
                accepted: false,
                error_class: class.to_owned(),
                message,
            },
            Vec::new(),
        )
    };
    let config = match node_config(local, desired) {
        Ok(config) => config,
        Err(message) => return refuse("invalid-config", message),
    };
    if let Err(error) = crate::reconcile::check_mount_points(host, &config) {
        return refuse("invalid-config", ErrorChain(&error).to_string());
    }
    let mut ledger: Ledger<DesiredConfig> = match Ledger::open(host.clone(), DEFAULT_LEDGER_PATH) {
        Ok(ledger) => ledger,
        Err(error) => return refuse("ledger", lfleet_types::error_chain(&error)),
    };
    match ledger.accept(config.generation, config.desired_state()) {
        Ok(_) => {}
        Err(LedgerError::Stale { offered, accepted }) => {
            return refuse(
                "stale-generation",
                format!("generation {offered} is older than the accepted {accepted}"),
            );
        }
        Err(error) => return refuse("ledger", lfleet_types::error_chain(&error)),
    }
    let node = NodeHandle {
        host,
        runner,
        clock,
    };
    let report = match reconcile(node, &config, Mode::Apply).await {
        Ok(report) => report,
        Err(error) => return refuse("reconcile", lfleet_types::error_chain(&error)),
    };
    link.config.send_replace(config);
    let items: Vec<v1::ItemResult> = report.results().map(v1::ItemResult::from).collect();
    let failed: Vec<String> = report
        .failed()
        .map(|i| format!("{} {}: {}", i.kind, i.id, i.message))
        .collect();
    let ack = v1::Ack {
        generation: desired.generation,
        command_id: String::new(),
        accepted: true,
        error_class: report
            .failed()
            .next()
            .and_then(|i| i.failure)
            .map(|class| class.code().to_owned())
            .unwrap_or_default(),
        message: if failed.is_empty() {
            format!("applied: {}", report.changes.join("; "))
        } else {
            failed.join("; ")
        },
    };
    (ack, items)
}
