//! lfleet-types: the domain types every lfleet crate shares, each validated when it is built.
//!
//! - Identity and versions: [`NodeName`], [`Generation`], [`Role`].
//! - Mounts: [`MountSpec`] (with [`MgsNids`], [`Nid`], [`FsName`], [`MountPoint`],
//!   [`MountOption`], [`UnitName`] and [`MountSource`]).
//! - The rest of a node's desired state: [`ClientPolicy`], [`LnetPolicy`].
//! - What agents report: [`AgentHello`], [`StatusReport`] ([`Condition`] with [`CheckId`] and
//!   [`Outcome`], [`ItemResult`] with [`ItemKind`] and [`FailureClass`], [`AgentEvent`]),
//!   [`TelemetryBatch`].
//! - What operators see: [`fleet`] (node summaries, filesystems, drains, incidents, events).
//! - [`ErrorChain`]: an error with all its causes, for every log and report.
//!
//! Values are built by parsing, which validates; every refusal is a [`SpecError`] that names
//! the field and the reason. Serde goes through the same parsing. No prost or tonic here: wire
//! types are converted to these at the edge (`lfleet-proto`'s `convert`).

/// Serde through `Display` and `FromStr`, so a deserialized value passes the same validation
/// as a parsed one.
macro_rules! serde_via_string {
    ($type:ty) => {
        impl serde::Serialize for $type {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $type {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

pub mod chain;
pub mod command;
pub mod error;
pub mod fleet;
pub mod hello;
pub mod mount;
pub mod node;
pub mod policy;
pub mod status;
pub mod telemetry;
pub mod text;

pub use chain::{ErrorChain, error_chain};
pub use command::{AgentCommand, CommandOutcome, CommandRequest};
pub use error::SpecError;
pub use hello::{AgentHello, HelloClaims};
pub use mount::{
    DEFAULT_ALLOWED_MOUNT_ROOTS, FORBIDDEN_MOUNT_ROOTS, FsName, Lnd, MgsNids, MountOption,
    MountPoint, MountRoots, MountSource, MountSpec, Nid, RawMountSpec, UnitName,
};
pub use node::{Generation, NodeName};
pub use policy::{
    ClientPolicy, ClientVersion, DesiredConfig, DkmsPolicy, LnetInterface, LnetNetwork, LnetPolicy,
    Role,
};
pub use status::{
    AckRefusal, AgentEvent, AgentEventKind, CheckId, Condition, ConfigAck, FailureClass, ItemKind,
    ItemResult, KnownCheck, Outcome, ReconcileStatus, StatusReport,
};
pub use telemetry::{SampleValue, TelemetryBatch, TelemetrySample, metric};
pub use text::safe_text;
