//! The reconciler: one task that keeps the node converged while `lfleet-agent run` lives.
//!
//! A pass (observe, plan, apply: [`crate::reconcile`]) runs at start, on every accepted
//! configuration, on a resync tick (`resync_seconds`, `--resync-interval`), when a failed
//! item's retry falls due, and when asked ([`ReconcilerHandle::reconcile_now`], the kernel
//! hook). Everything else the agent does (checks, telemetry, the session) runs beside it, so
//! a long install or DKMS build never stops reports.
//!
//! Failed install and module items follow [`lfleet_install::follow_up`]: a retry is
//! scheduled (30 s to 6 h by class, with jitter, capped by `retry_max_seconds`), or the item
//! is refused until the client version or the configuration's generation changes, or an
//! operator asks; meanwhile a pass reports
//! the item's last failure and does not run the package manager again. Other items (mounts,
//! LNet, fstab) are level-triggered: every pass tries them.
//!
//! The task publishes its state over a watch channel ([`ReconcilerStatus`]: running or idle,
//! the last pass's items and classes, the next retry, the loaded client version) and reports
//! what it did as agent events.
//!
//! Entry points: [`Reconciler::new`], [`Reconciler::run`], [`ReconcilerHandle`].

use std::time::Duration;

use lfleet_install::FailureClass;
use lfleet_types::{
    AgentEvent, AgentEventKind, ClientVersion, Generation, ItemKind, ItemResult, ReconcileStatus,
    error_chain,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::config::NodeConfig;
use crate::node::Node;
use crate::reconcile::apply::{Deferral, Memory};
use crate::reconcile::{Mode, RemountError, Report, install_policy, reconcile_with, remount};

/// How the reconciler runs.
#[derive(Debug, Clone)]
pub struct ReconcilerOptions {
    /// Time between passes when nothing else asks for one.
    pub resync: Duration,
    /// The longest any scheduled retry waits (None: each class's own schedule).
    pub retry_max: Option<Duration>,
}

/// What the reconciler publishes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReconcilerStatus {
    pub state: ReconcileStatus,
    /// The generation the last finished pass applied.
    pub applied_generation: Generation,
    /// Finished passes since the agent started.
    pub passes: u64,
    /// The last pass's items, failed ones with their class.
    pub items: Vec<ItemResult>,
    /// The last pass's findings (`reboot-unsafe: ...`).
    pub findings: Vec<String>,
    /// Items waiting for a scheduled retry, earliest first.
    pub retries: Vec<ScheduledRetry>,
    /// Why the last pass could not run at all (the node could not be observed).
    pub error: Option<String>,
    /// `/sys/module/lustre/version` after the last pass; empty when no module is loaded.
    pub lustre_client_version: String,
}

impl ReconcilerStatus {
    /// When the next scheduled retry falls due (Unix ms), if any.
    pub fn next_retry_unix_ms(&self) -> Option<i64> {
        self.retries.iter().map(|r| r.at_unix_ms).min()
    }
}

/// A failed item and when it is tried again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledRetry {
    pub kind: ItemKind,
    pub id: String,
    pub class: FailureClass,
    pub at_unix_ms: i64,
}

/// A pass's result as a caller waiting for it gets it.
pub type PassResult = Result<Report, String>;

/// What callers ask of the reconciler.
#[derive(Debug)]
enum Request {
    /// A newly accepted configuration: run a pass with it.
    Config(Box<NodeConfig>, oneshot::Sender<PassResult>),
    /// A pass now; `force` also retries items waiting for their schedule.
    Now {
        force: bool,
        reply: Option<oneshot::Sender<PassResult>>,
    },
    /// Remount one owned mount.
    Remount(String, oneshot::Sender<Result<Report, String>>),
}

impl Request {
    /// Answers a request that cannot be served.
    fn refuse(self, why: &str) {
        match self {
            Request::Config(_, reply) => {
                let _ = reply.send(Err(why.to_owned()));
            }
            Request::Now { reply, .. } => {
                if let Some(reply) = reply {
                    let _ = reply.send(Err(why.to_owned()));
                }
            }
            Request::Remount(_, reply) => {
                let _ = reply.send(Err(why.to_owned()));
            }
        }
    }
}

/// The handle other tasks hold.
#[derive(Debug, Clone)]
pub struct ReconcilerHandle {
    requests: mpsc::Sender<Request>,
    status: watch::Receiver<ReconcilerStatus>,
}

/// Why a request did not reach the reconciler.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the reconciler has stopped")]
pub struct Stopped;

// === impl ReconcilerHandle ===

impl ReconcilerHandle {
    /// The published status.
    pub fn status(&self) -> watch::Receiver<ReconcilerStatus> {
        self.status.clone()
    }

