//! Client upgrades in waves: the operators' calls (plan, start, status, pause, resume,
//! abort) and the executor that walks every node through its steps ([`crate::rollout`]).
//!
//! The executor runs in the drain task, after each drain pass (so every drain intent a
//! crash left is settled first), under the same lock as the drain planner: one writer to
//! Slurm. Each step is committed to the store before its effect; a restart reloads the
//! rollout and continues each node from its recorded step, checking Slurm and the ledger
//! before doing anything again, so no node is upgraded twice and no drain is left behind.
//! Rules it keeps:
//! - never more nodes drained by the rollout (in a step, or failed) than the wave size;
//!   nodes start from the lowest wave not finished, in name order;
//! - a node out by anyone else, or in a power, reboot or maintenance state, is skipped and
//!   never touched (read before the drain, again through [`Drainer::drain_for`]);
//! - DRAINED, not DRAINING: the client changes only once no job runs;
//! - only the upgraded node's configuration changes (a per-node pin and a new generation);
//! - a failure keeps the node drained with its evidence in the reason; at `max_failures`
//!   the rollout pauses by itself; `resume` tries the failed nodes again (a new generation,
//!   so the agent retries what it held) and goes on;
//! - `abort` (and `pause`) start no node; nodes in a step finish it.

use lfleet_types::fleet::{UpgradeNodeView, UpgradeSkip, UpgradeView};
use lfleet_types::{CheckId, ClientVersion, Generation};

use super::{ApiError, Coordinator};
use crate::drain::{DrainError, Drainer};
use crate::events::{CoordinatorKind, Source};
use crate::fleet::Pin;
use crate::policy::{DrainEntry, UPGRADE_CODE};
use crate::rollout::{self, NodeStep, Rollout, RolloutNode, RolloutState, Verdict};
use crate::sessions::Outgoing;
use crate::store::{Table, Write, put};
use crate::upgrade::{Candidate, SlurmState, UpgradeRequest};

/// How a rollout runs, beyond the plan's request.
#[derive(Debug, Clone)]
pub struct UpgradeOptions {
    /// Reboot through Slurm when the old module cannot be unloaded.
    pub reboot: bool,
    pub step_timeout_seconds: u64,
}

/// What an operator asks of a running rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpgradeControl {
    Pause,
    Resume,
    Abort,
}

/// The check name upgrade drains carry in the ledger.
const UPGRADE_CHECK: &str = "lfleet.upgrade";

impl Coordinator {
    /// The waves and skips a rollout of `request` would have now.
    pub async fn upgrade_plan(&self, request: &UpgradeRequest) -> Result<UpgradeView, ApiError> {
        let plan = crate::upgrade::plan(request, &self.upgrade_candidates().await?);
        let size = plan.waves.first().map_or(0, Vec::len);
        Ok(UpgradeView {
            client: request.client.to_string(),
            state: "plan".into(),
            wave_size: size as u32,
            waves: plan.waves.len() as u32,
            max_failures: request.max_failures as u32,
            nodes: plan
                .waves
                .iter()
                .enumerate()
                .flat_map(|(wave, names)| {
                    names.iter().map(move |name| UpgradeNodeView {
                        name: name.clone(),
                        wave: wave as u32 + 1,
                        step: "pending".into(),
                        detail: String::new(),
                        since_unix_ms: 0,
                    })
                })
                .collect(),
            skipped: plan
                .skipped
                .iter()
                .map(|(name, why)| UpgradeSkip {
                    name: name.clone(),
                    why: why.to_string(),
                })
                .collect(),
            ..UpgradeView::default()
        })
    }

    /// Every node as the planner sees it, with Slurm's view.
    async fn upgrade_candidates(&self) -> Result<Vec<Candidate>, ApiError> {
        let Some(drainer) = &self.drainer else {
            return Err(ApiError::FailedPrecondition(
                "upgrades drain nodes through Slurm: [slurm] enabled = true is needed".into(),
            ));
        };
        let slurm = drainer.lock().await.slurm_nodes().await.map_err(|e| {
            ApiError::Unavailable(format!("Slurm: {}", lfleet_types::ErrorChain(&e)))
        })?;
        let now = self.now_ms();
        Ok(self.with_fleet(|fleet| {
            fleet
                .nodes
                .iter()
                .map(|(name, node)| Candidate {
                    name: name.clone(),
                    role: node.identity.role,
                    health: node.health(now, fleet.silence_ms),
                    client_version: node.status.lustre_client_version.clone(),
                    slurm: slurm
                        .iter()
                        .find(|s| s.name == node.slurm_name)
                        .map(|s| SlurmState {
                            flags: s.state.clone(),
                            reason: s.reason.clone(),
                        }),
                })
                .collect()
        }))
    }

