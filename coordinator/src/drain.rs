//! The drain executor: applies the planner's plan to Slurm with read-before-write and
//! read-back, keeping the ledger in the store; and the operator's policy switches (dry-run).
//!
//! Before a drain it reads the node: a node that is out (DRAIN, DOWN, FAIL) with a reason
//! lfleet did not write, or in a power, reboot or maintenance state, is left alone. After it
//! writes, it reads back and records {node, drain id, reason, reason user, reason time}.
//! An undrain happens only while Slurm still shows exactly the reason, user and time of the
//! ledger (else someone else owns the node now: the entry is closed, nothing is written),
//! with UNDRAIN, so a DOWN that Slurm set stays. An unreachable slurmctld stops the pass and
//! is retried on the next one; it is a control-plane condition and never a node's fault.
//!
//! Intent before effect: a drain or undrain intent is committed (fsync'd) before scontrol
//! runs and removed with the ledger write that follows it. [`Drainer::recover`], at start,
//! settles every intent left by a crash against Slurm: a drain whose reason and id Slurm
//! shows becomes an active ledger entry; one Slurm does not show is dropped; an undrain
//! whose drain Slurm no longer shows closes its entry; a new reason Slurm shows is taken
//! into the entry, one it does not show is dropped.
//!
//! The upgrade executor drains, re-reasons and undrains through the same calls
//! ([`Drainer::drain_for`], [`Drainer::set_reason`], [`Drainer::undrain`]); its entries
//! carry the code [`crate::policy::UPGRADE_CODE`], which the drain planner never undrains.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use lfleet_host::Clock;
use lfleet_types::{CheckId, ErrorChain};
use serde::{Deserialize, Serialize};

use crate::events::{CoordinatorKind, EventLog, Source};
use crate::policy::{self, DrainEntry, Incident, NodeFacts, Policy};
use crate::slurm::{Scontrol, SlurmError, SlurmNode};
use crate::store::{Store, StoreError, Table, Write, put};

/// What lfleet was about to do to Slurm when it wrote the intent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum Intent {
    Drain {
        drain_id: String,
        node: String,
        slurm_name: String,
        check: CheckId,
        code: String,
        reason: String,
        at_ms: i64,
    },
    Undrain {
        drain_id: String,
        /// The ledger's `end` to record: `undrained` or `manual-undrain`.
        end: String,
        at_ms: i64,
    },
    /// A new reason on a drain lfleet holds (an upgrade's failure with its evidence).
    Reason {
        drain_id: String,
        reason: String,
        at_ms: i64,
    },
}

impl Intent {
    fn key(&self) -> String {
        match self {
            Intent::Drain { drain_id, .. } => format!("drain-{drain_id}"),
            Intent::Undrain { drain_id, .. } => format!("undrain-{drain_id}"),
            Intent::Reason { drain_id, .. } => format!("reason-{drain_id}"),
        }
    }
}

