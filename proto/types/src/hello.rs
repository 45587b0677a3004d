//! [`AgentHello`]: what an agent says about itself when its session starts.
//!
//! Facts the node can know (distro, kernel, versions, the generation it runs) are taken as
//! reported. What would give the agent authority (its Slurm node name, role and nodearray) is
//! kept apart as [`AgentHello::claims`]: the coordinator decides those from enrollment, a
//! name mapping and its own records, and uses claims at most to notice a misconfigured node.

use serde::{Deserialize, Serialize};

use crate::{Generation, NodeName, Role};

/// What the agent believes it is in the cluster; evidence, never authority.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HelloClaims {
    pub slurm_node_name: String,
    pub role: Option<Role>,
    pub nodearray: String,
}

/// The first message of a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentHello {
    pub node_name: NodeName,
    pub claims: HelloClaims,
    /// `ubuntu-22.04`, `almalinux-9`, `azurelinux-3`.
    pub distro: String,
    pub kernel_release: String,
    pub agent_version: String,
    /// The platform's VM identity (Azure IMDS `vmId`), empty where there is none.
    pub vm_id: String,
    /// The Lustre client version installed and loaded, empty when none is.
    pub lustre_client_version: String,
    pub applied_generation: Generation,
}
