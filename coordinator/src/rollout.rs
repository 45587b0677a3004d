//! A client upgrade's recorded state: the rollout (its request, waves, skips and state) and
//! every node's step, kept in the store as one record per rollout and written before each
//! step's effect, so a coordinator that stops anywhere resumes from what is recorded. The
//! executor that walks these steps is `app/upgrades.rs`; the planner that makes the waves is
//! [`crate::upgrade`].
//!
//! A node's steps, in order, each recorded before its effect (the effect named after the
//! arrow):
//! - `pending`: not started;
//! - `draining` -> `scontrol update state=DRAIN reason="lfleet: upgrade ID"` through the
//!   drain ledger (its own intent first);
//! - `wait-drained`: Slurm shows DRAINING while jobs run; the next step waits for DRAINED;
//! - `upgrading` -> the per-node client pin and a new generation, committed together, then
//!   the config pushed to that node alone; once the agent reports the generation applied,
//!   the newest check time of that report is recorded (`checks_after`), and the node is
//!   judged only on checks run after it (a report sent as the pass ends carries the checks
//!   of before the reload);
//! - `rebooting` -> `scontrol reboot ASAP nextstate=RESUME reason="lfleet: upgrade ID
//!   reboot"` (the old module would not unload);
//! - `undraining` -> UNDRAIN through the ledger;
//! - `done`, `failed` (the node stays drained with the evidence in its reason), `skipped`.
//!
//! Entry points: [`Rollout`], [`NodeStep`], [`judge`], [`load_current`].

use std::collections::BTreeMap;

use lfleet_types::{ClientVersion, ItemKind, Outcome, ReconcileStatus, StatusReport};
use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError, Table};

/// The meta key naming the current (or last) rollout.
pub const CURRENT: &str = "rollout_current";

/// A rollout's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum RolloutState {
    Running,
    /// No node starts; nodes in a step finish it. `why`: the operator, or the failures.
    Paused {
        why: String,
    },
    /// Stopping: nodes in a step finish it, the rest stay untouched.
    Aborting,
    Aborted,
    Done,
}

impl RolloutState {
    pub fn name(&self) -> &'static str {
        match self {
            RolloutState::Running => "running",
            RolloutState::Paused { .. } => "paused",
            RolloutState::Aborting => "aborting",
            RolloutState::Aborted => "aborted",
            RolloutState::Done => "done",
        }
    }

    /// Whether the rollout has ended.
    pub fn is_over(&self) -> bool {
        matches!(self, RolloutState::Aborted | RolloutState::Done)
    }
}

/// One node's step (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum NodeStep {
    Pending,
    Draining {
        drain_id: String,
    },
    WaitDrained {
        drain_id: String,
    },
    Upgrading {
        drain_id: String,
        generation: u64,
        /// The newest check time (the agent's clock) of the first report with the
        /// generation applied: conditions at or before it may predate the reload.
        #[serde(default)]
        checks_after: Option<i64>,
    },
    Rebooting {
        drain_id: String,
        generation: u64,
        #[serde(default)]
        checks_after: Option<i64>,
    },
    Undraining {
        drain_id: String,
    },
    Done,
    Failed {
        drain_id: String,
        why: String,
    },
    Skipped {
        why: String,
    },
}

impl NodeStep {
    pub fn name(&self) -> &'static str {
        match self {
            NodeStep::Pending => "pending",
            NodeStep::Draining { .. } => "draining",
            NodeStep::WaitDrained { .. } => "wait-drained",
            NodeStep::Upgrading { .. } => "upgrading",
            NodeStep::Rebooting { .. } => "rebooting",
            NodeStep::Undraining { .. } => "undraining",
            NodeStep::Done => "done",
            NodeStep::Failed { .. } => "failed",
            NodeStep::Skipped { .. } => "skipped",
        }
    }

    /// Started and not finished: the node is out of service for the upgrade.
    pub fn in_progress(&self) -> bool {
        matches!(
            self,
            NodeStep::Draining { .. }
                | NodeStep::WaitDrained { .. }
                | NodeStep::Upgrading { .. }
                | NodeStep::Rebooting { .. }
                | NodeStep::Undraining { .. }
        )
    }

    /// The drain this step holds, if any.
    pub fn drain_id(&self) -> Option<&str> {
        match self {
            NodeStep::Draining { drain_id }
            | NodeStep::WaitDrained { drain_id }
            | NodeStep::Upgrading { drain_id, .. }
            | NodeStep::Rebooting { drain_id, .. }
            | NodeStep::Undraining { drain_id }
            | NodeStep::Failed { drain_id, .. } => Some(drain_id),
            _ => None,
        }
    }

    pub fn detail(&self) -> &str {
        match self {
            NodeStep::Failed { why, .. } | NodeStep::Skipped { why } => why,
            _ => "",
        }
    }
}

/// One node of a rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutNode {
    /// Its wave, from 0.
    pub wave: usize,
    pub step: NodeStep,
    /// When the coordinator recorded the step.
    pub since_ms: i64,
    /// Times this node was started (a resume after a failure starts it again).
    pub attempts: u32,
}

