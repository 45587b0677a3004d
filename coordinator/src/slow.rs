//! Slow-node detection: a pure detector that finds a node whose Lustre RPCs wait longer than
//! its peers' while the filesystem is fine, from each OSC's and MDC's `req_waittime` (count
//! and sum in microseconds, sent by agents as deltas). Time is passed in; nothing here reads
//! a clock, a file or the network.
//!
//! Rules (BENCHMARKS.md "f" has the figures the defaults come from):
//! - Windows are the coordinator's: [`SlowDetector::ingest`] sums each node's deltas per
//!   target (`<mount> <target>`: `/lustre OST0003`) as they arrive, whatever the agent's
//!   interval; [`SlowDetector::close_window`], called every `window_seconds`, judges the sums
//!   and starts the next window. A node's mean wait on a target is Σwait / ΣRPCs.
//! - A node is judged on a target only with at least `min_rpcs` RPCs in the window (an idle
//!   node is never judged, however slow its few RPCs), only while it is live, and only among
//!   at least `min_peers` judged nodes of its peer group (the same nodearray by default) on
//!   the same mount and target.
//! - Robust statistics across the group: the median m and the median absolute deviation d of
//!   the nodes' mean waits. A node is slow on a target in a window when its mean wait is
//!   above both m + k·d and r·m (the second keeps a quiet group, d near 0, from flagging
//!   ordinary jitter).
//! - A node is flagged on a target when it was slow in at least N of its last M judged
//!   windows there, and cleared when none of its last M was slow. A node not judged for
//!   `forget_after_seconds` (idle, or drained for this) loses its history and its finding.
//! - A target slow for everyone is the target's problem: its median in a group above r times
//!   the median of the other targets of its kind (OSTs or MDTs, at least two others), or
//!   slowness on this target alone on at least `incident_share` of the group's judged nodes
//!   (and two), in N of the last M windows, opens one incident naming the target; no node is
//!   flagged for that target while it is open. It closes after M windows without it.
//! - The finding is the coordinator's condition `lustre.slow` on the node, one per mount:
//!   Pass once judged, Fail while flagged, with the evidence (each target's wait, the group
//!   median, the ratio, the windows) and the likely cause the node itself shows.
//!
//! Bounded: targets per node are capped (`max_targets_per_node`, refusals counted), and a
//! node's state goes when it leaves the fleet.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write;

use lfleet_types::{CheckId, Condition, KnownCheck, Outcome, SampleValue, TelemetrySample, metric};
use serde::{Deserialize, Serialize};

use crate::policy::Incident;

/// The code of a Fail finding.
pub const CODE: &str = "slower-than-peers";

/// Targets listed in one finding; the rest are counted.
const LISTED_TARGETS: usize = 8;

/// How peers are grouped (always per mount and target).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PeerGroup {
    /// Nodes of the same CycleCloud nodearray (one VM size), as the coordinator knows them.
    #[default]
    Nodearray,
    /// Every node that mounts the filesystem.
    Filesystem,
}

/// `[slow]` in coordinator.toml.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlowConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Length of one window.
    #[serde(default = "default_window")]
    pub window_seconds: f64,
    /// RPCs a node needs on a target in a window to be judged there.
    #[serde(default = "default_min_rpcs")]
    pub min_rpcs: u64,
    /// Judged nodes a group needs on a target for anyone to be judged there.
    #[serde(default = "default_min_peers")]
    pub min_peers: usize,
    /// k: slow above median + k x MAD ...
    #[serde(default = "default_mad_factor")]
    pub mad_factor: f64,
    /// r: ... and above r x median.
    #[serde(default = "default_ratio")]
    pub ratio: f64,
    /// N: slow windows among the last M that flag a node (or a target).
    #[serde(default = "default_windows_slow")]
    pub windows_slow: usize,
    /// M.
    #[serde(default = "default_windows")]
    pub windows: usize,
    /// Share of a group's judged nodes slow on one target alone that makes it the target's
    /// incident.
    #[serde(default = "default_incident_share")]
    pub incident_share: f64,
    #[serde(default)]
    pub peer_group: PeerGroup,
    /// A node (or target) not judged this long loses its history and finding.
    #[serde(default = "default_forget")]
    pub forget_after_seconds: u64,
    /// Targets tracked per node; samples for more are refused and counted.
    #[serde(default = "default_max_targets")]
    pub max_targets_per_node: usize,
}

fn yes() -> bool {
    true
}
fn default_window() -> f64 {
    60.0
}
fn default_min_rpcs() -> u64 {
    50
}
fn default_min_peers() -> usize {
    5
}
fn default_mad_factor() -> f64 {
    5.0
}
fn default_ratio() -> f64 {
    1.75
}
fn default_windows_slow() -> usize {
    3
}
fn default_windows() -> usize {
    3
}
fn default_incident_share() -> f64 {
    0.3
}
fn default_forget() -> u64 {
    3600
}
fn default_max_targets() -> usize {
    1024
}

impl Default for SlowConfig {
    fn default() -> Self {
        toml::from_str("").expect("every field has a default")
    }
}

impl SlowConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(0.1..=3600.0).contains(&self.window_seconds) {
            return Err("window_seconds is from 0.1 to 3600".into());
        }
        if self.min_rpcs == 0 || self.min_peers < 3 {
            return Err("min_rpcs is at least 1 and min_peers at least 3".into());
        }
        if !(0.0..=100.0).contains(&self.mad_factor)
            || !(1.0..=100.0).contains(&self.ratio)
            || self.ratio == 1.0
        {
            return Err("mad_factor is from 0 to 100 and ratio above 1, at most 100".into());
        }
        if self.windows_slow == 0 || self.windows_slow > self.windows || self.windows > 64 {
            return Err("1 <= windows_slow <= windows <= 64".into());
        }
        if !(self.incident_share > 0.0 && self.incident_share <= 1.0) {
            return Err("incident_share is above 0 and at most 1".into());
        }
        if self.max_targets_per_node == 0 || self.max_targets_per_node > 65_536 {
            return Err("max_targets_per_node is from 1 to 65536".into());
        }
        Ok(())
    }

    pub fn window_ms(&self) -> i64 {
        (self.window_seconds * 1000.0).round() as i64
    }
}

