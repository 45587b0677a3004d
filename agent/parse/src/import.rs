//! `osc/mdc/mgc.*.import` and `*.state` files.
//!
//! The import file is YAML-ish (`lprocfs_import_seq_show`) but values carry units (`6054
//! usec`) and 2.16+ quotes NIDs and adds a flow-map `nids_stats:` block, so it is read line by
//! line for the keys that matter; old kernels emitted NUL bytes, which are stripped. States:
//! CLOSED NEW DISCONN CONNECTING REPLAY REPLAY_LOCKS REPLAY_WAIT RECOVER FULL EVICTED IDLE.

use crate::ParseError;

/// What an import file says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Import {
    pub name: String,
    pub target: String,
    pub state: String,
    pub current_connection: Option<String>,
    pub failover_nids: Vec<String>,
    pub connection_attempts: Option<u64>,
    pub generation: Option<u64>,
    /// Seconds idle (2.12+); None on older clients.
    pub idle_seconds: Option<u64>,
    pub rpc_timeouts: Option<u64>,
}

impl Import {
    /// FULL and IDLE (an idle-disconnected OSC) are healthy.
    pub fn is_healthy(&self) -> bool {
        self.state == "FULL" || self.state == "IDLE"
    }
}

fn unquote(value: &str) -> String {
    value.trim().trim_matches('"').to_owned()
}

/// Parses an import file.
pub fn parse_import(text: &str) -> Result<Import, ParseError> {
    let text = text.replace('\0', "");
    let mut import = Import::default();
    let mut section = String::new();
    for raw in text.lines() {
        let indent = raw.len() - raw.trim_start().len();
        let line = raw.trim();
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        if indent <= 4 && value.is_empty() {
            section = key.to_owned();
            continue;
        }
        let first_number = || {
            value
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
        };
        match (section.as_str(), key) {
            (_, "name") if indent == 4 => import.name = value.to_owned(),
            (_, "target") if indent == 4 => import.target = value.to_owned(),
            (_, "state") if indent == 4 => import.state = value.to_owned(),
            ("connection", "current_connection") => {
                import.current_connection = Some(unquote(value))
            }
            ("connection", "failover_nids") => {
                import.failover_nids = value
                    .trim_matches(['[', ']'])
                    .split(',')
                    .map(unquote)
                    .filter(|n| !n.is_empty())
                    .collect()
            }
            ("connection", "connection_attempts") => import.connection_attempts = first_number(),
            ("connection", "generation") => import.generation = first_number(),
            ("connection", "idle") => import.idle_seconds = first_number(),
            ("rpcs", "timeouts") => import.rpc_timeouts = first_number(),
            _ => {}
        }
    }
    if import.state.is_empty() {
        return Err(ParseError::new(
            1,
            "no `state:` line in the import file",
            text.lines().next().unwrap_or(""),
        ));
    }
    Ok(import)
}

/// A `*.state` file: the current state and the recent transitions, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImportState {
    pub current: String,
    /// (epoch seconds, state).
    pub history: Vec<(u64, String)>,
}

/// Parses `current_state: FULL` then `state_history:` lines ` - [ <epoch>, <STATE> ]`.
pub fn parse_state(text: &str) -> Result<ImportState, ParseError> {
    let mut state = ImportState::default();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if let Some(current) = line.strip_prefix("current_state:") {
            state.current = current.trim().to_owned();
        } else if let Some(entry) = line.strip_prefix("- [") {
            let entry = entry.trim_end_matches(']');
            let (epoch, name) = entry.split_once(',').ok_or_else(|| {
                ParseError::new(index + 1, "a history entry without `epoch, STATE`", raw)
            })?;
            let epoch = epoch.trim().parse().map_err(|_| {
                ParseError::new(index + 1, "a history epoch that is not a number", raw)
            })?;
            state.history.push((epoch, name.trim().to_owned()));
        }
    }
    if state.current.is_empty() {
        return Err(ParseError::new(
            1,
            "no `current_state:` line",
            text.lines().next().unwrap_or(""),
        ));
    }
    Ok(state)
}
