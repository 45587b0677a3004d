//! What operators ask: the fleet's views (nodes, filesystems, drains beside Slurm's view,
//! incidents, events), the desired config (show, diff, apply), undrain and dry-run. Each
//! function is one operator request; `who` is the operator the caller authenticated.

use lfleet_types::fleet::{
    DrainRecord, FilesystemSummary, FleetEvent, Health, IncidentView, NodeDetail, NodeSummary,
};
use lfleet_types::{CheckId, ConfigAck, ErrorChain, Generation, Role, SpecError};

use super::{ApiError, Coordinator};
use crate::config::{self, ConfigErrors, FieldError};
use crate::events::{CoordinatorKind, Source};
use crate::identity::RotateError;
use crate::policy::Policy;
use crate::store::Write;

/// What `config diff` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigDiff {
    pub diff: String,
    pub errors: Vec<FieldError>,
    pub affected_nodes: Vec<String>,
}

/// What `config apply` answers: the generation, and each connected node's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub generation: Generation,
    /// (node, its ack of this generation)
    pub acks: Vec<(String, ConfigAck)>,
    /// Connected nodes that did not answer within the wait.
    pub unanswered: Vec<String>,
}

/// An issued certificate, for `lfleet certs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateView {
    pub kind: &'static str,
    pub name: String,
    pub id: String,
    pub not_after_unix: i64,
    pub state: &'static str,
    pub vm_id: String,
}

/// How long an ended drain stays in `lfleet drains`.
const DRAINS_SHOWN_MS: i64 = 24 * 3600 * 1000;

impl Coordinator {
    /// Every node, or only those not healthy.
    pub fn list_nodes(&self, unhealthy_only: bool) -> Vec<NodeSummary> {
        let now = self.now_ms();
        let fleet = self.fleet();
        fleet
            .nodes
            .keys()
            .filter_map(|name| fleet.summary(name, now))
            .filter(|s| !unhealthy_only || s.health != Health::Healthy)
            .collect()
    }

    /// One node with its last 50 events of the last day.
    pub fn node_detail(&self, name: &str) -> Result<NodeDetail, ApiError> {
        let now = self.now_ms();
        if !self.fleet().nodes.contains_key(name) {
            return Err(ApiError::NotFound(format!("no node {name:?}")));
        }
        let events: Vec<FleetEvent> = self
            .store
            .events_of(Some(name), now - 24 * 3600 * 1000, 50)?
            .into_iter()
            .rev()
            .map(FleetEvent::from)
            .collect();
        self.fleet()
            .detail(name, now, events)
            .ok_or_else(|| ApiError::NotFound(format!("no node {name:?}")))
    }

    /// Every filesystem, or the one named.
    pub fn filesystems(&self, name: Option<&str>) -> Vec<FilesystemSummary> {
        self.fleet()
            .filesystems(self.now_ms())
            .into_iter()
            .filter(|f| name.is_none_or(|n| f.name == n))
            .collect()
    }

    /// The running generation and its text.
    pub fn config(&self) -> (Generation, String) {
        let fleet = self.fleet();
        (fleet.generation, fleet.desired.text.clone())
    }

    /// A unified diff from the running config, and the nodes whose desired state changes.
    pub fn diff_config(&self, text: &str) -> ConfigDiff {
        let candidate = config::parse(text);
        let (current, affected_nodes) = {
            let fleet = self.fleet();
            let affected = match &candidate {
                Ok(parsed) => fleet.affected_by(&parsed.desired),
                Err(_) => Vec::new(),
            };
            (fleet.desired.text.clone(), affected)
        };
        ConfigDiff {
            diff: similar::TextDiff::from_lines(current.as_str(), text)
                .unified_diff()
                .header("running", "candidate")
                .to_string(),
            errors: candidate.err().map(|e| e.0).unwrap_or_default(),
            affected_nodes,
        }
    }

    /// Checks a candidate config (nothing changes when it is refused), stores it as the next
    /// generation and pushes it. The next generation is above the running one and above
    /// every generation a node reports it applied, so a coordinator that lost its store
    /// never hands out one the agents would refuse as old.
    pub async fn apply_config(
        &self,
        text: &str,
        who: &str,
        wait: std::time::Duration,
    ) -> Result<Applied, ConfigErrors> {
        let parsed = config::parse(text)?;
        let generation = self.fleet().highest_generation().next();
        let source = format!("lfleet config apply by {who}");
        self.store
            .commit(vec![Write::Config {
                generation: generation.get(),
                text: text.to_owned(),
                source: source.clone(),
                at_ms: self.now_ms(),
            }])
            .await
            .map_err(|e| {
                ConfigErrors(vec![FieldError {
                    line: 0,
                    field: "store".into(),
                    message: ErrorChain(&e).to_string(),
                }])
            })?;
        {
            let mut fleet = self.fleet();
            fleet.desired = parsed.desired;
            fleet.generation = generation;
        }
        self.record(
            Source::Operator,
            "",
            CoordinatorKind::ConfigApplied,
            format!("generation {generation} from {source}"),
        );
        let expected = self.sessions.names();
        self.push_all();
        Ok(self.await_acks(generation, expected, wait).await)
    }

