//! The drain executor: runs the planner over the fleet every interval and applies its plan to
//! Slurm with read-before-write and read-back, keeping the ledger in the store.
//!
//! Before a drain it reads the node: a node that is out (DRAIN, DOWN, FAIL) with a reason
//! lfleet did not write, or in a power, reboot or maintenance state, is left alone. After it
//! writes, it reads back and records {node, drain id, reason, reason user, reason time}.
//! An undrain happens only while Slurm still shows exactly the reason, user and time of the
//! ledger (else someone else owns the node now: the entry is closed, nothing is written),
//! with UNDRAIN, so a DOWN that Slurm set stays. An unreachable slurmctld stops the pass and
//! is retried on the next one; it is a control-plane condition and never a node's fault.

use std::collections::{BTreeMap, BTreeSet};

use lfleet_host::CommandRunner;
use lfleet_proto::v1;

use crate::policy::{self, DrainEntry, NodeFacts, Policy};
use crate::service::{Coordinator, now_ms};
use crate::slurm::{Scontrol, SlurmError};

/// The executor's memory between passes: what it already said, so events are not repeated.
#[derive(Debug, Default)]
pub struct Drainer {
    said: BTreeMap<String, String>,
    unreachable: bool,
}

impl Coordinator {
    /// Every node as the planner sees it.
    pub fn facts(&self) -> Vec<NodeFacts> {
        let fleet = self.fleet();
        fleet
            .nodes
            .iter()
            .map(|(name, node)| {
                let identity = node.identity();
                NodeFacts {
                    name: name.clone(),
                    slurm_name: if node.hello.slurm_node_name.is_empty() {
                        name.clone()
                    } else {
                        node.hello.slurm_node_name.clone()
                    },
                    role: identity.role.clone(),
                    connected: node.connected,
                    facts: node
                        .status
                        .conditions
                        .iter()
                        .map(|c| policy::Fact {
                            check: c.check.clone(),
                            subject: c.subject.clone(),
                            outcome: match v1::Outcome::try_from(c.outcome).unwrap_or_default() {
                                v1::Outcome::Pass => "pass",
                                v1::Outcome::Fail => "fail",
                                _ => "unknown",
                            }
                            .to_owned(),
                            code: c.code.clone(),
                            detail: c.detail.clone(),
                            since_ms: c.since_unix_ms,
                        })
                        .collect(),
                    mounts: fleet
                        .desired
                        .mounts_for(&identity)
                        .iter()
                        .map(|m| m.mount_point.as_str().to_owned())
                        .collect(),
                }
            })
            .collect()
    }

    /// The policy with the operator's dry-run switches (kept in the store) applied.
    pub fn effective_policy(&self, base: &Policy) -> Policy {
        let mut policy = base.clone();
        if let Ok(Some(value)) = self.store.meta("dry_run") {
            policy.dry_run = value == "on";
        }
        if let Ok(Some(value)) = self.store.meta("dry_run_checks")
            && let Ok(checks) = serde_json::from_str::<Vec<String>>(&value)
        {
            policy.dry_run_checks = checks;
        }
        policy
    }
}

impl Drainer {
    /// Records an event once per (key, text) change.
    fn say(&mut self, coordinator: &Coordinator, node: &str, key: &str, kind: &str, text: String) {
        let key = format!("{node}|{key}");
        if self.said.get(&key) != Some(&text) {
            self.said.insert(key, text.clone());
            coordinator.record(node, kind, text);
        }
    }

    fn forget(&mut self, node: &str, key: &str) {
        self.said.remove(&format!("{node}|{key}"));
    }

