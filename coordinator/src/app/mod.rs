//! The coordinator: its owners wired together, and one domain function per thing agents and
//! operators ask ([`agents`], [`operators`]). The gRPC handlers (`api`) parse, call one of
//! these and map its [`ApiError`]; nothing here knows about gRPC.
//!
//! Owners, each behind a narrow interface: the [`Fleet`] (desired state and every node, in
//! domain types, behind one lock), the [`Store`] (SQLite, written by its own thread), the
//! [`EventLog`], the [`Pki`], the live [`Sessions`], the [`PolicySwitches`], the
//! [`Drainer`] (Slurm) and the [`SlowDetector`] ([`slow`]). Time comes from the injected clock and commands from the injected
//! runner, so tests can drive both.

pub mod agents;
pub mod commands;
pub mod operators;
pub mod slow;
pub mod throughput;
pub mod upgrades;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lfleet_host::{Clock, CommandRunner};
use lfleet_types::{ConfigAck, ErrorChain, Generation};

use crate::config::{self, ConfigErrors, CoordinatorFile};
use crate::drain::{Drainer, PolicySwitches};
use crate::events::{CoordinatorKind, EventLog, Source};
use crate::fleet::{Fleet, NodeState};
use crate::identity::Identities;
use crate::pki::Pki;
use crate::sessions::Sessions;
use crate::slow::SlowDetector;
use crate::slurm::Scontrol;
use crate::store::{Store, StoreError, Table, put};

/// How often Slurm's power states are read (at most once per drain pass).
const POWER_POLL: Duration = Duration::from_secs(1);

