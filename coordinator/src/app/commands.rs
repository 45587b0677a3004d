//! Commands an operator sends one node's agent (reconcile now, remount an owned mount, probe
//! now): queued on the node's live session with an id the coordinator makes, recorded as a
//! `command-sent` event, and answered by the agent with a result recorded as a
//! `command-result` event whose detail starts with the id. A node with no session gets
//! nothing: a command is for now, it is never stored for later.

use std::sync::atomic::{AtomicU64, Ordering};

use lfleet_types::{AgentCommand, CommandOutcome, CommandRequest};

use super::{ApiError, Coordinator};
use crate::events::{CoordinatorKind, Source};
use crate::sessions::Outgoing;

/// Makes command ids unique within one coordinator run (with the time, across runs).
static NEXT_COMMAND: AtomicU64 = AtomicU64::new(1);

impl Coordinator {
    /// Queues `command` for `node`'s agent; the command's id.
    pub fn send_command(
        &self,
        node: &str,
        command: AgentCommand,
        who: &str,
    ) -> Result<String, ApiError> {
        if !self.fleet().nodes.contains_key(node) {
            return Err(ApiError::NotFound(format!("no node {node:?}")));
        }
        if !self.sessions.is_live(node) {
            return Err(ApiError::FailedPrecondition(format!(
                "{node} has no session now; a command is only sent to a connected agent"
            )));
        }
        let id = format!(
            "c{}-{}",
            self.now_ms(),
            NEXT_COMMAND.fetch_add(1, Ordering::Relaxed)
        );
        let text = command.to_string();
        let request = CommandRequest {
            id: id.clone(),
            command,
        };
        if !self.sessions.send(node, Outgoing::Command(request)) {
            return Err(ApiError::Unavailable(format!(
                "{node}'s session queue is full or closed; try again"
            )));
        }
        self.record(
            Source::Operator,
            node,
            CoordinatorKind::CommandSent,
            format!("{id} {text} by {who}"),
        );
        Ok(id)
    }

    /// An agent's answer to a command.
    pub fn on_command_result(&self, node: &str, outcome: CommandOutcome) {
        self.on_heard(node);
        self.record(
            Source::Agent,
            node,
            CoordinatorKind::CommandResult,
            format!(
                "{} {}: {}",
                outcome.id,
                if outcome.ok { "ok" } else { "failed" },
                outcome.message
            ),
        );
    }
}
