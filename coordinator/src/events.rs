//! The fleet's event log, below everything else in the coordinator: every module records
//! what it did or saw here, and only here.
//!
//! An event has a [`Source`] the coordinator sets (an agent can never write an operator's
//! or the coordinator's event) and a typed [`EventKind`]: the coordinator's own kinds, or an
//! [`AgentEventKind`] from the protocol. Agent events are rate-limited per node (a token
//! bucket; what is refused is counted, not stored). Audit kinds (drains, undrains, config
//! and identity changes) are kept by time, never trimmed by the volume of other events.
//! Recording never blocks on the disk: rows go to the store's writer.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use lfleet_host::Clock;
use lfleet_types::fleet::FleetEvent;
use lfleet_types::{AgentEventKind, ErrorChain};

use crate::store::{Store, StoredEvent};

/// Who wrote an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// Reported by a node's agent (its kind is an [`AgentEventKind`]).
    Agent,
    /// Decided by the coordinator (drains, incidents, sessions).
    Coordinator,
    /// An operator's action (undrain, config apply, dry-run, node removal).
    Operator,
    /// A refused or suspicious attempt (a name taken over, a revoked certificate).
    Security,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Agent => "agent",
            Source::Coordinator => "coordinator",
            Source::Operator => "operator",
            Source::Security => "security",
        }
    }
}

macro_rules! kinds {
    ($( $(#[$meta:meta])* $variant:ident => $text:literal, $audit:literal; )+) => {
        /// What the coordinator records on its own account.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum CoordinatorKind {
            $( $(#[$meta])* $variant, )+
        }

        impl CoordinatorKind {
            pub fn as_str(self) -> &'static str {
                match self {
                    $( CoordinatorKind::$variant => $text, )+
                }
            }

            /// Audit records are kept by age, not trimmed by other events' volume.
            pub fn is_audit(self) -> bool {
                match self {
                    $( CoordinatorKind::$variant => $audit, )+
                }
            }
        }
    };
}

kinds! {
    Enrolled => "enrolled", true;
    EnrollRefused => "enroll-refused", true;
    SessionRefused => "session-refused", true;
    Connected => "connected", false;
    Disconnected => "disconnected", false;
    Conditions => "conditions", false;
    ConfigApplied => "config-applied", true;
    ConfigFileDiffers => "config-file-differs", true;
    ConfigAcked => "config-acked", false;
    ConfigRefused => "config-refused", false;
    Drained => "drained", true;
    Undrained => "undrained", true;
    ManualUndrain => "manual-undrain", true;
    LeftAlone => "left-alone", true;
    DrainHeld => "drain-held", false;
    DrainNotConfirmed => "drain-not-confirmed", true;
    DrainRecovered => "drain-recovered", true;
    WouldDrain => "would-drain", false;
    WouldUndrain => "would-undrain", false;
    IncidentOpened => "incident-opened", true;
    IncidentClosed => "incident-closed", true;
    SlurmctldUnreachable => "slurmctld-unreachable", false;
    SlurmctldReachable => "slurmctld-reachable", false;
    DryRun => "dry-run", true;
    NodeRemoved => "node-removed", true;
    TokenRotated => "token-rotated", true;
    CertificateRenewed => "certificate-renewed", false;
    AdminRevoked => "admin-revoked", true;
    EventsDropped => "events-dropped", false;
    ReportRefused => "report-refused", false;
    CommandSent => "command-sent", true;
    CommandResult => "command-result", false;
    PoweredDown => "powered-down", false;
    PoweredUp => "powered-up", false;
    SlowNode => "slow-node", false;
    SlowNodeCleared => "slow-node-cleared", false;
    Upgrade => "upgrade", true;
}

/// An event's kind: the coordinator's, or one an agent may report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    Coordinator(CoordinatorKind),
    Agent(AgentEventKind),
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Coordinator(kind) => kind.as_str(),
            EventKind::Agent(kind) => kind.as_str(),
        }
    }

    pub fn is_audit(self) -> bool {
        matches!(self, EventKind::Coordinator(kind) if kind.is_audit())
    }
}