// === impl Target ===

/// One OST or MDT of one mount.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Target {
    pub mount: String,
    /// `OST0003`, `MDT0000`.
    pub name: String,
}

impl Target {
    /// From a telemetry or incident subject `<mount point> <target>`.
    pub fn parse(subject: &str) -> Option<Target> {
        let (mount, name) = subject.rsplit_once(' ')?;
        let index = name
            .strip_prefix("OST")
            .or_else(|| name.strip_prefix("MDT"))?;
        let good_index =
            (4..=8).contains(&index.len()) && index.bytes().all(|b| b.is_ascii_hexdigit());
        (mount.starts_with('/') && good_index).then(|| Target {
            mount: mount.to_owned(),
            name: name.to_owned(),
        })
    }

    pub fn is_ost(&self) -> bool {
        self.name.starts_with("OST")
    }

    pub fn subject(&self) -> String {
        format!("{} {}", self.mount, self.name)
    }
}

/// Whether an incident is one this detector keeps (a target's own slowness), so the drain
/// planner, which closes incidents no node fails any more, leaves it alone.
pub fn is_target_incident(incident: &Incident) -> bool {
    incident.check == KnownCheck::LustreSlow && Target::parse(&incident.subject).is_some()
}

// === impl SlowDetector ===

/// A node as a window sees it: the coordinator's facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerView {
    pub name: String,
    /// The nodearray (the peer group under [`PeerGroup::Nodearray`]).
    pub nodearray: String,
    /// Reporting within the silence limit.
    pub live: bool,
    /// What the node's own checks say that slows Lustre I/O (`ib.ports mlx5_0/1
    /// rate-degraded`), for the finding's likely cause.
    pub causes: Vec<String>,
}

/// One judgement of a node on a target.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Verdict {
    at_ms: i64,
    mean_us: f64,
    median_us: f64,
    mad_us: f64,
    peers: usize,
    slow: bool,
}

#[derive(Debug, Clone, Copy, Default)]
struct Accum {
    rpcs: u64,
    wait_us: u64,
}

#[derive(Debug, Default)]
struct NodeTrack {
    /// The open window's sums.
    window: BTreeMap<Target, Accum>,
    /// The last M judged windows per target, oldest first.
    history: BTreeMap<Target, VecDeque<Verdict>>,
    /// Targets the node is flagged on.
    flagged: BTreeSet<Target>,
    /// LNet drops per second: the highest in the open window, and in the last closed one.
    lnet_drops_window: f64,
    lnet_drops: f64,
    /// Per mount: the finding's outcome and since when (the coordinator's time).
    since: BTreeMap<String, (Outcome, i64)>,
    /// The peer group of its last judgement, for the finding's text.
    group: String,
}

impl NodeTrack {
    fn known_targets(&self) -> usize {
        self.history.len()
            + self
                .window
                .keys()
                .filter(|t| !self.history.contains_key(*t))
                .count()
    }
}

/// A target's own history, and its incident while one is open.
#[derive(Debug, Default)]
struct TargetTrack {
    /// (window time, slow) for the last M windows the target was judged in.
    history: VecDeque<(i64, bool)>,
    /// The last window's evidence.
    evidence: String,
    /// Nodes that saw it slow in the last window.
    nodes: BTreeSet<String>,
    open: Option<Incident>,
}

/// A node's finding changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub node: String,
    pub mount: String,
    /// The new outcome: Fail (flagged) or Pass (cleared).
    pub outcome: Outcome,
    pub detail: String,
}

/// What closing a window decided.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WindowReport {
    /// Every node of the view: its `lustre.slow` conditions now (empty: none).
    pub conditions: BTreeMap<String, Vec<Condition>>,
    /// Findings flagged or cleared in this window.
    pub changes: Vec<Change>,
    /// Target incidents opened, with their evidence.
    pub opened: Vec<(Incident, String)>,
    /// Target incidents closed (`closed_ms` set), with why.
    pub closed: Vec<(Incident, String)>,
    /// Node-target pairs judged in this window.
    pub judged: usize,
}

/// A flagged node's target, for metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct Flagged {
    pub node: String,
    pub target: Target,
    pub ratio: f64,
}

/// The detector's state: open windows, histories, open target incidents.
#[derive(Debug, Default)]
pub struct SlowDetector {
    config: SlowConfig,
    nodes: BTreeMap<String, NodeTrack>,
    targets: BTreeMap<Target, TargetTrack>,
    /// Windows closed.
    pub windows_closed: u64,
    /// Node-target pairs judged in the last window.
    pub last_judged: usize,
    /// Samples refused by the per-node target cap.
    pub dropped: u64,
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return 0.0;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn ms(us: f64) -> String {
    format!("{:.2} ms", us / 1000.0)
}

fn count_slow<'a>(verdicts: impl Iterator<Item = &'a bool>) -> usize {
    verdicts.filter(|slow| **slow).count()
}

impl SlowDetector {
    pub fn new(config: SlowConfig) -> SlowDetector {
        SlowDetector {
            config,
            ..SlowDetector::default()
        }
    }

    pub fn config(&self) -> &SlowConfig {
        &self.config
    }

