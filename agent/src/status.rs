//! The running agent's last check results, for Slurm's HealthCheckProgram and NHC.
//!
//! After every check run the daemon replaces `/run/lfleet/agent-status.json` atomically
//! ([`write`]): when it was written, the check interval, and every result; a run whose
//! results are the ones already in the file only sets the file's modification time, which
//! [`read`] takes as the time the results were last confirmed. `lfleet-agent
//! status` ([`judge`]) reads that file and runs no check, so it answers at once even while a
//! mount hangs. Its verdict: `Healthy` (exit 0), `Unhealthy` (exit 1: a required check
//! failed with a code that is not ignored, by default the coordinator's default policy for
//! compute nodes), `Unknown` (exit 2: no results, or results older than three check
//! intervals; an agent that is not running is not proof of a sick node).
//!
//! Entry points: [`write`], [`read`], [`judge`], [`Verdict`].

use std::time::Duration;

use lfleet_host::{HostError, HostRoot};
use serde::{Deserialize, Serialize};

use crate::checks::CheckResult;

/// Where the daemon keeps its last results (under the node's root).
pub const STATUS_PATH: &str = "run/lfleet/agent-status.json";

/// The checks that make a node unhealthy by default: the coordinator's default `required`
/// for compute nodes.
pub const DEFAULT_REQUIRED: [&str; 4] = [
    "mount.present",
    "mount.responsive",
    "lustre.imports",
    "lustre.lbug",
];

/// Failure codes that never make a node unhealthy by default (the coordinator's default).
pub const DEFAULT_IGNORED_CODES: [&str; 1] = ["reboot-unsafe"];

/// One result as the status file keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusResult {
    pub check: String,
    pub subject: String,
    pub outcome: lfleet_types::Outcome,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub code: String,
    /// The failure's detail or the unknown's error.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// The status file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusFile {
    /// When the results were written; as [`read`] gives it, the later of that and the file's
    /// modification time (a run with the same results only touches the file).
    pub written_unix_ms: u64,
    pub check_interval_ms: u64,
    pub agent_version: String,
    pub results: Vec<StatusResult>,
}

impl StatusResult {
    fn from_result(result: &CheckResult) -> StatusResult {
        StatusResult {
            check: result.check.as_str().to_owned(),
            subject: result.subject.clone(),
            outcome: result.outcome,
            code: result.code.clone(),
            detail: result.detail.clone(),
        }
    }
}

/// Records this run's results: when they are the ones `last` wrote, only the file's
/// modification time is set to now (one syscall); otherwise the file is replaced (write,
/// rename; no fsync: it lives in /run and is written again next round), its time set to now,
/// and `last` updated.
pub fn write(
    host: &HostRoot,
    results: &[CheckResult],
    check_interval: Duration,
    now_unix_ms: u64,
    last: &mut Option<StatusFile>,
) -> Result<(), HostError> {
    let file = StatusFile {
        written_unix_ms: now_unix_ms,
        check_interval_ms: check_interval.as_millis() as u64,
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        results: results.iter().map(StatusResult::from_result).collect(),
    };
    let same = last.as_ref().is_some_and(|last| {
        last.results == file.results && last.check_interval_ms == file.check_interval_ms
    });
    // A file removed or unreadable since is written again.
    if same && host.touch(STATUS_PATH, now_unix_ms).is_ok() {
        return Ok(());
    }
    *last = None;
    let mut text = serde_json::to_string(&file).expect("the status serializes");
    text.push('\n');
    host.create_dir_all("run/lfleet", 0o755)?;
    host.replace_volatile(STATUS_PATH, text.as_bytes(), 0o644)?;
    host.touch(STATUS_PATH, now_unix_ms)?;
    *last = Some(file);
    Ok(())
}

/// The status file, if there is one; a file that does not parse is an error string.
pub fn read(host: &HostRoot) -> Result<Option<StatusFile>, String> {
    let text = host
        .read_optional(STATUS_PATH)
        .map_err(|e| lfleet_types::ErrorChain(&e).to_string())?;
    let Some(text) = text else {
        return Ok(None);
    };
    let mut file: StatusFile =
        serde_json::from_str(&text).map_err(|e| format!("/{STATUS_PATH} does not parse: {e}"))?;
    if let Ok(Some(touched)) = host.modified_unix_ms(STATUS_PATH) {
        file.written_unix_ms = file.written_unix_ms.max(touched);
    }
    Ok(Some(file))
}

/// What `lfleet-agent status` concludes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Healthy,
    /// One line per failure that makes the node unhealthy.
    Unhealthy(Vec<String>),
    Unknown(String),
}

impl Verdict {
    pub fn exit_code(&self) -> u8 {
        match self {
            Verdict::Healthy => 0,
            Verdict::Unhealthy(_) => 1,
            Verdict::Unknown(_) => 2,
        }
    }
}