    /// Plans and starts a rollout; refused while another one has not ended.
    pub async fn upgrade_start(
        &self,
        request: &UpgradeRequest,
        options: &UpgradeOptions,
        who: &str,
    ) -> Result<UpgradeView, ApiError> {
        let plan = crate::upgrade::plan(request, &self.upgrade_candidates().await?);
        let mut current = self.rollout.lock().await;
        if let Some(running) = current.as_ref().filter(|r| !r.state.is_over()) {
            return Err(ApiError::FailedPrecondition(format!(
                "upgrade {} is {}; abort it first",
                running.id,
                running.state.name()
            )));
        }
        if plan.waves.is_empty() {
            return Err(ApiError::FailedPrecondition(
                "no node to upgrade (see `lfleet upgrade plan` for why each is left out)".into(),
            ));
        }
        let now = self.now_ms();
        let rollout = Rollout {
            id: format!("u{:08x}", rand::random::<u32>()),
            client: request.client.clone(),
            wave_size: plan.waves.iter().map(Vec::len).max().unwrap_or(1),
            waves: plan.waves.len(),
            max_failures: request.max_failures,
            reboot: options.reboot,
            step_timeout_seconds: options.step_timeout_seconds,
            state: RolloutState::Running,
            nodes: plan
                .waves
                .iter()
                .enumerate()
                .flat_map(|(wave, names)| {
                    names.iter().map(move |name| {
                        (
                            name.clone(),
                            RolloutNode {
                                wave,
                                step: NodeStep::Pending,
                                since_ms: now,
                                attempts: 0,
                            },
                        )
                    })
                })
                .collect(),
            skipped: plan
                .skipped
                .iter()
                .map(|(name, why)| (name.clone(), why.to_string()))
                .collect(),
            started_ms: now,
            who: who.to_owned(),
        };
        self.store
            .commit(vec![
                put(Table::Rollouts, &rollout.id, &rollout),
                Write::Meta {
                    key: rollout::CURRENT.into(),
                    value: rollout.id.clone(),
                },
            ])
            .await?;
        self.record(
            Source::Operator,
            "",
            CoordinatorKind::Upgrade,
            format!(
                "upgrade {} to {} started by {who}: {} nodes in {} waves of {}, {} skipped, pause at {} failures",
                rollout.id,
                rollout.client,
                rollout.nodes.len(),
                rollout.waves,
                rollout.wave_size,
                rollout.skipped.len(),
                rollout.max_failures
            ),
        );
        let view = view(&rollout);
        *current = Some(rollout);
        Ok(view)
    }

    /// The current (or last) rollout.
    pub async fn upgrade_status(&self) -> UpgradeView {
        match self.rollout.lock().await.as_ref() {
            Some(rollout) => view(rollout),
            None => UpgradeView::default(),
        }
    }