    /// Takes a node's telemetry: `req_waittime` deltas per target, and LNet drops.
    pub fn ingest(&mut self, node: &str, samples: &[TelemetrySample]) {
        let cap = self.config.max_targets_per_node;
        let track = self.nodes.entry(node.to_owned()).or_default();
        for sample in samples {
            let (ost, wait) = match sample.metric.as_str() {
                metric::OSC_RPCS => (true, false),
                metric::OSC_RPC_WAIT_US => (true, true),
                metric::MDC_RPCS => (false, false),
                metric::MDC_RPC_WAIT_US => (false, true),
                metric::LNET_DROPS_PER_S => {
                    if let Some(SampleValue::Gauge(rate)) = sample.value
                        && rate.is_finite()
                    {
                        track.lnet_drops_window = track.lnet_drops_window.max(rate);
                    }
                    continue;
                }
                _ => continue,
            };
            let Some(SampleValue::Delta { delta, .. }) = sample.value else {
                continue;
            };
            let Some(target) = sample.label("subject").and_then(Target::parse) else {
                continue;
            };
            if target.is_ost() != ost {
                continue;
            }
            if !track.window.contains_key(&target)
                && !track.history.contains_key(&target)
                && track.known_targets() >= cap
            {
                self.dropped += 1;
                continue;
            }
            let sums = track.window.entry(target).or_default();
            if wait {
                sums.wait_us = sums.wait_us.saturating_add(delta);
            } else {
                sums.rpcs = sums.rpcs.saturating_add(delta);
            }
        }
    }

    /// Takes over target incidents open from before a restart, so they close in time.
    pub fn adopt(&mut self, incidents: &[Incident]) {
        for incident in incidents
            .iter()
            .filter(|i| i.closed_ms.is_none() && is_target_incident(i))
        {
            if let Some(target) = Target::parse(&incident.subject) {
                self.targets.entry(target).or_default().open = Some(incident.clone());
            }
        }
    }

    /// Targets with an open incident.
    pub fn open_incidents(&self) -> Vec<&Incident> {
        self.targets
            .values()
            .filter_map(|t| t.open.as_ref())
            .collect()
    }

    /// Nodes flagged now, per target, with their last ratio to the group median.
    pub fn flagged(&self) -> Vec<Flagged> {
        let mut out = Vec::new();
        for (node, track) in &self.nodes {
            for target in &track.flagged {
                if self.suppressed(target) {
                    continue;
                }
                let ratio = track
                    .history
                    .get(target)
                    .and_then(|h| h.iter().rev().find(|v| v.slow))
                    .map(|v| v.mean_us / v.median_us.max(1.0))
                    .unwrap_or(0.0);
                out.push(Flagged {
                    node: node.clone(),
                    target: target.clone(),
                    ratio,
                });
            }
        }
        out
    }

    fn suppressed(&self, target: &Target) -> bool {
        self.targets.get(target).is_some_and(|t| t.open.is_some())
    }

    /// Nodes the detector holds state for (for tests of its bounds).
    pub fn tracked_nodes(&self) -> usize {
        self.nodes.len()
    }

