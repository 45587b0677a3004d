//! What the checks remember between runs: counter baselines, since-times and the last kernel
//! message seen, so rises, reconnects and sustained states can be judged. It is kept at
//! `var/lib/lfleet/checks.json`, so a baseline survives an agent restart; one-shot commands
//! load and save it each run, the daemon loads it at start and saves it as [`SavePolicy`]
//! says. A missing or unreadable file is a fresh start.

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
    /// `hca/port/counter` -> (unix ms, value): the value when the error window began, then
    /// each change within it, oldest first.
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
    /// `lnet`'s last all-pass results and when lnetctl gave them (not saved: a restarted
    /// agent asks lnetctl at once).
    #[serde(skip)]
    pub lnet_steady: Option<(u64, Vec<super::CheckResult>)>,
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

/// When the daemon writes the memory. At once when a baseline changed whose loss would be
/// seen: the kernel message position, an import's reconnect counters, an IB error counter's
/// change, a since-time (a restart would report an event or a rise twice, or start a
/// sustain again). The VF traffic counters change every round on a busy node and only feed
/// the next round's comparison: they are written at most once per `every`, and at stop. So
/// a steady round writes and fsyncs nothing.
#[derive(Debug)]
pub struct SavePolicy {
    every_ms: u64,
    saved: Option<(CheckMemory, u64)>,
}

impl SavePolicy {
    pub fn new(every: std::time::Duration) -> Self {
        SavePolicy {
            every_ms: every.as_millis() as u64,
            saved: None,
        }
    }

    /// Whether `memory` should be written now.
    pub fn due(&self, memory: &CheckMemory, now_unix_ms: u64) -> bool {
        match &self.saved {
            None => true,
            Some((saved, at)) => {
                !saved.same_baselines(memory) || now_unix_ms.saturating_sub(*at) >= self.every_ms
            }
        }
    }

    /// `memory` was written at `now_unix_ms`.
    pub fn saved(&mut self, memory: &CheckMemory, now_unix_ms: u64) {
        let kept = CheckMemory {
            vf_traffic: BTreeMap::new(),
            events: Vec::new(),
            ..memory.clone()
        };
        self.saved = Some((kept, now_unix_ms));
    }
}

impl CheckMemory {
    /// Equal but for the traffic samples (and the events, never saved).
    fn same_baselines(&self, other: &CheckMemory) -> bool {
        // Destructured, so a new field has to be placed on one side or the other.
        let CheckMemory {
            imports,
            kmsg_last_seq,
            ib_counters,
            vf_absent_since,
            vf_traffic: _,
            lnet_low_since,
            lnet_steady: _,
            events: _,
        } = self;
        *imports == other.imports
            && *ib_counters == other.ib_counters
            && *kmsg_last_seq == other.kmsg_last_seq
            && *vf_absent_since == other.vf_absent_since
            && *lnet_low_since == other.lnet_low_since
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_wait_for_the_period_and_baselines_are_saved_at_once() {
        let mut policy = SavePolicy::new(std::time::Duration::from_secs(60));
        let mut memory = CheckMemory::default();
        assert!(policy.due(&memory, 1_000), "the first round saves");
        policy.saved(&memory, 1_000);
        assert!(!policy.due(&memory, 2_000), "nothing changed");
        memory.vf_traffic.insert("eth0".into(), (10, 10));
        assert!(!policy.due(&memory, 11_000), "traffic only: not yet");
        assert!(
            policy.due(&memory, 61_000),
            "traffic only: after the period"
        );
        policy.saved(&memory, 61_000);
        memory
            .ib_counters
            .insert("mlx5_0/1/symbol_error".into(), vec![(61_500, 3)]);
        assert!(policy.due(&memory, 61_500), "an IB counter changed");
        policy.saved(&memory, 61_500);
        memory.kmsg_last_seq = Some(7);
        assert!(policy.due(&memory, 62_000), "a new kernel message position");
        policy.saved(&memory, 62_000);
        memory.imports.insert(
            "lustrefs-OST0001-osc-ffff".into(),
            ImportSeen {
                connection_attempts: Some(2),
                ..ImportSeen::default()
            },
        );
        assert!(policy.due(&memory, 63_000), "an import baseline");
        policy.saved(&memory, 63_000);
        memory.lnet_low_since.insert("10.0.0.4@tcp".into(), 63_000);
        assert!(policy.due(&memory, 64_000), "a since-time");
        policy.saved(&memory, 64_000);
        memory.vf_absent_since.insert("eth1".into(), 64_000);
        assert!(policy.due(&memory, 65_000), "a VF since-time");
    }
}
