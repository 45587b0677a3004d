//! The dashboard's JSON, each built from the coordinator's domain functions and views
//! (`app`, the fleet under its lock) and reshaped for drawing; no rule of the fleet is
//! decided here.
//!
//! - [`fleet`]: compact, for the heatmap at 10,000 nodes: a node is its name, its group
//!   (nodearray), a letter for its health and a letter per check (the worst outcome over
//!   the check's subjects), nodes in natural name order.
//! - [`node`]: a node's detail with the coordinator's receive times, its throughput over
//!   the last hour, its drains beside Slurm's view, its kernels and reboot safety.
//! - [`filesystems`]: clients mounted and expected, throughput (total and top nodes), and
//!   import trouble per target with the nodes that see it.
//! - [`drains`]: lfleet's ledger beside Slurm's view, incidents and the policy in force.

use std::collections::{BTreeMap, BTreeSet};

use lfleet_types::fleet::{
    DrainRecord, FilesystemSummary, FilesystemThroughput, Health, IncidentView, MountThroughput,
    NodeDetail,
};
use lfleet_types::{CheckId, KnownCheck, Outcome};
use serde::Serialize;

use crate::app::{ApiError, Coordinator};
use crate::hostlist;
use crate::policy::Policy;

/// The busiest nodes shown per filesystem.
const TOP_NODES: usize = 10;

/// Node names listed per import-trouble row (all of them are in its host list).
const NAMES_LISTED: usize = 200;

/// The letter of a health in [`FleetView`].
pub fn health_letter(health: Health) -> char {
    match health {
        Health::Healthy => 'h',
        Health::Unhealthy => 'u',
        Health::Unknown => 'k',
        Health::Silent => 's',
        Health::PoweredDown => 'd',
    }
}

/// The letter of an outcome in [`FleetView`]; `-` is "not reported".
fn outcome_letter(outcome: Outcome) -> char {
    match outcome {
        Outcome::Pass => 'P',
        Outcome::Fail => 'F',
        Outcome::Unknown => 'U',
    }
}

/// Fail over unknown over pass: what a cell of a check shows.
fn worse(a: Outcome, b: Outcome) -> Outcome {
    let rank = |o| match o {
        Outcome::Pass => 0,
        Outcome::Unknown => 1,
        Outcome::Fail => 2,
    };
    if rank(b) > rank(a) { b } else { a }
}

/// Names compared the way people read them: `n2` before `n10`.
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn chunks(text: &str) -> impl Iterator<Item = (bool, &str)> {
        let mut rest = text;
        std::iter::from_fn(move || {
            let first = rest.chars().next()?;
            let digits = first.is_ascii_digit();
            let end = rest
                .find(|c: char| c.is_ascii_digit() != digits)
                .unwrap_or(rest.len());
            let (chunk, tail) = rest.split_at(end);
            rest = tail;
            Some((digits, chunk))
        })
    }
    let mut left = chunks(a);
    let mut right = chunks(b);
    loop {
        match (left.next(), right.next()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return std::cmp::Ordering::Less,
            (Some(_), None) => return std::cmp::Ordering::Greater,
            (Some((true, x)), Some((true, y))) => {
                let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
                let order = x.len().cmp(&y.len()).then_with(|| x.cmp(y));
                if order.is_ne() {
                    return order;
                }
            }
            (Some((_, x)), Some((_, y))) => {
                let order = x.cmp(y);
                if order.is_ne() {
                    return order;
                }
            }
        }
    }
}

// === fleet ===

/// The heatmap's data.
#[derive(Debug, Clone, Serialize)]
pub struct FleetView {
    pub generation: u64,
    /// Check names, in the agents' run order (known checks first, then others by name).
    pub checks: Vec<String>,
    /// Nodearrays (`""`: none).
    pub groups: Vec<String>,
    /// (name, group index, health letter, one outcome letter per check).
    pub nodes: Vec<(String, usize, char, String)>,
    pub by_health: BTreeMap<Health, usize>,
    pub incidents_open: Vec<IncidentView>,
    pub drains_active: usize,
    pub drains_enabled: bool,
    pub dry_run: bool,
}