    /// Judges the window that ends at `now_ms` over the fleet `peers`, and opens the next.
    pub fn close_window(&mut self, peers: &[PeerView], now_ms: i64) -> WindowReport {
        let config = self.config.clone();
        let mut report = WindowReport::default();
        self.windows_closed += 1;
        // Nodes that left the fleet give their memory back.
        let present: BTreeMap<&str, &PeerView> =
            peers.iter().map(|p| (p.name.as_str(), p)).collect();
        self.nodes
            .retain(|name, _| present.contains_key(name.as_str()));

        // This window's mean waits, per (group, target), of live nodes above the floor.
        let mut groups: BTreeMap<(String, Target), Vec<(String, f64)>> = BTreeMap::new();
        for (name, track) in &mut self.nodes {
            let window = std::mem::take(&mut track.window);
            track.lnet_drops = std::mem::take(&mut track.lnet_drops_window);
            let peer = present[name.as_str()];
            if !peer.live {
                continue;
            }
            let group = match config.peer_group {
                PeerGroup::Nodearray => peer.nodearray.clone(),
                PeerGroup::Filesystem => String::new(),
            };
            track.group = group.clone();
            for (target, sums) in window {
                if sums.rpcs >= config.min_rpcs {
                    let mean = sums.wait_us as f64 / sums.rpcs as f64;
                    groups
                        .entry((group.clone(), target))
                        .or_default()
                        .push((name.clone(), mean));
                }
            }
        }

        // Each node against its group, per target.
        let mut medians: BTreeMap<(String, String, bool), Vec<(Target, f64)>> = BTreeMap::new();
        let mut slow_now: BTreeMap<(String, Target), Vec<String>> = BTreeMap::new();
        let mut judged_now: BTreeMap<(String, Target), usize> = BTreeMap::new();
        for ((group, target), members) in &groups {
            if members.len() < config.min_peers {
                continue;
            }
            let mut means: Vec<f64> = members.iter().map(|(_, m)| *m).collect();
            let med = median(&mut means);
            let mut deviations: Vec<f64> = means.iter().map(|m| (m - med).abs()).collect();
            let mad = median(&mut deviations);
            let threshold = (med + config.mad_factor * mad).max(config.ratio * med);
            for (name, mean) in members {
                let slow = *mean > threshold;
                let verdict = Verdict {
                    at_ms: now_ms,
                    mean_us: *mean,
                    median_us: med,
                    mad_us: mad,
                    peers: members.len(),
                    slow,
                };
                let history = self
                    .nodes
                    .get_mut(name)
                    .expect("grouped from the tracks")
                    .history
                    .entry(target.clone())
                    .or_default();
                history.push_back(verdict);
                while history.len() > config.windows {
                    history.pop_front();
                }
                if slow {
                    slow_now
                        .entry((group.clone(), target.clone()))
                        .or_default()
                        .push(name.clone());
                }
            }
            report.judged += members.len();
            judged_now.insert((group.clone(), target.clone()), members.len());
            medians
                .entry((group.clone(), target.mount.clone(), target.is_ost()))
                .or_default()
                .push((target.clone(), med));
        }
        self.last_judged = report.judged;

        // Targets: slow for everyone, or for a share of the group on this target alone.
        let mut target_now: BTreeMap<Target, (bool, String, BTreeSet<String>)> = BTreeMap::new();
        for ((group, _, _), targets) in &medians {
            for (target, med) in targets {
                let mut others: Vec<f64> = targets
                    .iter()
                    .filter(|(t, _)| t != target)
                    .map(|(_, m)| *m)
                    .collect();
                let key = (group.clone(), target.clone());
                let judged = judged_now.get(&key).copied().unwrap_or(0);
                let entry = target_now
                    .entry(target.clone())
                    .or_insert_with(|| (false, String::new(), BTreeSet::new()));
                if others.len() >= 2 {
                    let reference = median(&mut others);
                    if *med > config.ratio * reference {
                        entry.0 = true;
                        entry.1 = format!(
                            "median RPC wait {} over {judged} nodes{}, {:.1}x the other {}s' {}",
                            ms(*med),
                            group_phrase(group),
                            med / reference.max(1.0),
                            if target.is_ost() { "OST" } else { "MDT" },
                            ms(reference),
                        );
                        entry.2.extend(
                            groups[&key]
                                .iter()
                                .filter(|(_, mean)| *mean > config.ratio * reference)
                                .map(|(n, _)| n.clone()),
                        );
                        continue;
                    }
                }
                // Slow here but not on every other judged target of the mount: this target's.
                let alone: Vec<&String> = slow_now
                    .get(&key)
                    .into_iter()
                    .flatten()
                    .filter(|name| {
                        self.nodes[name.as_str()].history.iter().any(|(t, h)| {
                            t.mount == target.mount
                                && t != target
                                && h.back().is_some_and(|v| v.at_ms == now_ms && !v.slow)
                        })
                    })
                    .collect();
                let needed = ((config.incident_share * judged as f64).ceil() as usize).max(2);
                if alone.len() >= needed && !entry.0 {
                    entry.0 = true;
                    entry.1 = format!(
                        "{} of {judged} nodes{} slow on it and not on the other targets",
                        alone.len(),
                        group_phrase(group),
                    );
                    entry.2.extend(alone.into_iter().cloned());
                }
            }
        }
        for (target, (slow, evidence, nodes)) in target_now {
            let track = self.targets.entry(target.clone()).or_default();
            track.history.push_back((now_ms, slow));
            while track.history.len() > config.windows {
                track.history.pop_front();
            }
            if slow {
                track.evidence = evidence;
                track.nodes = nodes;
            }
            let slow_count = count_slow(track.history.iter().map(|(_, s)| s));
            if track.open.is_none() && slow_count >= config.windows_slow {
                let incident = Incident {
                    id: format!("{}:{}:{now_ms}", KnownCheck::LustreSlow, target.subject()),
                    check: KnownCheck::LustreSlow.into(),
                    subject: target.subject(),
                    opened_ms: now_ms,
                    closed_ms: None,
                    nodes: track.nodes.iter().cloned().collect(),
                };
                report.opened.push((
                    incident.clone(),
                    format!(
                        "{} is slow for its clients: {}; slow in {slow_count} of the last {} windows; no node is flagged for it",
                        target.subject(),
                        track.evidence,
                        track.history.len()
                    ),
                ));
                track.open = Some(incident);
            } else if track.open.is_some()
                && slow_count == 0
                && track.history.len() >= config.windows
                && let Some(mut incident) = track.open.take()
            {
                incident.closed_ms = Some(now_ms);
                report.closed.push((
                    incident,
                    format!(
                        "{} waits in line with the other targets for {} windows",
                        target.subject(),
                        config.windows
                    ),
                ));
            }
        }

        // Forget what has not been judged for too long.
        let forget_before = now_ms - config.forget_after_seconds as i64 * 1000;
        for track in self.nodes.values_mut() {
            for history in track.history.values_mut() {
                history.retain(|v| v.at_ms >= forget_before);
            }
            track.history.retain(|_, h| !h.is_empty());
        }
        let mut forgotten = Vec::new();
        for (target, track) in &mut self.targets {
            track.history.retain(|(at, _)| *at >= forget_before);
            if track.history.is_empty()
                && track
                    .open
                    .as_ref()
                    .is_some_and(|i| i.opened_ms < forget_before)
                && let Some(mut incident) = track.open.take()
            {
                incident.closed_ms = Some(now_ms);
                report.closed.push((
                    incident,
                    format!(
                        "{}: no I/O to judge for {} s",
                        target.subject(),
                        config.forget_after_seconds
                    ),
                ));
            }
            if track.history.is_empty() && track.open.is_none() {
                forgotten.push(target.clone());
            }
        }
        for target in forgotten {
            self.targets.remove(&target);
        }

        // Findings.
        let suppressed: BTreeSet<Target> = self
            .targets
            .iter()
            .filter(|(_, t)| t.open.is_some())
            .map(|(target, _)| target.clone())
            .collect();
        for peer in peers {
            let Some(track) = self.nodes.get_mut(&peer.name) else {
                report.conditions.insert(peer.name.clone(), Vec::new());
                continue;
            };
            for (target, history) in &track.history {
                let slow = count_slow(history.iter().map(|v| &v.slow));
                if slow >= config.windows_slow {
                    track.flagged.insert(target.clone());
                } else if slow == 0 {
                    track.flagged.remove(target);
                }
            }
            let history = &track.history;
            track.flagged.retain(|t| history.contains_key(t));
            let mounts: BTreeSet<String> = track.history.keys().map(|t| t.mount.clone()).collect();
            let mut conditions = Vec::new();
            for mount in &mounts {
                let slow_targets: Vec<&Target> = track
                    .flagged
                    .iter()
                    .filter(|t| &t.mount == mount && !suppressed.contains(*t))
                    .collect();
                let (outcome, code, detail) = if slow_targets.is_empty() {
                    (Outcome::Pass, String::new(), pass_detail(track, mount))
                } else {
                    (
                        Outcome::Fail,
                        CODE.to_owned(),
                        fail_detail(track, &slow_targets, &config, &peer.causes),
                    )
                };
                let since = match track.since.get(mount) {
                    Some((old, at)) if *old == outcome => *at,
                    old => {
                        let was_fail = old.is_some_and(|(o, _)| *o == Outcome::Fail);
                        if outcome == Outcome::Fail || was_fail {
                            report.changes.push(Change {
                                node: peer.name.clone(),
                                mount: mount.clone(),
                                outcome,
                                detail: detail.clone(),
                            });
                        }
                        now_ms
                    }
                };
                track.since.insert(mount.clone(), (outcome, since));
                conditions.push(Condition {
                    check: CheckId::Known(KnownCheck::LustreSlow),
                    subject: mount.clone(),
                    outcome,
                    code,
                    detail,
                    since_unix_ms: since,
                    observed_unix_ms: now_ms,
                });
            }
            // A mount whose history is gone: its finding goes, and a Fail is cleared.
            let gone: Vec<String> = track
                .since
                .keys()
                .filter(|m| !mounts.contains(*m))
                .cloned()
                .collect();
            for mount in gone {
                if let Some((Outcome::Fail, _)) = track.since.remove(&mount) {
                    report.changes.push(Change {
                        node: peer.name.clone(),
                        mount,
                        outcome: Outcome::Pass,
                        detail: format!(
                            "not judged for {} s: finding dropped",
                            config.forget_after_seconds
                        ),
                    });
                }
            }
            report.conditions.insert(peer.name.clone(), conditions);
        }
        report
    }
}

