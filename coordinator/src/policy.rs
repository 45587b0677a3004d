//! The drain planner: a pure function from (policy, fleet facts, ledger, open incidents, now)
//! to drains, undrains, incidents and the decisions held back or only recorded ("would").
//! Rules: DESIGN.md "Drain protocol".
//!
//! - A node is drained for a check its role requires that has failed for `grace_seconds`
//!   (from the agent's since-time). Unknown and silent agents are never a node's fault.
//! - The same check failing on at least `incident_share` of the nodes that mount a filesystem
//!   (and at least two) is an incident: nobody is drained for it while it is open; it closes
//!   when none of them fails it any more.
//! - A budget caps drains per window and the share of the fleet lfleet keeps drained.
//! - A node undrained recently is not drained again within a flap penalty that doubles with
//!   each drain in the last day.
//! - Undrain after every required check has passed for `undrain_after_seconds`.
//! - Dry-run (global, or per check): decisions are recorded as "would", nothing is written.
//! - A drain of an upgrade (code [`UPGRADE_CODE`]) belongs to the upgrade executor: it keeps
//!   the node from a second drain while active, is never undrained here, and counts in
//!   neither the budget nor the flap penalty.

use std::collections::{BTreeMap, BTreeSet};

use lfleet_types::{CheckId, KnownCheck, Outcome, Role};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Decide and record, never write to Slurm.
    #[serde(default)]
    pub dry_run: bool,
    /// Checks in shadow mode: their drains are only recorded.
    #[serde(default)]
    pub dry_run_checks: Vec<CheckId>,
    /// Role -> the checks that drain it.
    #[serde(default = "default_required")]
    pub required: BTreeMap<Role, Vec<CheckId>>,
    /// Failure codes that never drain (a finding to fix, not a sick node).
    #[serde(default = "default_ignore_codes")]
    pub ignore_codes: Vec<String>,
    #[serde(default = "default_grace")]
    pub grace_seconds: u64,
    #[serde(default = "default_undrain_after")]
    pub undrain_after_seconds: u64,
    #[serde(default = "default_flap_penalty")]
    pub flap_penalty_seconds: u64,
    #[serde(default = "default_incident_share")]
    pub incident_share: f64,
    #[serde(default = "default_budget_drains")]
    pub budget_drains_per_window: u32,
    #[serde(default = "default_budget_window")]
    pub budget_window_seconds: u64,
    #[serde(default = "default_max_drained_share")]
    pub max_drained_share: f64,
    /// Seconds between planning passes.
    #[serde(default = "default_interval")]
    pub interval_seconds: f64,
}

fn default_required() -> BTreeMap<Role, Vec<CheckId>> {
    let node_checks: Vec<CheckId> = [
        KnownCheck::MountPresent,
        KnownCheck::MountResponsive,
        KnownCheck::LustreImports,
        KnownCheck::LustreLbug,
    ]
    .map(CheckId::from)
    .to_vec();
    BTreeMap::from([(Role::Compute, node_checks)])
}
fn default_ignore_codes() -> Vec<String> {
    vec!["reboot-unsafe".into()]
}
fn default_grace() -> u64 {
    30
}
fn default_undrain_after() -> u64 {
    120
}
fn default_flap_penalty() -> u64 {
    600
}
fn default_incident_share() -> f64 {
    0.5
}
fn default_budget_drains() -> u32 {
    10
}
fn default_budget_window() -> u64 {
    3600
}
fn default_max_drained_share() -> f64 {
    0.1
}
fn default_interval() -> f64 {
    1.0
}

impl Default for Policy {
    fn default() -> Self {
        toml::from_str("").expect("every field has a default")
    }
}

impl Policy {
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.incident_share)
            || !(0.0..=1.0).contains(&self.max_drained_share)
        {
            return Err("incident_share and max_drained_share are between 0 and 1".into());
        }
        if !(0.1..=3600.0).contains(&self.interval_seconds) {
            return Err("interval_seconds is from 0.1 to 3600".into());
        }
        Ok(())
    }

    fn shadowed(&self, check: &CheckId) -> bool {
        self.dry_run || self.dry_run_checks.contains(check)
    }
}