    /// One planning pass, applied.
    pub async fn pass(
        &mut self,
        coordinator: &Coordinator,
        base: &Policy,
        slurm: &Scontrol,
        runner: &dyn CommandRunner,
    ) -> Result<(), SlurmError> {
        let now = now_ms();
        let policy = coordinator.effective_policy(base);
        let ledger = coordinator.store.drains().unwrap_or_default();
        let incidents = coordinator.store.incidents().unwrap_or_default();
        let plan = policy::plan(&policy, &coordinator.facts(), &ledger, &incidents, now);

        for incident in &plan.open {
            if coordinator.store.put_incident(incident).is_ok() {
                coordinator.record(
                    "",
                    "incident-opened",
                    format!(
                        "{} on {}: {} nodes ({}); nobody is drained for it",
                        incident.check,
                        incident.subject,
                        incident.nodes.len(),
                        incident.nodes.join(", ")
                    ),
                );
            }
        }
        for id in &plan.close {
            if let Some(mut incident) = incidents.iter().find(|i| &i.id == id).cloned() {
                incident.closed_ms = Some(now);
                if coordinator.store.put_incident(&incident).is_ok() {
                    coordinator.record(
                        "",
                        "incident-closed",
                        format!("{} on {}", incident.check, incident.subject),
                    );
                }
            }
        }
        let failing: BTreeSet<&str> = plan
            .held
            .iter()
            .map(|(n, _)| n.as_str())
            .chain(plan.would_drain.iter().map(|d| d.node.as_str()))
            .collect();
        for (node, why) in &plan.held {
            self.say(coordinator, node, "held", "drain-held", why.clone());
        }
        for drain in &plan.would_drain {
            self.say(
                coordinator,
                &drain.node,
                "would",
                "would-drain",
                format!("dry-run: {}", policy::reason(drain, "-")),
            );
        }
        for (node, id) in &plan.would_undrain {
            self.say(
                coordinator,
                node,
                "would-undrain",
                "would-undrain",
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

        let reachable = self
            .apply(coordinator, &plan, &ledger, slurm, runner, now)
            .await;
        match &reachable {
            Err(SlurmError::Unreachable(message)) if !self.unreachable => {
                self.unreachable = true;
                coordinator.record(
                    "",
                    "slurmctld-unreachable",
                    format!("{message}; retrying, no node is blamed"),
                );
            }
            Ok(()) if self.unreachable => {
                self.unreachable = false;
                coordinator.record(
                    "",
                    "slurmctld-reachable",
                    "drains and undrains resume".to_owned(),
                );
            }
            _ => {}
        }
        reachable
    }

    async fn apply(
        &mut self,
        coordinator: &Coordinator,
        plan: &policy::Plan,
        ledger: &[DrainEntry],
        slurm: &Scontrol,
        runner: &dyn CommandRunner,
        now: i64,
    ) -> Result<(), SlurmError> {
        for drain in &plan.drains {
            let node = slurm.node(runner, &drain.slurm_name).await?;
            if node.is_managed_elsewhere() || (node.is_out() && !node.reason.starts_with("lfleet:"))
            {
                self.say(
                    coordinator,
                    &drain.node,
                    "left-alone",
                    "left-alone",
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
                continue;
            }
            self.forget(&drain.node, "left-alone");
            let id = format!("{:08x}", rand::random::<u32>());
            let reason = policy::reason(drain, &id);
            slurm.drain(runner, &drain.slurm_name, &reason).await?;
            let back = slurm.node(runner, &drain.slurm_name).await?;
            if back.reason != reason || !back.is_out() {
                coordinator.record(
                    &drain.node,
                    "drain-not-confirmed",
                    format!(
                        "wrote {reason:?} but Slurm shows {} {:?}",
                        back.state.join("+"),
                        back.reason
                    ),
                );
                continue;
            }
            let entry = DrainEntry {
                drain_id: id,
                node: drain.node.clone(),
                slurm_name: drain.slurm_name.clone(),
                check: drain.check.clone(),
                code: drain.code.clone(),
                reason: back.reason.clone(),
                reason_user: back.reason_user.clone(),
                reason_time: back.reason_time.clone(),
                drained_ms: now,
                ended_ms: None,
                end: String::new(),
            };
            if let Err(error) = coordinator.store.put_drain(&entry) {
                tracing::error!(%error, "cannot record a drain in the ledger");
            }
            coordinator.record(&drain.node, "drained", reason);
        }
        for (_, id) in &plan.undrains {
            let Some(entry) = ledger.iter().find(|e| &e.drain_id == id) else {
                continue;
            };
            self.undrain(coordinator, entry, slurm, runner, "undrained", now)
                .await?;
        }
        Ok(())
    }

    /// Undrains what the ledger says lfleet drained, if Slurm still shows exactly that.
    pub async fn undrain(
        &mut self,
        coordinator: &Coordinator,
        entry: &DrainEntry,
        slurm: &Scontrol,
        runner: &dyn CommandRunner,
        end: &str,
        now: i64,
    ) -> Result<bool, SlurmError> {
        let node = slurm.node(runner, &entry.slurm_name).await?;
        let mut ended = entry.clone();
        ended.ended_ms = Some(now);
        let ours = node.is_out()
            && node.reason == entry.reason
            && node.reason_user == entry.reason_user
            && node.reason_time == entry.reason_time;
        if !ours {
            ended.end = "taken-over".into();
            let _ = coordinator.store.put_drain(&ended);
            coordinator.record(
                &entry.node,
                "left-alone",
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
        slurm.undrain(runner, &entry.slurm_name).await?;
        ended.end = end.to_owned();
        let _ = coordinator.store.put_drain(&ended);
        coordinator.record(&entry.node, end, format!("drain {} lifted", entry.drain_id));
        Ok(true)
    }
}