/// A rollout as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    pub id: String,
    pub client: ClientVersion,
    pub wave_size: usize,
    pub waves: usize,
    pub max_failures: usize,
    /// Ask Slurm for a reboot when the old module cannot be unloaded; when false, such a
    /// node fails with `reboot-required`.
    pub reboot: bool,
    /// Seconds a node may take from its new configuration to a healthy report (or from its
    /// reboot to its return) before it fails.
    pub step_timeout_seconds: u64,
    pub state: RolloutState,
    pub nodes: BTreeMap<String, RolloutNode>,
    /// (node, why) of the nodes the planner left out.
    pub skipped: Vec<(String, String)>,
    pub started_ms: i64,
    pub who: String,
}

impl Rollout {
    /// Nodes drained by this rollout now: in a step, or failed (they stay drained).
    pub fn out(&self) -> usize {
        self.nodes
            .values()
            .filter(|n| n.step.in_progress() || matches!(n.step, NodeStep::Failed { .. }))
            .count()
    }

    pub fn failures(&self) -> usize {
        self.nodes
            .values()
            .filter(|n| matches!(n.step, NodeStep::Failed { .. }))
            .count()
    }

    /// The lowest wave with a node not finished: the only wave nodes start from.
    pub fn current_wave(&self) -> Option<usize> {
        self.nodes
            .values()
            .filter(|n| matches!(n.step, NodeStep::Pending) || n.step.in_progress())
            .map(|n| n.wave)
            .min()
    }

    /// The nodes that may start now, in name order: pending, in the current wave, while
    /// fewer than `wave_size` nodes are out.
    pub fn startable(&self) -> Vec<String> {
        let Some(wave) = self.current_wave() else {
            return Vec::new();
        };
        let room = self.wave_size.saturating_sub(self.out());
        self.nodes
            .iter()
            .filter(|(_, n)| n.wave == wave && matches!(n.step, NodeStep::Pending))
            .map(|(name, _)| name.clone())
            .take(room)
            .collect()
    }

    /// The drain reason of this rollout's nodes.
    pub fn reason(&self) -> String {
        format!("lfleet: upgrade {}", self.id)
    }
}

/// What a node's report says about its upgrade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Not there yet (an older generation, a pass running, checks not all in).
    Waiting,
    /// The generation applied and the new client loaded, every item as desired; the checks
    /// may predate the pass: the newest check time, for later reports to be newer than.
    Settled(i64),
    /// The new client loaded, every item as desired, every check run since passing.
    Upgraded,
    /// The old module could not be unloaded: only a reboot loads the new one.
    StaleModule(String),
    /// A failed item or check, with its evidence.
    Failed(String),
}

/// Judges a node's last status against its upgrade to `client` in `generation`; only
/// conditions observed after `checks_after` count (None: not settled yet).
pub fn judge(
    status: &StatusReport,
    generation: u64,
    client: &ClientVersion,
    checks_after: Option<i64>,
) -> Verdict {
    if status.applied_generation.get() < generation || status.reconcile == ReconcileStatus::Running
    {
        return Verdict::Waiting;
    }
    if let Some(stale) = status.items.iter().find(|i| {
        i.kind == ItemKind::Module && i.failure == Some(lfleet_types::FailureClass::StaleModule)
    }) {
        return Verdict::StaleModule(stale.message.clone());
    }
    if let Some(failed) = status.items.iter().find(|i| i.failure.is_some()) {
        return Verdict::Failed(format!(
            "{} {}: {} {}",
            failed.kind,
            failed.id,
            failed.failure.map(|c| c.code()).unwrap_or_default(),
            failed.message
        ));
    }
    if !client.matches_module(&status.lustre_client_version) {
        return Verdict::Waiting;
    }
    let newest = status.conditions.iter().map(|c| c.observed_unix_ms).max();
    let Some(after) = checks_after else {
        return Verdict::Settled(newest.unwrap_or(0));
    };
    if status.conditions.is_empty()
        || status
            .conditions
            .iter()
            .any(|c| c.observed_unix_ms <= after)
    {
        return Verdict::Waiting;
    }
    if let Some(failing) = status
        .conditions
        .iter()
        .find(|c| c.outcome != Outcome::Pass)
    {
        return match failing.outcome {
            Outcome::Fail => Verdict::Failed(format!(
                "{} {}: {} {}",
                failing.check, failing.subject, failing.code, failing.detail
            )),
            _ => Verdict::Waiting,
        };
    }
    Verdict::Upgraded
}