impl From<CoordinatorKind> for EventKind {
    fn from(kind: CoordinatorKind) -> EventKind {
        EventKind::Coordinator(kind)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Agent events a node may record in a burst, and per minute after it.
pub const AGENT_EVENT_BURST: f64 = 60.0;
pub const AGENT_EVENTS_PER_MINUTE: f64 = 60.0;

/// The largest detail stored, in bytes (whatever wrote it).
pub const MAX_DETAIL_BYTES: usize = 1024;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at_ms: i64,
}

/// The event log.
#[derive(Debug)]
pub struct EventLog {
    store: Arc<Store>,
    clock: Arc<dyn Clock>,
    buckets: Mutex<BTreeMap<String, Bucket>>,
    dropped: AtomicU64,
}

impl EventLog {
    pub fn new(store: Arc<Store>, clock: Arc<dyn Clock>) -> EventLog {
        EventLog {
            store,
            clock,
            buckets: Mutex::new(BTreeMap::new()),
            dropped: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> i64 {
        self.clock.wall_unix_ms() as i64
    }

    /// Records an event the coordinator or an operator caused (never rate-limited).
    pub fn record(
        &self,
        source: Source,
        node: &str,
        kind: CoordinatorKind,
        detail: impl Into<String>,
    ) {
        self.write(source, node, kind.into(), detail.into(), self.now_ms());
    }

    /// Records an event that outsiders can cause over and over (a refused enrollment or
    /// session), within the same per-name rate as agent events; false when dropped.
    pub fn record_limited(
        &self,
        source: Source,
        node: &str,
        kind: CoordinatorKind,
        detail: impl Into<String>,
    ) -> bool {
        let now = self.now_ms();
        if !self.take_token(&format!("{}|{node}", source.as_str()), now) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        self.write(source, node, kind.into(), detail.into(), now);
        true
    }

    /// Records an agent's event, within the node's rate; returns false when it was dropped.
    pub fn record_agent(&self, node: &str, kind: AgentEventKind, detail: String) -> bool {
        let now = self.now_ms();
        if !self.take_token(node, now) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        self.write(Source::Agent, node, EventKind::Agent(kind), detail, now);
        true
    }

    fn take_token(&self, node: &str, now_ms: i64) -> bool {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = buckets.entry(node.to_owned()).or_insert(Bucket {
            tokens: AGENT_EVENT_BURST,
            at_ms: now_ms,
        });
        let elapsed_minutes = (now_ms - bucket.at_ms).max(0) as f64 / 60_000.0;
        bucket.tokens =
            (bucket.tokens + elapsed_minutes * AGENT_EVENTS_PER_MINUTE).min(AGENT_EVENT_BURST);
        bucket.at_ms = now_ms;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Forgets a node's rate state (it was removed).
    pub fn forget(&self, node: &str) {
        self.buckets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(node);
    }

    /// Agent events refused by the rate limit since start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn write(&self, source: Source, node: &str, kind: EventKind, detail: String, at_ms: i64) {
        let detail = lfleet_types::safe_text(&detail, MAX_DETAIL_BYTES);
        tracing::info!(
            node,
            source = source.as_str(),
            kind = kind.as_str(),
            detail = %detail,
            "fleet event"
        );
        let event = StoredEvent {
            at_ms,
            node: node.to_owned(),
            source: source.as_str().to_owned(),
            kind: kind.as_str().to_owned(),
            detail,
            audit: kind.is_audit(),
        };
        if let Err(error) = self.store.add_event(&event) {
            tracing::error!(error = %ErrorChain(&error), "cannot store an event");
        }
    }
}

impl From<StoredEvent> for FleetEvent {
    fn from(event: StoredEvent) -> FleetEvent {
        FleetEvent {
            at_unix_ms: event.at_ms,
            node: event.node,
            source: event.source,
            kind: event.kind,
            detail: event.detail,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lfleet_host::FakeClock;

    #[test]
    fn agent_events_are_rate_limited_per_node_and_refills_with_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("store.db")).unwrap());
        let clock = Arc::new(FakeClock::at_unix(1_000_000));
        let log = EventLog::new(store.clone(), clock.clone());
        let taken = (0..100)
            .filter(|_| log.record_agent("n1", AgentEventKind::Evicted, "x".into()))
            .count();
        assert_eq!(taken, AGENT_EVENT_BURST as usize);
        assert_eq!(log.dropped(), 100 - AGENT_EVENT_BURST as u64);
        // Another node has its own bucket; coordinator events are never limited.
        assert!(log.record_agent("n2", AgentEventKind::Evicted, "x".into()));
        log.record(Source::Coordinator, "n1", CoordinatorKind::Drained, "y");
        clock.advance(std::time::Duration::from_secs(30));
        let refilled = (0..100)
            .filter(|_| log.record_agent("n1", AgentEventKind::Evicted, "x".into()))
            .count();
        assert_eq!(refilled, 30);
        store.flush().unwrap();
        let stored = store.events(0, 10_000).unwrap();
        assert_eq!(stored.len(), 60 + 1 + 1 + 30);
        assert!(
            stored
                .iter()
                .any(|e| e.kind == "drained" && e.audit && e.source == "coordinator")
        );
    }

    #[test]
    fn details_are_capped_and_escaped() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("store.db")).unwrap());
        let log = EventLog::new(store.clone(), Arc::new(FakeClock::at_unix(0)));
        log.record(
            Source::Operator,
            "",
            CoordinatorKind::DryRun,
            format!("\u{1b}[31m{}", "x".repeat(5000)),
        );
        store.flush().unwrap();
        let event = &store.events(0, 10).unwrap()[0];
        assert!(event.detail.len() <= MAX_DETAIL_BYTES);
        assert!(event.detail.starts_with("\\u{1b}[31m"), "{}", event.detail);
    }
}
