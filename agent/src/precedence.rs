//! Which configuration the agent runs with: agent.toml and the ledger, merged by one rule.
//!
//! - The node's own settings (`role`, `mount_timeout_seconds`, `resync_seconds`,
//!   `[repository]`, `[health]`, `[prometheus]`, `[coordinator]`, `[mount_policy]`) always
//!   come from agent.toml,
//!   so a local edit takes effect at the next start whatever generation the coordinator is at.
//! - The desired state (`generation`, `[client]`, `[lnet]`, `[[mounts]]`) comes from the newest
//!   accepted generation: the file's when it is newer than the ledger (then the file is
//!   accepted into the ledger, unless the caller only reads), else the ledger's (what the
//!   coordinator last pushed, or an earlier file).
//! - With a `[coordinator]` section the coordinator is the source of the desired state: the
//!   ledger (what it last pushed) wins whenever it has one, and the file's desired part only
//!   serves until the first push and is never written to the ledger (two sources must not
//!   number their configurations in one sequence).
//! - With no agent.toml the ledger's desired state runs with default node settings.
//!
//! Entry points: [`config_path`], [`load`].

use std::path::{Component, Path, PathBuf};

use lfleet_host::{HostError, HostRoot};

use lfleet_types::DesiredConfig;

use crate::config::{ConfigError, NodeConfig};
use crate::ledger::{DEFAULT_LEDGER_PATH, Ledger, LedgerError};

/// Where agent.toml is on a node.
pub const DEFAULT_CONFIG_PATH: &str = "etc/lfleet/agent.toml";

/// Whether loading may accept a newer file into the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read only (plan, check): the ledger is not written.
    ReadOnly,
    /// A newer file is accepted into the ledger before it is used (apply, run).
    Accept,
}

/// Where the desired state came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// agent.toml, whole.
    File,
    /// agent.toml's node settings with the ledger's newer desired state.
    FileAndLedger,
    /// The ledger alone (there is no agent.toml).
    Ledger,
}

/// A configuration and where its desired state came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: NodeConfig,
    pub source: Source,
}

/// Why no configuration could be loaded. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{}", path.display())]
    Path {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reading the configuration file")]
    Read {
        #[source]
        source: HostError,
    },
    #[error("{}", path.display())]
    Invalid {
        path: PathBuf,
        #[source]
        source: ConfigError,
    },
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(
        "{}: generation {generation} is already accepted with other mounts, client or LNet settings; give the changed file a higher generation",
        path.display()
    )]
    SameGeneration {
        path: PathBuf,
        generation: lfleet_types::Generation,
    },
    #[error(
        "no desired configuration: {} does not exist and the ledger is empty",
        path.display()
    )]
    Nothing { path: PathBuf },
}

/// The real path of agent.toml: `given` as the operator wrote it (relative to the working
/// directory, not to the node root), or the default under the node root.
pub fn config_path(root: &Path, given: Option<&Path>) -> Result<PathBuf, LoadError> {
    match given {
        Some(path) => std::path::absolute(path)
            .map(|absolute| normalize(&absolute))
            .map_err(|source| LoadError::Path {
                path: path.to_path_buf(),
                source,
            }),
        None => Ok(root.join(DEFAULT_CONFIG_PATH)),
    }
}

/// Resolves `.` and `..` in an operator-given absolute path lexically (as `realpath -s`), so
/// `--config ../agent.toml` works; node paths inside the root never get this treatment.
fn normalize(path: &Path) -> PathBuf {
    let mut normal = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                normal.pop();
            }
            Component::CurDir => {}
            other => normal.push(other),
        }
    }
    normal
}