fn group_phrase(group: &str) -> String {
    if group.is_empty() {
        String::new()
    } else {
        format!(" in nodearray {group}")
    }
}

fn pass_detail(track: &NodeTrack, mount: &str) -> String {
    let latest: Vec<(&Target, &Verdict)> = track
        .history
        .iter()
        .filter(|(t, _)| t.mount == mount)
        .filter_map(|(t, h)| h.back().map(|v| (t, v)))
        .collect();
    let highest = latest
        .iter()
        .map(|(t, v)| (*t, v.mean_us / v.median_us.max(1.0)))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    match highest {
        Some((target, ratio)) => format!(
            "RPC waits in line with peers on {} targets (highest {ratio:.2}x the median, {})",
            latest.len(),
            target.name
        ),
        None => "RPC waits in line with peers".into(),
    }
}

fn fail_detail(
    track: &NodeTrack,
    targets: &[&Target],
    config: &SlowConfig,
    causes: &[String],
) -> String {
    let mut text = String::new();
    let mut peers = 0;
    let mut slow_windows = 0;
    let mut window_count = 0;
    for target in targets.iter().take(LISTED_TARGETS) {
        let Some(history) = track.history.get(*target) else {
            continue;
        };
        let Some(verdict) = history.iter().rev().find(|v| v.slow).or(history.back()) else {
            continue;
        };
        peers = peers.max(verdict.peers);
        let slow = count_slow(history.iter().map(|v| &v.slow));
        if slow > slow_windows {
            slow_windows = slow;
            window_count = history.len();
        }
        let _ = write!(
            text,
            "{}{} {} vs median {} ({:.1}x, MAD {})",
            if text.is_empty() { "" } else { ", " },
            target.name,
            ms(verdict.mean_us),
            ms(verdict.median_us),
            verdict.mean_us / verdict.median_us.max(1.0),
            ms(verdict.mad_us),
        );
    }
    if targets.len() > LISTED_TARGETS {
        let _ = write!(text, " and {} more", targets.len() - LISTED_TARGETS);
    }
    let mut detail = format!(
        "RPC waits above those of its {} peers{} on {}: {text}; slow in {slow_windows} of the last {window_count} windows of {} s",
        peers.saturating_sub(1),
        group_phrase(&track.group),
        if targets.len() == 1 {
            "1 target".to_owned()
        } else {
            format!("{} targets", targets.len())
        },
        config.window_seconds
    );
    let mut likely: Vec<String> = causes.iter().take(4).cloned().collect();
    if track.lnet_drops > 0.0 {
        likely.push(format!("LNet dropping {:.1} messages/s", track.lnet_drops));
    }
    if likely.is_empty() {
        detail.push_str("; no cause seen on the node (its IB ports, VF and LNet pass)");
    } else {
        let _ = write!(detail, "; likely cause: {}", likely.join("; "));
    }
    detail
}