/// One condition as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    pub check: CheckId,
    pub subject: String,
    pub outcome: Outcome,
    pub code: String,
    pub detail: String,
    /// When the coordinator first received this outcome (never the agent's own time).
    pub since_ms: i64,
}

/// A node as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFacts {
    pub name: String,
    pub slurm_name: String,
    pub role: Role,
    /// Reporting within the silence limit.
    pub connected: bool,
    pub facts: Vec<Fact>,
    /// The mount points it should have.
    pub mounts: Vec<String>,
}

/// A drain lfleet made (the ledger).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainEntry {
    pub drain_id: String,
    pub node: String,
    pub slurm_name: String,
    pub check: CheckId,
    pub code: String,
    pub reason: String,
    pub reason_user: String,
    pub reason_time: String,
    pub drained_ms: i64,
    /// When lfleet undrained it, or gave it up to someone else.
    pub ended_ms: Option<i64>,
    /// `undrained`, `taken-over`, `manual-undrain`, or empty while active.
    pub end: String,
}

/// An open or closed incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    pub id: String,
    pub check: CheckId,
    pub subject: String,
    pub opened_ms: i64,
    pub closed_ms: Option<i64>,
    pub nodes: Vec<String>,
}

/// A drain to make (or that would be made).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drain {
    pub node: String,
    pub slurm_name: String,
    pub check: CheckId,
    pub subject: String,
    pub code: String,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub drains: Vec<Drain>,
    /// (node, drain id).
    pub undrains: Vec<(String, String)>,
    pub would_drain: Vec<Drain>,
    pub would_undrain: Vec<(String, String)>,
    /// (node, why): failing but held by the budget or a flap penalty.
    pub held: Vec<(String, String)>,
    pub open: Vec<Incident>,
    /// Ids of incidents to close.
    pub close: Vec<String>,
}

/// The code of the ledger entries the upgrade executor writes.
pub const UPGRADE_CODE: &str = "upgrade";

/// Whether a ledger entry is an upgrade's.
pub fn is_upgrade(entry: &DrainEntry) -> bool {
    entry.code == UPGRADE_CODE
}

