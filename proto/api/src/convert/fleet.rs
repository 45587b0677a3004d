//! Operator views (FleetService answers), domain to wire and back: node summaries and
//! details, filesystems, drains, incidents, events, upgrades. The coordinator builds the domain views;
//! the CLI turns what it receives back into them and prints them (`--json` is their serde
//! form). Text from the wire is bounded and escaped like an agent's ([`agent_text`]): the
//! CLI prints it on an operator's terminal.

use lfleet_types::fleet::{
    DrainRecord, FilesystemSummary, FleetEvent, Health, IncidentView, MountState, NodeDetail,
    NodeSummary, TargetState, UpgradeNodeView, UpgradeSkip, UpgradeView,
};
use lfleet_types::{Condition, ItemResult, SpecError};

use super::agent_text;
use super::report::{MAX_DETAIL_BYTES, MAX_NAME_BYTES, role_from_wire, role_to_wire};
use crate::v1;

fn name(text: &str) -> String {
    agent_text(text, MAX_NAME_BYTES)
}

fn detail(text: &str) -> String {
    agent_text(text, MAX_DETAIL_BYTES)
}

pub fn health_to_wire(health: Health) -> i32 {
    (match health {
        Health::Healthy => v1::Health::Healthy,
        Health::Unhealthy => v1::Health::Unhealthy,
        Health::Unknown => v1::Health::Unknown,
        Health::Silent => v1::Health::Silent,
        Health::PoweredDown => v1::Health::PoweredDown,
    }) as i32
}

/// A health this build does not know reads as Unknown.
pub fn health_from_wire(health: i32) -> Health {
    match v1::Health::try_from(health) {
        Ok(v1::Health::Healthy) => Health::Healthy,
        Ok(v1::Health::Unhealthy) => Health::Unhealthy,
        Ok(v1::Health::Silent) => Health::Silent,
        Ok(v1::Health::PoweredDown) => Health::PoweredDown,
        Ok(v1::Health::Unknown) | Ok(v1::Health::Unspecified) | Err(_) => Health::Unknown,
    }
}

impl From<&MountState> for v1::MountState {
    fn from(mount: &MountState) -> v1::MountState {
        v1::MountState {
            mount_point: mount.mount_point.clone(),
            source: mount.source.clone(),
            mounted: mount.mounted,
            read_bytes_per_second: mount.read_bytes_per_second.unwrap_or(0.0),
            write_bytes_per_second: mount.write_bytes_per_second.unwrap_or(0.0),
            throughput_unknown: mount.read_bytes_per_second.is_none()
                || mount.write_bytes_per_second.is_none(),
        }
    }
}

impl From<&v1::MountState> for MountState {
    fn from(wire: &v1::MountState) -> MountState {
        let known = |value: f64| (!wire.throughput_unknown).then_some(value);
        MountState {
            mount_point: name(&wire.mount_point),
            source: name(&wire.source),
            mounted: wire.mounted,
            read_bytes_per_second: known(wire.read_bytes_per_second),
            write_bytes_per_second: known(wire.write_bytes_per_second),
        }
    }
}

impl From<&NodeSummary> for v1::NodeSummary {
    fn from(node: &NodeSummary) -> v1::NodeSummary {
        v1::NodeSummary {
            node_name: node.name.clone(),
            last_seen_unix_ms: node.last_seen_unix_ms,
            agent_version: node.agent_version.clone(),
            kernel_release: node.kernel_release.clone(),
            applied_generation: node.applied_generation,
            desired_generation: node.desired_generation,
            health: health_to_wire(node.health),
            conditions: node.conditions.iter().map(v1::Condition::from).collect(),
            mounts: node.mounts.iter().map(v1::MountState::from).collect(),
            connected: node.connected,
            role: role_to_wire(node.role),
            slurm_node_name: node.slurm_node_name.clone(),
            nodearray: node.nodearray.clone(),
        }
    }
}

impl TryFrom<&v1::NodeSummary> for NodeSummary {
    type Error = SpecError;

