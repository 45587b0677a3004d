//! The coordinator's store: one SQLite file in the data directory (WAL, synchronous=FULL, so
//! a crash loses no committed write), which an operator can open with the sqlite3 tool at
//! 3 a.m. Configs with their generations, node records, node identities, the drain ledger,
//! drain intents, incidents, events and small settings.
//!
//! Writes go through one writer thread that commits whatever is queued in one transaction
//! (group commit), off the async runtime: [`Store::submit`] queues and returns (node
//! snapshots and ordinary events; past [`MAX_QUEUED`] they are dropped and counted), and
//! [`Store::commit`] waits until its rows are durable (drain intents, the ledger, configs,
//! identities). Reads use their own connection. Retention: ordinary events keep the newest
//! [`MAX_EVENTS`]; audit events, ended drains and closed incidents are kept by age
//! ([`AUDIT_DAYS`]), never trimmed by other rows' volume.

use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Serialize, de::DeserializeOwned};

use crate::policy::{DrainEntry, Incident};

#[derive(Debug, Clone, thiserror::Error)]
#[error("store {what}: {message}")]
pub struct StoreError {
    what: &'static str,
    /// The SQLite error as text (a committed batch reports one error to all its writers).
    message: String,
}

fn err(what: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| StoreError {
        what,
        message: source.to_string(),
    }
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub at_ms: i64,
    pub node: String,
    pub source: String,
    pub kind: String,
    pub detail: String,
    /// Kept by age, not trimmed by the volume of other events.
    pub audit: bool,
}

/// The most ordinary (non-audit) events kept; older ones are deleted.
pub const MAX_EVENTS: i64 = 100_000;
/// Days audit events, ended drains and closed incidents are kept.
pub const AUDIT_DAYS: i64 = 400;
/// Fire-and-forget writes queued at most; more are dropped and counted.
pub const MAX_QUEUED: usize = 200_000;

/// One write.
#[derive(Debug, Clone)]
pub enum Write {
    /// A JSON record keyed by name in a keyed table.
    Put {
        table: Table,
        key: String,
        json: String,
    },
    Delete {
        table: Table,
        key: String,
    },
    Event(StoredEvent),
    Drain(DrainEntry),
    Incident(Incident),
    Meta {
        key: String,
        value: String,
    },
    Config {
        generation: u64,
        text: String,
        source: String,
        at_ms: i64,
    },
}

/// Tables of `(key, JSON record)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// What the coordinator last knew of each node (hello, status, last seen).
    Nodes,
    /// Which key (and VM) each node name is bound to; revocations.
    Identities,
    /// Drain and undrain intents not yet reconciled with Slurm.
    Intents,
    /// Operator certificates and their revocation.
    Admins,
    /// Client upgrades: each rollout with every node's recorded step (`rollout::Rollout`).
    Rollouts,
    /// Per-node client versions an upgrade set (node name -> `ClientVersion`).
    ClientPins,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Nodes => "node_records",
            Table::Identities => "identities",
            Table::Intents => "intents",
            Table::Admins => "admins",
            Table::Rollouts => "rollouts",
            Table::ClientPins => "client_pins",
        }
    }
}

type Reply = std::sync::mpsc::SyncSender<Result<(), StoreError>>;

struct Job {
    writes: Vec<Write>,
    /// Counted against [`MAX_QUEUED`] (fire and forget).
    queued: bool,
    reply: Option<Reply>,
    async_reply: Option<tokio::sync::oneshot::Sender<Result<(), StoreError>>>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Job({} writes)", self.writes.len())
    }
}

#[derive(Debug)]
pub struct Store {
    read: Mutex<Connection>,
    sender: Mutex<Option<std::sync::mpsc::Sender<Job>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    queued: Arc<AtomicUsize>,
    dropped: AtomicU64,
}

