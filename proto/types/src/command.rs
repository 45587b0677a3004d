//! Commands an operator sends one agent through the coordinator ([`AgentCommand`], carried
//! with its id as a [`CommandRequest`]), and what the agent answers ([`CommandOutcome`]).
//!
//! Fields are only ever added to the wire form; an agent that receives a kind it does not
//! know refuses it (`unknown-command`), never guesses.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::MountPoint;

/// What an operator may ask of one agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case")]
pub enum AgentCommand {
    /// Run a reconcile pass now, retrying failed items without waiting for their schedule.
    ReconcileNow,
    /// Unmount and mount one mount the agent owns; refused for any other.
    Remount { mount_point: MountPoint },
    /// Run every health check once now and report.
    ProbeNow,
}

impl fmt::Display for AgentCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AgentCommand::ReconcileNow => f.write_str("reconcile"),
            AgentCommand::Remount { mount_point } => write!(f, "remount {}", mount_point.as_str()),
            AgentCommand::ProbeNow => f.write_str("probe"),
        }
    }
}

/// A command with the id the coordinator gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandRequest {
    pub id: String,
    pub command: AgentCommand,
}

/// The agent's answer once a command has run (or could not).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandOutcome {
    pub id: String,
    pub ok: bool,
    /// What happened, for people: the changes made, the checks that failed, or why it was
    /// refused.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_read_as_the_cli_spells_them() {
        let remount = AgentCommand::Remount {
            mount_point: "/lustre".parse().unwrap(),
        };
        assert_eq!(remount.to_string(), "remount /lustre");
        assert_eq!(AgentCommand::ReconcileNow.to_string(), "reconcile");
        assert_eq!(AgentCommand::ProbeNow.to_string(), "probe");
    }
}