/// The heatmap of every node.
pub fn fleet(coordinator: &Coordinator) -> Result<FleetView, ApiError> {
    let now = coordinator.now_ms();
    let (generation, checks, groups, mut nodes, by_health) = coordinator.with_fleet(|fleet| {
        // The agents' checks and the coordinator's own findings (`lustre.slow`).
        let seen: BTreeSet<&CheckId> = fleet
            .nodes
            .values()
            .flat_map(|n| n.conditions().map(|c| &c.check))
            .collect();
        let mut checks: Vec<&CheckId> = seen.into_iter().collect();
        // Known checks in registry order, then the others by name.
        checks.sort_by(|a, b| match (a.known(), b.known()) {
            (Some(x), Some(y)) => x.cmp(&y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => a.as_str().cmp(b.as_str()),
        });
        let index: BTreeMap<&CheckId, usize> =
            checks.iter().enumerate().map(|(i, c)| (*c, i)).collect();
        let groups: Vec<String> = fleet
            .nodes
            .values()
            .map(|n| n.identity.nodearray.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut by_health: BTreeMap<Health, usize> = Health::ALL.iter().map(|h| (*h, 0)).collect();
        let nodes: Vec<(String, usize, char, String)> = fleet
            .nodes
            .iter()
            .map(|(name, node)| {
                let health = node.health(now, fleet.silence_ms);
                *by_health.entry(health).or_default() += 1;
                let mut worst: Vec<Option<Outcome>> = vec![None; checks.len()];
                for condition in node.conditions() {
                    let slot = &mut worst[index[&condition.check]];
                    *slot = Some(slot.map_or(condition.outcome, |o| worse(o, condition.outcome)));
                }
                let letters: String = worst
                    .iter()
                    .map(|o| o.map_or('-', outcome_letter))
                    .collect();
                let group = groups
                    .binary_search(&node.identity.nodearray)
                    .unwrap_or_default();
                (name.clone(), group, health_letter(health), letters)
            })
            .collect();
        (
            fleet.generation.get(),
            checks.iter().map(|c| c.as_str().to_owned()).collect(),
            groups,
            nodes,
            by_health,
        )
    });
    nodes.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| natural_cmp(&a.0, &b.0)));
    let drains_active = coordinator
        .store()
        .drains()?
        .iter()
        .filter(|d| d.ended_ms.is_none())
        .count();
    let policy = coordinator.policy();
    Ok(FleetView {
        generation,
        checks,
        groups,
        nodes,
        by_health,
        incidents_open: coordinator.incidents(true)?,
        drains_active,
        drains_enabled: coordinator.drains_enabled(),
        dry_run: policy.dry_run,
    })
}

// === node ===

/// An installed kernel and whether it has a Lustre client (`lustre.client`).
#[derive(Debug, Clone, Serialize)]
pub struct KernelView {
    pub kernel: String,
    pub running: bool,
    /// `None`: not reported.
    pub outcome: Option<Outcome>,
    pub code: String,
    pub detail: String,
}

/// A node's page.
#[derive(Debug, Clone, Serialize)]
pub struct NodeView {
    pub detail: NodeDetail,
    /// Per condition of `detail`, in its order: when the coordinator first received its
    /// current outcome and code (the time windows and drains count from).
    pub received_since_unix_ms: Vec<Option<i64>>,
    pub throughput: Vec<MountThroughput>,
    /// lfleet's drains of the node (with Slurm's state now), and Slurm's own drains of it.
    pub drains: Vec<DrainRecord>,
    pub drains_error: Option<String>,
    pub drains_enabled: bool,
    pub kernels: Vec<KernelView>,
    /// `Some(true)`: every installed kernel has a Lustre client; `Some(false)`: a reboot may
    /// come up without Lustre; `None`: not known.
    pub reboot_safe: Option<bool>,
}