    /// Pause, resume or abort the current rollout.
    pub async fn upgrade_control(
        &self,
        control: UpgradeControl,
        who: &str,
    ) -> Result<UpgradeView, ApiError> {
        let mut current = self.rollout.lock().await;
        let Some(rollout) = current.as_mut().filter(|r| !r.state.is_over()) else {
            return Err(ApiError::FailedPrecondition("no upgrade is running".into()));
        };
        let now = self.now_ms();
        let mut writes = Vec::new();
        let mut pushes = Vec::new();
        match (control, &rollout.state) {
            (UpgradeControl::Pause, RolloutState::Running) => {
                rollout.state = RolloutState::Paused {
                    why: format!("paused by {who}"),
                };
            }
            (UpgradeControl::Resume, RolloutState::Paused { .. }) => {
                rollout.state = RolloutState::Running;
                // Failed nodes are tried again, each with a new generation: the agent
                // retries what it held back.
                let failed: Vec<(String, String)> = rollout
                    .nodes
                    .iter()
                    .filter_map(|(name, n)| match &n.step {
                        NodeStep::Failed { drain_id, .. } => Some((name.clone(), drain_id.clone())),
                        _ => None,
                    })
                    .collect();
                let generation = self.next_generation();
                let names: Vec<String> = failed.iter().map(|(name, _)| name.clone()).collect();
                for (name, drain_id) in failed {
                    let node = rollout.nodes.get_mut(&name).expect("listed above");
                    node.step = NodeStep::Upgrading {
                        drain_id,
                        generation: generation.get(),
                        checks_after: None,
                    };
                    node.since_ms = now;
                    node.attempts += 1;
                    pushes.push((name, generation));
                }
                if !names.is_empty() {
                    writes.extend(self.pin_write(rollout, &names, generation));
                }
            }
            (UpgradeControl::Abort, RolloutState::Running | RolloutState::Paused { .. }) => {
                rollout.state = RolloutState::Aborting;
            }
            (_, state) => {
                return Err(ApiError::FailedPrecondition(format!(
                    "upgrade {} is {}: cannot {}",
                    rollout.id,
                    state.name(),
                    match control {
                        UpgradeControl::Pause => "pause",
                        UpgradeControl::Resume => "resume",
                        UpgradeControl::Abort => "abort",
                    }
                )));
            }
        }
        writes.push(put(Table::Rollouts, &rollout.id, &*rollout));
        self.store.commit(writes).await?;
        for (name, generation) in pushes {
            self.take_pin(&name, &rollout.client, generation);
        }
        self.record(
            Source::Operator,
            "",
            CoordinatorKind::Upgrade,
            format!("upgrade {}: {} by {who}", rollout.id, rollout.state.name()),
        );
        Ok(view(rollout))
    }

    /// The generation above the running one, every pin's and every one a node applied.
    fn next_generation(&self) -> Generation {
        self.fleet().highest_generation().next()
    }

    /// The writes that pin `nodes` to the rollout's client in `generation`: those nodes'
    /// desired generation, so their agents (and no other) take it as new.
    fn pin_write(&self, rollout: &Rollout, nodes: &[String], generation: Generation) -> Vec<Write> {
        let pin = Pin {
            client: rollout.client.clone(),
            generation,
        };
        nodes
            .iter()
            .map(|node| put(Table::ClientPins, node, &pin))
            .collect()
    }

    /// Takes a committed pin into the fleet and sends the node its configuration.
    fn take_pin(&self, node: &str, client: &ClientVersion, generation: Generation) {
        let desired = {
            let mut fleet = self.fleet();
            fleet.pins.insert(
                node.to_owned(),
                Pin {
                    client: client.clone(),
                    generation,
                },
            );
            fleet
                .nodes
                .get(node)
                .map(|n| fleet.desired_for(&n.identity))
        };
        if let Some(desired) = desired
            && !self.sessions.send(node, Outgoing::Config(desired))
        {
            tracing::warn!(
                node,
                "no session or its queue is full; the node gets its config when it connects"
            );
        }
    }

    /// One round of the executor (see the module doc).
    pub(crate) async fn advance_rollout(&self, drainer: &mut Drainer) -> Result<(), DrainError> {
        let mut current = self.rollout.lock().await;
        let Some(rollout) = current.as_mut().filter(|r| !r.state.is_over()) else {
            return Ok(());
        };
        let before = rollout.clone();
        let busy: Vec<String> = rollout
            .nodes
            .iter()
            .filter(|(_, n)| n.step.in_progress() || matches!(n.step, NodeStep::Failed { .. }))
            .map(|(name, _)| name.clone())
            .collect();
        for name in busy {
            self.step_node(rollout, &name, drainer).await?;
        }
        // A failure reached in this round pauses before any node starts.
        let failures = rollout.failures();
        if rollout.state == RolloutState::Running && failures < rollout.max_failures.max(1) {
            for name in rollout.startable() {
                self.start_node(rollout, &name, drainer).await?;
            }
        }
        let active = rollout.nodes.values().any(|n| n.step.in_progress());
        let pending = rollout
            .nodes
            .values()
            .any(|n| matches!(n.step, NodeStep::Pending));
        let next = match &rollout.state {
            RolloutState::Running if failures >= rollout.max_failures.max(1) => {
                Some(RolloutState::Paused {
                    why: format!(
                        "{failures} node(s) failed (--max-failures {}); fix them and `lfleet upgrade resume`",
                        rollout.max_failures
                    ),
                })
            }
            RolloutState::Running if !active && !pending => Some(RolloutState::Done),
            RolloutState::Aborting if !active => Some(RolloutState::Aborted),
            _ => None,
        };
        if let Some(state) = next {
            rollout.state = state;
            self.record(
                Source::Coordinator,
                "",
                CoordinatorKind::Upgrade,
                format!(
                    "upgrade {}: {}{}",
                    rollout.id,
                    rollout.state.name(),
                    match &rollout.state {
                        RolloutState::Paused { why } => format!(": {why}"),
                        _ => String::new(),
                    }
                ),
            );
        }
        if *rollout != before {
            self.store
                .commit(vec![put(Table::Rollouts, &rollout.id, &*rollout)])
                .await?;
        }
        Ok(())
    }