/// Why a drain step could not be finished.
#[derive(Debug, thiserror::Error)]
pub enum DrainError {
    #[error("Slurm")]
    Slurm(#[from] SlurmError),
    #[error("the store")]
    Store(#[from] StoreError),
}

impl DrainError {
    pub fn is_unreachable(&self) -> bool {
        matches!(self, DrainError::Slurm(SlurmError::Unreachable(_)))
    }
}

/// The operator's switches over the configured policy, kept in the store.
#[derive(Debug)]
pub struct PolicySwitches {
    base: Policy,
    store: Arc<Store>,
    state: Mutex<(Option<bool>, Option<Vec<CheckId>>)>,
}

impl PolicySwitches {
    /// The configured policy with the switches stored from earlier runs.
    pub fn load(base: Policy, store: Arc<Store>) -> Result<PolicySwitches, StoreError> {
        let dry_run = store.meta("dry_run")?.map(|v| v == "on");
        let checks = store
            .meta("dry_run_checks")?
            .and_then(|v| serde_json::from_str::<Vec<CheckId>>(&v).ok());
        Ok(PolicySwitches {
            base,
            store,
            state: Mutex::new((dry_run, checks)),
        })
    }

    /// The policy in force.
    pub fn effective(&self) -> Policy {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut policy = self.base.clone();
        if let Some(dry_run) = state.0 {
            policy.dry_run = dry_run;
        }
        if let Some(checks) = &state.1 {
            policy.dry_run_checks = checks.clone();
        }
        policy
    }

    /// Dry-run on or off, for every check (`None`) or one; stored before it takes effect.
    pub async fn set_dry_run(
        &self,
        check: Option<&CheckId>,
        on: bool,
    ) -> Result<Policy, StoreError> {
        let write = {
            let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            match check {
                None => (Some(on), state.1.clone()),
                Some(check) => {
                    let mut checks = state
                        .1
                        .clone()
                        .unwrap_or_else(|| self.base.dry_run_checks.clone());
                    checks.retain(|c| c != check);
                    if on {
                        checks.push(check.clone());
                    }
                    (state.0, Some(checks))
                }
            }
        };
        let mut writes = Vec::new();
        if let Some(dry_run) = write.0 {
            writes.push(Write::Meta {
                key: "dry_run".into(),
                value: if dry_run { "on" } else { "off" }.into(),
            });
        }
        if let Some(checks) = &write.1 {
            writes.push(Write::Meta {
                key: "dry_run_checks".into(),
                value: serde_json::to_string(checks).expect("check names serialize"),
            });
        }
        self.store.commit(writes).await?;
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = write;
        Ok(self.effective())
    }
}

/// The executor, with what it already said, so events are not repeated.
#[derive(Debug)]
pub struct Drainer {
    slurm: Scontrol,
    store: Arc<Store>,
    events: Arc<EventLog>,
    clock: Arc<dyn Clock>,
    said: BTreeMap<String, String>,
    unreachable: bool,
}

impl Drainer {
    pub fn new(
        slurm: Scontrol,
        store: Arc<Store>,
        events: Arc<EventLog>,
        clock: Arc<dyn Clock>,
    ) -> Drainer {
        Drainer {
            slurm,
            store,
            events,
            clock,
            said: BTreeMap::new(),
            unreachable: false,
        }
    }

    fn now_ms(&self) -> i64 {
        self.clock.wall_unix_ms() as i64
    }

    /// Slurm's view of every node.
    pub async fn slurm_nodes(&self) -> Result<Vec<SlurmNode>, SlurmError> {
        self.slurm.nodes().await
    }

    fn record(&self, node: &str, kind: CoordinatorKind, detail: impl Into<String>) {
        self.events.record(Source::Coordinator, node, kind, detail);
    }

    /// Records an event once per (key, text) change.
    fn say(&mut self, node: &str, key: &str, kind: CoordinatorKind, text: String) {
        let key = format!("{node}|{key}");
        if self.said.get(&key) != Some(&text) {
            self.said.insert(key, text.clone());
            self.record(node, kind, text);
        }
    }

    fn forget(&mut self, node: &str, key: &str) {
        self.said.remove(&format!("{node}|{key}"));
    }

    /// Settles intents a crash left behind (see the module doc). Slurm must be reachable;
    /// otherwise the intents stay for the next try.
    pub async fn recover(&mut self) -> Result<(), DrainError> {
        let intents: Vec<(String, Intent)> = self.store.records(Table::Intents)?;
        if intents.is_empty() {
            return Ok(());
        }
        let ledger = self.store.drains()?;
        for (key, intent) in intents {
            let remove = Write::Delete {
                table: Table::Intents,
                key: key.clone(),
            };
            match intent {
                Intent::Drain {
                    drain_id,
                    node,
                    slurm_name,
                    check,
                    code,
                    reason,
                    at_ms,
                } => {
                    let seen = self.slurm.node(&slurm_name).await?;
                    if seen.is_out() && seen.reason == reason {
                        let entry = DrainEntry {
                            drain_id: drain_id.clone(),
                            node: node.clone(),
                            slurm_name,
                            check,
                            code,
                            reason: seen.reason.clone(),
                            reason_user: seen.reason_user.clone(),
                            reason_time: seen.reason_time.clone(),
                            drained_ms: at_ms,
                            ended_ms: None,
                            end: String::new(),
                        };
                        self.store.commit(vec![Write::Drain(entry), remove]).await?;
                        self.record(
                            &node,
                            CoordinatorKind::DrainRecovered,
                            format!("drain {drain_id} was written to Slurm before a crash; it is in the ledger now"),
                        );
                    } else {
                        self.store.commit(vec![remove]).await?;
                        tracing::info!(
                            node,
                            drain_id,
                            "a drain intent never reached Slurm; dropped"
                        );
                    }
                }
                Intent::Reason {
                    drain_id, reason, ..
                } => {
                    let Some(entry) = ledger
                        .iter()
                        .find(|e| e.drain_id == drain_id && e.ended_ms.is_none())
                    else {
                        self.store.commit(vec![remove]).await?;
                        continue;
                    };
                    let seen = self.slurm.node(&entry.slurm_name).await?;
                    if seen.is_out() && seen.reason == reason {
                        let mut changed = entry.clone();
                        changed.reason = seen.reason.clone();
                        changed.reason_user = seen.reason_user.clone();
                        changed.reason_time = seen.reason_time.clone();
                        self.store
                            .commit(vec![Write::Drain(changed), remove])
                            .await?;
                    } else {
                        self.store.commit(vec![remove]).await?;
                    }
                }
                Intent::Undrain { drain_id, end, .. } => {
                    let Some(entry) = ledger
                        .iter()
                        .find(|e| e.drain_id == drain_id && e.ended_ms.is_none())
                    else {
                        self.store.commit(vec![remove]).await?;
                        continue;
                    };
                    let seen = self.slurm.node(&entry.slurm_name).await?;
                    let still_ours = seen.is_out() && seen.reason == entry.reason;
                    if still_ours {
                        // The undrain never ran; the planner decides again.
                        self.store.commit(vec![remove]).await?;
                    } else {
                        let mut ended = entry.clone();
                        ended.ended_ms = Some(self.now_ms());
                        ended.end = end;
                        self.store.commit(vec![Write::Drain(ended), remove]).await?;
                        self.record(
                            &entry.node,
                            CoordinatorKind::DrainRecovered,
                            format!(
                                "drain {drain_id} was lifted before a crash; the ledger says so now"
                            ),
                        );
                    }
                }
            }
        }
        Ok(())
    }

    /// One planning pass over `facts`, applied.
    pub async fn pass(&mut self, policy: &Policy, facts: &[NodeFacts]) -> Result<(), DrainError> {
        let result = self.pass_inner(policy, facts).await;
        match &result {
            Err(error) if error.is_unreachable() && !self.unreachable => {
                self.unreachable = true;
                self.record(
                    "",
                    CoordinatorKind::SlurmctldUnreachable,
                    format!("{}; retrying, no node is blamed", ErrorChain(error)),
                );
            }
            Ok(()) if self.unreachable => {
                self.unreachable = false;
                self.record(
                    "",
                    CoordinatorKind::SlurmctldReachable,
                    "drains and undrains resume",
                );
            }
            _ => {}
        }
        result
    }

    async fn pass_inner(&mut self, policy: &Policy, facts: &[NodeFacts]) -> Result<(), DrainError> {
        // Settle what a crash (or an unreachable Slurm) left first.
        self.recover().await?;
        let now = self.now_ms();
        // Bounded reads by index: what the budget window and the flap penalty's day can see.
        let horizon = (policy.budget_window_seconds as i64 * 1000).max(86_400_000);
        let ledger = self.store.drains_since(now - horizon)?;
        // A target's own slowness is the slow-node detector's incident to open and close.
        let open: Vec<Incident> = self
            .store
            .open_incidents()?
            .into_iter()
            .filter(|i| !crate::slow::is_target_incident(i))
            .collect();
        let plan = policy::plan(policy, facts, &ledger, &open, now);

        for incident in &plan.open {
            self.store
                .commit(vec![Write::Incident(incident.clone())])
                .await?;
            self.record(
                "",
                CoordinatorKind::IncidentOpened,
                format!(
                    "{} on {}: {} nodes ({}); nobody is drained for it",
                    incident.check,
                    incident.subject,
                    incident.nodes.len(),
                    incident.nodes.join(", ")
                ),
            );
        }
        for id in &plan.close {
            if let Some(mut incident) = open.iter().find(|i| &i.id == id).cloned() {
                incident.closed_ms = Some(now);
                self.store
                    .commit(vec![Write::Incident(incident.clone())])
                    .await?;
                self.record(
                    "",
                    CoordinatorKind::IncidentClosed,
                    format!("{} on {}", incident.check, incident.subject),
                );
            }
        }
        let failing: BTreeSet<&str> = plan
            .held
            .iter()
            .map(|(n, _)| n.as_str())
            .chain(plan.would_drain.iter().map(|d| d.node.as_str()))
            .collect();
        for (node, why) in &plan.held {
            self.say(node, "held", CoordinatorKind::DrainHeld, why.clone());
        }
        for drain in &plan.would_drain {
            self.say(
                &drain.node,
                "would",
                CoordinatorKind::WouldDrain,
                format!("dry-run: {}", policy::reason(drain, "-")),
            );
        }
        for (node, id) in &plan.would_undrain {
            self.say(
                node,
                "would-undrain",
                CoordinatorKind::WouldUndrain,
                format!("dry-run: undrain {id}"),
            );
        }
        let quiet: Vec<String> = self
            .said
            .keys()
            .filter(|k| k.ends_with("|held") || k.ends_with("|would"))
            .filter(|k| !failing.contains(k.split('|').next().unwrap_or("")))
            .cloned()
            .collect();
        for key in quiet {
            self.said.remove(&key);
        }

        for drain in &plan.drains {
            let result = self.drain(drain, now).await;
            self.node_step(&drain.node, "drain", result)?;
        }
        for (node, id) in &plan.undrains {
            let Some(entry) = ledger.iter().find(|e| &e.drain_id == id) else {
                continue;
            };
            let result = self.undrain(entry, "undrained").await.map(|_| ());
            self.node_step(node, "undrain", result)?;
        }
        Ok(())
    }

    /// A step on one node: Slurm refusing it (permission, a state it will not leave) is
    /// reported and the pass goes on; an unreachable slurmctld or a store failure stops it.
    fn node_step(
        &mut self,
        node: &str,
        what: &str,
        result: Result<(), DrainError>,
    ) -> Result<(), DrainError> {
        match result {
            Ok(()) => Ok(()),
            Err(error @ DrainError::Store(_)) => Err(error),
            Err(error) if error.is_unreachable() => Err(error),
            Err(error) => {
                self.say(
                    node,
                    what,
                    CoordinatorKind::DrainNotConfirmed,
                    format!("{what} refused by Slurm: {}", ErrorChain(&error)),
                );
                Ok(())
            }
        }
    }

    async fn drain(&mut self, drain: &policy::Drain, now: i64) -> Result<(), DrainError> {
        let node = match self.slurm.node(&drain.slurm_name).await {
            Ok(node) => node,
            // A node Slurm does not know (a misnamed or a rogue node) is reported and skipped;
            // it must not stop the pass for every other node.
            Err(SlurmError::NoSuchNode(_)) => {
                self.say(
                    &drain.node,
                    "not-in-slurm",
                    CoordinatorKind::LeftAlone,
                    format!(
                        "not drained: Slurm has no node {:?} (check [enrollment] slurm_name)",
                        drain.slurm_name
                    ),
                );
                return Ok(());
            }
            Err(error) => return Err(error.into()),
        };
        if node.is_managed_elsewhere() || (node.is_out() && !node.reason.starts_with("lfleet:")) {
            self.say(
                &drain.node,
                "left-alone",
                CoordinatorKind::LeftAlone,
                format!(
                    "not drained: Slurm shows {} with reason {:?} by {}",
                    node.state.join("+"),
                    node.reason,
                    if node.reason_user.is_empty() {
                        "-"
                    } else {
                        &node.reason_user
                    }
                ),
            );
            return Ok(());
        }
        self.forget(&drain.node, "left-alone");
        let id = format!("{:08x}", rand::random::<u32>());
        let reason = policy::reason(drain, &id);
        let written = DrainEntry {
            drain_id: id,
            node: drain.node.clone(),
            slurm_name: drain.slurm_name.clone(),
            check: drain.check.clone(),
            code: drain.code.clone(),
            reason: reason.clone(),
            reason_user: String::new(),
            reason_time: String::new(),
            drained_ms: now,
            ended_ms: None,
            end: String::new(),
        };
        if self.write_drain(written).await?.is_some() {
            self.record(&drain.node, CoordinatorKind::Drained, reason);
        }
        Ok(())
    }

    /// Drains for a purpose other than a failing check (an upgrade), with read-before-write:
    /// a node out by someone else, or in a power, reboot or maintenance state, is left alone
    /// and its state returned as `Err` text. `entry` holds what to write; `reason_user` and
    /// `reason_time` are filled from Slurm's read-back.
    pub async fn drain_for(
        &mut self,
        entry: DrainEntry,
    ) -> Result<Result<DrainEntry, String>, DrainError> {
        let node = self.slurm.node(&entry.slurm_name).await?;
        if node.is_managed_elsewhere() || node.is_out() {
            return Ok(Err(format!(
                "Slurm shows {} with reason {:?} by {}",
                node.state.join("+"),
                node.reason,
                if node.reason_user.is_empty() {
                    "-"
                } else {
                    &node.reason_user
                }
            )));
        }
        let reason = entry.reason.clone();
        match self.write_drain(entry).await? {
            Some(entry) => Ok(Ok(entry)),
            None => Ok(Err(format!(
                "Slurm did not show the drain {reason:?} after it was written"
            ))),
        }
    }

    /// Intent, scontrol, read-back, ledger: the drain `entry` describes. None (and an event)
    /// when Slurm does not show it afterwards.
    async fn write_drain(&mut self, entry: DrainEntry) -> Result<Option<DrainEntry>, DrainError> {
        let intent = Intent::Drain {
            drain_id: entry.drain_id.clone(),
            node: entry.node.clone(),
            slurm_name: entry.slurm_name.clone(),
            check: entry.check.clone(),
            code: entry.code.clone(),
            reason: entry.reason.clone(),
            at_ms: entry.drained_ms,
        };
        let intent_key = intent.key();
        self.store
            .commit(vec![put(Table::Intents, &intent_key, &intent)])
            .await?;
        self.slurm.drain(&entry.slurm_name, &entry.reason).await?;
        let back = self.slurm.node(&entry.slurm_name).await?;
        let remove = Write::Delete {
            table: Table::Intents,
            key: intent_key,
        };
        if back.reason != entry.reason || !back.is_out() {
            self.store.commit(vec![remove]).await?;
            self.record(
                &entry.node,
                CoordinatorKind::DrainNotConfirmed,
                format!(
                    "wrote {:?} but Slurm shows {} {:?}",
                    entry.reason,
                    back.state.join("+"),
                    back.reason
                ),
            );
            return Ok(None);
        }
        let entry = DrainEntry {
            reason: back.reason.clone(),
            reason_user: back.reason_user.clone(),
            reason_time: back.reason_time.clone(),
            ..entry
        };
        self.store
            .commit(vec![Write::Drain(entry.clone()), remove])
            .await?;
        Ok(Some(entry))
    }

    /// Gives a drain lfleet holds a new reason (intent first, read back into the ledger).
    /// None when Slurm no longer shows the ledger's drain: someone else owns the node now,
    /// and the entry is closed as taken over with nothing written.
    pub async fn set_reason(
        &mut self,
        entry: &DrainEntry,
        reason: &str,
    ) -> Result<Option<DrainEntry>, DrainError> {
        let node = self.slurm.node(&entry.slurm_name).await?;
        let ours = node.is_out()
            && node.reason == entry.reason
            && node.reason_user == entry.reason_user
            && node.reason_time == entry.reason_time;
        if !ours {
            self.close(entry, "taken-over").await?;
            return Ok(None);
        }
        let intent = Intent::Reason {
            drain_id: entry.drain_id.clone(),
            reason: reason.to_owned(),
            at_ms: self.now_ms(),
        };
        let intent_key = intent.key();
        self.store
            .commit(vec![put(Table::Intents, &intent_key, &intent)])
            .await?;
        self.slurm.drain(&entry.slurm_name, reason).await?;
        let back = self.slurm.node(&entry.slurm_name).await?;
        let mut changed = entry.clone();
        if back.is_out() && back.reason == reason {
            changed.reason = back.reason.clone();
            changed.reason_user = back.reason_user.clone();
            changed.reason_time = back.reason_time.clone();
        }
        self.store
            .commit(vec![
                Write::Drain(changed.clone()),
                Write::Delete {
                    table: Table::Intents,
                    key: intent_key,
                },
            ])
            .await?;
        Ok(Some(changed))
    }

    /// Closes a ledger entry Slurm no longer shows (`end`: `taken-over`, `rebooted`).
    pub async fn close(&mut self, entry: &DrainEntry, end: &str) -> Result<(), DrainError> {
        let mut ended = entry.clone();
        ended.ended_ms = Some(self.now_ms());
        ended.end = end.to_owned();
        self.store.commit(vec![Write::Drain(ended)]).await?;
        Ok(())
    }

    /// The scontrol backend (reads, and the upgrade's reboot request).
    pub fn scontrol(&self) -> &Scontrol {
        &self.slurm
    }

    /// Undrains what the ledger says lfleet drained, if Slurm still shows exactly that.
    /// `end` is what the ledger records: `undrained` or `manual-undrain`.
    pub async fn undrain(&mut self, entry: &DrainEntry, end: &str) -> Result<bool, DrainError> {
        let node = self.slurm.node(&entry.slurm_name).await?;
        let mut ended = entry.clone();
        ended.ended_ms = Some(self.now_ms());
        let ours = node.is_out()
            && node.reason == entry.reason
            && node.reason_user == entry.reason_user
            && node.reason_time == entry.reason_time;
        if !ours {
            ended.end = "taken-over".into();
            self.store.commit(vec![Write::Drain(ended)]).await?;
            self.record(
                &entry.node,
                CoordinatorKind::LeftAlone,
                format!(
                    "drain {} is no longer lfleet's (Slurm shows {} {:?} by {}); nothing written",
                    entry.drain_id,
                    node.state.join("+"),
                    node.reason,
                    node.reason_user
                ),
            );
            return Ok(false);
        }
        let intent = Intent::Undrain {
            drain_id: entry.drain_id.clone(),
            end: end.to_owned(),
            at_ms: self.now_ms(),
        };
        let intent_key = intent.key();
        self.store
            .commit(vec![put(Table::Intents, &intent_key, &intent)])
            .await?;
        self.slurm.undrain(&entry.slurm_name).await?;
        ended.end = end.to_owned();
        self.store
            .commit(vec![
                Write::Drain(ended),
                Write::Delete {
                    table: Table::Intents,
                    key: intent_key,
                },
            ])
            .await?;
        if end == "undrained" {
            self.record(
                &entry.node,
                CoordinatorKind::Undrained,
                format!("drain {} lifted", entry.drain_id),
            );
        }
        Ok(true)
    }
}
