//! `osc/mdc/mgc.*.import` and `*.state` files.
//!
//! The import file is YAML-ish (`lprocfs_import_seq_show`) but values carry units (`6054
//! usec`) and 2.16+ quotes NIDs and adds a flow-map `nids_stats:` block, so it is read line by
//! line for the keys that matter; old kernels emitted NUL bytes, which are stripped. States:
//! CLOSED NEW DISCONN CONNECTING REPLAY REPLAY_LOCKS REPLAY_WAIT RECOVER FULL EVICTED IDLE.

use std::borrow::Cow;

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

/// `char::is_whitespace` for the ASCII characters.
fn ascii_space(byte: &u8) -> bool {
    matches!(byte, b'\t'..=b'\r' | b' ')
}

/// `str::trim_start`, by bytes when the whole text is ASCII (then the two agree).
fn trim_start(text: &str, ascii: bool) -> &str {
    if !ascii {
        return text.trim_start();
    }
    &text[text.bytes().take_while(ascii_space).count()..]
}

/// `str::trim_end`, by bytes when the whole text is ASCII.
fn trim_end(text: &str, ascii: bool) -> &str {
    if !ascii {
        return text.trim_end();
    }
    &text[..text.len() - text.bytes().rev().take_while(ascii_space).count()]
}

/// The lines of a text, as `str::lines` gives them for what this parser looks at (a `\r`
/// before the `\n` is left on, and trimmed with the rest of the line), found by a plain
/// byte scan: far cheaper than `str::lines` on short lines.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut start = 0;
    std::iter::from_fn(move || {
        if start >= text.len() {
            return None;
        }
        let end = text.as_bytes()[start..]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(text.len(), |at| start + at);
        let line = &text[start..end];
        start = end + 1;
        Some(line)
    })
}

/// Parses an import file.
///
/// Read every cycle for every OST, so it copies nothing it does not keep (the text is used
/// in place unless it has NUL bytes, and the section is a slice of it) and, for the ASCII
/// text the kernel writes, trims by bytes instead of by Unicode characters.
pub fn parse_import(text: &str) -> Result<Import, ParseError> {
    let text: Cow<'_, str> = if text.as_bytes().contains(&0) {
        Cow::Owned(text.replace('\0', ""))
    } else {
        Cow::Borrowed(text)
    };
    let ascii = text.is_ascii();
    let mut import = Import::default();
    let mut section = "";
    for raw in lines(&text) {
        let unindented = trim_start(raw, ascii);
        let indent = raw.len() - unindented.len();
        let line = trim_end(unindented, ascii);
        // ':' is ASCII, so its byte never sits inside another character.
        let Some(colon) = line.bytes().position(|b| b == b':') else {
            continue;
        };
        let key = trim_end(&line[..colon], ascii);
        let value = trim_start(&line[colon + 1..], ascii);
        if indent <= 4 && value.is_empty() {
            section = key;
            continue;
        }
        let first_number = || {
            value
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
        };
        match (section, key) {
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
