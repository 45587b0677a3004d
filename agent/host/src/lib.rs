//! lfleet-host: the agent's only door to the host.
//!
//! Every file the agent reads or writes goes through [`HostRoot`] (paths resolved under
//! `--root`), every program it runs goes through a [`CommandRunner`] (argv only, deadline,
//! typed error), and every time it takes comes from a [`Clock`]. This is what lets one agent
//! binary run for real on a node and against an `lfleet-sim` node root. The fakes in
//! [`fake`] serve unit tests.
//!
//! This crate is the one place allowed to call `std::fs` and `std::process` directly; the
//! workspace's `clippy.toml` forbids them everywhere else in the agent.
#![allow(
    clippy::disallowed_methods,
    reason = "this crate is the host boundary the disallowed-methods rules point to"
)]

pub mod bounded;
pub mod clock;
pub mod command;
pub mod control;
pub mod fake;
pub mod logging;
pub mod notify;
pub mod record;
pub mod root;
pub mod usage;

pub use bounded::{
    Bounded, BoundedWorker, Claim, FsProbe, Probe, probe_reporting_wchan, statfs_and_stat,
    thread_wchan,
};
pub use clock::{Clock, FakeClock, SystemClock};
pub use command::{
    CommandError, CommandOutput, CommandRunner, CommandSpec, ExitStatus, SystemCommandRunner,
};
pub use control::{ControlListener, ControlRequest, request as control_request, spawn_detached};
pub use fake::{FakeCommandRunner, FakeResponse, Invocation};
pub use logging::{LogGuard, LogTarget, init_logging};
pub use notify::{sd_notify, watchdog_period};
pub use record::RecordingRunner;
pub use root::{HostError, HostRoot, LockGuard, ResolvedPath};
pub use usage::{OwnUsage, own_usage};
