//! lfleet-coordinator: the cluster's one place to see and steer every node's Lustre.
//!
//! Modules: [`config`] reads coordinator.toml (the server's settings and the fleet's desired
//! state); [`hostlist`] matches Slurm host lists; [`pki`] is the CA and reads peer identities;
//! [`store`] is the SQLite store; [`fleet`] the in-memory fleet view; [`service`] the gRPC
//! services; [`server`] the listeners.

pub mod config;
pub mod drain;
pub mod fleet;
pub mod hostlist;
pub mod metrics;
pub mod pki;
pub mod policy;
pub mod server;
pub mod service;
pub mod slurm;
pub mod store;