    /// Records `step` for `name` (committed before the caller's effect).
    async fn record_step(
        &self,
        rollout: &mut Rollout,
        name: &str,
        step: NodeStep,
        extra: Vec<Write>,
    ) -> Result<(), DrainError> {
        let now = self.now_ms();
        if let Some(node) = rollout.nodes.get_mut(name) {
            let text = match &step {
                NodeStep::Failed { why, .. } => format!("failed: {why}"),
                NodeStep::Skipped { why } => format!("skipped: {why}"),
                other => other.name().to_owned(),
            };
            node.step = step;
            node.since_ms = now;
            self.record(
                Source::Coordinator,
                name,
                CoordinatorKind::Upgrade,
                format!("upgrade {}: {text}", rollout.id),
            );
        }
        let mut writes = vec![put(Table::Rollouts, &rollout.id, &*rollout)];
        writes.extend(extra);
        self.store.commit(writes).await?;
        Ok(())
    }

    /// Starts a pending node: drain it (read before write), or skip it.
    async fn start_node(
        &self,
        rollout: &mut Rollout,
        name: &str,
        drainer: &mut Drainer,
    ) -> Result<(), DrainError> {
        let drain_id = format!("{:08x}", rand::random::<u32>());
        if let Some(node) = rollout.nodes.get_mut(name) {
            node.attempts += 1;
        }
        self.record_step(rollout, name, NodeStep::Draining { drain_id }, Vec::new())
            .await?;
        self.step_node(rollout, name, drainer).await
    }

