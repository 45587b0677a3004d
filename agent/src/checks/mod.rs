//! Health checks: one file each, one registry ([`ALL`]), three outcomes, a deadline each.
//!
//! A check returns a [`CheckResult`] per subject (a mount, a target, the client): `Pass`,
//! `Fail { code, detail }` or `Unknown { error }`, with the time it started, so the
//! coordinator can apply windows. Unknown is never a failure: the coordinator drains on
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

pub use memory::{CheckMemory, Event};

use std::sync::Mutex;
use std::time::Duration;

use lfleet_host::{BoundedWorker, Clock, CommandRunner, HostRoot};
use serde::Serialize;

use crate::config::NodeConfig;

/// A check's verdict on one subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail { code: String, detail: String },
    Unknown { error: String },
}

/// One result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    pub check: &'static str,
    pub subject: String,
    #[serde(flatten)]
    pub outcome: Outcome,
    pub started_unix_ms: u64,
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
}

impl CheckContext<'_> {
    /// The memory, even if a check panicked while holding it.
    pub(crate) fn memory(&self) -> std::sync::MutexGuard<'_, CheckMemory> {
        self.memory.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records an event stamped with the wall clock.
    pub(crate) fn event(&self, kind: &str, subject: &str, detail: impl Into<String>) {
        let unix_ms = self.clock.wall_unix_ms();
        self.memory().events.push(Event {
            kind: kind.to_owned(),
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
pub const ALL: [&str; 8] = [
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
            Err(_) => results.push(CheckResult {
                check: name,
                subject: String::new(),
                outcome: Outcome::Unknown {
                    error: format!("check did not finish within {deadline:?}"),
                },
                started_unix_ms: started,
            }),
        }
        let took = context.clock.monotonic().duration_since(began);
        durations.push((name.to_owned(), took.as_secs_f64() * 1000.0));
    }
    (results, durations)
}

async fn run_one(name: &'static str, context: CheckContext<'_>) -> Vec<CheckResult> {
    match name {
        mount_present::NAME => mount_present::run(context),
        mount_responsive::NAME => mount_responsive::run(context).await,
        lustre_imports::NAME => lustre_imports::run(context).await,
        lustre_lbug::NAME => lustre_lbug::run(context),
        lustre_client::NAME => lustre_client::run(context),
        lnet::NAME => lnet::run(context).await,
        ib_ports::NAME => ib_ports::run(context),
        accelnet::NAME => accelnet::run(context),
        _ => Vec::new(),
    }
}

/// Builds a result stamped with the context's wall clock.
pub(crate) fn result(
    context: CheckContext<'_>,
    check: &'static str,
    subject: &str,
    outcome: Outcome,
) -> CheckResult {
    CheckResult {
        check,
        subject: subject.to_owned(),
        outcome,
        started_unix_ms: context.clock.wall_unix_ms(),
    }
}

pub(crate) fn fail(code: &str, detail: impl Into<String>) -> Outcome {
    Outcome::Fail {
        code: code.to_owned(),
        detail: detail.into(),
    }
}

pub(crate) fn unknown(error: impl Into<String>) -> Outcome {
    Outcome::Unknown {
        error: error.into(),
    }
}
