//! The fleet as the coordinator sees it: the desired state with its generation, and every
//! node's identity (the coordinator's facts), last Hello, status and throughput, in domain
//! types only. Pure state and rules (health, what a node should mount, the operator views
//! and the planner's facts); time is always passed in.
//!
//! Two rules worth knowing:
//! - A condition's `since` is when the coordinator first *received* its current outcome and
//!   code, never the time the agent claims: an agent cannot backdate a failure into a drain.
//! - A node is SILENT when nothing arrived from it for the silence limit, whatever its TCP
//!   connection says; a silent node's throughput is unknown and it is not counted mounted.
//! - Besides the agent's conditions a node has the coordinator's own (`derived`: the
//!   slow-node finding), shown, judged for health and planned on like the agent's.

use std::collections::BTreeMap;

use lfleet_types::fleet::{
    FilesystemSummary, Health, MountState, NodeDetail, NodeSummary, TargetState,
};
use lfleet_types::{
    AgentHello, CheckId, Condition, DesiredConfig, Generation, KnownCheck, Outcome, SampleValue,
    StatusReport, TelemetryBatch, metric,
};
use serde::{Deserialize, Serialize};

use crate::config::Desired;
use crate::history::{Direction, MountHistory, Series};
use crate::identity::NodeIdentity;
use crate::policy::{Fact, NodeFacts};

/// A node silent this long (nothing received, whatever TCP says) is SILENT, by default
/// (`[server] silence_seconds`).
pub const SILENT_AFTER_MS: i64 = 30_000;

/// Mounts whose throughput is kept per node; samples for more are dropped and counted.
pub const MAX_MOUNTS_PER_NODE: usize = 64;

/// What a node's mount is doing.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MountRates {
    pub read_bytes_per_second: f64,
    pub write_bytes_per_second: f64,
    /// Bytes read and written since the coordinator first heard of this mount: each rate
    /// times the time since the previous sample (by the agent's clock), for counters.
    pub read_bytes_total: f64,
    pub write_bytes_total: f64,
    /// When the last sample of each direction was taken (agent's clock, ms).
    read_at_ms: i64,
    write_at_ms: i64,
}

/// A node's throughput: per mount now, and per mount over the last hour (bounded).
#[derive(Debug, Clone, Default)]
pub struct NodeTelemetry {
    pub mounts: BTreeMap<String, MountRates>,
    /// Each mount's rates over the last hour, for the dashboard.
    pub history: MountHistory,
    /// Samples refused by the caps.
    pub dropped: u64,
}

/// What the coordinator knows of a node, persisted so a restart forgets nothing.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeState {
    pub identity: NodeIdentity,
    /// The node's name in Slurm (the coordinator's mapping).
    pub slurm_name: String,
    pub hello: Option<AgentHello>,
    pub status: StatusReport,
    /// Per (check, subject): when the coordinator first received the current outcome and code.
    pub since: Vec<((CheckId, String), i64)>,
    /// When the coordinator last received anything from it (its own clock).
    pub last_seen_ms: i64,
    pub applied_generation: Generation,
    #[serde(skip)]
    pub connected: bool,
    /// Slurm has it powered down (power saving, a deallocated cloud node): not expected to
    /// report or mount. Read from Slurm on every drain pass.
    #[serde(skip)]
    pub powered_down: bool,
    #[serde(skip)]
    pub telemetry: NodeTelemetry,
    /// Conditions the coordinator decides itself (`lustre.slow`, from [`crate::slow`]), with
    /// its own since-times; replaced at each of its windows, rebuilt after a restart.
    #[serde(skip)]
    pub derived: Vec<Condition>,
}

impl NodeState {
    pub fn new(identity: NodeIdentity, slurm_name: String) -> NodeState {
        NodeState {
            identity,
            slurm_name,
            hello: None,
            status: StatusReport::default(),
            since: Vec::new(),
            last_seen_ms: 0,
            applied_generation: Generation::ZERO,
            connected: false,
            powered_down: false,
            telemetry: NodeTelemetry::default(),
            derived: Vec::new(),
        }
    }