    /// Waits until every node in `expected` answered `generation` (or a later one), or
    /// `wait` passed.
    async fn await_acks(
        &self,
        generation: Generation,
        expected: Vec<String>,
        wait: std::time::Duration,
    ) -> Applied {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let (acks, unanswered) = {
                let acks = self.acks.lock().unwrap_or_else(|e| e.into_inner());
                let mut answered = Vec::new();
                let mut unanswered = Vec::new();
                for name in &expected {
                    match acks.get(name) {
                        Some(ack) if ack.generation >= generation => {
                            answered.push((name.clone(), ack.clone()));
                        }
                        _ => unanswered.push(name.clone()),
                    }
                }
                (answered, unanswered)
            };
            if unanswered.is_empty() || tokio::time::Instant::now() >= deadline {
                return Applied {
                    generation,
                    acks,
                    unanswered,
                };
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Releases a node's name (its certificate is refused from now on, its session ends, its
    /// state is forgotten), or only its key binding.
    pub async fn remove_node(
        &self,
        name: &str,
        rekey_only: bool,
        who: &str,
    ) -> Result<String, ApiError> {
        let known = self.identities.remove(name, rekey_only).await?;
        let had_state = self.fleet().nodes.contains_key(name);
        if !known && !had_state {
            return Err(ApiError::NotFound(format!("no node {name:?}")));
        }
        if rekey_only {
            self.record(
                Source::Operator,
                name,
                CoordinatorKind::NodeRemoved,
                format!("key binding released by {who}: the next enrollment binds a new key"),
            );
            return Ok(format!(
                "{name}: key released; it may enroll again with a join token"
            ));
        }
        self.sessions.end(name, "the node was removed");
        self.fleet().nodes.remove(name);
        self.acks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        self.events.forget(name);
        self.store
            .commit(vec![Write::Delete {
                table: crate::store::Table::Nodes,
                key: name.to_owned(),
            }])
            .await?;
        self.record(
            Source::Operator,
            name,
            CoordinatorKind::NodeRemoved,
            format!("removed by {who}: its certificate is refused, its state forgotten"),
        );
        Ok(format!(
            "{name}: removed; its certificate is refused from now on"
        ))
    }

    /// A new join token; the old one is refused from now on.
    pub async fn rotate_token(
        &self,
        role: Option<Role>,
        nodes: &str,
        expires_unix: Option<i64>,
        who: &str,
    ) -> Result<String, ApiError> {
        let nodes: Vec<String> = if nodes.is_empty() {
            Vec::new()
        } else {
            vec![nodes.to_owned()]
        };
        let token = self
            .identities
            .rotate(role, nodes.clone(), expires_unix, self.now_ms())
            .await
            .map_err(|e| match e {
                RotateError::BadNodes(message) => ApiError::InvalidArgument(message),
                other => ApiError::internal("rotating the join token", other),
            })?;
        self.record(
            Source::Operator,
            "",
            CoordinatorKind::TokenRotated,
            format!(
                "by {who}: role {}, nodes {}, expires {}",
                role.map_or("by the rules".to_owned(), |r| r.to_string()),
                if nodes.is_empty() {
                    "any".to_owned()
                } else {
                    nodes.join(",")
                },
                expires_unix.map_or("never".to_owned(), |t| t.to_string())
            ),
        );
        Ok(token)
    }

    /// Every node binding and operator certificate, with its state now.
    pub fn certificates(&self) -> Result<Vec<CertificateView>, ApiError> {
        let now = self.now_ms() / 1000;
        let mut out: Vec<CertificateView> = self
            .identities
            .bindings()
            .into_iter()
            .map(|b| CertificateView {
                kind: "node",
                state: if b.removed {
                    "revoked"
                } else if b.not_after_unix != 0 && b.not_after_unix <= now {
                    "expired"
                } else {
                    "valid"
                },
                name: b.name,
                id: b.key_fingerprint,
                not_after_unix: b.not_after_unix,
                vm_id: b.vm_id,
            })
            .collect();
        for admin in self.identities.admins()? {
            for (serial, not_after, _) in &admin.issued {
                out.push(CertificateView {
                    kind: "admin",
                    name: admin.name.clone(),
                    id: serial.clone(),
                    not_after_unix: *not_after,
                    state: if !admin.allows(serial) {
                        "revoked"
                    } else if *not_after <= now {
                        "expired"
                    } else {
                        "valid"
                    },
                    vm_id: String::new(),
                });
            }
        }
        Ok(out)
    }

    /// Revokes every certificate issued to operator `name` so far.
    pub async fn revoke_admin(&self, name: &str, who: &str) -> Result<usize, ApiError> {
        let count = self.identities.revoke_admin(name, self.now_ms()).await?;
        self.record(
            Source::Operator,
            "",
            CoordinatorKind::AdminRevoked,
            format!("operator {name:?}: {count} certificate(s) revoked by {who}"),
        );
        Ok(count)
    }

    /// lfleet's ledger (active drains and those ended in the last day) beside Slurm's view,
    /// and the nodes Slurm shows out that lfleet did not drain.
    pub async fn drains(&self) -> Result<Vec<DrainRecord>, ApiError> {
        let ledger = self.store.drains()?;
        let slurm_view = match &self.drainer {
            Some(drainer) => drainer
                .lock()
                .await
                .slurm_nodes()
                .await
                .map_err(|e| ApiError::Unavailable(ErrorChain(&e).to_string()))?,
            None => Vec::new(),
        };
        let cutoff = self.now_ms() - DRAINS_SHOWN_MS;
        let mut drains: Vec<DrainRecord> = ledger
            .iter()
            .filter(|e| e.ended_ms.is_none_or(|t| t >= cutoff))
            .map(|entry| DrainRecord {
                node: entry.node.clone(),
                drain_id: entry.drain_id.clone(),
                reason: entry.reason.clone(),
                reason_time_unix: entry.drained_ms / 1000,
                reason_user: entry.reason_user.clone(),
                slurm_state: slurm_view
                    .iter()
                    .find(|n| n.name == entry.slurm_name)
                    .map(|n| n.state.join("+"))
                    .unwrap_or_default(),
                by_lfleet: true,
                status: if entry.ended_ms.is_none() {
                    "active".into()
                } else {
                    entry.end.clone()
                },
                check: entry.check.to_string(),
            })
            .collect();
        for node in slurm_view.iter().filter(|n| n.is_out()) {
            let ours = ledger
                .iter()
                .any(|e| e.ended_ms.is_none() && e.slurm_name == node.name);
            if !ours {
                drains.push(DrainRecord {
                    node: node.name.clone(),
                    drain_id: String::new(),
                    reason: node.reason.clone(),
                    reason_time_unix: 0,
                    reason_user: node.reason_user.clone(),
                    slurm_state: node.state.join("+"),
                    by_lfleet: false,
                    status: "not lfleet's".into(),
                    check: String::new(),
                });
            }
        }
        Ok(drains)
    }

    /// Lifts a drain lfleet made: `(lifted, message)`.
    pub async fn undrain(
        &self,
        node: &str,
        who: &str,
        note: &str,
    ) -> Result<(bool, String), ApiError> {
        let Some(drainer) = &self.drainer else {
            return Err(ApiError::FailedPrecondition(
                "Slurm drains are not enabled ([slurm] enabled = false)".into(),
            ));
        };
        let ledger = self.store.drains()?;
        let Some(entry) = ledger
            .iter()
            .find(|e| e.ended_ms.is_none() && e.node == node)
        else {
            return Ok((
                false,
                format!(
                    "lfleet has no drain on {node}; a drain someone else made is theirs to lift"
                ),
            ));
        };
        let lifted = drainer
            .lock()
            .await
            .undrain(entry, "manual-undrain")
            .await
            .map_err(|e| ApiError::Unavailable(ErrorChain(&e).to_string()))?;
        if lifted {
            self.record(
                Source::Operator,
                node,
                CoordinatorKind::ManualUndrain,
                format!("by {who}: {note}"),
            );
            Ok((true, format!("drain {} lifted", entry.drain_id)))
        } else {
            Ok((
                false,
                "Slurm no longer shows lfleet's drain (someone changed it); nothing written".into(),
            ))
        }
    }

    /// Incidents, or only the open ones.
    pub fn incidents(&self, open_only: bool) -> Result<Vec<IncidentView>, ApiError> {
        Ok(self
            .store
            .incidents()?
            .into_iter()
            .filter(|i| !open_only || i.closed_ms.is_none())
            .map(|i| IncidentView {
                id: i.id,
                check: i.check.to_string(),
                filesystem: i.subject,
                opened_unix_ms: i.opened_ms,
                closed_unix_ms: i.closed_ms,
                node_count: i.nodes.len() as u32,
                affected_nodes: i.nodes,
            })
            .collect())
    }

    /// Events since `since_ms`, the newest `limit` (100 when 0).
    pub fn list_events(&self, since_ms: i64, limit: u32) -> Result<Vec<FleetEvent>, ApiError> {
        let limit = if limit == 0 { 100 } else { limit };
        Ok(self
            .store
            .events(since_ms, limit)?
            .into_iter()
            .map(FleetEvent::from)
            .collect())
    }

    /// The policy in force (with the operator's switches).
    pub fn policy(&self) -> Policy {
        self.policy.effective()
    }

    /// Dry-run on or off for every check (`check` empty) or one.
    pub async fn set_dry_run(&self, check: &str, on: bool, who: &str) -> Result<Policy, ApiError> {
        let check: Option<CheckId> = if check.is_empty() {
            None
        } else {
            Some(
                check
                    .parse()
                    .map_err(|e: SpecError| ApiError::InvalidArgument(e.to_string()))?,
            )
        };
        let policy = self.policy.set_dry_run(check.as_ref(), on).await?;
        self.record(
            Source::Operator,
            "",
            CoordinatorKind::DryRun,
            format!(
                "{} {} by {who}",
                check.map_or("all checks".to_owned(), |c| c.to_string()),
                if on { "on" } else { "off" }
            ),
        );
        Ok(policy)
    }
}