    /// Moves one node on from its recorded step, as far as Slurm and its agent allow now.
    async fn step_node(
        &self,
        rollout: &mut Rollout,
        name: &str,
        drainer: &mut Drainer,
    ) -> Result<(), DrainError> {
        let Some(node) = rollout.nodes.get(name).cloned() else {
            return Ok(());
        };
        let Some((slurm_name, status)) = self.with_fleet(|fleet| {
            fleet
                .nodes
                .get(name)
                .map(|n| (n.slurm_name.clone(), n.status.clone()))
        }) else {
            return self
                .record_step(
                    rollout,
                    name,
                    NodeStep::Skipped {
                        why: "the coordinator no longer knows it".into(),
                    },
                    Vec::new(),
                )
                .await;
        };
        let ledger = self.store.drains_since(rollout.started_ms)?;
        let entry_of = |drain_id: &str| -> Option<DrainEntry> {
            ledger
                .iter()
                .find(|e| e.drain_id == drain_id && e.ended_ms.is_none())
                .cloned()
        };
        let now = self.now_ms();
        let timed_out = now - node.since_ms > rollout.step_timeout_seconds as i64 * 1000;
        match node.step {
            NodeStep::Draining { drain_id } => {
                if entry_of(&drain_id).is_some() {
                    return self
                        .record_step(
                            rollout,
                            name,
                            NodeStep::WaitDrained { drain_id },
                            Vec::new(),
                        )
                        .await;
                }
                let entry = DrainEntry {
                    drain_id: drain_id.clone(),
                    node: name.to_owned(),
                    slurm_name,
                    check: CheckId::Other(UPGRADE_CHECK.into()),
                    code: UPGRADE_CODE.into(),
                    reason: rollout.reason(),
                    reason_user: String::new(),
                    reason_time: String::new(),
                    drained_ms: now,
                    ended_ms: None,
                    end: String::new(),
                };
                let step = match drainer.drain_for(entry).await? {
                    Ok(_) => NodeStep::WaitDrained { drain_id },
                    Err(why) => NodeStep::Skipped {
                        why: format!("left alone: {why}"),
                    },
                };
                self.record_step(rollout, name, step, Vec::new()).await
            }
            NodeStep::WaitDrained { drain_id } => {
                let Some(entry) = entry_of(&drain_id) else {
                    return self.taken_over(rollout, name, &drain_id).await;
                };
                let seen = drainer.scontrol().node(&entry.slurm_name).await?;
                if !(seen.is_out() && seen.reason == entry.reason) {
                    drainer.close(&entry, "taken-over").await?;
                    return self.taken_over(rollout, name, &drain_id).await;
                }
                if !seen.is_drained() {
                    return Ok(());
                }
                let generation = self.next_generation();
                let pin = self.pin_write(rollout, &[name.to_owned()], generation);
                self.record_step(
                    rollout,
                    name,
                    NodeStep::Upgrading {
                        drain_id,
                        generation: generation.get(),
                        checks_after: None,
                    },
                    pin,
                )
                .await?;
                self.take_pin(name, &rollout.client, generation);
                Ok(())
            }
            NodeStep::Upgrading {
                drain_id,
                generation,
                checks_after,
            } => match rollout::judge(&status, generation, &rollout.client, checks_after) {
                Verdict::Settled(newest) => {
                    let step = NodeStep::Upgrading {
                        drain_id,
                        generation,
                        checks_after: Some(newest),
                    };
                    // Not a new step: its time (and the step timeout) stay.
                    if let Some(node) = rollout.nodes.get_mut(name) {
                        node.step = step;
                    }
                    Ok(())
                }
                Verdict::Upgraded => {
                    self.record_step(rollout, name, NodeStep::Undraining { drain_id }, Vec::new())
                        .await?;
                    Box::pin(self.step_node(rollout, name, drainer)).await
                }
                Verdict::StaleModule(why) if rollout.reboot => {
                    self.record_step(
                        rollout,
                        name,
                        NodeStep::Rebooting {
                            drain_id,
                            generation,
                            checks_after: None,
                        },
                        Vec::new(),
                    )
                    .await?;
                    let reason = format!("{} reboot", rollout.reason());
                    drainer.scontrol().reboot(&slurm_name, &reason).await?;
                    tracing::info!(node = name, why, "stale module: reboot asked of Slurm");
                    Ok(())
                }
                Verdict::StaleModule(why) => {
                    self.fail(
                        rollout,
                        name,
                        &drain_id,
                        format!("reboot-required: {why}"),
                        drainer,
                    )
                    .await
                }
                Verdict::Failed(why) => self.fail(rollout, name, &drain_id, why, drainer).await,
                Verdict::Waiting if timed_out => {
                    let why = format!(
                        "no healthy report of {} within {} s",
                        rollout.client, rollout.step_timeout_seconds
                    );
                    self.fail(rollout, name, &drain_id, why, drainer).await
                }
                Verdict::Waiting => Ok(()),
            },
            NodeStep::Rebooting {
                drain_id,
                generation,
                checks_after,
            } => {
                let seen = drainer.scontrol().node(&slurm_name).await?;
                if seen.is_rebooting() && !timed_out {
                    return Ok(());
                }
                let verdict = rollout::judge(&status, generation, &rollout.client, checks_after);
                if let Verdict::Settled(newest) = verdict
                    && !timed_out
                {
                    if let Some(node) = rollout.nodes.get_mut(name) {
                        node.step = NodeStep::Rebooting {
                            drain_id,
                            generation,
                            checks_after: Some(newest),
                        };
                    }
                    return Ok(());
                }
                if verdict == Verdict::Upgraded {
                    // Slurm resumed the node after its reboot (nextstate=RESUME); a drain it
                    // still shows as the ledger's is lifted as usual.
                    if let Some(entry) = entry_of(&drain_id) {
                        if seen.is_out() && seen.reason == entry.reason {
                            self.record_step(
                                rollout,
                                name,
                                NodeStep::Undraining { drain_id },
                                Vec::new(),
                            )
                            .await?;
                            return Box::pin(self.step_node(rollout, name, drainer)).await;
                        }
                        drainer.close(&entry, "rebooted").await?;
                    }
                    return self
                        .record_step(rollout, name, NodeStep::Done, Vec::new())
                        .await;
                }
                if !timed_out {
                    return Ok(());
                }
                let why = match verdict {
                    Verdict::Failed(why) | Verdict::StaleModule(why) => {
                        format!("after the reboot: {why}")
                    }
                    _ => format!(
                        "no healthy report of {} within {} s of the reboot",
                        rollout.client, rollout.step_timeout_seconds
                    ),
                };
                if let Some(entry) = entry_of(&drain_id)
                    && !(seen.is_out() && seen.reason == entry.reason)
                {
                    drainer.close(&entry, "rebooted").await?;
                }
                // Back in service after the reboot: drain it again to hold the failure.
                let again = format!("{:08x}", rand::random::<u32>());
                let entry = DrainEntry {
                    drain_id: again.clone(),
                    node: name.to_owned(),
                    slurm_name,
                    check: CheckId::Other(UPGRADE_CHECK.into()),
                    code: UPGRADE_CODE.into(),
                    reason: rollout.reason(),
                    reason_user: String::new(),
                    reason_time: String::new(),
                    drained_ms: now,
                    ended_ms: None,
                    end: String::new(),
                };
                let held = if entry_of(&drain_id).is_some() {
                    drain_id
                } else {
                    match drainer.drain_for(entry).await? {
                        Ok(_) => again,
                        Err(state) => {
                            return self
                                .record_step(
                                    rollout,
                                    name,
                                    NodeStep::Skipped {
                                        why: format!("{why}; not drained again: {state}"),
                                    },
                                    Vec::new(),
                                )
                                .await;
                        }
                    }
                };
                self.fail(rollout, name, &held, why, drainer).await
            }
            NodeStep::Undraining { drain_id } => {
                if let Some(entry) = entry_of(&drain_id) {
                    drainer.undrain(&entry, "upgraded").await?;
                }
                self.record_step(rollout, name, NodeStep::Done, Vec::new())
                    .await
            }
            NodeStep::Failed { drain_id, why } => {
                // The evidence reaches Slurm's reason (again, after a crash between the two).
                if let Some(entry) = entry_of(&drain_id) {
                    let reason = failure_reason(rollout, &why);
                    if entry.reason != reason {
                        drainer.set_reason(&entry, &reason).await?;
                    }
                }
                Ok(())
            }
            NodeStep::Pending | NodeStep::Done | NodeStep::Skipped { .. } => Ok(()),
        }
    }