    /// The agent's conditions, then the coordinator's own.
    pub fn conditions(&self) -> impl Iterator<Item = &Condition> + Clone {
        self.status.conditions.iter().chain(&self.derived)
    }

    /// Whether anything arrived within the silence limit.
    pub fn is_live(&self, now_ms: i64, silence_ms: i64) -> bool {
        now_ms - self.last_seen_ms <= silence_ms
    }

    /// Slurm powered it down and it has no session (or sends nothing): neither silent nor
    /// expected to mount. A node that keeps its session and reports is judged by its
    /// reports, whatever Slurm's power state says.
    pub fn is_resting(&self, now_ms: i64, silence_ms: i64) -> bool {
        self.powered_down && (!self.connected || !self.is_live(now_ms, silence_ms))
    }

    /// POWERED-DOWN (Slurm says so and it does not report), SILENT (nothing within the
    /// silence limit), UNHEALTHY (a condition fails), UNKNOWN (one is unknown, or none yet),
    /// HEALTHY.
    pub fn health(&self, now_ms: i64, silence_ms: i64) -> Health {
        if self.is_resting(now_ms, silence_ms) {
            return Health::PoweredDown;
        }
        if !self.is_live(now_ms, silence_ms) {
            return Health::Silent;
        }
        let outcomes = self.conditions().map(|c| c.outcome);
        if outcomes.clone().any(|o| o == Outcome::Fail) {
            Health::Unhealthy
        } else if self.status.conditions.is_empty()
            || outcomes.clone().any(|o| o == Outcome::Unknown)
        {
            Health::Unknown
        } else {
            Health::Healthy
        }
    }

    /// When the coordinator first received `condition`'s current outcome and code.
    pub fn received_since(&self, condition: &Condition) -> Option<i64> {
        self.since
            .iter()
            .find(|((check, subject), _)| {
                *check == condition.check && *subject == condition.subject
            })
            .map(|(_, at)| *at)
    }

    /// Takes a status report received at `now_ms`. Returns whether any condition's shape
    /// (check, subject, outcome, code) changed.
    pub fn take_status(&mut self, report: StatusReport, now_ms: i64) -> bool {
        let changed = self
            .status
            .conditions
            .iter()
            .map(Condition::shape)
            .ne(report.conditions.iter().map(Condition::shape));
        let mut since = Vec::with_capacity(report.conditions.len());
        for condition in &report.conditions {
            let same = self
                .status
                .conditions
                .iter()
                .find(|old| old.check == condition.check && old.subject == condition.subject);
            let kept = match same {
                Some(old) if old.outcome == condition.outcome && old.code == condition.code => {
                    self.received_since(old)
                }
                _ => None,
            };
            since.push((
                (condition.check.clone(), condition.subject.clone()),
                kept.unwrap_or(now_ms),
            ));
        }
        self.since = since;
        self.applied_generation = report.applied_generation;
        self.status = report;
        self.last_seen_ms = now_ms;
        changed
    }

