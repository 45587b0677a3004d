//! The ledger: the last accepted desired configuration, persisted so the agent boots from it
//! when no coordinator answers.
//!
//! Stored as JSON `{ "generation": N, "config": ... }` at a path under the host root
//! (`/var/lib/lfleet/desired.json`), written atomically through
//! [`lfleet_host::HostRoot::write_atomic`]. A configuration older than the stored one is
//! refused; the same generation with different content is refused too, since two configs
//! must never share a generation.
//!
//! Entry points: [`Ledger::open`], [`Ledger::current`], [`Ledger::accept`].

use std::path::PathBuf;

use lfleet_host::{HostError, HostRoot};
use lfleet_types::Generation;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// Where the agent's ledger lives on a node.
pub const DEFAULT_LEDGER_PATH: &str = "var/lib/lfleet/desired.json";

/// A stored configuration and its generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry<T> {
    pub generation: Generation,
    pub config: T,
}

/// Why the ledger could not be read or a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("reading ledger {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: HostError,
    },
    #[error("ledger {path} is corrupt")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("writing ledger {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: HostError,
    },
    #[error("generation {offered} is older than the accepted generation {accepted}")]
    Stale {
        offered: Generation,
        accepted: Generation,
    },
    #[error("generation {generation} is already accepted with different content")]
    Conflict { generation: Generation },
}

/// What [`Ledger::accept`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// A newer generation was stored.
    Stored,
    /// The same generation and content were already stored; nothing was written.
    Unchanged,
}

/// The ledger of one node.
#[derive(Debug)]
pub struct Ledger<T> {
    host: HostRoot,
    path: PathBuf,
    current: Option<Entry<T>>,
}

// === impl Ledger ===

impl<T> Ledger<T>
where
    T: Serialize + DeserializeOwned + PartialEq + Clone,
{
    /// Opens the ledger at `node_path`, reading what is stored (nothing, on a new node).
    pub fn open(host: HostRoot, node_path: impl Into<PathBuf>) -> Result<Self, LedgerError> {
        let path = node_path.into();
        let text = host
            .read_optional(&path)
            .map_err(|source| LedgerError::Read {
                path: path.clone(),
                source,
            })?;
        let current = match text {
            None => None,
            Some(text) => {
                Some(
                    serde_json::from_str(&text).map_err(|source| LedgerError::Corrupt {
                        path: path.clone(),
                        source,
                    })?,
                )
            }
        };
        Ok(Ledger {
            host,
            path,
            current,
        })
    }

    /// The accepted configuration, if any.
    pub fn current(&self) -> Option<&Entry<T>> {
        self.current.as_ref()
    }

    /// Accepts `config` at `generation` if it is newer, persisting it before returning.
    pub fn accept(&mut self, generation: Generation, config: T) -> Result<Accepted, LedgerError> {
        if let Some(current) = &self.current {
            if generation < current.generation {
                return Err(LedgerError::Stale {
                    offered: generation,
                    accepted: current.generation,
                });
            }
            if generation == current.generation {
                return if current.config == config {
                    Ok(Accepted::Unchanged)
                } else {
                    Err(LedgerError::Conflict { generation })
                };
            }
        }
        let entry = Entry { generation, config };
        let mut text =
            serde_json::to_string_pretty(&entry).map_err(|source| LedgerError::Corrupt {
                path: self.path.clone(),
                source,
            })?;
        text.push('\n');
        let write_error = |source| LedgerError::Write {
            path: self.path.clone(),
            source,
        };
        if let Some(parent) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            self.host
                .create_dir_all(parent, 0o700)
                .map_err(write_error)?;
        }
        self.host
            .write_atomic(&self.path, text.as_bytes(), 0o600)
            .map_err(write_error)?;
        self.current = Some(entry);
        Ok(Accepted::Stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger(dir: &tempfile::TempDir) -> Ledger<Vec<String>> {
        Ledger::open(HostRoot::new(dir.path()), DEFAULT_LEDGER_PATH).unwrap()
    }

    #[test]
    fn accepts_newer_generations_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = ledger(&dir);
        assert!(first.current().is_none());
        assert_eq!(
            first.accept(Generation(3), vec!["/lustre".into()]).unwrap(),
            Accepted::Stored
        );
        let reopened = ledger(&dir);
        assert_eq!(
            reopened.current(),
            Some(&Entry {
                generation: Generation(3),
                config: vec!["/lustre".to_string()]
            })
        );
    }

    #[test]
    fn refuses_older_and_conflicting_generations_without_writing() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = ledger(&dir);
        ledger.accept(Generation(5), vec!["a".into()]).unwrap();
        let host = HostRoot::new(dir.path());
        let before = host.read_limited(DEFAULT_LEDGER_PATH, 1 << 20).unwrap();
        assert!(matches!(
            ledger.accept(Generation(4), vec!["b".into()]),
            Err(LedgerError::Stale {
                offered: Generation(4),
                accepted: Generation(5)
            })
        ));
        assert!(matches!(
            ledger.accept(Generation(5), vec!["b".into()]),
            Err(LedgerError::Conflict {
                generation: Generation(5)
            })
        ));
        assert_eq!(
            ledger.accept(Generation(5), vec!["a".into()]).unwrap(),
            Accepted::Unchanged
        );
        assert_eq!(
            host.read_limited(DEFAULT_LEDGER_PATH, 1 << 20).unwrap(),
            before
        );
    }

    #[test]
    fn a_corrupt_ledger_is_an_error_not_an_empty_one() {
        let dir = tempfile::tempdir().unwrap();
        let host = HostRoot::new(dir.path());
        host.create_dir_all("var/lib/lfleet", 0o700).unwrap();
        host.write_atomic(DEFAULT_LEDGER_PATH, b"{\"generation\": 2, \"conf", 0o600)
            .unwrap();
        let err = Ledger::<Vec<String>>::open(host, DEFAULT_LEDGER_PATH).unwrap_err();
        assert!(matches!(err, LedgerError::Corrupt { .. }), "{err}");
    }
}
