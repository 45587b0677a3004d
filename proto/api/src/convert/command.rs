//! Operator commands to one agent, domain to wire and back: [`CommandRequest`] and the
//! agent's [`CommandOutcome`]. A command with no kind (a kind this build does not know) is
//! refused with a `SpecError` naming `command.kind`; the agent answers it `unknown-command`.

use lfleet_types::{AgentCommand, CommandOutcome, CommandRequest, SpecError};

use super::report::agent_text;
use crate::v1;

/// The most bytes of a command result's message kept from an agent.
const MAX_MESSAGE_BYTES: usize = 4096;

impl TryFrom<&v1::Command> for CommandRequest {
    type Error = SpecError;

    fn try_from(wire: &v1::Command) -> Result<CommandRequest, SpecError> {
        use v1::command::Kind;
        let command = match &wire.kind {
            Some(Kind::ReconcileNow(_)) => AgentCommand::ReconcileNow,
            Some(Kind::ProbeNow(_)) => AgentCommand::ProbeNow,
            Some(Kind::Remount(remount)) => AgentCommand::Remount {
                mount_point: remount
                    .mount_point
                    .parse()
                    .map_err(|e: SpecError| e.within("command.remount"))?,
            },
            None => {
                return Err(SpecError::new(
                    "command.kind",
                    "",
                    "is missing or a kind this agent does not know",
                ));
            }
        };
        Ok(CommandRequest {
            id: agent_text(&wire.id, 128),
            command,
        })
    }
}

impl From<&CommandRequest> for v1::Command {
    fn from(request: &CommandRequest) -> v1::Command {
        use v1::command::Kind;
        v1::Command {
            id: request.id.clone(),
            kind: Some(match &request.command {
                AgentCommand::ReconcileNow => Kind::ReconcileNow(v1::ReconcileNow {}),
                AgentCommand::ProbeNow => Kind::ProbeNow(v1::ProbeNow {}),
                AgentCommand::Remount { mount_point } => Kind::Remount(v1::Remount {
                    mount_point: mount_point.as_str().to_owned(),
                }),
            }),
        }
    }
}

impl From<&v1::CommandResult> for CommandOutcome {
    fn from(wire: &v1::CommandResult) -> CommandOutcome {
        CommandOutcome {
            id: agent_text(&wire.command_id, 128),
            ok: wire.ok,
            message: agent_text(&wire.message, MAX_MESSAGE_BYTES),
        }
    }
}

impl From<&CommandOutcome> for v1::CommandResult {
    fn from(outcome: &CommandOutcome) -> v1::CommandResult {
        v1::CommandResult {
            command_id: outcome.id.clone(),
            ok: outcome.ok,
            message: outcome.message.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_goes_to_the_wire_and_back() {
        for command in [
            AgentCommand::ReconcileNow,
            AgentCommand::ProbeNow,
            AgentCommand::Remount {
                mount_point: "/lustre".parse().unwrap(),
            },
        ] {
            let request = CommandRequest {
                id: "c-7".into(),
                command,
            };
            let wire = v1::Command::from(&request);
            assert_eq!(CommandRequest::try_from(&wire).unwrap(), request);
        }
    }

    #[test]
    fn an_unknown_kind_or_a_bad_mount_point_is_refused_naming_the_field() {
        let unknown = v1::Command {
            id: "c-1".into(),
            kind: None,
        };
        assert_eq!(
            CommandRequest::try_from(&unknown).unwrap_err().field,
            "command.kind"
        );
        let bad = v1::Command {
            id: "c-2".into(),
            kind: Some(v1::command::Kind::Remount(v1::Remount {
                mount_point: "/etc".into(),
            })),
        };
        assert!(
            CommandRequest::try_from(&bad)
                .unwrap_err()
                .field
                .starts_with("command.remount.")
        );
    }

    #[test]
    fn an_agents_message_is_bounded_and_escaped() {
        let wire = v1::CommandResult {
            command_id: "c-3".into(),
            ok: false,
            message: format!("\u{1b}[31m{}", "x".repeat(10_000)),
        };
        let outcome = CommandOutcome::from(&wire);
        assert!(
            outcome.message.len() <= MAX_MESSAGE_BYTES + 8,
            "{}",
            outcome.message.len()
        );
        assert!(!outcome.message.contains('\u{1b}'));
    }
}