    /// Takes the llite rates of a telemetry batch as the node's per-mount throughput; returns
    /// how many samples the caps refused.
    pub fn take_telemetry(&mut self, batch: &TelemetryBatch, now_ms: i64) -> u64 {
        self.last_seen_ms = now_ms;
        let telemetry = &mut self.telemetry;
        let dropped_before = telemetry.dropped;
        for sample in &batch.samples {
            let read = match sample.metric.as_str() {
                metric::LLITE_READ_BYTES_PER_S => true,
                metric::LLITE_WRITE_BYTES_PER_S => false,
                _ => continue,
            };
            let Some(SampleValue::Gauge(value)) = sample.value else {
                continue;
            };
            let subject = sample.label("subject").unwrap_or_default();
            if !telemetry.mounts.contains_key(subject)
                && telemetry.mounts.len() >= MAX_MOUNTS_PER_NODE
            {
                telemetry.dropped += 1;
                continue;
            }
            let rates = telemetry.mounts.entry(subject.to_owned()).or_default();
            let at = sample.at_unix_ms;
            // Integrated only over short, forward steps: a gap (a silent node, a restart)
            // is not filled with a guess.
            let step = |last: i64| {
                let seconds = (at - last) as f64 / 1000.0;
                (last > 0 && seconds > 0.0 && seconds <= 300.0).then_some(seconds)
            };
            let direction = if read {
                if let Some(seconds) = step(rates.read_at_ms) {
                    rates.read_bytes_total += value.max(0.0) * seconds;
                }
                rates.read_bytes_per_second = value;
                rates.read_at_ms = at;
                Direction::Read
            } else {
                if let Some(seconds) = step(rates.write_at_ms) {
                    rates.write_bytes_total += value.max(0.0) * seconds;
                }
                rates.write_bytes_per_second = value;
                rates.write_at_ms = at;
                Direction::Write
            };
            telemetry
                .history
                .record(subject, Series::sample_time(at, now_ms), direction, value);
        }
        telemetry.dropped - dropped_before
    }

    /// A mount's rates now: `None` when the node is silent (unknown, not its last value).
    pub fn rates(&self, mount_point: &str, now_ms: i64, silence_ms: i64) -> Option<MountRates> {
        if !self.is_live(now_ms, silence_ms) {
            return None;
        }
        Some(
            self.telemetry
                .mounts
                .get(mount_point)
                .copied()
                .unwrap_or_default(),
        )
    }

    /// Mount points with a passing `mount.present`, while the node is live.
    pub fn mounted(&self, mount_point: &str, now_ms: i64, silence_ms: i64) -> bool {
        self.is_live(now_ms, silence_ms)
            && self.status.conditions.iter().any(|c| {
                c.check == KnownCheck::MountPresent
                    && c.outcome == Outcome::Pass
                    && c.subject == mount_point
            })
    }
}

/// The desired state and the nodes.
#[derive(Debug)]
pub struct Fleet {
    pub desired: Desired,
    pub generation: Generation,
    pub nodes: BTreeMap<String, NodeState>,
    /// A node is silent after this long without a message.
    pub silence_ms: i64,
    /// Per-node client versions an upgrade set; they win over `[client]` for that node
    /// only.
    pub pins: BTreeMap<String, Pin>,
}

/// A node's client version set by an upgrade, and the generation it was set in: that
/// node's desired generation, so only the pinned node has a new configuration to apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pin {
    pub client: lfleet_types::ClientVersion,
    pub generation: Generation,
}

impl Fleet {
    /// What a node should run now: the fleet's desired state, with the node's pinned
    /// client version (and the pin's generation, when above the fleet's) when an upgrade
    /// set one.
    pub fn desired_for(&self, node: &NodeIdentity) -> DesiredConfig {
        let mut client = self.desired.client.clone();
        let mut generation = self.generation;
        if let Some(pin) = self.pins.get(node.name.as_str()) {
            client.lustre_version = pin.client.clone();
            generation = generation.max(pin.generation);
        }
        DesiredConfig {
            generation,
            mounts: self.desired.mounts_for(node),
            client,
            lnet: self.desired.lnet.clone(),
        }
    }

    /// The generation `name` should have applied: the fleet's, or its pin's when above.
    pub fn desired_generation(&self, name: &str) -> Generation {
        self.pins
            .get(name)
            .map_or(self.generation, |pin| self.generation.max(pin.generation))
    }

    /// The highest generation anyone holds: the fleet's, any pin's, any node's applied one
    /// (a new generation goes above it).
    pub fn highest_generation(&self) -> Generation {
        self.nodes
            .values()
            .map(|n| n.applied_generation)
            .chain(self.pins.values().map(|pin| pin.generation))
            .fold(self.generation, Generation::max)
    }

