//! lfleet-install: what the agent installs, and what went wrong when it could not.
//!
//! Pure functions, no host access: [`distro::Distro::from_os_release`] reads os-release text,
//! [`package::ClientPackage::for_kernel`] names the AMLFS client package for a distro, Lustre
//! version and kernel release as AMLFS publishes it, and [`classify::classify`] sorts a
//! failed package-manager or modprobe run into the classes an operator acts on.

pub mod classify;
pub mod distro;
pub mod package;

pub use classify::{FailureClass, classify};
pub use distro::{Distro, DistroError, PackageManager};
pub use package::ClientPackage;
