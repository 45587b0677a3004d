//! The fleet as the coordinator sees it: the desired state with its generation, every node's
//! last Hello, status and throughput, which nodes have a live session, and what each node
//! should get. Pure state and rules; the services hold it behind a lock.

use std::collections::{BTreeMap, VecDeque};

use lfleet_proto::v1;

use crate::config::{Desired, NodeIdentity};

/// A node silent this long (no session, no message) is SILENT, not healthy.
pub const SILENT_AFTER_MS: i64 = 30_000;

/// Samples of throughput kept per node: one hour at one a second.
pub const HISTORY: usize = 3600;

/// What a node's mount is doing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MountView {
    pub read_bytes_per_second: f64,
    pub write_bytes_per_second: f64,
}

#[derive(Debug, Clone, Default)]
pub struct NodeState {
    pub hello: v1::Hello,
    pub last_seen_ms: i64,
    pub applied_generation: u64,
    pub status: v1::StatusReport,
    pub connected: bool,
    pub mounts: BTreeMap<String, MountView>,
    /// (unix ms, read B/s, write B/s) summed over the node's mounts, oldest first.
    pub history: VecDeque<(i64, f64, f64)>,
}

impl NodeState {
    pub fn identity(&self) -> NodeIdentity {
        NodeIdentity {
            name: self.hello.node_name.clone(),
            role: match v1::NodeRole::try_from(self.hello.role).unwrap_or_default() {
                v1::NodeRole::Head => "head",
                v1::NodeRole::Login => "login",
                _ => "compute",
            }
            .to_owned(),
            nodearray: self.hello.nodearray.clone(),
        }
    }

    /// HEALTHY, UNHEALTHY (a condition fails), UNKNOWN (one is unknown), SILENT.
    pub fn health(&self, now_ms: i64) -> v1::Health {
        if !self.connected && now_ms - self.last_seen_ms > SILENT_AFTER_MS {
            return v1::Health::Silent;
        }
        let outcomes: Vec<v1::Outcome> = self
            .status
            .conditions
            .iter()
            .map(|c| v1::Outcome::try_from(c.outcome).unwrap_or_default())
            .collect();
        if outcomes.contains(&v1::Outcome::Fail) {
            v1::Health::Unhealthy
        } else if outcomes.contains(&v1::Outcome::Unknown) || self.status.conditions.is_empty() {
            v1::Health::Unknown
        } else {
            v1::Health::Healthy
        }
    }

    /// Takes the llite rates of a telemetry batch as the node's per-mount throughput.
    pub fn take_telemetry(&mut self, batch: &v1::TelemetryBatch, now_ms: i64) {
        let mut touched = false;
        for sample in &batch.samples {
            let subject = sample
                .labels
                .iter()
                .find(|l| l.key == "subject")
                .map(|l| l.value.clone())
                .unwrap_or_default();
            let Some(v1::sample::Value::Gauge(value)) = sample.value else {
                continue;
            };
            let view = match sample.metric.as_str() {
                "llite.read_bytes_per_s" | "llite.write_bytes_per_s" => {
                    self.mounts.entry(subject).or_default()
                }
                _ => continue,
            };
            if sample.metric.ends_with("read_bytes_per_s") {
                view.read_bytes_per_second = value;
            } else {
                view.write_bytes_per_second = value;
            }
            touched = true;
        }
        if touched {
            let read = self.mounts.values().map(|m| m.read_bytes_per_second).sum();
            let write = self.mounts.values().map(|m| m.write_bytes_per_second).sum();
            self.history.push_back((now_ms, read, write));
            while self.history.len() > HISTORY {
                self.history.pop_front();
            }
        }
    }
}

/// The desired state and the nodes.
#[derive(Debug)]
pub struct Fleet {
    pub desired: Desired,
    pub generation: u64,
    pub nodes: BTreeMap<String, NodeState>,
}