    fn try_from(wire: &v1::NodeSummary) -> Result<NodeSummary, SpecError> {
        Ok(NodeSummary {
            name: name(&wire.node_name),
            health: health_from_wire(wire.health),
            connected: wire.connected,
            last_seen_unix_ms: wire.last_seen_unix_ms,
            agent_version: name(&wire.agent_version),
            kernel_release: name(&wire.kernel_release),
            applied_generation: wire.applied_generation,
            desired_generation: wire.desired_generation,
            conditions: wire
                .conditions
                .iter()
                .map(Condition::try_from)
                .collect::<Result<_, _>>()?,
            mounts: wire.mounts.iter().map(MountState::from).collect(),
            role: role_from_wire(wire.role),
            slurm_node_name: name(&wire.slurm_node_name),
            nodearray: name(&wire.nodearray),
        })
    }
}

impl From<&FleetEvent> for v1::FleetEvent {
    fn from(event: &FleetEvent) -> v1::FleetEvent {
        v1::FleetEvent {
            at_unix_ms: event.at_unix_ms,
            node_name: event.node.clone(),
            kind: event.kind.clone(),
            detail: event.detail.clone(),
            source: event.source.clone(),
        }
    }
}

impl From<&v1::FleetEvent> for FleetEvent {
    fn from(wire: &v1::FleetEvent) -> FleetEvent {
        FleetEvent {
            at_unix_ms: wire.at_unix_ms,
            node: name(&wire.node_name),
            source: name(&wire.source),
            kind: name(&wire.kind),
            detail: detail(&wire.detail),
        }
    }
}

impl From<&NodeDetail> for v1::NodeDetail {
    fn from(node: &NodeDetail) -> v1::NodeDetail {
        v1::NodeDetail {
            summary: Some(v1::NodeSummary::from(&node.summary)),
            items: node.items.iter().map(v1::ItemResult::from).collect(),
            recent_events: Vec::new(),
            distro: node.distro.clone(),
            lustre_client_version: node.lustre_client_version.clone(),
            events: node.events.iter().map(v1::FleetEvent::from).collect(),
            reconcile_status: super::report::reconcile_to_wire(node.reconcile),
            next_retry_unix_ms: node.next_retry_unix_ms.unwrap_or(0).max(0),
        }
    }
}

impl TryFrom<&v1::NodeDetail> for NodeDetail {
    type Error = SpecError;

    fn try_from(wire: &v1::NodeDetail) -> Result<NodeDetail, SpecError> {
        let summary = wire
            .summary
            .as_ref()
            .ok_or_else(|| SpecError::new("summary", "", "is missing"))?;
        Ok(NodeDetail {
            summary: NodeSummary::try_from(summary)?,
            distro: name(&wire.distro),
            lustre_client_version: name(&wire.lustre_client_version),
            reconcile: super::report::reconcile_from_wire(wire.reconcile_status),
            next_retry_unix_ms: (wire.next_retry_unix_ms > 0).then_some(wire.next_retry_unix_ms),
            items: wire.items.iter().map(ItemResult::from).collect(),
            events: wire.events.iter().map(FleetEvent::from).collect(),
        })
    }
}

impl From<&FilesystemSummary> for v1::FilesystemSummary {
    fn from(fs: &FilesystemSummary) -> v1::FilesystemSummary {
        v1::FilesystemSummary {
            name: fs.name.clone(),
            source: fs.source.clone(),
            mount_point: fs.mount_point.clone(),
            clients_expected: fs.clients_expected,
            clients_mounted: fs.clients_mounted,
            targets: fs
                .targets
                .iter()
                .map(|t| v1::TargetState {
                    target: t.target.clone(),
                    nodes_by_state: t.nodes_by_state.clone().into_iter().collect(),
                })
                .collect(),
            read_bytes_per_second: fs.read_bytes_per_second,
            write_bytes_per_second: fs.write_bytes_per_second,
        }
    }
}

impl From<&v1::FilesystemSummary> for FilesystemSummary {
    fn from(wire: &v1::FilesystemSummary) -> FilesystemSummary {
        FilesystemSummary {
            name: name(&wire.name),
            source: name(&wire.source),
            mount_point: name(&wire.mount_point),
            clients_expected: wire.clients_expected,
            clients_mounted: wire.clients_mounted,
            targets: wire
                .targets
                .iter()
                .map(|t| TargetState {
                    target: name(&t.target),
                    nodes_by_state: t
                        .nodes_by_state
                        .iter()
                        .map(|(state, count)| (name(state), *count))
                        .collect(),
                })
                .collect(),
            read_bytes_per_second: wire.read_bytes_per_second,
            write_bytes_per_second: wire.write_bytes_per_second,
        }
    }
}

