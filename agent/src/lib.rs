//! lfleet-agent: the node agent's library; the binary (`src/main.rs`) is a thin CLI over it.
//!
//! Modules: [`ledger`] persists the accepted desired configuration.

pub mod ledger;
