//! The coordinator's store: one SQLite file in the data directory (WAL, synchronous=FULL, so
//! a crash loses no acknowledged write). Configs with their generations, the node registry
//! with each node's last Hello and status, and events. After a restart the coordinator knows
//! everything it knew. SQLite because it is embedded, crash-safe, and an operator can open
//! the file with the sqlite3 tool at 3 a.m.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};

#[derive(Debug, thiserror::Error)]
#[error("store {what}: {source}")]
pub struct StoreError {
    what: &'static str,
    #[source]
    source: rusqlite::Error,
}

fn err(what: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| StoreError { what, source }
}

/// A stored node.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredNode {
    pub name: String,
    /// The last Hello, protobuf-encoded.
    pub hello: Vec<u8>,
    pub last_seen_ms: i64,
    pub applied_generation: u64,
    /// The last status report, protobuf-encoded.
    pub status: Vec<u8>,
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub at_ms: i64,
    pub node: String,
    pub kind: String,
    pub detail: String,
}

#[derive(Debug)]
pub struct Store {
    connection: Mutex<Connection>,
}

/// The most events kept; older ones are deleted as new ones come.
pub const MAX_EVENTS: i64 = 100_000;

impl Store {
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let connection = Connection::open(path).map_err(err("open"))?;
        connection
            .execute_batch(
                "PRAGMA journal_mode=WAL;
                 PRAGMA synchronous=FULL;
                 CREATE TABLE IF NOT EXISTS configs (
                     generation INTEGER PRIMARY KEY,
                     text TEXT NOT NULL,
                     source TEXT NOT NULL,
                     at_ms INTEGER NOT NULL);
                 CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                 CREATE TABLE IF NOT EXISTS nodes (
                     name TEXT PRIMARY KEY,
                     hello BLOB NOT NULL,
                     last_seen_ms INTEGER NOT NULL,
                     applied_generation INTEGER NOT NULL,
                     status BLOB NOT NULL);
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
                     detail TEXT NOT NULL);",
            )
            .map_err(err("create tables"))?;
        Ok(Store {
            connection: Mutex::new(connection),
        })
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.connection.lock().unwrap_or_else(|e| e.into_inner())
    }

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

    /// Stores a config as the next generation and returns it.
    pub fn add_config(&self, text: &str, source: &str, at_ms: i64) -> Result<u64, StoreError> {
        let mut db = self.db();
        let tx = db.transaction().map_err(err("begin"))?;
        let next: i64 = tx
            .query_row(
                "SELECT COALESCE(MAX(generation), 0) + 1 FROM configs",
                [],
                |r| r.get(0),
            )
            .map_err(err("number the config"))?;
        tx.execute(
            "INSERT INTO configs (generation, text, source, at_ms) VALUES (?1, ?2, ?3, ?4)",
            params![next, text, source, at_ms],
        )
        .map_err(err("store the config"))?;
        tx.commit().map_err(err("commit the config"))?;
        Ok(next as u64)
    }

    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.db()
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(err("read meta"))
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.db()
            .execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map(|_| ())
            .map_err(err("write meta"))
    }

    pub fn upsert_node(&self, node: &StoredNode) -> Result<(), StoreError> {
        self.db()
            .execute(
                "INSERT INTO nodes (name, hello, last_seen_ms, applied_generation, status)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(name) DO UPDATE SET hello = excluded.hello,
                     last_seen_ms = excluded.last_seen_ms,
                     applied_generation = excluded.applied_generation,
                     status = excluded.status",
                params![
                    node.name,
                    node.hello,
                    node.last_seen_ms,
                    node.applied_generation as i64,
                    node.status
                ],
            )
            .map(|_| ())
            .map_err(err("write a node"))
    }

    pub fn nodes(&self) -> Result<Vec<StoredNode>, StoreError> {
        let db = self.db();
        let mut statement = db
            .prepare("SELECT name, hello, last_seen_ms, applied_generation, status FROM nodes ORDER BY name")
            .map_err(err("read nodes"))?;
        let rows = statement
            .query_map([], |row| {
                Ok(StoredNode {
                    name: row.get(0)?,
                    hello: row.get(1)?,
                    last_seen_ms: row.get(2)?,
                    applied_generation: row.get::<_, i64>(3)? as u64,
                    status: row.get(4)?,
                })
            })
            .map_err(err("read nodes"))?;
        rows.collect::<Result<_, _>>().map_err(err("read nodes"))
    }

    /// Writes a drain ledger entry (new or updated).
    pub fn put_drain(&self, entry: &crate::policy::DrainEntry) -> Result<(), StoreError> {
        let text = serde_json::to_string(entry).expect("entries serialize");
        self.db()
            .execute(
                "INSERT INTO drains (drain_id, drained_ms, entry) VALUES (?1, ?2, ?3)
                 ON CONFLICT(drain_id) DO UPDATE SET entry = excluded.entry",
                params![entry.drain_id, entry.drained_ms, text],
            )
            .map(|_| ())
            .map_err(err("write the drain ledger"))
    }

    /// The drain ledger, oldest first.
    pub fn drains(&self) -> Result<Vec<crate::policy::DrainEntry>, StoreError> {
        self.json_rows(
            "SELECT entry FROM drains ORDER BY drained_ms, drain_id",
            "read the drain ledger",
        )
    }

    pub fn put_incident(&self, incident: &crate::policy::Incident) -> Result<(), StoreError> {
        let text = serde_json::to_string(incident).expect("incidents serialize");
        self.db()
            .execute(
                "INSERT INTO incidents (id, opened_ms, entry) VALUES (?1, ?2, ?3)
                 ON CONFLICT(id) DO UPDATE SET entry = excluded.entry",
                params![incident.id, incident.opened_ms, text],
            )
            .map(|_| ())
            .map_err(err("write an incident"))
    }

    pub fn incidents(&self) -> Result<Vec<crate::policy::Incident>, StoreError> {
        self.json_rows(
            "SELECT entry FROM incidents ORDER BY opened_ms, id",
            "read incidents",
        )
    }

    fn json_rows<T: serde::de::DeserializeOwned>(
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

    pub fn add_event(&self, event: &StoredEvent) -> Result<(), StoreError> {
        let db = self.db();
        db.execute(
            "INSERT INTO events (at_ms, node, kind, detail) VALUES (?1, ?2, ?3, ?4)",
            params![event.at_ms, event.node, event.kind, event.detail],
        )
        .map_err(err("write an event"))?;
        db.execute(
            "DELETE FROM events WHERE id <= (SELECT MAX(id) FROM events) - ?1",
            [MAX_EVENTS],
        )
        .map_err(err("trim events"))?;
        Ok(())
    }

    pub fn events(&self, since_ms: i64, limit: u32) -> Result<Vec<StoredEvent>, StoreError> {
        let db = self.db();
        let mut statement = db
            .prepare(
                "SELECT at_ms, node, kind, detail FROM
                   (SELECT id, at_ms, node, kind, detail FROM events WHERE at_ms >= ?1
                    ORDER BY id DESC LIMIT ?2) ORDER BY id",
            )
            .map_err(err("read events"))?;
        let rows = statement
            .query_map(
                params![since_ms, i64::from(limit.clamp(1, 10_000))],
                |row| {
                    Ok(StoredEvent {
                        at_ms: row.get(0)?,
                        node: row.get(1)?,
                        kind: row.get(2)?,
                        detail: row.get(3)?,
                    })
                },
            )
            .map_err(err("read events"))?;
        rows.collect::<Result<_, _>>().map_err(err("read events"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        {
            let store = Store::open(&path).unwrap();
            assert_eq!(store.add_config("a", "file", 1).unwrap(), 1);
            assert_eq!(store.add_config("b", "cli", 2).unwrap(), 2);
            store
                .upsert_node(&StoredNode {
                    name: "n1".into(),
                    hello: vec![1, 2],
                    last_seen_ms: 5,
                    applied_generation: 2,
                    status: vec![],
                })
                .unwrap();
            store.set_meta("file_hash", "x").unwrap();
            store
                .add_event(&StoredEvent {
                    at_ms: 7,
                    node: "n1".into(),
                    kind: "connected".into(),
                    detail: String::new(),
                })
                .unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.current_config().unwrap(), Some((2, "b".into())));
        assert_eq!(store.nodes().unwrap()[0].applied_generation, 2);
        assert_eq!(store.meta("file_hash").unwrap().as_deref(), Some("x"));
        assert_eq!(store.events(0, 10).unwrap().len(), 1);
    }
}
