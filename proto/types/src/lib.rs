//! lfleet-types: the domain types every lfleet crate shares, each validated when it is built.
//!
//! [`NodeName`], [`Generation`] and [`MountSpec`] (with [`MgsNids`], [`Nid`], [`FsName`],
//! [`MountPoint`], [`MountOption`], [`UnitName`] and [`MountSource`]). Values are built by
//! parsing, which validates; every refusal is a [`SpecError`] that names the field and the
//! reason. Serde goes through the same parsing. No prost or tonic here: wire types are
//! converted to these at the edge (`lfleet-proto`).

pub mod chain;
pub mod error;
pub mod mount;
pub mod node;

pub use chain::{ErrorChain, error_chain};
pub use error::SpecError;
pub use mount::{
    FORBIDDEN_MOUNT_ROOTS, FsName, Lnd, MgsNids, MountOption, MountPoint, MountSource, MountSpec,
    Nid, RawMountSpec, UnitName,
};
pub use node::{Generation, NodeName};