    /// Hands over a newly accepted configuration; the receiver resolves when its pass ends.
    pub fn apply(&self, config: NodeConfig) -> Result<oneshot::Receiver<PassResult>, Stopped> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .try_send(Request::Config(Box::new(config), reply))
            .map_err(|_| Stopped)?;
        Ok(answer)
    }

    /// Asks for a pass now (an operator's command: scheduled retries run at once too).
    pub fn reconcile_now(&self) -> Result<oneshot::Receiver<PassResult>, Stopped> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .try_send(Request::Now {
                force: true,
                reply: Some(reply),
            })
            .map_err(|_| Stopped)?;
        Ok(answer)
    }

    /// Asks for a pass soon, without waiting for it (a new kernel was installed).
    pub fn nudge(&self) {
        // A full queue already holds a pass to come.
        let _ = self.requests.try_send(Request::Now {
            force: false,
            reply: None,
        });
    }

    /// Unmounts and mounts one mount the agent owns.
    pub fn remount(
        &self,
        mount_point: &str,
    ) -> Result<oneshot::Receiver<Result<Report, String>>, Stopped> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .try_send(Request::Remount(mount_point.to_owned(), reply))
            .map_err(|_| Stopped)?;
        Ok(answer)
    }
}

/// The task's state.
#[derive(Debug)]
pub struct Reconciler<'a> {
    node: &'a Node,
    config: NodeConfig,
    options: ReconcilerOptions,
    requests: mpsc::Receiver<Request>,
    status: watch::Sender<ReconcilerStatus>,
    events: mpsc::Sender<AgentEvent>,
    memory: Memory,
    /// The client version and generation the memory's failures were for.
    memory_version: Option<(ClientVersion, Generation)>,
}

// === impl Reconciler ===

impl<'a> Reconciler<'a> {
    /// A reconciler for `node` starting from `config`, with its handle and the receiver of
    /// the events it reports (dropping the receiver is fine: events are then only logged).
    pub fn new(
        node: &'a Node,
        config: NodeConfig,
        options: ReconcilerOptions,
    ) -> (Reconciler<'a>, ReconcilerHandle, mpsc::Receiver<AgentEvent>) {
        let (requests_tx, requests) = mpsc::channel(16);
        let (status, status_rx) = watch::channel(ReconcilerStatus {
            applied_generation: Generation::ZERO,
            ..ReconcilerStatus::default()
        });
        let (events, events_rx) = mpsc::channel(256);
        let reconciler = Reconciler {
            node,
            config,
            options,
            requests,
            status,
            events,
            memory: Memory::default(),
            memory_version: None,
        };
        let handle = ReconcilerHandle {
            requests: requests_tx,
            status: status_rx,
        };
        (reconciler, handle, events_rx)
    }

    /// Runs passes until `stop` resolves: one at once, then as asked and scheduled.
    /// Without `desired_loaded` (a coordinator-managed node its coordinator has not spoken to
    /// yet) nothing is reconciled until the first configuration arrives: unknown is not
    /// absent.
    pub async fn run(mut self, stop: impl std::future::Future<Output = ()>, desired_loaded: bool) {
        tokio::pin!(stop);
        let mut loaded = desired_loaded;
        let mut resync = tokio::time::interval(self.options.resync);
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let retry_at = self.memory.next_due();
            tokio::select! {
                biased;
                _ = &mut stop => return,
                request = self.requests.recv() => match request {
                    None => return,
                    Some(request) if loaded || matches!(request, Request::Config(..)) => {
                        loaded = true;
                        self.serve(request).await;
                    }
                    Some(request) => request.refuse("no desired state yet: the coordinator has not sent one"),
                },
                _ = resync.tick(), if loaded => {
                    let _ = self.pass().await;
                }
                _ = sleep_until(retry_at), if loaded => {
                    let _ = self.pass().await;
                }
            }
        }
    }

    async fn serve(&mut self, request: Request) {
        match request {
            Request::Config(config, reply) => {
                // Configs that queued during a long pass: only the newest matters.
                let mut config = *config;
                let mut replies = vec![reply];
                while let Ok(Request::Config(newer, reply)) = self.requests.try_recv() {
                    config = *newer;
                    replies.push(reply);
                }
                self.config = config;
                let result = self.pass().await;
                for reply in replies {
                    let _ = reply.send(result.clone());
                }
            }
            Request::Now { force, reply } => {
                if force {
                    self.memory.forget_deferrals();
                }
                let result = self.pass().await;
                if let Some(reply) = reply {
                    let _ = reply.send(result);
                }
            }
            Request::Remount(mount_point, reply) => {
                self.publish(|status| status.state = ReconcileStatus::Running);
                let result = remount(self.node.handle(), &self.config, &mount_point).await;
                self.publish(|status| status.state = ReconcileStatus::Idle);
                let answer = match result {
                    Ok(report) => {
                        if report.failed().next().is_none() {
                            self.event(
                                AgentEventKind::Remounted,
                                &mount_point,
                                "remounted on request",
                            );
                        }
                        Ok(report)
                    }
                    Err(RemountError::Refused(refusal)) => Err(refusal.to_string()),
                    Err(error) => Err(error_chain(&error)),
                };
                let _ = reply.send(answer);
            }
        }
    }

    /// One pass with the current configuration; publishes its outcome.
    async fn pass(&mut self) -> PassResult {
        let version = (
            self.config.client.lustre_version.clone(),
            self.config.generation,
        );
        if self.memory_version.as_ref() != Some(&version) {
            // A new client version (earlier failures were about another package), or a new
            // configuration the coordinator sent (an operator's or an upgrade's request to
            // try again): held items are tried at once.
            self.memory = Memory::default();
            self.memory_version = Some(version);
        }
        self.publish(|status| status.state = ReconcileStatus::Running);
        let install = install_policy(&self.config);
        let result = reconcile_with(
            self.node.handle(),
            &self.config,
            Mode::Apply,
            &install,
            &self.memory,
        )
        .await;
        let clock = self.node.clock();
        let now = clock.monotonic();
        let now_ms = clock.wall_unix_ms() as i64;
        let loaded = self
            .node
            .host
            .read_optional("sys/module/lustre/version")
            .ok()
            .flatten()
            .map(|v| v.trim().to_owned())
            .unwrap_or_default();
        match &result {
            Ok(report) => {
                self.memory.learn(report, now, self.options.retry_max);
                for kernel in &report.installed {
                    self.event(
                        AgentEventKind::ClientInstalled,
                        kernel,
                        &format!(
                            "Lustre {} client installed",
                            self.config.client.lustre_version
                        ),
                    );
                }
                for item in report.failed() {
                    tracing::warn!(
                        kind = %item.kind,
                        id = item.id,
                        class = item.failure.map(|c| c.code()).unwrap_or_default(),
                        message = item.message,
                        "reconcile: item failed"
                    );
                }
                let generation = self.config.generation;
                let retries = self.memory.scheduled(now, now_ms);
                self.publish(|status| {
                    status.state = ReconcileStatus::Idle;
                    status.applied_generation = generation;
                    status.passes += 1;
                    status.items = report.results().cloned().collect();
                    status.findings = report.findings.clone();
                    status.retries = retries;
                    status.error = None;
                    status.lustre_client_version = loaded;
                });
            }
            Err(error) => {
                let text = error_chain(error);
                tracing::error!(error = %text, "reconcile pass could not observe the node");
                self.event(AgentEventKind::ReconcileFailed, "node", &text);
                self.publish(|status| {
                    status.state = ReconcileStatus::Idle;
                    status.passes += 1;
                    status.error = Some(text.clone());
                    status.lustre_client_version = loaded;
                });
            }
        }
        result.map_err(|error| error_chain(&error))
    }

    fn publish(&self, change: impl FnOnce(&mut ReconcilerStatus)) {
        self.status.send_modify(change);
    }

    fn event(&self, kind: AgentEventKind, subject: &str, detail: &str) {
        tracing::info!(kind = %kind, subject, detail, "event");
        let _ = self.events.try_send(AgentEvent {
            kind,
            subject: subject.to_owned(),
            detail: detail.to_owned(),
            at_unix_ms: self.node.clock().wall_unix_ms() as i64,
        });
    }
}

