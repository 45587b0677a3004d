//! lfleet-types: the domain types every lfleet crate shares, each validated when it is built.
//!
//! [`NodeName`], [`Generation`] and [`MountSpec`] (with [`Nid`], [`FsName`], [`MountPoint`]
//! and [`MountOption`]). An invalid value cannot be constructed; every refusal is a
//! [`SpecError`] that names the field and the reason. No prost or tonic here: wire types are
//! converted to these at the edge (`lfleet-proto`).

pub mod error;
pub mod mount;
pub mod node;

pub use error::SpecError;
pub use mount::{
    FORBIDDEN_MOUNT_ROOTS, FsName, Lnd, MgsNids, MountOption, MountPoint, MountSource, MountSpec,
    Nid, RawMountSpec,
};
pub use node::{Generation, NodeName};