const SCHEMA: &str = "
    PRAGMA journal_mode=WAL;
    PRAGMA synchronous=FULL;
    CREATE TABLE IF NOT EXISTS configs (
        generation INTEGER PRIMARY KEY,
        text TEXT NOT NULL,
        source TEXT NOT NULL,
        at_ms INTEGER NOT NULL);
    CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS node_records (key TEXT PRIMARY KEY, record TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS identities (key TEXT PRIMARY KEY, record TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS intents (key TEXT PRIMARY KEY, record TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS admins (key TEXT PRIMARY KEY, record TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS rollouts (key TEXT PRIMARY KEY, record TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS client_pins (key TEXT PRIMARY KEY, record TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS drains (
        drain_id TEXT PRIMARY KEY,
        drained_ms INTEGER NOT NULL,
        entry TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS incidents (
        id TEXT PRIMARY KEY,
        opened_ms INTEGER NOT NULL,
        entry TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at_ms INTEGER NOT NULL,
        node TEXT NOT NULL,
        kind TEXT NOT NULL,
        detail TEXT NOT NULL);
";

/// Columns added after the first release, for stores made by it.
const MIGRATIONS: &[(&str, &str, &str)] = &[
    ("events", "source", "TEXT NOT NULL DEFAULT 'coordinator'"),
    ("events", "audit", "INTEGER NOT NULL DEFAULT 0"),
    ("drains", "ended_ms", "INTEGER"),
    ("incidents", "closed_ms", "INTEGER"),
];

const INDEXES: &str = "
    CREATE INDEX IF NOT EXISTS events_by_time ON events (at_ms);
    CREATE INDEX IF NOT EXISTS events_by_node ON events (node, id);
    CREATE INDEX IF NOT EXISTS events_by_audit ON events (audit, id);
    CREATE INDEX IF NOT EXISTS drains_by_end ON drains (ended_ms);
    CREATE INDEX IF NOT EXISTS incidents_by_close ON incidents (closed_ms);
";

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let connection = Connection::open(path).map_err(err("open"))?;
    connection
        .busy_timeout(std::time::Duration::from_secs(30))
        .map_err(err("set the busy timeout"))?;
    Ok(connection)
}

impl Store {
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let connection = open_connection(path)?;
        connection
            .execute_batch(SCHEMA)
            .map_err(err("create tables"))?;
        for (table, column, declaration) in MIGRATIONS {
            let present: bool = connection
                .prepare(&format!(
                    "SELECT 1 FROM pragma_table_info('{table}') WHERE name = ?1"
                ))
                .and_then(|mut s| s.exists([column]))
                .map_err(err("read the schema"))?;
            if !present {
                connection
                    .execute_batch(&format!(
                        "ALTER TABLE {table} ADD COLUMN {column} {declaration}"
                    ))
                    .map_err(err("upgrade the schema"))?;
            }
        }
        connection
            .execute_batch(INDEXES)
            .map_err(err("create indexes"))?;
        let read = open_connection(path)?;
        let (sender, receiver) = std::sync::mpsc::channel::<Job>();
        let queued = Arc::new(AtomicUsize::new(0));
        let writer_queued = queued.clone();
        let writer = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || write_loop(connection, receiver, writer_queued))
            .map_err(|e| StoreError {
                what: "start the writer",
                message: e.to_string(),
            })?;
        Ok(Store {
            read: Mutex::new(read),
            sender: Mutex::new(Some(sender)),
            writer: Mutex::new(Some(writer)),
            queued,
            dropped: AtomicU64::new(0),
        })
    }

    fn send(&self, job: Job) -> Result<(), StoreError> {
        let sender = self.sender.lock().unwrap_or_else(|e| e.into_inner());
        sender
            .as_ref()
            .and_then(|s| s.send(job).ok())
            .ok_or_else(|| StoreError {
                what: "write",
                message: "the store is closed".into(),
            })
    }

    /// Queues writes and returns; they are committed with the next batch. Past
    /// [`MAX_QUEUED`] queued writes they are dropped and counted ([`Store::dropped`]).
    pub fn submit(&self, writes: Vec<Write>) {
        if self.queued.load(Ordering::Relaxed) >= MAX_QUEUED {
            self.dropped
                .fetch_add(writes.len() as u64, Ordering::Relaxed);
            return;
        }
        self.queued.fetch_add(1, Ordering::Relaxed);
        if let Err(error) = self.send(Job {
            writes,
            queued: true,
            reply: None,
            async_reply: None,
        }) {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            tracing::error!(%error, "a write was lost");
        }
    }

    /// Writes and waits until they are committed (fsync'd).
    pub async fn commit(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(Job {
            writes,
            queued: false,
            reply: None,
            async_reply: Some(tx),
        })?;
        rx.await.unwrap_or_else(|_| {
            Err(StoreError {
                what: "write",
                message: "the writer stopped".into(),
            })
        })
    }

    /// [`Store::commit`] for code off the async runtime (start-up, tests).
    pub fn commit_blocking(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.send(Job {
            writes,
            queued: false,
            reply: Some(tx),
            async_reply: None,
        })?;
        rx.recv().unwrap_or_else(|_| {
            Err(StoreError {
                what: "write",
                message: "the writer stopped".into(),
            })
        })
    }

    /// Waits until everything queued before is committed.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.commit_blocking(Vec::new())
    }

    /// Commits what is queued and stops the writer; later writes fail.
    pub fn close(&self) -> Result<(), StoreError> {
        let flushed = self.flush();
        self.sender.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(writer) = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = writer.join();
        }
        flushed
    }

    /// Fire-and-forget writes dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Writes queued and not yet committed.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.read.lock().unwrap_or_else(|e| e.into_inner())
    }

    // === reads ===

    /// The newest config: (generation, text).
    pub fn current_config(&self) -> Result<Option<(u64, String)>, StoreError> {
        self.db()
            .query_row(
                "SELECT generation, text FROM configs ORDER BY generation DESC LIMIT 1",
                [],
                |row| Ok((row.get::<_, i64>(0)? as u64, row.get(1)?)),
            )
            .optional()
            .map_err(err("read the config"))
    }

    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.db()
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(err("read meta"))
    }

    /// Every record of a keyed table, by key.
    pub fn records<T: DeserializeOwned>(
        &self,
        table: Table,
    ) -> Result<Vec<(String, T)>, StoreError> {
        let db = self.db();
        let mut statement = db
            .prepare(&format!(
                "SELECT key, record FROM {} ORDER BY key",
                table.name()
            ))
            .map_err(err("read records"))?;
        let rows = statement
            .query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })
            .map_err(err("read records"))?;
        let mut out = Vec::new();
        for row in rows {
            let (key, text) = row.map_err(err("read records"))?;
            match serde_json::from_str(&text) {
                Ok(value) => out.push((key, value)),
                Err(error) => {
                    tracing::error!(%error, table = table.name(), key, "an unreadable record is skipped")
                }
            }
        }
        Ok(out)
    }

    /// The drain ledger: active entries and those ended in the last `days`, oldest first.
    pub fn drains(&self) -> Result<Vec<DrainEntry>, StoreError> {
        self.json_rows(
            "SELECT entry FROM drains ORDER BY drained_ms, drain_id",
            "read the drain ledger",
        )
    }

    /// What the drain planner needs, by index: active drains and those drained or ended since
    /// `since_ms` (the budget window, the flap penalty's day).
    pub fn drains_since(&self, since_ms: i64) -> Result<Vec<DrainEntry>, StoreError> {
        let db = self.db();
        let mut statement = db
            .prepare(
                "SELECT entry FROM drains WHERE ended_ms IS NULL OR ended_ms >= ?1 OR drained_ms >= ?1
                 ORDER BY drained_ms, drain_id",
            )
            .map_err(err("read the drain ledger"))?;
        let rows = statement
            .query_map([since_ms], |row| row.get::<_, String>(0))
            .map_err(err("read the drain ledger"))?;
        let mut out = Vec::new();
        for row in rows {
            let text = row.map_err(err("read the drain ledger"))?;
            match serde_json::from_str(&text) {
                Ok(entry) => out.push(entry),
                Err(error) => tracing::error!(%error, "an unreadable ledger row is skipped"),
            }
        }
        Ok(out)
    }

    /// Incidents not closed yet, by index.
    pub fn open_incidents(&self) -> Result<Vec<Incident>, StoreError> {
        self.json_rows(
            "SELECT entry FROM incidents WHERE closed_ms IS NULL ORDER BY opened_ms, id",
            "read open incidents",
        )
    }

    pub fn incidents(&self) -> Result<Vec<Incident>, StoreError> {
        self.json_rows(
            "SELECT entry FROM incidents ORDER BY opened_ms, id",
            "read incidents",
        )
    }

    fn json_rows<T: DeserializeOwned>(
        &self,
        sql: &str,
        what: &'static str,
    ) -> Result<Vec<T>, StoreError> {
        let db = self.db();
        let mut statement = db.prepare(sql).map_err(err(what))?;
        let rows = statement
            .query_map([], |row| row.get::<_, String>(0))
            .map_err(err(what))?;
        let mut out = Vec::new();
        for row in rows {
            let text = row.map_err(err(what))?;
            match serde_json::from_str(&text) {
                Ok(value) => out.push(value),
                Err(error) => tracing::error!(%error, what, "an unreadable row is skipped"),
            }
        }
        Ok(out)
    }

    /// Events at or after `since_ms`, the newest `limit` (at most 10,000), oldest first;
    /// only `node`'s when given.
    pub fn events_of(
        &self,
        node: Option<&str>,
        since_ms: i64,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let db = self.db();
        let map = |row: &rusqlite::Row<'_>| {
            Ok(StoredEvent {
                at_ms: row.get(0)?,
                node: row.get(1)?,
                source: row.get(2)?,
                kind: row.get(3)?,
                detail: row.get(4)?,
                audit: row.get::<_, i64>(5)? != 0,
            })
        };
        let limit = i64::from(limit.clamp(1, 10_000));
        let rows: Result<Vec<StoredEvent>, rusqlite::Error> = match node {
            Some(node) => db
                .prepare(
                    "SELECT at_ms, node, source, kind, detail, audit FROM
                       (SELECT * FROM events WHERE node = ?1 AND at_ms >= ?2
                        ORDER BY id DESC LIMIT ?3) ORDER BY id",
                )
                .and_then(|mut s| s.query_map(params![node, since_ms, limit], map)?.collect()),
            None => db
                .prepare(
                    "SELECT at_ms, node, source, kind, detail, audit FROM
                       (SELECT * FROM events WHERE at_ms >= ?1
                        ORDER BY id DESC LIMIT ?2) ORDER BY id",
                )
                .and_then(|mut s| s.query_map(params![since_ms, limit], map)?.collect()),
        };
        rows.map_err(err("read events"))
    }

    pub fn events(&self, since_ms: i64, limit: u32) -> Result<Vec<StoredEvent>, StoreError> {
        self.events_of(None, since_ms, limit)
    }

    // === writes, for convenience ===

    /// Queues an event.
    pub fn add_event(&self, event: &StoredEvent) -> Result<(), StoreError> {
        self.submit(vec![Write::Event(event.clone())]);
        Ok(())
    }

    /// Stores a config as `generation` and waits for it.
    pub fn add_config_blocking(
        &self,
        generation: u64,
        text: &str,
        source: &str,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        self.commit_blocking(vec![Write::Config {
            generation,
            text: text.to_owned(),
            source: source.to_owned(),
            at_ms,
        }])
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// A record as a [`Write::Put`].
pub fn put<T: Serialize>(table: Table, key: &str, value: &T) -> Write {
    Write::Put {
        table,
        key: key.to_owned(),
        json: serde_json::to_string(value).expect("records serialize"),
    }
}

fn write_loop(
    mut connection: Connection,
    receiver: std::sync::mpsc::Receiver<Job>,
    queued: Arc<AtomicUsize>,
) {
    let mut since_trim = 0usize;
    while let Ok(first) = receiver.recv() {
        let mut jobs = vec![first];
        while jobs.len() < 4096 {
            match receiver.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let result = apply_batch(&mut connection, &jobs);
        if let Err(error) = &result {
            tracing::error!(%error, writes = jobs.len(), "a store batch failed");
        }
        since_trim += jobs.iter().map(|j| j.writes.len()).sum::<usize>();
        if since_trim >= 1000 {
            since_trim = 0;
            if let Err(error) = trim(&connection) {
                tracing::error!(%error, "trimming the store failed");
            }
        }
        for job in jobs {
            if job.queued {
                queued.fetch_sub(1, Ordering::Relaxed);
            }
            if let Some(reply) = job.reply {
                let _ = reply.send(result.clone());
            }
            if let Some(reply) = job.async_reply {
                let _ = reply.send(result.clone());
            }
        }
    }
}

fn apply_batch(connection: &mut Connection, jobs: &[Job]) -> Result<(), StoreError> {
    let tx = connection.transaction().map_err(err("begin"))?;
    for write in jobs.iter().flat_map(|j| &j.writes) {
        apply(&tx, write)?;
    }
    tx.commit().map_err(err("commit"))
}

fn apply(tx: &rusqlite::Transaction<'_>, write: &Write) -> Result<(), StoreError> {
    match write {
        Write::Put { table, key, json } => tx
            .execute(
                &format!(
                    "INSERT INTO {} (key, record) VALUES (?1, ?2)
                     ON CONFLICT(key) DO UPDATE SET record = excluded.record",
                    table.name()
                ),
                params![key, json],
            )
            .map_err(err("write a record")),
        Write::Delete { table, key } => tx
            .execute(
                &format!("DELETE FROM {} WHERE key = ?1", table.name()),
                [key],
            )
            .map_err(err("delete a record")),
        Write::Event(event) => tx
            .execute(
                "INSERT INTO events (at_ms, node, source, kind, detail, audit)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    event.at_ms,
                    event.node,
                    event.source,
                    event.kind,
                    event.detail,
                    i64::from(event.audit)
                ],
            )
            .map_err(err("write an event")),
        Write::Drain(entry) => tx
            .execute(
                "INSERT INTO drains (drain_id, drained_ms, entry, ended_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(drain_id) DO UPDATE SET entry = excluded.entry,
                     ended_ms = excluded.ended_ms",
                params![
                    entry.drain_id,
                    entry.drained_ms,
                    serde_json::to_string(entry).expect("entries serialize"),
                    entry.ended_ms
                ],
            )
            .map_err(err("write the drain ledger")),
        Write::Incident(incident) => tx
            .execute(
                "INSERT INTO incidents (id, opened_ms, entry, closed_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(id) DO UPDATE SET entry = excluded.entry,
                     closed_ms = excluded.closed_ms",
                params![
                    incident.id,
                    incident.opened_ms,
                    serde_json::to_string(incident).expect("incidents serialize"),
                    incident.closed_ms
                ],
            )
            .map_err(err("write an incident")),
        Write::Meta { key, value } => tx
            .execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map_err(err("write meta")),
        Write::Config {
            generation,
            text,
            source,
            at_ms,
        } => tx
            .execute(
                "INSERT INTO configs (generation, text, source, at_ms) VALUES (?1, ?2, ?3, ?4)",
                params![*generation as i64, text, source, at_ms],
            )
            .map_err(err("store the config")),
    }
    .map(|_| ())
}

/// Retention: ordinary events beyond the newest [`MAX_EVENTS`]; audit events, ended drains
/// and closed incidents older than [`AUDIT_DAYS`] (by the newest row's clock, so a store
/// read on another machine keeps what it has).
fn trim(connection: &Connection) -> Result<(), StoreError> {
    connection
        .execute(
            "DELETE FROM events WHERE audit = 0 AND id < (
                 SELECT id FROM events WHERE audit = 0 ORDER BY id DESC LIMIT 1 OFFSET ?1)",
            [MAX_EVENTS - 1],
        )
        .map_err(err("trim events"))?;
    let horizon = AUDIT_DAYS * 86_400_000;
    connection
        .execute(
            "DELETE FROM events WHERE audit = 1
               AND at_ms < (SELECT MAX(at_ms) FROM events) - ?1",
            [horizon],
        )
        .map_err(err("trim audit events"))?;
    connection
        .execute(
            "DELETE FROM drains WHERE ended_ms IS NOT NULL
               AND ended_ms < (SELECT MAX(drained_ms) FROM drains) - ?1",
            [horizon],
        )
        .map_err(err("trim the drain ledger"))?;
    connection
        .execute(
            "DELETE FROM incidents WHERE closed_ms IS NOT NULL
               AND closed_ms < (SELECT MAX(opened_ms) FROM incidents) - ?1",
            [horizon],
        )
        .map_err(err("trim incidents"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(at_ms: i64, kind: &str, audit: bool) -> StoredEvent {
        StoredEvent {
            at_ms,
            node: "n1".into(),
            source: "coordinator".into(),
            kind: kind.into(),
            detail: String::new(),
            audit,
        }
    }

    #[test]
    fn everything_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        {
            let store = Store::open(&path).unwrap();
            store.add_config_blocking(1, "a", "file", 1).unwrap();
            store.add_config_blocking(2, "b", "cli", 2).unwrap();
            store.submit(vec![
                put(Table::Nodes, "n1", &serde_json::json!({"x": 1})),
                Write::Meta {
                    key: "file_hash".into(),
                    value: "x".into(),
                },
            ]);
            store.add_event(&event(7, "connected", false)).unwrap();
            store.close().unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.current_config().unwrap(), Some((2, "b".into())));
        let nodes: Vec<(String, serde_json::Value)> = store.records(Table::Nodes).unwrap();
        assert_eq!(nodes[0].1["x"], 1);
        assert_eq!(store.meta("file_hash").unwrap().as_deref(), Some("x"));
        assert_eq!(store.events(0, 10).unwrap().len(), 1);
    }

    #[test]
    fn a_failed_batch_reports_to_its_waiters() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store.db")).unwrap();
        store.add_config_blocking(1, "a", "file", 1).unwrap();
        let error = store
            .add_config_blocking(1, "again", "file", 2)
            .unwrap_err();
        assert!(error.to_string().contains("UNIQUE"), "{error}");
    }

    #[test]
    fn ordinary_events_are_trimmed_but_the_audit_trail_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store.db")).unwrap();
        store.add_event(&event(1, "drained", true)).unwrap();
        let flood: Vec<Write> = (0..MAX_EVENTS + 5_000)
            .map(|i| Write::Event(event(2 + i, "conditions", false)))
            .collect();
        for chunk in flood.chunks(10_000) {
            store.commit_blocking(chunk.to_vec()).unwrap();
        }
        store.flush().unwrap();
        let count: i64 = store
            .db()
            .query_row("SELECT COUNT(*) FROM events WHERE audit = 0", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert!(count <= MAX_EVENTS + 1000, "{count}");
        let audit: i64 = store
            .db()
            .query_row(
                "SELECT COUNT(*) FROM events WHERE kind = 'drained'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(audit, 1);
    }
}
