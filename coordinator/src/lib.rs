//! lfleet-coordinator: the cluster's one place to see and steer every node's Lustre.
//!
//! Layers, each using only those below it:
//! - [`events`] (the fleet's event log) over [`store`] (SQLite, one writer thread);
//! - state and rules: [`config`] (coordinator.toml: the server's settings and the fleet's
//!   desired state), [`hostlist`], [`fleet`] (every node, in domain types), [`policy`] (the
//!   pure drain planner), [`slow`] (the pure slow-node detector), [`history`] (bounded
//!   throughput per mount), [`pki`] (the CA, peer certificates), [`identity`] (join tokens,
//!   name-to-key bindings, enrollment rules, operator certificates), [`sessions`] (live
//!   agent queues), [`slurm`] (scontrol), [`drain`] (the executor and its intents),
//!   [`upgrade`] (the pure rollout planner) and [`rollout`] (a rollout's recorded steps);
//! - [`app`]: the coordinator, one domain function per request;
//! - [`api`] (thin gRPC handlers), [`metrics`] (Prometheus), [`dashboard`] (the web
//!   dashboard, over `app`) and [`server`] (listeners).

pub mod api;
pub mod app;
pub mod config;
pub mod dashboard;
pub mod drain;
pub mod events;
pub mod fleet;
pub mod history;
pub mod hostlist;
pub mod identity;
pub mod metrics;
pub mod pki;
pub mod policy;
pub mod render;
pub mod rollout;
pub mod server;
pub mod sessions;
pub mod slow;
pub mod slurm;
pub mod store;
pub mod upgrade;
