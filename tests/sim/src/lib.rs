//! lfleet-sim: simulated Lustre client nodes for lfleet's tests, demo and benchmarks.
//!
//! A node is a directory laid out like a node's root (`etc`, `proc`, `sys`, `boot`,
//! `lib/modules`) plus `bin/` shims (mount, umount, mount.lustre, modprobe, lctl, lnetctl,
//! lfs, ip and the package managers) that change it the way the real commands change a node
//! and print what they print. The agent runs against it with `--root NODE` and
//! `PATH=NODE/bin:$PATH`, with no special mode. Only the Lustre kernel client is simulated.
//!
//! Entry points: [`SimNode::create`], [`SimNode::open`], [`SimNode::fault`],
//! [`SimNode::heal`], [`SimNode::load`], [`shim::run`].
#![allow(
    clippy::disallowed_methods,
    reason = "the simulator stands in for the host: it writes the node root and runs no agent code"
)]

pub mod fault;
pub mod node;
pub mod render;
pub mod shim;
pub mod state;
pub mod ttar;

pub use fault::Fault;
pub use node::{LoadShape, LoadSpec, NodeSpec, SimNode};
pub use state::{LustreVersion, NodeState};

use std::path::PathBuf;

/// Why a simulator command failed.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("{0}")]
    Usage(String),
    #[error("{what} {path}")]
    Io {
        what: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("sim state {path} is unreadable")]
    State {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}