/// The causes a node's own conditions show: failing or unknown IB ports, VF and LNet checks.
pub fn likely_causes(conditions: &[Condition]) -> Vec<String> {
    conditions
        .iter()
        .filter(|c| {
            c.outcome != Outcome::Pass
                && (c.check == KnownCheck::IbPorts
                    || c.check == KnownCheck::Accelnet
                    || c.check == KnownCheck::Lnet)
        })
        .map(|c| {
            let mut text = format!("{} {} {}", c.check, c.subject, c.code);
            if !c.detail.is_empty() {
                let detail: String = c.detail.chars().take(120).collect();
                let _ = write!(text, " ({detail})");
            }
            text
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const W: i64 = 60_000;

    fn sample(metric: &str, subject: &str, delta: u64) -> TelemetrySample {
        TelemetrySample {
            seq: 1,
            at_unix_ms: 0,
            metric: metric.into(),
            labels: vec![("subject".into(), subject.into())],
            value: Some(SampleValue::Delta {
                delta,
                interval_ms: 10_000,
            }),
            reset: false,
            unavailable: None,
        }
    }

    /// A node's window on the OSTs (and MDT0000 when `mdt`): `rpcs` each, mean waits given.
    fn feed(detector: &mut SlowDetector, node: &str, rpcs: u64, means_us: &[(&str, f64)]) {
        let samples: Vec<TelemetrySample> = means_us
            .iter()
            .flat_map(|(target, mean)| {
                let (count, wait) = if target.starts_with("OST") {
                    (metric::OSC_RPCS, metric::OSC_RPC_WAIT_US)
                } else {
                    (metric::MDC_RPCS, metric::MDC_RPC_WAIT_US)
                };
                let subject = format!("/lustre {target}");
                [
                    sample(count, &subject, rpcs),
                    sample(wait, &subject, (mean * rpcs as f64).round() as u64),
                ]
            })
            .collect();
        detector.ingest(node, &samples);
    }

    fn peers(n: usize) -> Vec<PeerView> {
        (0..n)
            .map(|i| PeerView {
                name: format!("n{i:02}"),
                nodearray: "hpc".into(),
                live: true,
                causes: Vec::new(),
            })
            .collect()
    }

    const OSTS: [&str; 4] = ["OST0000", "OST0001", "OST0002", "OST0003"];

    /// One window: every node at 1.5 ms on every target, times its factor per target.
    fn window(
        detector: &mut SlowDetector,
        view: &[PeerView],
        at: i64,
        factor: impl Fn(&str, &str) -> f64,
    ) -> WindowReport {
        for peer in view {
            let means: Vec<(&str, f64)> = OSTS
                .iter()
                .chain(&["MDT0000"])
                .map(|t| (*t, 1500.0 * factor(&peer.name, t)))
                .collect();
            feed(detector, &peer.name, 200, &means);
        }
        detector.close_window(view, at)
    }

    fn fail<'a>(report: &'a WindowReport, node: &str) -> Option<&'a Condition> {
        report.conditions[node]
            .iter()
            .find(|c| c.outcome == Outcome::Fail)
    }

    #[test]
    fn defaults_parse_and_validate_and_bad_values_are_refused() {
        let config = SlowConfig::default();
        assert!(config.enabled);
        assert_eq!((config.windows_slow, config.windows), (3, 3));
        assert_eq!((config.mad_factor, config.ratio), (5.0, 1.75));
        config.validate().unwrap();
        for bad in [
            "ratio = 1.0",
            "windows_slow = 4\nwindows = 3",
            "min_peers = 2",
            "window_seconds = 0",
            "incident_share = 0",
            "max_targets_per_node = 0",
        ] {
            let parsed: SlowConfig = toml::from_str(bad).unwrap();
            assert!(parsed.validate().is_err(), "{bad}");
        }
        assert!(toml::from_str::<SlowConfig>("nonsense = 1").is_err());
        assert!(toml::from_str::<SlowConfig>("peer_group = \"rack\"").is_err());
    }

    #[test]
    fn targets_parse_from_subjects_and_nothing_else() {
        assert_eq!(
            Target::parse("/lustre OST0003"),
            Some(Target {
                mount: "/lustre".into(),
                name: "OST0003".into()
            })
        );
        assert!(Target::parse("/mnt/a b MDT0000").is_some());
        for bad in [
            "/lustre",
            "lustre OST0001",
            "/lustre OSTxyz",
            "/lustre OSS0001",
            "",
        ] {
            assert_eq!(Target::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_node_three_times_slower_is_flagged_in_the_third_window_with_its_evidence() {
        let mut detector = SlowDetector::new(SlowConfig::default());
        let mut view = peers(16);
        view[3].causes = vec!["ib.ports mlx5_0/1 rate-degraded (rate 100 of 200 Gb/s)".into()];
        let slow = |node: &str, _: &str| if node == "n03" { 3.0 } else { 1.0 };
        let first = window(&mut detector, &view, W, slow);
        assert_eq!(first.judged, 16 * 5);
        let second = window(&mut detector, &view, 2 * W, slow);
        for report in [&first, &second] {
            assert!(fail(report, "n03").is_none(), "too early");
        }
        let third = window(&mut detector, &view, 3 * W, slow);
        let finding = fail(&third, "n03").expect("flagged");
        assert_eq!(finding.subject, "/lustre");
        assert_eq!(finding.code, CODE);
        assert_eq!(finding.since_unix_ms, 3 * W);
        for text in [
            "its 15 peers in nodearray hpc",
            "5 targets",
            "OST0000 4.50 ms vs median 1.50 ms (3.0x, MAD 0.00 ms)",
            "MDT0000 4.50 ms",
            "slow in 3 of the last 3 windows",
            "likely cause: ib.ports mlx5_0/1 rate-degraded",
        ] {
            assert!(finding.detail.contains(text), "{text}: {}", finding.detail);
        }
        assert_eq!(
            third.changes,
            vec![Change {
                node: "n03".into(),
                mount: "/lustre".into(),
                outcome: Outcome::Fail,
                detail: finding.detail.clone()
            }]
        );
        for peer in view.iter().filter(|p| p.name != "n03") {
            let conditions = &third.conditions[&peer.name];
            assert_eq!(conditions.len(), 1);
            assert_eq!(conditions[0].outcome, Outcome::Pass, "{}", peer.name);
        }
        // Still slow: since stays; the flag holds until M windows in a row are normal.
        let fourth = window(&mut detector, &view, 4 * W, slow);
        assert_eq!(fail(&fourth, "n03").unwrap().since_unix_ms, 3 * W);
        let normal = |_: &str, _: &str| 1.0;
        for at in 5..=6 {
            let report = window(&mut detector, &view, at * W, normal);
            assert!(fail(&report, "n03").is_some(), "hysteresis at {at}");
        }
        let cleared = window(&mut detector, &view, 7 * W, normal);
        assert!(fail(&cleared, "n03").is_none());
        assert_eq!(cleared.changes.len(), 1);
        assert_eq!(cleared.changes[0].outcome, Outcome::Pass);
        assert_eq!(cleared.conditions["n03"][0].since_unix_ms, 7 * W);
    }

    #[test]
    fn a_node_slow_on_one_ost_is_flagged_naming_that_ost_alone() {
        let mut detector = SlowDetector::new(SlowConfig::default());
        let view = peers(16);
        let slow = |node: &str, target: &str| {
            if node == "n07" && target == "OST0003" {
                3.0
            } else {
                1.0
            }
        };
        window(&mut detector, &view, W, slow);
        window(&mut detector, &view, 2 * W, slow);
        let report = window(&mut detector, &view, 3 * W, slow);
        let finding = fail(&report, "n07").expect("flagged");
        assert!(
            finding.detail.contains("on 1 target: OST0003 4.50 ms"),
            "{}",
            finding.detail
        );
        for other in ["OST0000", "OST0001", "OST0002", "MDT0000"] {
            assert!(!finding.detail.contains(other), "{}", finding.detail);
        }
        assert!(finding.detail.contains("no cause seen on the node"));
        assert_eq!(
            detector.flagged(),
            vec![Flagged {
                node: "n07".into(),
                target: Target::parse("/lustre OST0003").unwrap(),
                ratio: 3.0
            }]
        );
    }

    #[test]
    fn a_target_slow_on_every_node_is_one_incident_and_no_node_is_flagged() {
        let mut detector = SlowDetector::new(SlowConfig::default());
        let view = peers(16);
        let ost2 = |_: &str, target: &str| if target == "OST0002" { 3.0 } else { 1.0 };
        let first = window(&mut detector, &view, W, ost2);
        let second = window(&mut detector, &view, 2 * W, ost2);
        assert!(first.opened.is_empty() && second.opened.is_empty());
        let third = window(&mut detector, &view, 3 * W, ost2);
        assert_eq!(third.opened.len(), 1);
        let (incident, evidence) = &third.opened[0];
        assert_eq!(incident.subject, "/lustre OST0002");
        assert_eq!(incident.check, KnownCheck::LustreSlow);
        assert_eq!(incident.nodes.len(), 16);
        assert!(
            evidence.contains("3.0x the other OSTs' 1.50 ms"),
            "{evidence}"
        );
        assert!(is_target_incident(incident));
        for report in [&first, &second, &third] {
            assert!(
                report
                    .conditions
                    .values()
                    .flatten()
                    .all(|c| c.outcome == Outcome::Pass)
            );
        }
        // One more slow node on top, on another OST: flagged, the incident unchanged.
        let both = |node: &str, target: &str| match (node, target) {
            (_, "OST0002") => 3.0,
            ("n01", "OST0000") => 4.0,
            _ => 1.0,
        };
        window(&mut detector, &view, 4 * W, both);
        window(&mut detector, &view, 5 * W, both);
        let report = window(&mut detector, &view, 6 * W, both);
        assert!(report.opened.is_empty());
        let finding = fail(&report, "n01").unwrap();
        assert!(finding.detail.contains("OST0000") && !finding.detail.contains("OST0002"));
        // Healed: closed after M normal windows.
        let normal = |_: &str, _: &str| 1.0;
        let closes: Vec<usize> = (7..=9)
            .map(|at| window(&mut detector, &view, at * W, normal).closed.len())
            .collect();
        assert_eq!(closes, vec![0, 0, 1]);
        assert!(detector.open_incidents().is_empty());
    }

    #[test]
    fn a_share_of_the_group_slow_on_one_target_alone_is_the_targets_incident() {
        let mut detector = SlowDetector::new(SlowConfig::default());
        let view = peers(16);
        // Six nodes (more than 30%) slow on OST0001 only; the median stays normal.
        let some = |node: &str, target: &str| {
            let index: usize = node[1..].parse().unwrap();
            if index < 6 && target == "OST0001" {
                3.0
            } else {
                1.0
            }
        };
        window(&mut detector, &view, W, some);
        window(&mut detector, &view, 2 * W, some);
        let report = window(&mut detector, &view, 3 * W, some);
        assert_eq!(report.opened.len(), 1, "{report:#?}");
        assert!(
            report.opened[0]
                .1
                .contains("6 of 16 nodes in nodearray hpc slow on it")
        );
        assert!(
            report
                .conditions
                .values()
                .flatten()
                .all(|c| c.outcome == Outcome::Pass)
        );
    }

    #[test]
    fn below_the_floor_a_node_is_never_judged_however_slow() {
        let mut detector = SlowDetector::new(SlowConfig::default());
        let view = peers(8);
        for at in 1..=10 {
            for peer in &view {
                let (rpcs, mean) = if peer.name == "n02" {
                    (49, 100_000.0)
                } else {
                    (500, 1500.0)
                };
                let means: Vec<(&str, f64)> = OSTS.iter().map(|t| (*t, mean)).collect();
                feed(&mut detector, &peer.name, rpcs, &means);
            }
            let report = detector.close_window(&view, at * W);
            assert!(report.conditions["n02"].is_empty(), "judged at {at}");
            assert_eq!(report.judged, 7 * 4);
        }
    }

    #[test]
    fn too_few_peers_silent_nodes_and_departed_nodes() {
        let mut detector = SlowDetector::new(SlowConfig::default());
        let mut view = peers(5);
        let slow = |node: &str, _: &str| if node == "n00" { 5.0 } else { 1.0 };
        // Five in the group, one of them silent: four judged, fewer than five peers.
        view[4].live = false;
        for at in 1..=3 {
            let report = window(&mut detector, &view, at * W, slow);
            assert_eq!(report.judged, 0);
            assert!(report.conditions.values().all(Vec::is_empty));
        }
        // Two groups of five: each judged within itself.
        let mut view = peers(10);
        for peer in &mut view[5..] {
            peer.nodearray = "hpc2".into();
        }
        window(&mut detector, &view, 4 * W, slow);
        window(&mut detector, &view, 5 * W, slow);
        let report = window(&mut detector, &view, 6 * W, slow);
        assert!(
            fail(&report, "n00")
                .unwrap()
                .detail
                .contains("its 4 peers in nodearray hpc")
        );
        // Nodes that leave the fleet are forgotten.
        assert_eq!(detector.tracked_nodes(), 10);
        detector.close_window(&view[..3], 7 * W);
        assert_eq!(detector.tracked_nodes(), 3);
    }

    #[test]
    fn an_idle_node_keeps_its_finding_until_forgotten() {
        let mut detector = SlowDetector::new(SlowConfig {
            forget_after_seconds: 600,
            ..SlowConfig::default()
        });
        let view = peers(8);
        let slow = |node: &str, _: &str| if node == "n05" { 3.0 } else { 1.0 };
        for at in 1..=3 {
            window(&mut detector, &view, at * W, slow);
        }
        // n05 goes idle (drained): the finding stays while others keep being judged ...
        let busy = &view;
        let mut at = 4;
        let mut last = WindowReport::default();
        while at * W <= 3 * W + 600_000 {
            for peer in busy.iter().filter(|p| p.name != "n05") {
                let means: Vec<(&str, f64)> = OSTS.iter().map(|t| (*t, 1500.0)).collect();
                feed(&mut detector, &peer.name, 200, &means);
            }
            last = detector.close_window(busy, at * W);
            assert!(fail(&last, "n05").is_some(), "kept at window {at}");
            at += 1;
        }
        // ... and goes once it has not been judged for forget_after_seconds.
        let report = detector.close_window(busy, at * W);
        assert!(report.conditions["n05"].is_empty(), "{last:#?}");
        assert_eq!(report.changes[0].outcome, Outcome::Pass);
    }

    #[test]
    fn targets_per_node_are_capped_and_refusals_counted() {
        let mut detector = SlowDetector::new(SlowConfig {
            max_targets_per_node: 10,
            ..SlowConfig::default()
        });
        let samples: Vec<TelemetrySample> = (0..1000)
            .map(|i| sample(metric::OSC_RPCS, &format!("/lustre OST{i:04x}"), 100))
            .collect();
        detector.ingest("n1", &samples);
        assert_eq!(detector.dropped, 990);
        // Wrong kinds and shapes are ignored, not counted.
        detector.ingest(
            "n1",
            &[
                sample(metric::OSC_RPCS, "/lustre MDT0000", 5),
                sample(metric::MDC_RPCS, "/lustre OST0000", 5),
                sample(metric::OSC_RPCS, "garbage", 5),
            ],
        );
        assert_eq!(detector.dropped, 990);
    }

    #[test]
    fn ten_thousand_windows_of_30_percent_noise_flag_no_node() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(18);
        let mut detector = SlowDetector::new(SlowConfig::default());
        let view = peers(16);
        for at in 1..=10_000 {
            for peer in &view {
                let noise = 1.0 + 0.3 * (2.0 * rng.random::<f64>() - 1.0);
                let means: Vec<(&str, f64)> = OSTS.iter().map(|t| (*t, 1500.0 * noise)).collect();
                feed(&mut detector, &peer.name, 200, &means);
            }
            let report = detector.close_window(&view, at * W);
            assert!(
                report.changes.is_empty(),
                "window {at}: {:?}",
                report.changes
            );
            assert_eq!(report.judged, 64);
        }
    }

    #[test]
    fn likely_causes_come_from_failing_or_unknown_network_checks() {
        let condition = |check: KnownCheck, outcome: Outcome, code: &str| Condition {
            check: check.into(),
            subject: "x".into(),
            outcome,
            code: code.into(),
            detail: "d".into(),
            since_unix_ms: 0,
            observed_unix_ms: 0,
        };
        let causes = likely_causes(&[
            condition(KnownCheck::IbPorts, Outcome::Fail, "link-errors"),
            condition(KnownCheck::Accelnet, Outcome::Unknown, "vf-missing"),
            condition(KnownCheck::Lnet, Outcome::Pass, ""),
            condition(KnownCheck::MountPresent, Outcome::Fail, "not-mounted"),
        ]);
        assert_eq!(
            causes,
            vec!["ib.ports x link-errors (d)", "accelnet x vf-missing (d)"]
        );
    }

    proptest! {
        /// Fewer than half of a group is ever slow in one window; scaling every wait by a
        /// constant and shuffling the nodes change no verdict.
        #[test]
        fn judgements_are_robust_scale_free_and_order_free(
            means in proptest::collection::vec(100.0f64..100_000.0, 5..40),
            scale in 0.01f64..100.0,
            rotate in 0usize..40,
        ) {
            let config = SlowConfig { windows_slow: 1, windows: 1, ..SlowConfig::default() };
            let run = |values: &[f64], order: usize| -> BTreeSet<String> {
                let mut detector = SlowDetector::new(config.clone());
                let mut view = peers(values.len());
                view.rotate_left(order % values.len());
                for peer in &view {
                    let index: usize = peer.name[1..].parse().unwrap();
                    feed(&mut detector, &peer.name, 1_000_000, &[("OST0000", values[index])]);
                }
                let report = detector.close_window(&view, W);
                report.conditions.iter()
                    .filter(|(_, c)| c.iter().any(|c| c.outcome == Outcome::Fail))
                    .map(|(n, _)| n.clone())
                    .collect()
            };
            let slow = run(&means, 0);
            prop_assert!(slow.len() * 2 < means.len());
            let scaled: Vec<f64> = means.iter().map(|m| m * scale).collect();
            prop_assert_eq!(&run(&scaled, rotate), &slow);
        }

        /// Whatever the waits, a node under the floor has no finding.
        #[test]
        fn a_node_under_the_floor_never_has_a_finding(
            means in proptest::collection::vec(100.0f64..1e7, 6..20),
            quiet in 0u64..50,
        ) {
            let mut detector = SlowDetector::new(SlowConfig::default());
            let view = peers(means.len());
            for at in 1..=4 {
                for (index, peer) in view.iter().enumerate() {
                    let rpcs = if index == 0 { quiet } else { 100 };
                    feed(&mut detector, &peer.name, rpcs, &[("OST0000", means[index])]);
                }
                let report = detector.close_window(&view, at * W);
                prop_assert!(report.conditions["n00"].is_empty());
            }
        }
    }
}
