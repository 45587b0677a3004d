//! What operators see of the fleet: node summaries and details, filesystems, drains,
//! incidents and events, as the coordinator computes them and the CLI shows them. Serde
//! gives the CLI's `--json` shape (field names are part of its interface).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Condition, ItemResult, ReconcileStatus, Role};

/// A node's health as the coordinator judges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Health {
    /// Every condition passes.
    Healthy,
    /// A condition fails.
    Unhealthy,
    /// A condition is unknown, or none was reported yet.
    Unknown,
    /// No report for longer than the silence limit (whatever TCP says).
    Silent,
    /// Slurm has powered the node down (power saving, a deallocated cloud node): not expected
    /// to report or mount.
    PoweredDown,
}

impl Health {
    pub const ALL: [Health; 5] = [
        Health::Healthy,
        Health::Unhealthy,
        Health::Unknown,
        Health::Silent,
        Health::PoweredDown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
            Health::Unknown => "unknown",
            Health::Silent => "silent",
            Health::PoweredDown => "powered-down",
        }
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One desired mount on one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MountState {
    pub mount_point: String,
    pub source: String,
    pub mounted: bool,
    /// `None` when unknown (a silent node): never its last value.
    pub read_bytes_per_second: Option<f64>,
    pub write_bytes_per_second: Option<f64>,
}

/// A node at a glance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeSummary {
    pub name: String,
    pub health: Health,
    pub connected: bool,
    /// When the coordinator last heard from it (its own clock).
    pub last_seen_unix_ms: i64,
    pub agent_version: String,
    #[serde(rename = "kernel")]
    pub kernel_release: String,
    pub applied_generation: u64,
    pub desired_generation: u64,
    pub conditions: Vec<Condition>,
    pub mounts: Vec<MountState>,
    /// The coordinator's facts about the node, never the agent's claims.
    pub role: Option<Role>,
    pub slurm_node_name: String,
    pub nodearray: String,
}

/// One event in the fleet's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetEvent {
    pub at_unix_ms: i64,
    /// Empty for a fleet-wide event.
    pub node: String,
    /// Who wrote it: `agent`, `coordinator`, `operator` or `security`.
    pub source: String,
    pub kind: String,
    pub detail: String,
}

/// A node in detail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeDetail {
    #[serde(flatten)]
    pub summary: NodeSummary,
    pub distro: String,
    pub lustre_client_version: String,
    /// The agent's reconciler, from its last status report.
    #[serde(default)]
    pub reconcile: ReconcileStatus,
    /// When the agent next retries a failed item (its clock), if one is scheduled.
    #[serde(default)]
    pub next_retry_unix_ms: Option<i64>,
    pub items: Vec<ItemResult>,
    pub events: Vec<FleetEvent>,
}

/// How many of a filesystem's clients see one target in each import state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetState {
    pub target: String,
    pub nodes_by_state: BTreeMap<String, u32>,
}

/// A filesystem across the fleet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FilesystemSummary {
    pub name: String,
    pub source: String,
    pub mount_point: String,
    pub clients_expected: u32,
    pub clients_mounted: u32,
    pub targets: Vec<TargetState>,
    /// Summed over the clients that report; silent ones are left out, not counted as zero.
    pub read_bytes_per_second: f64,
    pub write_bytes_per_second: f64,
}

/// A drain as lfleet's ledger and Slurm see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainRecord {
    pub node: String,
    pub drain_id: String,
    pub reason: String,
    pub reason_time_unix: i64,
    pub reason_user: String,
    /// Slurm's view now: `IDLE+DRAIN`, `MIXED+DRAIN`, empty when Slurm was not asked.
    pub slurm_state: String,
    pub by_lfleet: bool,
    /// `active`, `undrained`, `taken-over`, `manual-undrain`, `not lfleet's`.
    pub status: String,
    pub check: String,
}

/// A filesystem incident: one check failing on a large share of a filesystem's nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentView {
    pub id: String,
    pub check: String,
    pub filesystem: String,
    pub opened_unix_ms: i64,
    pub closed_unix_ms: Option<i64>,
    pub node_count: u32,
    pub affected_nodes: Vec<String>,
}

/// Read and write rates over a window, one value per step (`None`: no sample reached that
/// step, unknown rather than zero), with how many sources reported in each step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThroughputSeries {
    pub step_ms: i64,
    /// The start of the first step.
    pub start_unix_ms: i64,
    pub read_bytes_per_second: Vec<Option<f64>>,
    pub write_bytes_per_second: Vec<Option<f64>>,
    /// Sources (mounts) with a sample in each step.
    pub reporting: Vec<u32>,
}

/// One mount's throughput over the last hour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MountThroughput {
    pub mount_point: String,
    pub series: ThroughputSeries,
}

/// A node among a filesystem's busiest over the last hour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopNode {
    pub node: String,
    /// Mean of read plus write over the steps it reported.
    pub mean_bytes_per_second: f64,
    pub series: ThroughputSeries,
}

/// A filesystem's throughput over the last hour: the fleet's total and its busiest nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FilesystemThroughput {
    pub name: String,
    pub mount_point: String,
    /// Summed over the nodes that reported in each step (`reporting` says how many).
    pub total: ThroughputSeries,
    pub top_nodes: Vec<TopNode>,
}

/// A client upgrade as operators see it (`lfleet upgrade plan|status`): its state, every
/// node's wave and step, and the nodes left out with why. A plan has no id and the state
/// `plan`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UpgradeView {
    pub id: String,
    pub client: String,
    /// `plan`, `running`, `paused`, `aborting`, `aborted`, `done`; empty: none ever started.
    pub state: String,
    /// Why it is paused.
    pub state_detail: String,
    pub wave_size: u32,
    pub waves: u32,
    pub max_failures: u32,
    pub failures: u32,
    pub started_unix_ms: i64,
    pub nodes: Vec<UpgradeNodeView>,
    pub skipped: Vec<UpgradeSkip>,
}

/// One node of an upgrade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpgradeNodeView {
    pub name: String,
    /// From 1.
    pub wave: u32,
    /// `pending`, `draining`, `wait-drained`, `upgrading`, `rebooting`, `undraining`, `done`,
    /// `failed`, `skipped`.
    pub step: String,
    /// A failure's evidence, a skip's reason.
    pub detail: String,
    pub since_unix_ms: i64,
}

/// A node an upgrade leaves out, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpgradeSkip {
    pub name: String,
    pub why: String,
}