    /// The summary of one node.
    pub fn summary(&self, name: &str, now_ms: i64) -> Option<NodeSummary> {
        let node = self.nodes.get(name)?;
        let hello = node.hello.as_ref();
        Some(NodeSummary {
            name: name.to_owned(),
            health: node.health(now_ms, self.silence_ms),
            connected: node.connected,
            last_seen_unix_ms: node.last_seen_ms,
            agent_version: hello.map(|h| h.agent_version.clone()).unwrap_or_default(),
            kernel_release: hello.map(|h| h.kernel_release.clone()).unwrap_or_default(),
            applied_generation: node.applied_generation.get(),
            desired_generation: self.desired_generation(name).get(),
            conditions: node.conditions().cloned().collect(),
            mounts: self
                .desired
                .mounts_for(&node.identity)
                .iter()
                .map(|spec| {
                    let point = spec.mount_point.as_str();
                    let rates = node.rates(point, now_ms, self.silence_ms);
                    MountState {
                        mount_point: point.to_owned(),
                        source: spec.source().to_string(),
                        mounted: node.mounted(point, now_ms, self.silence_ms),
                        read_bytes_per_second: rates.map(|r| r.read_bytes_per_second),
                        write_bytes_per_second: rates.map(|r| r.write_bytes_per_second),
                    }
                })
                .collect(),
            role: Some(node.identity.role),
            slurm_node_name: node.slurm_name.clone(),
            nodearray: node.identity.nodearray.clone(),
        })
    }

    /// One node in detail, with the events the caller read for it.
    pub fn detail(
        &self,
        name: &str,
        now_ms: i64,
        events: Vec<lfleet_types::fleet::FleetEvent>,
    ) -> Option<NodeDetail> {
        let summary = self.summary(name, now_ms)?;
        let node = &self.nodes[name];
        let hello = node.hello.as_ref();
        Some(NodeDetail {
            summary,
            distro: hello.map(|h| h.distro.clone()).unwrap_or_default(),
            // The status report's is the newer (it follows installs); Hello's until then.
            lustre_client_version: if node.status.lustre_client_version.is_empty() {
                hello
                    .map(|h| h.lustre_client_version.clone())
                    .unwrap_or_default()
            } else {
                node.status.lustre_client_version.clone()
            },
            reconcile: node.status.reconcile,
            next_retry_unix_ms: node.status.next_retry_unix_ms,
            items: node.status.items.clone(),
            events,
        })
    }

    /// Per filesystem: clients expected and mounted, target states, throughput.
    pub fn filesystems(&self, now_ms: i64) -> Vec<FilesystemSummary> {
        self.desired
            .filesystems
            .iter()
            .map(|fs| {
                let point = fs.spec.mount_point.as_str();
                let (mut expected, mut mounted) = (0, 0);
                let (mut read, mut write) = (0.0, 0.0);
                let mut states: BTreeMap<String, u32> = BTreeMap::new();
                // Powered-down nodes are not expected to mount (nor counted).
                for node in self.nodes.values().filter(|n| {
                    fs.applies_to(&n.identity) && !n.is_resting(now_ms, self.silence_ms)
                }) {
                    expected += 1;
                    if node.mounted(point, now_ms, self.silence_ms) {
                        mounted += 1;
                    }
                    if let Some(rates) = node.rates(point, now_ms, self.silence_ms) {
                        read += rates.read_bytes_per_second;
                        write += rates.write_bytes_per_second;
                    }
                    if !node.is_live(now_ms, self.silence_ms) {
                        continue;
                    }
                    for condition in &node.status.conditions {
                        if condition.check == KnownCheck::LustreImports
                            && condition.subject == point
                        {
                            let state = if condition.outcome == Outcome::Pass {
                                "FULL".to_owned()
                            } else {
                                condition.code.clone()
                            };
                            *states.entry(state).or_default() += 1;
                        }
                    }
                }
                FilesystemSummary {
                    name: fs.name.clone(),
                    source: fs.spec.source().to_string(),
                    mount_point: point.to_owned(),
                    clients_expected: expected,
                    clients_mounted: mounted,
                    targets: if states.is_empty() {
                        Vec::new()
                    } else {
                        vec![TargetState {
                            target: "all".into(),
                            nodes_by_state: states,
                        }]
                    },
                    read_bytes_per_second: read,
                    write_bytes_per_second: write,
                }
            })
            .collect()
    }