impl From<&DrainRecord> for v1::DrainRecord {
    fn from(drain: &DrainRecord) -> v1::DrainRecord {
        v1::DrainRecord {
            node_name: drain.node.clone(),
            drain_id: drain.drain_id.clone(),
            reason: drain.reason.clone(),
            reason_time_unix: drain.reason_time_unix,
            reason_user: drain.reason_user.clone(),
            slurm_state: drain.slurm_state.clone(),
            by_lfleet: drain.by_lfleet,
            status: drain.status.clone(),
            check: drain.check.clone(),
        }
    }
}

impl From<&v1::DrainRecord> for DrainRecord {
    fn from(wire: &v1::DrainRecord) -> DrainRecord {
        DrainRecord {
            node: name(&wire.node_name),
            drain_id: name(&wire.drain_id),
            reason: detail(&wire.reason),
            reason_time_unix: wire.reason_time_unix,
            reason_user: name(&wire.reason_user),
            slurm_state: name(&wire.slurm_state),
            by_lfleet: wire.by_lfleet,
            status: name(&wire.status),
            check: name(&wire.check),
        }
    }
}

impl From<&IncidentView> for v1::Incident {
    fn from(incident: &IncidentView) -> v1::Incident {
        v1::Incident {
            id: incident.id.clone(),
            check: incident.check.clone(),
            filesystem: incident.filesystem.clone(),
            opened_unix_ms: incident.opened_unix_ms,
            closed_unix_ms: incident.closed_unix_ms.unwrap_or(0),
            node_count: incident.node_count,
            affected_nodes: incident.affected_nodes.clone(),
        }
    }
}

impl From<&v1::Incident> for IncidentView {
    fn from(wire: &v1::Incident) -> IncidentView {
        IncidentView {
            id: name(&wire.id),
            check: name(&wire.check),
            filesystem: name(&wire.filesystem),
            opened_unix_ms: wire.opened_unix_ms,
            closed_unix_ms: (wire.closed_unix_ms != 0).then_some(wire.closed_unix_ms),
            node_count: wire.node_count,
            affected_nodes: wire.affected_nodes.iter().map(|n| name(n)).collect(),
        }
    }
}

impl From<&UpgradeView> for v1::Upgrade {
    fn from(view: &UpgradeView) -> v1::Upgrade {
        v1::Upgrade {
            id: view.id.clone(),
            client: view.client.clone(),
            state: view.state.clone(),
            state_detail: view.state_detail.clone(),
            wave_size: view.wave_size,
            waves: view.waves,
            max_failures: view.max_failures,
            failures: view.failures,
            started_unix_ms: view.started_unix_ms,
            nodes: view
                .nodes
                .iter()
                .map(|n| v1::UpgradeNode {
                    name: n.name.clone(),
                    wave: n.wave,
                    step: n.step.clone(),
                    detail: n.detail.clone(),
                    since_unix_ms: n.since_unix_ms,
                })
                .collect(),
            skipped: view
                .skipped
                .iter()
                .map(|s| v1::UpgradeSkip {
                    name: s.name.clone(),
                    why: s.why.clone(),
                })
                .collect(),
        }
    }
}

impl From<&v1::Upgrade> for UpgradeView {
    fn from(wire: &v1::Upgrade) -> UpgradeView {
        UpgradeView {
            id: name(&wire.id),
            client: name(&wire.client),
            state: name(&wire.state),
            state_detail: detail(&wire.state_detail),
            wave_size: wire.wave_size,
            waves: wire.waves,
            max_failures: wire.max_failures,
            failures: wire.failures,
            started_unix_ms: wire.started_unix_ms,
            nodes: wire
                .nodes
                .iter()
                .map(|n| UpgradeNodeView {
                    name: name(&n.name),
                    wave: n.wave,
                    step: name(&n.step),
                    detail: detail(&n.detail),
                    since_unix_ms: n.since_unix_ms,
                })
                .collect(),
            skipped: wire
                .skipped
                .iter()
                .map(|s| UpgradeSkip {
                    name: name(&s.name),
                    why: detail(&s.why),
                })
                .collect(),
        }
    }
}