/// The current rollout, if one was ever started.
pub fn load_current(store: &Store) -> Result<Option<Rollout>, StoreError> {
    let Some(id) = store.meta(CURRENT)? else {
        return Ok(None);
    };
    Ok(store
        .records::<Rollout>(Table::Rollouts)?
        .into_iter()
        .find(|(key, _)| *key == id)
        .map(|(_, rollout)| rollout))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lfleet_types::{CheckId, Condition, FailureClass, Generation, ItemResult};

    fn rollout(steps: &[(&str, usize, NodeStep)], wave_size: usize) -> Rollout {
        Rollout {
            id: "u1".into(),
            client: "2.16.1-12-g8e3f1a2".parse().unwrap(),
            wave_size,
            waves: 2,
            max_failures: 1,
            reboot: true,
            step_timeout_seconds: 60,
            state: RolloutState::Running,
            nodes: steps
                .iter()
                .map(|(name, wave, step)| {
                    (
                        name.to_string(),
                        RolloutNode {
                            wave: *wave,
                            step: step.clone(),
                            since_ms: 0,
                            attempts: 0,
                        },
                    )
                })
                .collect(),
            skipped: Vec::new(),
            started_ms: 0,
            who: "root".into(),
        }
    }

    #[test]
    fn nodes_start_from_the_current_wave_only_while_fewer_than_the_wave_size_are_out() {
        let drained = || NodeStep::WaitDrained {
            drain_id: "d".into(),
        };
        let r = rollout(
            &[
                ("n1", 0, drained()),
                ("n2", 0, NodeStep::Pending),
                ("n3", 1, NodeStep::Pending),
            ],
            2,
        );
        assert_eq!(r.startable(), vec!["n2".to_string()]);
        let r = rollout(
            &[
                ("n1", 0, drained()),
                ("n2", 0, drained()),
                ("n3", 1, NodeStep::Pending),
            ],
            2,
        );
        assert!(r.startable().is_empty());
        // A failed node stays drained and takes a place.
        let failed = NodeStep::Failed {
            drain_id: "d".into(),
            why: "x".into(),
        };
        let r = rollout(
            &[
                ("n1", 0, failed),
                ("n2", 0, NodeStep::Done),
                ("n3", 1, NodeStep::Pending),
                ("n4", 1, NodeStep::Pending),
            ],
            2,
        );
        assert_eq!(r.startable(), vec!["n3".to_string()]);
        assert_eq!(r.failures(), 1);
    }

    fn status(generation: u64, loaded: &str) -> StatusReport {
        checked(generation, loaded, 0, Outcome::Pass)
    }

    /// A report whose one condition was observed at `at` with `outcome`.
    fn checked(generation: u64, loaded: &str, at: i64, outcome: Outcome) -> StatusReport {
        StatusReport {
            applied_generation: Generation(generation),
            reconcile: ReconcileStatus::Idle,
            conditions: vec![Condition {
                check: "mount.present".parse::<CheckId>().unwrap(),
                subject: "/lustre".into(),
                outcome,
                code: String::new(),
                detail: String::new(),
                since_unix_ms: 0,
                observed_unix_ms: at,
            }],
            items: vec![ItemResult {
                kind: ItemKind::Module,
                id: "lustre".into(),
                failure: None,
                message: "lustre reloaded".into(),
            }],
            lustre_client_version: loaded.into(),
            ..StatusReport::default()
        }
    }

    #[test]
    fn a_report_is_judged_only_once_it_applied_the_generation() {
        let client: ClientVersion = "2.16.1-12-g8e3f1a2".parse().unwrap();
        assert_eq!(
            judge(&status(4, "2.15.7"), 5, &client, None),
            Verdict::Waiting
        );
        assert_eq!(
            judge(&status(5, "2.16.1"), 5, &client, Some(-1)),
            Verdict::Upgraded
        );
        let mut stale = status(5, "2.15.7");
        stale.items[0].failure = Some(FailureClass::StaleModule);
        assert!(matches!(
            judge(&stale, 5, &client, None),
            Verdict::StaleModule(_)
        ));
        let mut failed = status(5, "2.15.7");
        failed.items.push(ItemResult {
            kind: ItemKind::Package,
            id: "5.15.0-1075-azure".into(),
            failure: Some(FailureClass::NotYetPublished),
            message: "E: Unable to locate package".into(),
        });
        assert!(
            matches!(judge(&failed, 5, &client, None), Verdict::Failed(why) if why.contains("not-yet-published"))
        );
    }

    #[test]
    fn checks_count_only_once_run_after_the_report_that_applied_the_generation() {
        let client: ClientVersion = "2.16.1-12-g8e3f1a2".parse().unwrap();
        // The report sent as the pass ends carries a check of before the reload.
        let settled = checked(5, "2.16.1", 1_000, Outcome::Fail);
        assert_eq!(judge(&settled, 5, &client, None), Verdict::Settled(1_000));
        // Until every check ran again, that failure (or a pass as old) decides nothing.
        assert_eq!(judge(&settled, 5, &client, Some(1_000)), Verdict::Waiting);
        let old_pass = checked(5, "2.16.1", 1_000, Outcome::Pass);
        assert_eq!(judge(&old_pass, 5, &client, Some(1_000)), Verdict::Waiting);
        let fresh = checked(5, "2.16.1", 1_300, Outcome::Pass);
        assert_eq!(judge(&fresh, 5, &client, Some(1_000)), Verdict::Upgraded);
        let fresh_fail = checked(5, "2.16.1", 1_300, Outcome::Fail);
        assert!(matches!(
            judge(&fresh_fail, 5, &client, Some(1_000)),
            Verdict::Failed(_)
        ));
    }
}