/// The kernels a node's `lustre.client` conditions name, the running one first.
fn kernels(detail: &NodeDetail) -> (Vec<KernelView>, Option<bool>) {
    let conditions = detail
        .summary
        .conditions
        .iter()
        .filter(|c| c.check == KnownCheck::LustreClient);
    let mut out = vec![KernelView {
        kernel: detail.summary.kernel_release.clone(),
        running: true,
        outcome: None,
        code: String::new(),
        detail: String::new(),
    }];
    for condition in conditions {
        let view = |kernel: String, running| KernelView {
            kernel,
            running,
            outcome: Some(condition.outcome),
            code: condition.code.clone(),
            detail: condition.detail.clone(),
        };
        match condition.subject.strip_prefix("kernel ") {
            Some(kernel) => out.push(view(kernel.to_owned(), false)),
            None if condition.subject == "client" => out[0] = view(out[0].kernel.clone(), true),
            None => out.push(view(condition.subject.clone(), false)),
        }
    }
    let others: Vec<&KernelView> = out.iter().filter(|k| !k.running).collect();
    let safe = if others
        .iter()
        .any(|k| k.outcome == Some(Outcome::Fail) && k.code == "reboot-unsafe")
    {
        Some(false)
    } else if out[0].outcome.is_none() || others.iter().any(|k| k.outcome != Some(Outcome::Pass)) {
        None
    } else {
        Some(true)
    };
    (out, safe)
}

/// lfleet's drains beside Slurm's view (`Coordinator::drains`), or why Slurm could not be
/// asked; what the node and drains pages show.
pub type SlurmView = Result<Vec<DrainRecord>, String>;

/// A node's page, or `NotFound`.
pub fn node(coordinator: &Coordinator, name: &str, slurm: SlurmView) -> Result<NodeView, ApiError> {
    let detail = coordinator.node_detail(name)?;
    let received_since_unix_ms = coordinator.with_fleet(|fleet| {
        detail
            .summary
            .conditions
            .iter()
            .map(|c| fleet.nodes.get(name).and_then(|n| n.received_since(c)))
            .collect()
    });
    let throughput = coordinator.node_throughput(name)?;
    let (drains, drains_error) = match slurm {
        Ok(drains) => (
            drains
                .into_iter()
                .filter(|d| d.node == name || d.node == detail.summary.slurm_node_name)
                .collect(),
            None,
        ),
        Err(error) => (Vec::new(), Some(error)),
    };
    let (kernels, reboot_safe) = kernels(&detail);
    Ok(NodeView {
        detail,
        received_since_unix_ms,
        throughput,
        drains,
        drains_error,
        drains_enabled: coordinator.drains_enabled(),
        kernels,
        reboot_safe,
    })
}

// === filesystems ===

/// One target in trouble on a filesystem: the nodes that see it in one import state.
#[derive(Debug, Clone, Serialize)]
pub struct TargetTrouble {
    pub target: String,
    pub state: String,
    pub node_count: usize,
    /// The first [`NAMES_LISTED`] nodes.
    pub nodes: Vec<String>,
    /// Every node, sinfo-style.
    pub hostlist: String,
}

/// A filesystem's page section.
#[derive(Debug, Clone, Serialize)]
pub struct FilesystemView {
    pub summary: FilesystemSummary,
    pub throughput: Option<FilesystemThroughput>,
    pub trouble: Vec<TargetTrouble>,
    /// Live nodes expected to mount it that do not, sinfo-style.
    pub not_mounted: String,
}

/// `lustre.imports` evidence, `lustrefs-OST0001 DISCONN, lustrefs-MDT0000 EVICTED`, as
/// (target, state) pairs; a device that could not be read is in state `unreadable`.
pub fn import_trouble(detail: &str) -> Vec<(String, String)> {
    detail
        .split(", ")
        .filter_map(|item| {
            if let Some((device, _)) = item.split_once(" unreadable (") {
                return Some((device.to_owned(), "unreadable".to_owned()));
            }
            let (target, state) = item.trim().rsplit_once(' ')?;
            Some((target.to_owned(), state.to_owned()))
        })
        .collect()
}