    /// Every node as the drain planner sees it: outcomes with the coordinator's receive
    /// times, live or not.
    pub fn facts(&self, now_ms: i64) -> Vec<NodeFacts> {
        self.nodes
            .iter()
            .map(|(name, node)| NodeFacts {
                name: name.clone(),
                slurm_name: node.slurm_name.clone(),
                role: node.identity.role,
                connected: node.is_live(now_ms, self.silence_ms)
                    && !node.is_resting(now_ms, self.silence_ms),
                facts: node
                    .status
                    .conditions
                    .iter()
                    .map(|c| (c, node.received_since(c).unwrap_or(now_ms)))
                    .chain(node.derived.iter().map(|c| (c, c.since_unix_ms)))
                    .map(|(c, since_ms)| Fact {
                        check: c.check.clone(),
                        subject: c.subject.clone(),
                        outcome: c.outcome,
                        code: c.code.clone(),
                        detail: c.detail.clone(),
                        since_ms,
                    })
                    .collect(),
                mounts: self
                    .desired
                    .mounts_for(&node.identity)
                    .iter()
                    .map(|m| m.mount_point.as_str().to_owned())
                    .collect(),
            })
            .collect()
    }

    /// Marks the nodes whose Slurm name is in `down` as powered down, the others as up;
    /// returns the names that changed, with their new state.
    pub fn set_powered_down(
        &mut self,
        down: &std::collections::BTreeSet<String>,
    ) -> Vec<(String, bool)> {
        let mut changed = Vec::new();
        for (name, node) in &mut self.nodes {
            let now_down = down.contains(&node.slurm_name);
            if node.powered_down != now_down {
                node.powered_down = now_down;
                changed.push((name.clone(), now_down));
            }
        }
        changed
    }

