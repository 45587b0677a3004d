//! lfleet-install: what the agent installs, what went wrong when it could not, and what to do
//! next.
//!
//! Pure functions, no host access: [`distro::Distro::from_os_release`] reads os-release text,
//! [`package::ClientPackage::for_kernel`] names the AMLFS client package for a distro, Lustre
//! version and kernel release as AMLFS publishes it, [`classify::classify`] sorts a failed
//! package-manager or modprobe run into the classes an operator acts on,
//! [`classify::kernel_series`] is the one kernel-series rule, [`dkms::dkms_decision`] says
//! whether a DKMS build may be tried, and [`followup::follow_up`] turns a class into the next
//! step (retry on a schedule, build with DKMS, or refuse with a reason).

pub mod classify;
pub mod distro;
pub mod dkms;
pub mod followup;
pub mod package;

pub use classify::{FailureClass, classify};
pub use distro::{Distro, DistroError, PackageManager};
pub use dkms::{DkmsDecision, Lockdown, SecureBoot, dkms_decision};
pub use followup::{Failure, FollowUp, follow_up};
pub use package::ClientPackage;