/// The reason written to Slurm: one line, at most 255 bytes, ending in the drain id.
pub fn reason(drain: &Drain, id: &str) -> String {
    let tail = format!(" id={id}");
    let mut text = format!(
        "lfleet: {} {} {} {}",
        drain.code, drain.check, drain.subject, drain.detail
    )
    .replace(['\n', '\r', '\t'], " ");
    let room = 255 - tail.len();
    if text.len() > room {
        let mut cut = room;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text.push_str(&tail);
    text
}

pub fn plan(
    policy: &Policy,
    nodes: &[NodeFacts],
    ledger: &[DrainEntry],
    incidents: &[Incident],
    now_ms: i64,
) -> Plan {
    let mut out = Plan::default();
    let is_required = |node: &NodeFacts, check: &CheckId| {
        policy
            .required
            .get(&node.role)
            .is_some_and(|checks| checks.contains(check))
    };
    let active: BTreeMap<&str, &DrainEntry> = ledger
        .iter()
        .filter(|e| e.ended_ms.is_none())
        .map(|e| (e.node.as_str(), e))
        .collect();

    // Failing now, per (check, subject), among connected nodes, for incidents.
    let mut failing_now: BTreeMap<(CheckId, String), BTreeSet<String>> = BTreeMap::new();
    for node in nodes.iter().filter(|n| n.connected) {
        for fact in &node.facts {
            if fact.outcome == Outcome::Fail
                && is_required(node, &fact.check)
                && !policy.ignore_codes.contains(&fact.code)
            {
                failing_now
                    .entry((fact.check.clone(), fact.subject.clone()))
                    .or_default()
                    .insert(node.name.clone());
            }
        }
    }
    let population = |check: &CheckId, subject: &str| -> usize {
        nodes
            .iter()
            .filter(|n| n.connected && is_required(n, check))
            .filter(|n| !subject.starts_with('/') || n.mounts.iter().any(|m| m == subject))
            .count()
    };
    let mut incident_keys: BTreeSet<(CheckId, String)> = BTreeSet::new();
    for incident in incidents.iter().filter(|i| i.closed_ms.is_none()) {
        let key = (incident.check.clone(), incident.subject.clone());
        if failing_now.get(&key).is_none_or(|n| n.is_empty()) {
            out.close.push(incident.id.clone());
        } else {
            incident_keys.insert(key);
        }
    }
    for (key, failing) in &failing_now {
        if incident_keys.contains(key) {
            continue;
        }
        let total = population(&key.0, &key.1).max(1);
        if failing.len() >= 2 && failing.len() as f64 / total as f64 >= policy.incident_share {
            incident_keys.insert(key.clone());
            out.open.push(Incident {
                id: format!("{}:{}:{now_ms}", key.0, key.1),
                check: key.0.clone(),
                subject: key.1.clone(),
                opened_ms: now_ms,
                closed_ms: None,
                nodes: failing.iter().cloned().collect(),
            });
        }
    }

    // Drains.
    let fleet = nodes.len();
    let max_drained = ((policy.max_drained_share * fleet as f64).floor() as usize).max(1);
    let mut drained_count = active.values().filter(|e| !is_upgrade(e)).count();
    let window_ms = policy.budget_window_seconds as i64 * 1000;
    let mut in_window = ledger
        .iter()
        .filter(|e| !is_upgrade(e) && e.drained_ms >= now_ms - window_ms)
        .count();
    let grace_ms = policy.grace_seconds as i64 * 1000;
    for node in nodes.iter().filter(|n| n.connected) {
        if active.contains_key(node.name.as_str()) {
            continue;
        }
        let Some(fact) = node.facts.iter().find(|f| {
            f.outcome == Outcome::Fail
                && is_required(node, &f.check)
                && !policy.ignore_codes.contains(&f.code)
                && f.since_ms <= now_ms - grace_ms
                && !incident_keys.contains(&(f.check.clone(), f.subject.clone()))
        }) else {
            continue;
        };
        let drain = Drain {
            node: node.name.clone(),
            slurm_name: node.slurm_name.clone(),
            check: fact.check.clone(),
            subject: fact.subject.clone(),
            code: fact.code.clone(),
            detail: fact.detail.clone(),
        };
        // The flap penalty: doubles with each drain of this node in the last day.
        let day = ledger
            .iter()
            .filter(|e| {
                !is_upgrade(e) && e.node == node.name && e.drained_ms >= now_ms - 86_400_000
            })
            .count();
        let last_end = ledger
            .iter()
            .filter(|e| !is_upgrade(e) && e.node == node.name)
            .filter_map(|e| e.ended_ms)
            .max();
        if let Some(ended) = last_end
            && day > 0
        {
            let penalty = policy.flap_penalty_seconds as i64 * 1000 * (1i64 << (day - 1).min(20));
            if now_ms - ended < penalty {
                out.held.push((
                    node.name.clone(),
                    format!(
                        "flap penalty: {} s left",
                        (penalty - (now_ms - ended)) / 1000
                    ),
                ));
                continue;
            }
        }
        if policy.shadowed(&drain.check) {
            out.would_drain.push(drain);
            continue;
        }
        if in_window >= policy.budget_drains_per_window as usize {
            out.held.push((
                node.name.clone(),
                format!(
                    "drain budget: {in_window} drains in the last {} s",
                    policy.budget_window_seconds
                ),
            ));
            continue;
        }
        if drained_count >= max_drained {
            out.held.push((
                node.name.clone(),
                format!("drain budget: {drained_count} of {fleet} nodes already drained by lfleet"),
            ));
            continue;
        }
        in_window += 1;
        drained_count += 1;
        out.drains.push(drain);
    }

    // Undrains: every required check passing for long enough.
    let undrain_ms = policy.undrain_after_seconds as i64 * 1000;
    for entry in active.values().filter(|e| !is_upgrade(e)) {
        let Some(node) = nodes.iter().find(|n| n.name == entry.node && n.connected) else {
            continue;
        };
        let required_facts: Vec<&Fact> = node
            .facts
            .iter()
            .filter(|f| is_required(node, &f.check))
            .collect();
        let healthy_since = required_facts.iter().try_fold(i64::MIN, |latest, f| {
            (f.outcome == Outcome::Pass).then_some(latest.max(f.since_ms))
        });
        if let Some(since) = healthy_since
            && !required_facts.is_empty()
            && since <= now_ms - undrain_ms
        {
            let pair = (entry.node.clone(), entry.drain_id.clone());
            if policy.dry_run {
                out.would_undrain.push(pair);
            } else {
                out.undrains.push(pair);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn node(name: &str, facts: &[(&str, Outcome, &str, i64)]) -> NodeFacts {
        NodeFacts {
            name: name.into(),
            slurm_name: name.into(),
            role: Role::Compute,
            connected: true,
            facts: facts
                .iter()
                .map(|(check, outcome, code, since)| Fact {
                    check: check.parse().unwrap(),
                    subject: "/lustre".into(),
                    outcome: *outcome,
                    code: (*code).into(),
                    detail: String::new(),
                    since_ms: *since,
                })
                .collect(),
            mounts: vec!["/lustre".into()],
        }
    }

    fn healthy(name: &str, since: i64) -> NodeFacts {
        node(
            name,
            &[
                ("lustre.imports", Outcome::Pass, "", since),
                ("mount.present", Outcome::Pass, "", since),
            ],
        )
    }

    fn sick(name: &str, since: i64) -> NodeFacts {
        node(
            name,
            &[
                ("lustre.imports", Outcome::Fail, "import-not-full", since),
                ("mount.present", Outcome::Pass, "", 0),
            ],
        )
    }

    fn policy() -> Policy {
        Policy {
            grace_seconds: 10,
            undrain_after_seconds: 20,
            max_drained_share: 0.5,
            ..Policy::default()
        }
    }

    #[test]
    fn a_sustained_failure_drains_after_grace_and_unknown_never_does() {
        let now = 100_000;
        let fleet = vec![
            sick("n1", now - 5_000),
            healthy("n2", 0),
            healthy("n3", 0),
            healthy("n4", 0),
        ];
        assert!(
            plan(&policy(), &fleet, &[], &[], now).drains.is_empty(),
            "within grace"
        );
        let fleet = vec![
            sick("n1", now - 11_000),
            healthy("n2", 0),
            healthy("n3", 0),
            healthy("n4", 0),
        ];
        let p = plan(&policy(), &fleet, &[], &[], now);
        assert_eq!(
            p.drains.iter().map(|d| d.node.as_str()).collect::<Vec<_>>(),
            vec!["n1"]
        );
        assert!(
            reason(&p.drains[0], "abc")
                .starts_with("lfleet: import-not-full lustre.imports /lustre")
        );
        let unknown = vec![
            node("n1", &[("lustre.imports", Outcome::Unknown, "", 0)]),
            healthy("n2", 0),
        ];
        assert_eq!(plan(&policy(), &unknown, &[], &[], now), Plan::default());
        let mut silent = sick("n1", 0);
        silent.connected = false;
        assert!(
            plan(&policy(), &[silent, healthy("n2", 0)], &[], &[], now)
                .drains
                .is_empty()
        );
    }

    #[test]
    fn a_shared_failure_is_an_incident_and_drains_nobody() {
        let now = 100_000;
        let fleet = vec![
            sick("n1", 0),
            sick("n2", 0),
            healthy("n3", 0),
            healthy("n4", 0),
        ];
        let p = plan(&policy(), &fleet, &[], &[], now);
        assert!(p.drains.is_empty());
        assert_eq!(p.open.len(), 1);
        assert_eq!(p.open[0].nodes, vec!["n1", "n2"]);
        let recovered = vec![
            healthy("n1", now),
            healthy("n2", now),
            healthy("n3", 0),
            healthy("n4", 0),
        ];
        assert_eq!(
            plan(&policy(), &recovered, &[], &p.open, now + 1).close,
            vec![p.open[0].id.clone()]
        );
    }

    #[test]
    fn budgets_hold_drains_and_say_so() {
        let now = 100_000;
        let mut fleet: Vec<NodeFacts> = (1..=3).map(|i| sick(&format!("n{i}"), 0)).collect();
        fleet.extend((4..=20).map(|i| healthy(&format!("n{i}"), 0)));
        let p = plan(
            &Policy {
                budget_drains_per_window: 2,
                ..policy()
            },
            &fleet,
            &[],
            &[],
            now,
        );
        assert_eq!(p.drains.len(), 2);
        assert_eq!(p.held.len(), 1);
        assert!(p.held[0].1.contains("drain budget"));
    }

    #[test]
    fn undrain_after_sustained_pass_and_the_flap_penalty() {
        let now = 1_000_000;
        let entry = DrainEntry {
            drain_id: "d1".into(),
            node: "n1".into(),
            slurm_name: "n1".into(),
            check: KnownCheck::LustreImports.into(),
            code: "import-not-full".into(),
            reason: "lfleet: x id=d1".into(),
            reason_user: "root".into(),
            reason_time: "t".into(),
            drained_ms: now - 60_000,
            ended_ms: None,
            end: String::new(),
        };
        let fleet = vec![healthy("n1", now - 30_000), healthy("n2", 0)];
        assert_eq!(
            plan(&policy(), &fleet, std::slice::from_ref(&entry), &[], now).undrains,
            vec![("n1".into(), "d1".into())]
        );
        let fleet = vec![healthy("n1", now - 5_000), healthy("n2", 0)];
        assert!(
            plan(&policy(), &fleet, std::slice::from_ref(&entry), &[], now)
                .undrains
                .is_empty()
        );
        // Undrained 10 s ago and failing again: held by the penalty.
        let ended = DrainEntry {
            ended_ms: Some(now - 10_000),
            end: "undrained".into(),
            ..entry
        };
        let fleet = vec![
            sick("n1", now - 60_000),
            healthy("n2", 0),
            healthy("n3", 0),
            healthy("n4", 0),
        ];
        let p = plan(&policy(), &fleet, &[ended], &[], now);
        assert!(p.drains.is_empty());
        assert!(p.held[0].1.starts_with("flap penalty"));
    }

    #[test]
    fn dry_run_only_records() {
        let now = 100_000;
        let fleet = vec![
            sick("n1", 0),
            healthy("n2", 0),
            healthy("n3", 0),
            healthy("n4", 0),
        ];
        let p = plan(
            &Policy {
                dry_run: true,
                ..policy()
            },
            &fleet,
            &[],
            &[],
            now,
        );
        assert!(p.drains.is_empty());
        assert_eq!(p.would_drain.len(), 1);
        let p = plan(
            &Policy {
                dry_run_checks: vec![KnownCheck::LustreImports.into()],
                ..policy()
            },
            &fleet,
            &[],
            &[],
            now,
        );
        assert!(p.drains.is_empty() && p.would_drain.len() == 1);
    }

    proptest! {
        #[test]
        fn never_more_drains_than_the_budget_and_never_a_drained_node_again(
            outcomes in proptest::collection::vec(0u8..3, 1..40),
            budget in 0u32..6,
        ) {
            let now = 10_000_000;
            let fleet: Vec<NodeFacts> = outcomes.iter().enumerate().map(|(i, o)| {
                let name = format!("n{i}");
                match o { 0 => healthy(&name, 0), 1 => sick(&name, 0), _ => node(&name, &[("lustre.imports", Outcome::Unknown, "", 0)]) }
            }).collect();
            let p = plan(&Policy { budget_drains_per_window: budget, incident_share: 1.0, ..policy() }, &fleet, &[], &[], now);
            prop_assert!(p.drains.len() <= budget as usize);
            let names: BTreeSet<&str> = p.drains.iter().map(|d| d.node.as_str()).collect();
            prop_assert_eq!(names.len(), p.drains.len());
            for d in &p.drains {
                prop_assert!(outcomes[d.node[1..].parse::<usize>().unwrap()] == 1);
            }
        }
    }
}