/// Why a request could not be served. `api` maps each to a gRPC status in one place.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    ResourceExhausted(String),
    #[error("{what}")]
    Internal {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl ApiError {
    pub fn internal(
        what: &str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> ApiError {
        ApiError::Internal {
            what: what.to_owned(),
            source: Box::new(source),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        ApiError::internal("the store", error)
    }
}

/// Why the coordinator could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("the store")]
    Store(#[from] StoreError),
    #[error("the stored config (generation {generation}) no longer parses: {errors}")]
    StoredConfig {
        generation: u64,
        errors: ConfigErrors,
    },
}

/// What enrollment needs at start.
#[derive(Debug)]
pub struct Enrollment {
    /// The token read from (or made in) the token file; the join token when the store holds
    /// none yet.
    pub file_token: String,
    /// Where `lfleet token rotate` writes the new token.
    pub token_file: std::path::PathBuf,
    /// How long an agent certificate is valid.
    pub certificate_seconds: u32,
}

/// Counters of what was refused before anyone was known (not stored row by row).
#[derive(Debug, Default)]
pub struct Refusals {
    pub enroll: std::sync::atomic::AtomicU64,
    /// When the last summary was logged, and the count then.
    logged: Mutex<(i64, u64)>,
}

impl Refusals {
    /// Counts one refused enrollment; logs a summary at most every 10 s.
    pub fn enroll_refused(&self, now_ms: i64, name: &str, why: &str) {
        use std::sync::atomic::Ordering;
        let total = self.enroll.fetch_add(1, Ordering::Relaxed) + 1;
        let mut logged = self.logged.lock().unwrap_or_else(|e| e.into_inner());
        if now_ms - logged.0 >= 10_000 {
            tracing::warn!(
                refused_since_last = total - logged.1,
                total,
                last_name = name,
                why,
                "enrollments refused"
            );
            *logged = (now_ms, total);
        }
    }
}

/// The coordinator.
#[derive(Debug)]
pub struct Coordinator {
    clock: Arc<dyn Clock>,
    store: Arc<Store>,
    events: Arc<EventLog>,
    pki: Pki,
    fleet: Mutex<Fleet>,
    sessions: Sessions,
    identities: Identities,
    certificate_seconds: u32,
    refusals: Refusals,
    /// Each node's last answer to a pushed config.
    acks: Mutex<BTreeMap<String, ConfigAck>>,
    policy: PolicySwitches,
    drainer: Option<tokio::sync::Mutex<Drainer>>,
    drain_interval: Duration,
    /// The TLS port's connection caps, once the server runs.
    admission: std::sync::OnceLock<Arc<crate::server::Admission>>,
    /// Telemetry samples refused by the per-node caps since start.
    pub telemetry_dropped: std::sync::atomic::AtomicU64,
    /// Status reports and telemetry batches taken from agents since start.
    pub received: Received,
    slow: Mutex<SlowDetector>,
    /// The client upgrade in progress or last run (`app/upgrades.rs`).
    rollout: tokio::sync::Mutex<Option<crate::rollout::Rollout>>,
}

/// Counts of what agents sent, for the ingest rate on /metrics.
#[derive(Debug, Default)]
pub struct Received {
    pub status_reports: std::sync::atomic::AtomicU64,
    pub telemetry_batches: std::sync::atomic::AtomicU64,
}

impl Coordinator {
    /// Builds the state from the store and the config file. The store is the one source of the
    /// desired state after the first start: a file whose desired state differs from it is
    /// not applied silently (the difference is logged and recorded, with how to apply it),
    /// unless `take_file` says so. Its server sections are read at every start.
    pub fn start(
        file: CoordinatorFile,
        store: Arc<Store>,
        pki: Pki,
        enrollment: Enrollment,
        take_file: bool,
        clock: Arc<dyn Clock>,
        runner: Arc<dyn CommandRunner>,
    ) -> Result<Coordinator, StartError> {
        let now = clock.wall_unix_ms() as i64;
        let mut nodes = BTreeMap::new();
        for (name, mut node) in store.records::<NodeState>(Table::Nodes)? {
            node.connected = false;
            nodes.insert(name, node);
        }
        let pins: BTreeMap<String, crate::fleet::Pin> = store
            .records::<crate::fleet::Pin>(Table::ClientPins)?
            .into_iter()
            .collect();
        // Every generation a node accepted or was pinned in: a new one goes above them all.
        let highest_applied = nodes
            .values()
            .map(|n| n.applied_generation)
            .chain(pins.values().map(|pin| pin.generation))
            .max()
            .unwrap_or(Generation::ZERO);
        let file_text = file.desired.text.clone();
        let stored = store.current_config()?;
        let mut differs = None;
        let (generation, desired) = match stored {
            Some((generation, text)) => {
                let running = config::parse(&text)
                    .map_err(|errors| StartError::StoredConfig { generation, errors })?
                    .desired;
                let changes = config::differences(&running, &file.desired);
                if changes.is_empty() || !take_file {
                    if !changes.is_empty() {
                        differs = Some((generation, changes));
                    }
                    (Generation(generation), running)
                } else {
                    let generation = Generation(generation).max(highest_applied).next();
                    store.add_config_blocking(
                        generation.get(),
                        &file_text,
                        "coordinator.toml at start (--take-config-from-file)",
                        now,
                    )?;
                    (generation, file.desired)
                }
            }
            None => {
                let generation = highest_applied.next();
                store.add_config_blocking(generation.get(), &file_text, "coordinator.toml", now)?;
                (generation, file.desired)
            }
        };
        let events = Arc::new(EventLog::new(store.clone(), clock.clone()));
        if let Some((generation, changes)) = differs {
            let text = format!(
                "coordinator.toml differs from the running configuration (generation {generation}): \
                 {}; the running configuration stays. Apply the file with `lfleet config apply \
                 FILE`, or start with --take-config-from-file",
                changes.join("; ")
            );
            tracing::warn!(generation = generation, "{text}");
            events.record(
                Source::Coordinator,
                "",
                CoordinatorKind::ConfigFileDiffers,
                text,
            );
        }
        let identities = Identities::load(
            store.clone(),
            &enrollment.file_token,
            enrollment.token_file.clone(),
            file.enrollment.clone(),
            now,
        )?;
        let policy = PolicySwitches::load(file.policy.clone(), store.clone())?;
        let rollout = crate::rollout::load_current(&store)?;
        let mut slow = SlowDetector::new(file.slow.clone());
        slow.adopt(&store.open_incidents()?);
        let drainer = file.slurm.enabled.then(|| {
            tokio::sync::Mutex::new(Drainer::new(
                Scontrol {
                    program: file.slurm.scontrol.clone(),
                    slurm_conf: file.slurm.slurm_conf.clone(),
                    timeout: Duration::from_secs(file.slurm.timeout_seconds.max(1)),
                    runner,
                },
                store.clone(),
                events.clone(),
                clock.clone(),
            ))
        });
        Ok(Coordinator {
            drain_interval: Duration::from_secs_f64(file.policy.interval_seconds),
            clock,
            store,
            events,
            pki,
            fleet: Mutex::new(Fleet {
                desired,
                generation,
                nodes,
                silence_ms: (file.server.silence_seconds * 1000.0) as i64,
                pins,
            }),
            sessions: Sessions::default(),
            identities,
            certificate_seconds: enrollment.certificate_seconds,
            refusals: Refusals::default(),
            acks: Mutex::new(BTreeMap::new()),
            policy,
            drainer,
            admission: std::sync::OnceLock::new(),
            telemetry_dropped: std::sync::atomic::AtomicU64::new(0),
            received: Received::default(),
            slow: Mutex::new(slow),
            rollout: tokio::sync::Mutex::new(rollout),
        })
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.wall_unix_ms() as i64
    }

    pub fn pki(&self) -> &Pki {
        &self.pki
    }

    pub fn events(&self) -> &EventLog {
        &self.events
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    pub fn set_admission(&self, admission: Arc<crate::server::Admission>) {
        let _ = self.admission.set(admission);
    }

    /// The TLS port's connection caps, once the server runs.
    pub fn admission(&self) -> Option<&crate::server::Admission> {
        self.admission.get().map(|a| a.as_ref())
    }

    pub fn identities(&self) -> &Identities {
        &self.identities
    }

    pub fn refusals(&self) -> &Refusals {
        &self.refusals
    }

    fn fleet(&self) -> std::sync::MutexGuard<'_, Fleet> {
        self.fleet.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the fleet under its lock.
    pub fn with_fleet<T>(&self, read: impl FnOnce(&Fleet) -> T) -> T {
        read(&self.fleet())
    }

    fn record(&self, source: Source, node: &str, kind: CoordinatorKind, detail: impl Into<String>) {
        self.events.record(source, node, kind, detail);
    }

    /// Queues a node's record for the store.
    fn persist(&self, name: &str, node: &NodeState) {
        self.store.submit(vec![put(Table::Nodes, name, node)]);
    }

    /// Whether Slurm drains are on.
    pub fn drains_enabled(&self) -> bool {
        self.drainer.is_some()
    }

    /// Runs drain passes every policy interval until `stop` is set. Does nothing when drains
    /// are off.
    pub async fn run_drains(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let Some(drainer) = &self.drainer else {
            return;
        };
        let mut last_power = tokio::time::Instant::now() - POWER_POLL;
        let mut every = tokio::time::interval(self.drain_interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let policy = self.policy.effective();
            let mut drainer = drainer.lock().await;
            // Slurm's power states first: a powered-down node is neither silent nor judged.
            if last_power.elapsed() >= POWER_POLL {
                last_power = tokio::time::Instant::now();
                match drainer.slurm_nodes().await {
                    Ok(slurm) => self.take_power_states(&slurm),
                    Err(error) => tracing::debug!(%error, "power states not read this pass"),
                }
            }
            let facts = self.with_fleet(|fleet| fleet.facts(self.now_ms()));
            if let Err(error) = drainer.pass(&policy, &facts).await {
                tracing::warn!(error = %ErrorChain(&error), "drain pass stopped; retrying next interval");
                continue;
            }
            // The upgrade's steps, after the pass settled every drain intent.
            if let Err(error) = self.advance_rollout(&mut drainer).await {
                tracing::warn!(error = %ErrorChain(&error), "upgrade step stopped; retrying next interval");
            }
        }
    }

    /// Marks nodes Slurm has powered down (and back up); each change is an event.
    pub fn take_power_states(&self, slurm: &[crate::slurm::SlurmNode]) {
        let down: std::collections::BTreeSet<String> = slurm
            .iter()
            .filter(|n| n.is_powered_down())
            .map(|n| n.name.clone())
            .collect();
        let changed = self.fleet().set_powered_down(&down);
        for (name, now_down) in changed {
            if now_down {
                self.record(
                    Source::Coordinator,
                    &name,
                    CoordinatorKind::PoweredDown,
                    "Slurm powered it down: not expected to report or mount",
                );
            } else {
                self.record(
                    Source::Coordinator,
                    &name,
                    CoordinatorKind::PoweredUp,
                    "Slurm powered it up: expected to report again",
                );
            }
        }
    }

    /// Tells every agent the coordinator is going away and commits what is queued.
    pub fn shut_down(&self) {
        self.sessions.shut_down();
        if let Err(error) = self.store.flush() {
            tracing::error!(error = %ErrorChain(&error), "the store could not be flushed");
        }
    }
}