    /// Nodes whose desired state differs between the running config and `candidate`.
    pub fn affected_by(&self, candidate: &Desired) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|(_, node)| {
                self.desired.mounts_for(&node.identity) != candidate.mounts_for(&node.identity)
                    || self.desired.client != candidate.client
                    || self.desired.lnet != candidate.lnet
            })
            .map(|(name, _)| name.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn condition(check: KnownCheck, outcome: Outcome, code: &str, agent_since: i64) -> Condition {
        Condition {
            check: check.into(),
            subject: "/lustre".into(),
            outcome,
            code: code.into(),
            detail: String::new(),
            since_unix_ms: agent_since,
            observed_unix_ms: agent_since,
        }
    }

    fn report(conditions: Vec<Condition>) -> StatusReport {
        StatusReport {
            conditions,
            ..StatusReport::default()
        }
    }

    #[test]
    fn since_is_the_coordinators_receive_time_never_the_agents_claim() {
        let mut node = NodeState::new(NodeIdentity::default(), "n1".into());
        // The agent claims the failure began at the epoch.
        node.take_status(
            report(vec![condition(
                KnownCheck::LustreImports,
                Outcome::Fail,
                "evicted",
                0,
            )]),
            5_000,
        );
        let c = &node.status.conditions[0];
        assert_eq!(node.received_since(c), Some(5_000));
        // Unchanged outcome: since stays.
        node.take_status(
            report(vec![condition(
                KnownCheck::LustreImports,
                Outcome::Fail,
                "evicted",
                0,
            )]),
            9_000,
        );
        assert_eq!(node.received_since(&node.status.conditions[0]), Some(5_000));
        // A new code restarts it.
        node.take_status(
            report(vec![condition(
                KnownCheck::LustreImports,
                Outcome::Fail,
                "disconn",
                0,
            )]),
            12_000,
        );
        assert_eq!(
            node.received_since(&node.status.conditions[0]),
            Some(12_000)
        );
    }

    #[test]
    fn a_node_silent_past_the_limit_is_silent_with_unknown_throughput() {
        let mut node = NodeState::new(NodeIdentity::default(), "n1".into());
        node.connected = true;
        node.take_status(
            report(vec![condition(
                KnownCheck::MountPresent,
                Outcome::Pass,
                "",
                0,
            )]),
            1_000,
        );
        node.take_telemetry(
            &TelemetryBatch {
                samples: vec![lfleet_types::TelemetrySample {
                    seq: 1,
                    at_unix_ms: 1_000,
                    metric: metric::LLITE_WRITE_BYTES_PER_S.into(),
                    labels: vec![("subject".into(), "/lustre".into())],
                    value: Some(SampleValue::Gauge(3e8)),
                    reset: false,
                    unavailable: None,
                }],
                ..TelemetryBatch::default()
            },
            1_000,
        );
        let silence = SILENT_AFTER_MS;
        assert_eq!(node.health(2_000, silence), Health::Healthy);
        assert!(node.mounted("/lustre", 2_000, silence));
        assert_eq!(
            node.rates("/lustre", 2_000, silence)
                .unwrap()
                .write_bytes_per_second,
            3e8
        );
        let later = 1_000 + SILENT_AFTER_MS + 1;
        assert_eq!(
            node.health(later, silence),
            Health::Silent,
            "connected or not"
        );
        assert!(!node.mounted("/lustre", later, silence));
        assert_eq!(node.rates("/lustre", later, silence), None);
        // Powered down by Slurm: neither silent nor expected.
        node.powered_down = true;
        assert_eq!(node.health(later, silence), Health::PoweredDown);
        assert!(node.is_resting(later, silence));
        // Reporting again, it is judged by its reports whatever Slurm says.
        assert_eq!(node.health(2_000, silence), Health::Healthy);
    }

    #[test]
    fn a_pin_gives_only_its_node_a_new_generation_and_a_new_one_goes_above_it() {
        let mut fleet = Fleet {
            desired: crate::config::parse(include_str!(
                "../../packaging/examples/coordinator.toml"
            ))
            .unwrap()
            .desired,
            generation: Generation(3),
            nodes: BTreeMap::new(),
            silence_ms: SILENT_AFTER_MS,
            pins: BTreeMap::new(),
        };
        for name in ["n1", "n2"] {
            let identity = NodeIdentity {
                name: name.into(),
                ..NodeIdentity::default()
            };
            let mut node = NodeState::new(identity, name.into());
            node.applied_generation = Generation(3);
            fleet.nodes.insert(name.into(), node);
        }
        let pinned: lfleet_types::ClientVersion = "2.16.1-12-g8e3f1a2".parse().unwrap();
        fleet.pins.insert(
            "n1".into(),
            Pin {
                client: pinned.clone(),
                generation: Generation(5),
            },
        );
        let n1 = fleet.desired_for(&fleet.nodes["n1"].identity);
        assert_eq!(
            (n1.generation, &n1.client.lustre_version),
            (Generation(5), &pinned)
        );
        let n2 = fleet.desired_for(&fleet.nodes["n2"].identity);
        assert_eq!(n2.generation, Generation(3));
        assert_ne!(n2.client.lustre_version, pinned);
        // n2 has nothing new: it is not behind.
        let summary = fleet.summary("n2", 0).unwrap();
        assert_eq!(summary.desired_generation, summary.applied_generation);
        assert_eq!(fleet.summary("n1", 0).unwrap().desired_generation, 5);
        assert_eq!(fleet.highest_generation(), Generation(5));
    }

    #[test]
    fn a_coordinator_finding_counts_for_health_and_drains_only_where_policy_requires_it() {
        use crate::policy::{Policy, plan};
        let mut fleet = Fleet {
            desired: crate::config::parse(include_str!(
                "../../packaging/examples/coordinator.toml"
            ))
            .unwrap()
            .desired,
            generation: Generation(1),
            nodes: BTreeMap::new(),
            silence_ms: SILENT_AFTER_MS,
            pins: BTreeMap::new(),
        };
        for name in ["n1", "n2", "n3", "n4", "n5"] {
            let mut node = NodeState::new(
                NodeIdentity {
                    name: name.into(),
                    ..NodeIdentity::default()
                },
                name.into(),
            );
            node.take_status(
                report(vec![condition(
                    KnownCheck::MountPresent,
                    Outcome::Pass,
                    "",
                    0,
                )]),
                1_000,
            );
            fleet.nodes.insert(name.into(), node);
        }
        let finding = Condition {
            check: KnownCheck::LustreSlow.into(),
            subject: "/lustre".into(),
            outcome: Outcome::Fail,
            code: crate::slow::CODE.into(),
            detail: "RPC waits above those of its 4 peers".into(),
            since_unix_ms: 2_000,
            observed_unix_ms: 5_000,
        };
        fleet.nodes.get_mut("n1").unwrap().derived = vec![finding.clone()];
        // An agent report replaces the agent's conditions, not the coordinator's.
        fleet.nodes.get_mut("n1").unwrap().take_status(
            report(vec![condition(
                KnownCheck::MountPresent,
                Outcome::Pass,
                "",
                0,
            )]),
            4_000,
        );
        let now = 5_000;
        assert_eq!(
            fleet.nodes["n1"].health(now, SILENT_AFTER_MS),
            Health::Unhealthy
        );
        let summary = fleet.summary("n1", now).unwrap();
        assert_eq!(summary.conditions.last(), Some(&finding));
        let facts = fleet.facts(now);
        let fact = facts[0]
            .facts
            .iter()
            .find(|f| f.check == KnownCheck::LustreSlow)
            .unwrap();
        assert_eq!(fact.since_ms, 2_000, "the coordinator's own time");
        let policy = Policy {
            grace_seconds: 0,
            max_drained_share: 1.0,
            ..Policy::default()
        };
        assert!(
            plan(&policy, &facts, &[], &[], now).drains.is_empty(),
            "report only"
        );
        let mut required = policy.clone();
        required
            .required
            .get_mut(&lfleet_types::Role::Compute)
            .unwrap()
            .push(KnownCheck::LustreSlow.into());
        let drains = plan(&required, &facts, &[], &[], now).drains;
        assert_eq!(drains.len(), 1);
        assert_eq!(drains[0].node, "n1");
        assert_eq!(
            crate::policy::reason(&drains[0], "d1"),
            "lfleet: slower-than-peers lustre.slow /lustre RPC waits above those of its 4 peers id=d1"
        );
    }

    #[test]
    fn telemetry_subjects_are_capped_per_node() {
        let mut node = NodeState::new(NodeIdentity::default(), "n1".into());
        let samples = (0..1000)
            .map(|i| lfleet_types::TelemetrySample {
                seq: i,
                at_unix_ms: 0,
                metric: metric::LLITE_READ_BYTES_PER_S.into(),
                labels: vec![("subject".into(), format!("/m{i}"))],
                value: Some(SampleValue::Gauge(1.0)),
                reset: false,
                unavailable: None,
            })
            .collect();
        node.take_telemetry(
            &TelemetryBatch {
                samples,
                ..TelemetryBatch::default()
            },
            0,
        );
        assert_eq!(node.telemetry.mounts.len(), MAX_MOUNTS_PER_NODE);
        assert_eq!(node.telemetry.history.series.len(), MAX_MOUNTS_PER_NODE);
        assert_eq!(node.telemetry.dropped, 1000 - MAX_MOUNTS_PER_NODE as u64);
    }
}
