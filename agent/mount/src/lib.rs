//! lfleet-mount: the agent's pure mount logic, with no host access.
//!
//! [`fstab`] parses and renders `/etc/fstab` keeping foreign lines byte for byte;
//! [`mountinfo`] reads the kernel's mount table; [`plan`] decides what to unmount, write and
//! mount. The crate
//! reads nothing and runs nothing: callers pass text in and get text and plans out.

pub mod fstab;
pub mod mountinfo;
pub mod plan;

pub use fstab::{Fstab, FstabEntry, FstabError};
pub use mountinfo::{MountInfo, MountInfoError, parse_mountinfo};
pub use plan::{Conflict, DesiredMount, Knowledge, MountPlan, Observed, Step, plan};