/// Judges the last results at `now_unix_ms`: `required` checks failing with a code not in
/// `ignored` make the node unhealthy; no file, or one older than three check intervals (at
/// least 30 s), is unknown.
pub fn judge(
    file: Option<&StatusFile>,
    now_unix_ms: u64,
    required: &[String],
    ignored: &[String],
) -> Verdict {
    let Some(file) = file else {
        return Verdict::Unknown(format!(
            "no check results in /{STATUS_PATH}: is lfleet-agent running?"
        ));
    };
    let age_ms = now_unix_ms.saturating_sub(file.written_unix_ms);
    let limit_ms = (3 * file.check_interval_ms).max(30_000);
    if age_ms > limit_ms {
        return Verdict::Unknown(format!(
            "the last check results are {} s old (limit {} s): is lfleet-agent stuck?",
            age_ms / 1000,
            limit_ms / 1000
        ));
    }
    let failures: Vec<String> = file
        .results
        .iter()
        .filter(|r| r.outcome == lfleet_types::Outcome::Fail)
        .filter(|r| required.contains(&r.check))
        .filter(|r| !ignored.contains(&r.code))
        .map(|r| format!("{} {} {}: {}", r.check, r.subject, r.code, r.detail))
        .collect();
    if failures.is_empty() {
        Verdict::Healthy
    } else {
        Verdict::Unhealthy(failures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(written: u64, results: Vec<StatusResult>) -> StatusFile {
        StatusFile {
            written_unix_ms: written,
            check_interval_ms: 10_000,
            agent_version: "0".into(),
            results,
        }
    }

    fn result(check: &str, outcome: &str, code: &str) -> StatusResult {
        StatusResult {
            check: check.into(),
            subject: "/lustre".into(),
            outcome: serde_json::from_value(serde_json::json!(outcome)).unwrap(),
            code: code.into(),
            detail: "why".into(),
        }
    }

    fn defaults() -> (Vec<String>, Vec<String>) {
        (
            DEFAULT_REQUIRED.map(String::from).to_vec(),
            DEFAULT_IGNORED_CODES.map(String::from).to_vec(),
        )
    }

    #[test]
    fn required_failures_are_unhealthy_and_others_are_not() {
        let (required, ignored) = defaults();
        let sick = file(
            1_000_000,
            vec![
                result("mount.present", "fail", "not-mounted"),
                result("ib.ports", "fail", "port-down"),
            ],
        );
        assert_eq!(
            judge(Some(&sick), 1_005_000, &required, &ignored),
            Verdict::Unhealthy(vec!["mount.present /lustre not-mounted: why".into()])
        );
        let only_optional = file(1_000_000, vec![result("ib.ports", "fail", "port-down")]);
        assert_eq!(
            judge(Some(&only_optional), 1_005_000, &required, &ignored),
            Verdict::Healthy
        );
        let ignored_code = file(
            1_000_000,
            vec![result("lustre.imports", "fail", "reboot-unsafe")],
        );
        assert_eq!(
            judge(Some(&ignored_code), 1_005_000, &required, &ignored),
            Verdict::Healthy
        );
        let unknown = file(1_000_000, vec![result("mount.responsive", "unknown", "")]);
        assert_eq!(
            judge(Some(&unknown), 1_005_000, &required, &ignored),
            Verdict::Healthy
        );
    }

    #[test]
    fn missing_or_stale_results_are_unknown_never_unhealthy() {
        let (required, ignored) = defaults();
        assert_eq!(judge(None, 0, &required, &ignored).exit_code(), 2);
        let old = file(1_000_000, vec![result("mount.present", "fail", "x")]);
        // Three 10 s intervals is 30 s: 29 s old still counts, 31 s old does not.
        assert_eq!(
            judge(Some(&old), 1_029_000, &required, &ignored).exit_code(),
            1
        );
        assert_eq!(
            judge(Some(&old), 1_031_000, &required, &ignored).exit_code(),
            2
        );
    }

    #[test]
    fn the_file_written_is_the_file_read() {
        let dir = tempfile::tempdir().unwrap();
        let host = HostRoot::new(dir.path());
        let results = vec![CheckResult::new(
            lfleet_types::KnownCheck::MountPresent,
            "/lustre",
            crate::checks::Verdict::Fail {
                code: "not-mounted".into(),
                detail: "absent from mountinfo".into(),
            },
            5,
        )];
        let mut last = None;
        write(&host, &results, Duration::from_secs(10), 1_000, &mut last).unwrap();
        let back = read(&host).unwrap().unwrap();
        assert_eq!(back.written_unix_ms, 1_000);
        assert_eq!(back.results[0].code, "not-mounted");
        assert_eq!(back.results[0].outcome, lfleet_types::Outcome::Fail);
        // The same results later: the file is only touched (a marker put in its content
        // stays), and reads as confirmed then.
        let marked = host
            .read_to_string(STATUS_PATH)
            .unwrap()
            .replace(env!("CARGO_PKG_VERSION"), "marker");
        host.write_atomic(STATUS_PATH, marked.as_bytes(), 0o644)
            .unwrap();
        write(&host, &results, Duration::from_secs(10), 11_000, &mut last).unwrap();
        let back = read(&host).unwrap().unwrap();
        assert_eq!(back.agent_version, "marker", "touched, not replaced");
        assert_eq!(back.written_unix_ms, 11_000);
        // Other results replace it.
        write(&host, &[], Duration::from_secs(10), 21_000, &mut last).unwrap();
        let back = read(&host).unwrap().unwrap();
        assert_eq!(back.agent_version, env!("CARGO_PKG_VERSION"));
        assert_eq!((back.written_unix_ms, back.results.len()), (21_000, 0));
        // Removed behind the agent's back: written again, not lost.
        host.remove_file(STATUS_PATH).unwrap();
        write(&host, &[], Duration::from_secs(10), 31_000, &mut last).unwrap();
        assert_eq!(read(&host).unwrap().unwrap().written_unix_ms, 31_000);
    }
}