/// Loads the configuration from `path` (a real path, as [`config_path`] gives it) and the
/// node's ledger, by the rule in this module's header.
pub fn load(host: &HostRoot, path: &Path, access: Access) -> Result<Loaded, LoadError> {
    let mut ledger: Ledger<DesiredConfig> = Ledger::open(host.clone(), DEFAULT_LEDGER_PATH)?;
    // The file is named as the operator gave it, so it is read from the real root.
    let text = HostRoot::new("/")
        .read_optional(path)
        .map_err(|source| LoadError::Read { source })?;
    let Some(text) = text else {
        return match ledger.current() {
            Some(entry) => {
                tracing::info!(
                    generation = entry.generation.get(),
                    path = %path.display(),
                    "no configuration file; running the ledger's desired state with default node settings"
                );
                Ok(Loaded {
                    config: NodeConfig::from_desired_state(entry.config.clone()),
                    source: Source::Ledger,
                })
            }
            None => Err(LoadError::Nothing {
                path: path.to_path_buf(),
            }),
        };
    };
    let file = NodeConfig::from_toml(&text).map_err(|source| LoadError::Invalid {
        path: path.to_path_buf(),
        source,
    })?;
    let coordinated = file.coordinator.is_some();
    if let Some(entry) = ledger.current()
        && (coordinated || entry.generation > file.generation)
    {
        tracing::info!(
            accepted = entry.generation.get(),
            file = file.generation.get(),
            "the accepted generation is newer than the file's: mounts, client and LNet come from it"
        );
        return Ok(Loaded {
            config: file.with_desired_state(entry.config.clone()),
            source: Source::FileAndLedger,
        });
    }
    let same_generation_differs = ledger.current().is_some_and(|entry| {
        entry.generation == file.generation && entry.config != file.desired_state()
    });
    if coordinated {
        return Ok(Loaded {
            config: file,
            source: Source::File,
        });
    }
    if same_generation_differs {
        return Err(LoadError::SameGeneration {
            path: path.to_path_buf(),
            generation: file.generation,
        });
    }
    if access == Access::Accept {
        ledger.accept(file.generation, file.desired_state())?;
    }
    Ok(Loaded {
        config: file,
        source: Source::File,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use lfleet_types::Generation;

    const EXAMPLE: &str = include_str!("../../packaging/examples/agent.toml");

    fn node() -> (tempfile::TempDir, HostRoot, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let host = HostRoot::new(dir.path().join("node"));
        let path = dir.path().join("agent.toml");
        (dir, host, path)
    }

    fn write(path: &Path, text: &str) {
        let host = HostRoot::new("/");
        host.write_atomic(path, text.as_bytes(), 0o644).unwrap();
    }

    fn pushed(generation: u64, version: &str) -> DesiredConfig {
        let mut desired = NodeConfig::from_toml(EXAMPLE).unwrap().desired_state();
        desired.generation = Generation(generation);
        desired.client.lustre_version = version.parse().unwrap();
        desired
    }

    #[test]
    fn a_newer_ledger_supplies_the_desired_state_and_the_file_the_node_settings() {
        let (_dir, host, path) = node();
        Ledger::open(host.clone(), DEFAULT_LEDGER_PATH)
            .unwrap()
            .accept(Generation(7), pushed(7, "2.16.1-10-gabcdef0"))
            .unwrap();
        write(
            &path,
            &format!("{EXAMPLE}\n[health]\nlnet_health_sustain_seconds = 5\n"),
        );
        for access in [Access::ReadOnly, Access::Accept] {
            let loaded = load(&host, &path, access).unwrap();
            assert_eq!(loaded.source, Source::FileAndLedger);
            assert_eq!(loaded.config.generation, Generation(7));
            assert_eq!(
                loaded.config.client.lustre_version.as_str(),
                "2.16.1-10-gabcdef0"
            );
            assert_eq!(loaded.config.health.lnet_health_sustain_seconds, 5);
        }
        // The ledger was not rewritten with the older file.
        let ledger: Ledger<DesiredConfig> = Ledger::open(host, DEFAULT_LEDGER_PATH).unwrap();
        assert_eq!(ledger.current().unwrap().generation, Generation(7));
    }

    #[test]
    fn a_newer_file_is_accepted_only_when_the_caller_may_write() {
        let (_dir, host, path) = node();
        write(&path, EXAMPLE);
        let loaded = load(&host, &path, Access::ReadOnly).unwrap();
        assert_eq!(loaded.source, Source::File);
        assert!(!host.exists(DEFAULT_LEDGER_PATH).unwrap());
        load(&host, &path, Access::Accept).unwrap();
        let ledger: Ledger<DesiredConfig> = Ledger::open(host, DEFAULT_LEDGER_PATH).unwrap();
        assert_eq!(
            ledger.current().unwrap().config,
            NodeConfig::from_toml(EXAMPLE).unwrap().desired_state()
        );
    }

    #[test]
    fn a_node_setting_edited_without_a_new_generation_is_taken_but_a_desired_one_is_refused() {
        let (_dir, host, path) = node();
        write(&path, EXAMPLE);
        load(&host, &path, Access::Accept).unwrap();
        write(&path, &format!("{EXAMPLE}\n[health]\naccelnet = true\n"));
        assert!(
            load(&host, &path, Access::Accept)
                .unwrap()
                .config
                .health
                .accelnet
        );
        write(
            &path,
            &EXAMPLE.replace("2.15.7-33-g79ddf99", "2.15.6-1-g0000000"),
        );
        let error = load(&host, &path, Access::Accept).unwrap_err();
        assert!(
            matches!(
                error,
                LoadError::SameGeneration {
                    generation: Generation(1),
                    ..
                }
            ),
            "{error}"
        );
    }

    #[test]
    fn without_a_file_the_ledger_runs_with_default_node_settings_and_without_either_it_says_so() {
        let (_dir, host, path) = node();
        let error = load(&host, &path, Access::ReadOnly).unwrap_err();
        assert!(
            lfleet_types::error_chain(&error).contains("does not exist and the ledger is empty"),
            "{error}"
        );
        Ledger::open(host.clone(), DEFAULT_LEDGER_PATH)
            .unwrap()
            .accept(Generation(3), pushed(3, "2.15.7-33-g79ddf99"))
            .unwrap();
        let loaded = load(&host, &path, Access::ReadOnly).unwrap();
        assert_eq!(loaded.source, Source::Ledger);
        assert_eq!(loaded.config.generation, Generation(3));
        assert_eq!(loaded.config.role, lfleet_types::Role::Compute);
    }

    #[test]
    fn a_ledger_written_whole_by_an_earlier_agent_still_loads() {
        let (_dir, host, path) = node();
        let whole = NodeConfig::from_toml(EXAMPLE).unwrap();
        Ledger::open(host.clone(), DEFAULT_LEDGER_PATH)
            .unwrap()
            .accept(Generation(1), whole.clone())
            .unwrap();
        let loaded = load(&host, &path, Access::ReadOnly).unwrap();
        assert_eq!(loaded.config.desired_state(), whole.desired_state());
    }

    #[test]
    fn with_a_coordinator_its_pushes_win_and_the_file_never_enters_the_ledger() {
        let (_dir, host, path) = node();
        let coordinated = format!("{EXAMPLE}\n[coordinator]\nurl = \"https://coordinator:7443\"\n")
            .replace("generation = 1", "generation = 5");
        write(&path, &coordinated);
        let loaded = load(&host, &path, Access::Accept).unwrap();
        assert_eq!(loaded.source, Source::File);
        assert!(!host.exists(DEFAULT_LEDGER_PATH).unwrap());
        // The coordinator's generation 1 is taken, though the file says 5.
        Ledger::open(host.clone(), DEFAULT_LEDGER_PATH)
            .unwrap()
            .accept(Generation(1), pushed(1, "2.16.1-10-gabcdef0"))
            .unwrap();
        let loaded = load(&host, &path, Access::Accept).unwrap();
        assert_eq!(loaded.source, Source::FileAndLedger);
        assert_eq!(loaded.config.generation, Generation(1));
        assert_eq!(
            loaded.config.client.lustre_version.as_str(),
            "2.16.1-10-gabcdef0"
        );
        assert!(loaded.config.coordinator.is_some());
    }

    #[test]
    fn operator_paths_are_taken_from_the_working_directory_and_normalized() {
        let path = config_path(Path::new("/node"), Some(Path::new("/etc/../tmp/./a.toml")));
        assert_eq!(path.unwrap(), PathBuf::from("/tmp/a.toml"));
        assert_eq!(
            config_path(Path::new("/node"), None).unwrap(),
            PathBuf::from("/node/etc/lfleet/agent.toml")
        );
    }
}
