//! Health checks: one file each, one registry ([`ALL`]), three outcomes, a deadline each.
//!
//! A check returns a [`CheckResult`] per subject (a mount, a target, the client): an
//! [`Outcome`] (`lfleet_types`: pass, fail with a code and detail, or unknown with the
//! error), with the time it started. Checks build results from a [`Verdict`]. Unknown is never a failure: the coordinator drains on
//! sustained Fail only. Syscalls on Lustre paths go through the context's `BoundedWorker`.
//!
//! Entry points: [`ALL`], [`run_all`], [`CheckContext`].

pub mod accelnet;
pub mod ib_ports;
pub mod kmsg;
pub mod lnet;
pub mod lustre_client;
pub mod lustre_imports;
pub mod lustre_lbug;
pub mod memory;
pub mod mount_present;
pub mod mount_responsive;

pub use memory::{CheckMemory, Event, SavePolicy};

use std::sync::Mutex;
use std::time::Duration;

use lfleet_host::{BoundedWorker, Clock, CommandRunner, HostRoot};
pub use lfleet_types::{AgentEventKind, KnownCheck, Outcome};
use serde::Serialize;

use crate::config::NodeConfig;

/// What a check found on one subject, as it builds its result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail { code: String, detail: String },
    Unknown { error: String },
}

/// One result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    pub check: KnownCheck,
    pub subject: String,
    pub outcome: Outcome,
    /// Why it failed, a stable code (`import-not-full`); empty otherwise.
    pub code: String,
    /// The failure's detail or the error that left it unknown; empty for a pass.
    pub detail: String,
    pub started_unix_ms: u64,
}

impl CheckResult {
    pub fn new(
        check: KnownCheck,
        subject: impl Into<String>,
        verdict: Verdict,
        started_unix_ms: u64,
    ) -> CheckResult {
        let (outcome, code, detail) = match verdict {
            Verdict::Pass => (Outcome::Pass, String::new(), String::new()),
            Verdict::Fail { code, detail } => (Outcome::Fail, code, detail),
            Verdict::Unknown { error } => (Outcome::Unknown, String::new(), error),
        };
        CheckResult {
            check,
            subject: subject.into(),
            outcome,
            code,
            detail,
            started_unix_ms,
        }
    }
}

/// What checks may use.
#[derive(Debug, Clone, Copy)]
pub struct CheckContext<'a> {
    pub host: &'a HostRoot,
    pub runner: &'a dyn CommandRunner,
    pub clock: &'a dyn Clock,
    pub config: &'a NodeConfig,
    pub prober: Prober<'a>,
    /// The deadline of one bounded syscall (statfs, stat).
    pub syscall_deadline: Duration,
    /// Baselines and since-times between runs; events found are pushed here.
    pub memory: &'a Mutex<CheckMemory>,
    /// A reconcile pass for a configuration newer than the last applied one is running: a
    /// desired mount not there yet is being made, so it is unknown, not failed.
    pub converging: bool,
    /// What the telemetry cycle of this round read (imports, IB ports), when it is fresh;
    /// the checks judge it instead of reading the same files again.
    pub readings: Option<&'a crate::telemetry::Readings>,
    /// How long a check may repeat an all-pass verdict that cost a command (`lnet`'s
    /// lnetctl) instead of running it again: the daemon's rounds, three check intervals;
    /// `None` (a probe the coordinator asked for, a one-shot run) runs every command.
    pub repeat_steady_for: Option<Duration>,
}

impl CheckContext<'_> {
    /// The memory, even if a check panicked while holding it.
    pub(crate) fn memory(&self) -> std::sync::MutexGuard<'_, CheckMemory> {
        self.memory.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records an event stamped with the wall clock.
    pub(crate) fn event(&self, kind: AgentEventKind, subject: &str, detail: impl Into<String>) {
        let unix_ms = self.clock.wall_unix_ms();
        self.memory().events.push(Event {
            kind,
            subject: subject.to_owned(),
            detail: detail.into(),
            unix_ms,
        });
    }
}

/// How syscalls that can hang are run.
#[derive(Debug, Clone, Copy)]
pub enum Prober<'a> {
    /// On a thread, one in flight per mount (a long-running agent: a stuck thread is kept and
    /// reported, never duplicated).
    Thread(&'a BoundedWorker),
    /// In a child process (`<program> probe-statfs PATH`) killed at the deadline, so a
    /// one-shot command always exits even when the kernel keeps the probe blocked.
    Process(&'a std::path::Path),
}

/// The registry: every check, in the order they run.
pub const ALL: [KnownCheck; 8] = [
    mount_present::NAME,
    mount_responsive::NAME,
    lustre_imports::NAME,
    lustre_lbug::NAME,
    lustre_client::NAME,
    lnet::NAME,
    ib_ports::NAME,
    accelnet::NAME,
];

/// Runs every check once; each is bounded by `deadline` as a whole.
pub async fn run_all(context: CheckContext<'_>, deadline: Duration) -> Vec<CheckResult> {
    run_all_timed(context, deadline).await.0
}

/// [`run_all`], with how long each check took in milliseconds.
pub async fn run_all_timed(
    context: CheckContext<'_>,
    deadline: Duration,
) -> (Vec<CheckResult>, Vec<(String, f64)>) {
    let mut results = Vec::new();
    let mut durations = Vec::new();
    for name in ALL {
        let began = context.clock.monotonic();
        let started = context.clock.wall_unix_ms();
        let outcome = tokio::time::timeout(deadline, run_one(name, context)).await;
        match outcome {
            Ok(mut found) => results.append(&mut found),
            Err(_) => results.push(CheckResult::new(
                name,
                "",
                Verdict::Unknown {
                    error: format!("check did not finish within {deadline:?}"),
                },
                started,
            )),
        }
        let took = context.clock.monotonic().duration_since(began);
        durations.push((name.as_str().to_owned(), took.as_secs_f64() * 1000.0));
    }
    (results, durations)
}

async fn run_one(name: KnownCheck, context: CheckContext<'_>) -> Vec<CheckResult> {
    match name {
        mount_present::NAME => mount_present::run(context),
        mount_responsive::NAME => mount_responsive::run(context).await,
        lustre_imports::NAME => lustre_imports::run(context).await,
        lustre_lbug::NAME => lustre_lbug::run(context),
        lustre_client::NAME => lustre_client::run(context),
        lnet::NAME => lnet::run(context).await,
        ib_ports::NAME => ib_ports::run(context),
        accelnet::NAME => accelnet::run(context),
        // Not an agent check of this build (the coordinator's own slow-node check).
        KnownCheck::LustreSlow => Vec::new(),
    }
}

/// Builds a result stamped with the context's wall clock.
pub(crate) fn result(
    context: CheckContext<'_>,
    check: KnownCheck,
    subject: &str,
    verdict: Verdict,
) -> CheckResult {
    CheckResult::new(check, subject, verdict, context.clock.wall_unix_ms())
}

pub(crate) fn fail(code: &str, detail: impl Into<String>) -> Verdict {
    Verdict::Fail {
        code: code.to_owned(),
        detail: detail.into(),
    }
}

pub(crate) fn unknown(error: impl Into<String>) -> Verdict {
    Verdict::Unknown {
        error: error.into(),
    }
}