/// Every filesystem with its throughput and trouble.
pub fn filesystems(coordinator: &Coordinator) -> Vec<FilesystemView> {
    let now = coordinator.now_ms();
    let summaries = coordinator.filesystems(None);
    let mut throughput = coordinator.filesystem_throughput(TOP_NODES);
    let (trouble, not_mounted) = coordinator.with_fleet(|fleet| {
        let mut trouble: BTreeMap<(String, String, String), Vec<String>> = BTreeMap::new();
        let mut not_mounted: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for filesystem in &fleet.desired.filesystems {
            let point = filesystem.spec.mount_point.as_str();
            for (name, node) in &fleet.nodes {
                if !filesystem.applies_to(&node.identity)
                    || !node.is_live(now, fleet.silence_ms)
                    || node.is_resting(now, fleet.silence_ms)
                {
                    continue;
                }
                if !node.mounted(point, now, fleet.silence_ms) {
                    not_mounted
                        .entry(filesystem.name.clone())
                        .or_default()
                        .push(name.clone());
                }
                for condition in &node.status.conditions {
                    if condition.check == KnownCheck::LustreImports
                        && condition.subject == point
                        && condition.outcome == Outcome::Fail
                    {
                        for (target, state) in import_trouble(&condition.detail) {
                            trouble
                                .entry((filesystem.name.clone(), target, state))
                                .or_default()
                                .push(name.clone());
                        }
                    }
                }
            }
        }
        (trouble, not_mounted)
    });
    summaries
        .into_iter()
        .map(|summary| {
            let index = throughput.iter().position(|t| t.name == summary.name);
            let rows = trouble
                .iter()
                .filter(|((fs, _, _), _)| *fs == summary.name)
                .map(|((_, target, state), nodes)| {
                    let mut nodes = nodes.clone();
                    nodes.sort_by(|a, b| natural_cmp(a, b));
                    TargetTrouble {
                        target: target.clone(),
                        state: state.clone(),
                        node_count: nodes.len(),
                        hostlist: hostlist::compress(&nodes),
                        nodes: nodes.into_iter().take(NAMES_LISTED).collect(),
                    }
                })
                .collect();
            FilesystemView {
                not_mounted: not_mounted
                    .get(&summary.name)
                    .map(|names| hostlist::compress(names))
                    .unwrap_or_default(),
                throughput: index.map(|i| throughput.swap_remove(i)),
                trouble: rows,
                summary,
            }
        })
        .collect()
}

// === drains ===

/// The drains page: the ledger beside Slurm, incidents, the policy.
#[derive(Debug, Clone, Serialize)]
pub struct DrainsView {
    pub drains_enabled: bool,
    pub drains: Vec<DrainRecord>,
    /// Slurm could not be asked (the ledger alone is not shown as if it were the truth).
    pub drains_error: Option<String>,
    pub incidents: Vec<IncidentView>,
    pub policy: Policy,
}

/// Incidents shown (the newest).
const INCIDENTS_SHOWN: usize = 200;

pub fn drains(coordinator: &Coordinator, slurm: SlurmView) -> Result<DrainsView, ApiError> {
    let (drains, drains_error) = match slurm {
        Ok(drains) => (drains, None),
        Err(error) => (Vec::new(), Some(error)),
    };
    let mut incidents = coordinator.incidents(false)?;
    incidents.sort_by_key(|incident| std::cmp::Reverse(incident.opened_unix_ms));
    incidents.truncate(INCIDENTS_SHOWN);
    Ok(DrainsView {
        drains_enabled: coordinator.drains_enabled(),
        drains,
        drains_error,
        incidents,
        policy: coordinator.policy(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_the_way_people_read_them() {
        let mut names = vec!["n10", "n2", "gpu-01", "n1", "gpu-2", "n02x", "a"];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(names, ["a", "gpu-01", "gpu-2", "n1", "n2", "n02x", "n10"]);
    }

    #[test]
    fn import_evidence_splits_into_targets_and_states() {
        assert_eq!(
            import_trouble("lustrefs-OST0001 DISCONN, lustrefs-MDT0000 EVICTED"),
            vec![
                ("lustrefs-OST0001".to_owned(), "DISCONN".to_owned()),
                ("lustrefs-MDT0000".to_owned(), "EVICTED".to_owned()),
            ]
        );
        assert_eq!(
            import_trouble(
                "lustrefs-OST0002-osc-ffff unreadable (Permission denied (os error 13))"
            ),
            vec![(
                "lustrefs-OST0002-osc-ffff".to_owned(),
                "unreadable".to_owned()
            )]
        );
        assert!(import_trouble("").is_empty());
    }

    #[test]
    fn a_cell_shows_the_worst_outcome() {
        assert_eq!(worse(Outcome::Pass, Outcome::Unknown), Outcome::Unknown);
        assert_eq!(worse(Outcome::Fail, Outcome::Unknown), Outcome::Fail);
        assert_eq!(worse(Outcome::Unknown, Outcome::Pass), Outcome::Unknown);
    }
}
