//! What the checks remember between runs: counter baselines, since-times and the last kernel
//! message seen, so rises, reconnects and sustained states can be judged. The daemon keeps it
//! in memory; one-shot commands load and save it at `var/lib/lfleet/checks.json`, so a
//! baseline survives an agent restart. A missing or unreadable file is a fresh start.

use std::collections::BTreeMap;

use lfleet_host::HostRoot;
use serde::{Deserialize, Serialize};

/// Where one-shot commands keep the memory, under the node root.
pub const MEMORY_PATH: &str = "var/lib/lfleet/checks.json";

/// What an import looked like at the last run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ImportSeen {
    pub connection_attempts: Option<u64>,
    pub generation: Option<u64>,
    pub current_connection: Option<String>,
}

/// The checks' memory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CheckMemory {
    /// By import device name (`lustrefs-OST0001-osc-ffff...`).
    #[serde(default)]
    pub imports: BTreeMap<String, ImportSeen>,
    /// The sequence number of the last /dev/kmsg record read.
    #[serde(default)]
    pub kmsg_last_seq: Option<u64>,
    /// `hca/port/counter` -> (unix ms, value) samples within the error window, oldest first.
    #[serde(default)]
    pub ib_counters: BTreeMap<String, Vec<(u64, u64)>>,
    /// Synthetic NIC -> unix ms since its VF has been absent.
    #[serde(default)]
    pub vf_absent_since: BTreeMap<String, u64>,
    /// Synthetic NIC -> (its bytes, its VF's bytes) at the last run.
    #[serde(default)]
    pub vf_traffic: BTreeMap<String, (u64, u64)>,
    /// LNet NI -> unix ms since its health value has been below 1000.
    #[serde(default)]
    pub lnet_low_since: BTreeMap<String, u64>,
    /// Events found in this run, taken by the caller.
    #[serde(skip)]
    pub events: Vec<Event>,
}

/// Something that happened, reported once: a reconnect, an eviction, a failover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub kind: lfleet_types::AgentEventKind,
    pub subject: String,
    pub detail: String,
    pub unix_ms: u64,
}

impl CheckMemory {
    /// Loads the memory of one-shot runs; a missing or corrupt file is a fresh start.
    pub fn load(host: &HostRoot) -> CheckMemory {
        match host.read_optional(MEMORY_PATH) {
            Ok(Some(text)) => serde_json::from_str(&text).unwrap_or_else(|error| {
                tracing::warn!(path = MEMORY_PATH, error = %lfleet_types::ErrorChain(&error), "check memory unreadable; starting afresh");
                CheckMemory::default()
            }),
            Ok(None) => CheckMemory::default(),
            Err(error) => {
                tracing::warn!(path = MEMORY_PATH, error = %lfleet_types::ErrorChain(&error), "check memory unreadable; starting afresh");
                CheckMemory::default()
            }
        }
    }

    /// Saves it atomically (a crash leaves the old file or the new one).
    pub fn save(&self, host: &HostRoot) -> Result<(), lfleet_host::HostError> {
        host.create_dir_all("var/lib/lfleet", 0o700)?;
        let text = serde_json::to_vec_pretty(self).expect("memory serializes");
        host.write_atomic(MEMORY_PATH, &text, 0o600)
    }
}