impl Fleet {
    /// What `node` should run now.
    pub fn desired_for(&self, node: &NodeIdentity) -> v1::DesiredConfig {
        v1::DesiredConfig {
            generation: self.generation,
            mounts: self
                .desired
                .mounts_for(node)
                .iter()
                .map(v1::MountSpec::from)
                .collect(),
            client: Some(v1::ClientPolicy {
                lustre_version: self.desired.client.lustre_version.clone(),
                dkms: if self.desired.client.dkms == "allowed" {
                    v1::DkmsPolicy::Allowed as i32
                } else {
                    v1::DkmsPolicy::Forbidden as i32
                },
            }),
            lnet: Some(v1::LnetConfig {
                network: self.desired.lnet.network.clone(),
                interface: self.desired.lnet.interface.clone(),
            }),
        }
    }

    /// The summary of one node.
    pub fn summary(&self, name: &str, now_ms: i64) -> Option<v1::NodeSummary> {
        let node = self.nodes.get(name)?;
        let desired = self.desired.mounts_for(&node.identity());
        let mounted: Vec<String> = node
            .status
            .conditions
            .iter()
            .filter(|c| c.check == "mount.present" && c.outcome == v1::Outcome::Pass as i32)
            .map(|c| c.subject.clone())
            .collect();
        Some(v1::NodeSummary {
            node_name: name.to_owned(),
            last_seen_unix_ms: node.last_seen_ms,
            agent_version: node.hello.agent_version.clone(),
            kernel_release: node.hello.kernel_release.clone(),
            applied_generation: node.applied_generation,
            desired_generation: self.generation,
            health: node.health(now_ms) as i32,
            conditions: node.status.conditions.clone(),
            mounts: desired
                .iter()
                .map(|spec| {
                    let point = spec.mount_point.as_str().to_owned();
                    let view = node.mounts.get(&point).cloned().unwrap_or_default();
                    v1::MountState {
                        source: spec.source().to_string(),
                        mounted: mounted.contains(&point),
                        read_bytes_per_second: view.read_bytes_per_second,
                        write_bytes_per_second: view.write_bytes_per_second,
                        mount_point: point,
                    }
                })
                .collect(),
            connected: node.connected,
            role: node.hello.role,
        })
    }

    /// Per filesystem: clients expected and mounted, target states, throughput.
    pub fn filesystems(&self, now_ms: i64) -> Vec<v1::FilesystemSummary> {
        self.desired
            .filesystems
            .iter()
            .map(|fs| {
                let point = fs.spec.mount_point.as_str();
                let mut expected = 0;
                let mut mounted = 0;
                let (mut read, mut write) = (0.0, 0.0);
                let mut targets: BTreeMap<String, BTreeMap<String, u32>> = BTreeMap::new();
                for (name, node) in &self.nodes {
                    if !fs.applies_to(&node.identity()) {
                        continue;
                    }
                    expected += 1;
                    let summary = self.summary(name, now_ms);
                    if summary
                        .iter()
                        .flat_map(|s| &s.mounts)
                        .any(|m| m.mount_point == point && m.mounted)
                    {
                        mounted += 1;
                    }
                    if let Some(view) = node.mounts.get(point) {
                        read += view.read_bytes_per_second;
                        write += view.write_bytes_per_second;
                    }
                    for condition in &node.status.conditions {
                        if condition.check == "lustre.imports" && condition.subject == point {
                            let state = if condition.outcome == v1::Outcome::Pass as i32 {
                                "FULL".to_owned()
                            } else {
                                condition.code.clone()
                            };
                            *targets
                                .entry("all".into())
                                .or_default()
                                .entry(state)
                                .or_default() += 1;
                        }
                    }
                }
                v1::FilesystemSummary {
                    name: fs.name.clone(),
                    source: fs.spec.source().to_string(),
                    mount_point: point.to_owned(),
                    clients_expected: expected,
                    clients_mounted: mounted,
                    targets: targets
                        .into_iter()
                        .map(|(target, nodes_by_state)| v1::TargetState {
                            target,
                            nodes_by_state: nodes_by_state.into_iter().collect(),
                        })
                        .collect(),
                    read_bytes_per_second: read,
                    write_bytes_per_second: write,
                }
            })
            .collect()
    }
}