/// Sleeps until `at`, forever when there is nothing to wait for.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

// === impl Memory (the reconciler's side) ===

impl Memory {
    /// Takes a pass's items into the memory: successes forget their failures; failures with
    /// a follow-up count up and are deferred by it (a retry at a time, or until something
    /// changes); a kernel whose DKMS build failed is not built again.
    pub fn learn(&mut self, report: &Report, now: Instant, retry_max: Option<Duration>) {
        for item in &report.items {
            let key = (item.result.kind, item.result.id.clone());
            if item.result.ok() {
                self.failures.remove(&key);
                self.deferred.remove(&key);
                continue;
            }
            if item.deferred {
                continue;
            }
            let Some(follow_up) = &item.follow_up else {
                continue;
            };
            *self.failures.entry(key.clone()).or_insert(0) += 1;
            if follow_up.dkms_tried {
                self.dkms_failed.insert(item.result.id.clone());
            }
            let until = follow_up.retry_after_seconds.map(|seconds| {
                let after = Duration::from_secs(seconds);
                now + retry_max.map_or(after, |max| after.min(max))
            });
            self.deferred.insert(
                key,
                Deferral {
                    class: item.result.failure.unwrap_or(FailureClass::Unknown),
                    message: item.result.message.clone(),
                    follow_up: follow_up.clone(),
                    until,
                },
            );
        }
    }

    /// When the earliest scheduled retry falls due.
    pub fn next_due(&self) -> Option<Instant> {
        self.deferred.values().filter_map(|d| d.until).min()
    }

    /// The scheduled retries, earliest first, with their wall times.
    fn scheduled(&self, now: Instant, now_ms: i64) -> Vec<ScheduledRetry> {
        let mut retries: Vec<ScheduledRetry> = self
            .deferred
            .iter()
            .filter_map(|((kind, id), deferral)| {
                let until = deferral.until?;
                let wait = until.saturating_duration_since(now);
                Some(ScheduledRetry {
                    kind: *kind,
                    id: id.clone(),
                    class: deferral.class,
                    at_unix_ms: now_ms + wait.as_millis() as i64,
                })
            })
            .collect();
        retries.sort_by_key(|r| r.at_unix_ms);
        retries
    }

    /// An operator asked: every deferred item is tried at the next pass.
    pub fn forget_deferrals(&mut self) {
        self.deferred.clear();
    }
}