    /// Records a failure, then writes its evidence into the drain's reason.
    async fn fail(
        &self,
        rollout: &mut Rollout,
        name: &str,
        drain_id: &str,
        why: String,
        drainer: &mut Drainer,
    ) -> Result<(), DrainError> {
        let why = lfleet_types::safe_text(&why.replace(['\n', '\r', '\t'], " "), 200);
        self.record_step(
            rollout,
            name,
            NodeStep::Failed {
                drain_id: drain_id.to_owned(),
                why,
            },
            Vec::new(),
        )
        .await?;
        Box::pin(self.step_node(rollout, name, drainer)).await
    }

    async fn taken_over(
        &self,
        rollout: &mut Rollout,
        name: &str,
        drain_id: &str,
    ) -> Result<(), DrainError> {
        self.record_step(
            rollout,
            name,
            NodeStep::Skipped {
                why: format!("drain {drain_id} was changed or lifted by someone else; left alone"),
            },
            Vec::new(),
        )
        .await
    }
}

/// `lfleet: upgrade ID failed: EVIDENCE`, one line, at most 255 bytes.
fn failure_reason(rollout: &Rollout, why: &str) -> String {
    let mut text = format!("{} failed: {why}", rollout.reason());
    if text.len() > 255 {
        let mut cut = 255;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

/// The operators' view of a rollout.
fn view(rollout: &Rollout) -> UpgradeView {
    UpgradeView {
        id: rollout.id.clone(),
        client: rollout.client.to_string(),
        state: rollout.state.name().into(),
        state_detail: match &rollout.state {
            RolloutState::Paused { why } => why.clone(),
            _ => String::new(),
        },
        wave_size: rollout.wave_size as u32,
        waves: rollout.waves as u32,
        max_failures: rollout.max_failures as u32,
        failures: rollout.failures() as u32,
        started_unix_ms: rollout.started_ms,
        nodes: rollout
            .nodes
            .iter()
            .map(|(name, node)| UpgradeNodeView {
                name: name.clone(),
                wave: node.wave as u32 + 1,
                step: node.step.name().into(),
                detail: node.step.detail().into(),
                since_unix_ms: node.since_ms,
            })
            .collect(),
        skipped: rollout
            .skipped
            .iter()
            .map(|(name, why)| UpgradeSkip {
                name: name.clone(),
                why: why.clone(),
            })
            .collect(),
    }
}
