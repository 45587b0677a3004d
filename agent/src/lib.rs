//! lfleet-agent: the node agent's library; the binary (`src/main.rs`) is a thin CLI over it.
//!
//! Modules: [`node`] builds the node (root, /proc and /sys, runner, command log, clock) from
//! the arguments; [`config`] reads agent.toml and [`precedence`] merges it with the ledger;
//! [`reconcile`] runs one pass; [`install`] makes sure every kernel has its Lustre client; [`ledger`] persists
//! the accepted desired configuration; [`mount_apply`] runs
//! mount steps and writes the slurmd drop-in; [`checks`] judge health; [`telemetry`] and
//! [`collect`] read counters into numbered samples.

pub mod checks;
pub mod collect;
pub mod config;
pub mod daemon;
pub mod dkms;
pub mod identity;
pub mod install;
pub mod ledger;
pub mod metrics;
pub mod mount_apply;
pub mod node;
pub mod precedence;
pub mod reconcile;
pub mod reconciler;
pub mod repo;
pub mod session;
pub mod status;
pub mod telemetry;
