//! The live agent sessions: one outbound queue per node, in domain messages. A new session
//! for a name replaces the old one (the old stream is told to go away); a closing session
//! removes itself only if it is still the current one. On shutdown every session is told
//! the coordinator is going away, so agents reconnect with backoff instead of waiting on a
//! dead stream.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use lfleet_types::{CommandRequest, DesiredConfig};
use tokio::sync::mpsc;

/// The queue depth of one session; a node that does not read its stream loses messages
/// (it gets the whole desired state again when it reconnects).
pub const QUEUE: usize = 64;

/// What the coordinator sends a node.
#[derive(Debug, Clone, PartialEq)]
pub enum Outgoing {
    Accepted {
        node_name: String,
        status_interval_seconds: u32,
        telemetry_interval_seconds: u32,
    },
    Config(DesiredConfig),
    /// An operator's command to the node's agent.
    Command(CommandRequest),
    /// The stream ends: the coordinator is shutting down, or a newer session replaced it.
    GoingAway(String),
}

#[derive(Debug)]
struct Session {
    id: u64,
    tx: mpsc::Sender<Outgoing>,
}

/// Every live session by node name.
#[derive(Debug, Default)]
pub struct Sessions {
    live: Mutex<BTreeMap<String, Session>>,
    next: AtomicU64,
}

impl Sessions {
    fn live(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Session>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a session for `name` and returns its id and the receiving end of its queue
    /// (which ends when the session is closed, ended or shut down); an older session of the
    /// same name is told to go away.
    pub fn open(&self, name: &str) -> (u64, mpsc::Receiver<Outgoing>) {
        let id = self.next.fetch_add(1, Ordering::SeqCst) + 1;
        let (tx, rx) = mpsc::channel(QUEUE);
        let old = self.live().insert(name.to_owned(), Session { id, tx });
        if let Some(old) = old {
            let _ = old.tx.try_send(Outgoing::GoingAway(
                "a newer session of this node replaced it".into(),
            ));
        }
        (id, rx)
    }

    /// Removes the session if it is still `id`; true when it was.
    pub fn close(&self, name: &str, id: u64) -> bool {
        let mut live = self.live();
        if live.get(name).is_some_and(|s| s.id == id) {
            live.remove(name);
            true
        } else {
            false
        }
    }

    /// Ends the session of `name` (a removed or revoked node).
    pub fn end(&self, name: &str, why: &str) {
        if let Some(session) = self.live().remove(name) {
            let _ = session.tx.try_send(Outgoing::GoingAway(why.to_owned()));
        }
    }

    /// Queues a message for `name`; false when it has no session or its queue is full.
    pub fn send(&self, name: &str, message: Outgoing) -> bool {
        self.live()
            .get(name)
            .is_some_and(|s| s.tx.try_send(message).is_ok())
    }

    /// The names with a live session.
    pub fn names(&self) -> Vec<String> {
        self.live().keys().cloned().collect()
    }

    pub fn is_live(&self, name: &str) -> bool {
        self.live().contains_key(name)
    }

    pub fn len(&self) -> usize {
        self.live().len()
    }

    pub fn is_empty(&self) -> bool {
        self.live().is_empty()
    }

    /// Tells every session the coordinator is going away and forgets them.
    pub fn shut_down(&self) {
        for (_, session) in std::mem::take(&mut *self.live()) {
            let _ = session.tx.try_send(Outgoing::GoingAway(
                "the coordinator is shutting down".into(),
            ));
        }
    }
}
