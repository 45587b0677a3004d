//! lfleet-aptrepo: test support that lets tests run the REAL `apt-get` and `dpkg` against a
//! local repository of generated packages, installing into a scratch root directory.
//!
//! The point is that every apt outcome a test sees ("version not found", "unmet
//! dependencies", "could not get lock", ...) is apt's own text and exit code, not a fake's.
//!
//! # Pieces
//!
//! - [`PackageSpec`] describes one generated binary package (name, version, depends, files).
//!   [`amlfs_client_packages`] returns the AMLFS-shaped set for one Lustre version and one
//!   kernel release (as the AMLFS client install documentation names them).
//! - [`AptRepo`] builds each spec into a `.deb` with `dpkg-deb --build --root-owner-group` and
//!   indexes the directory as a flat repository (`Packages`, via `dpkg-scanpackages
//!   --multiversion`). [`AptRepo::add`] and [`AptRepo::remove`] change what is "published",
//!   so a test can simulate "kernel not yet published" or "kmod not yet published".
//! - [`ScratchRoot`] prepares a directory (for instance an `lfleet-sim` node root; nothing in it
//!   is deleted) with an apt configuration file. With only `APT_CONFIG=<that file>` in the
//!   environment, plain `apt-get update` and `apt-get install -y PKG=VER` read the local repo
//!   and install into the scratch root. The real system's dpkg database, `/lib/modules` and
//!   `/var/log/dpkg.log` are never touched.
//!
//! # How an agent test uses it
//!
//! ```no_run
//! use lfleet_aptrepo::{AptRepo, ScratchRoot, amlfs_client_packages};
//! # fn main() -> Result<(), lfleet_aptrepo::Error> {
//! # let (repo_dir, node_root) = (std::path::Path::new("/tmp/r"), std::path::Path::new("/tmp/n"));
//! let repo = AptRepo::create(repo_dir, &amlfs_client_packages("2.15.7-33-g79ddf99", "5.15.0-1075-azure"))?;
//! let scratch = ScratchRoot::prepare(node_root, &repo)?;
//! // Give the agent's command runner scratch.env() (just APT_CONFIG). The agent then runs,
//! // exactly as on a real node and with no special flags:
//! //   apt-get update
//! //   apt-get install -y amlfs-lustre-client-2.15.7-33-g79ddf99=5.15.0-1075-azure
//! // and reads back what is installed with
//! //   dpkg-query --admindir=<root>/var/lib/dpkg -W -f='${Status} ${Version}\n' PKG
//! // (scratch.dpkg_query_args(PKG) gives those arguments).
//! let env = scratch.env();
//! # let _ = env;
//! # Ok(())
//! # }
//! ```
//!
//! After [`AptRepo::add`] or [`AptRepo::remove`], `apt-get update` must run again before apt
//! sees the change, as on a real node.
//!
//! The agent's own repository file (the AMLFS repository file) is NOT read by
//! the scratch configuration, even if the agent writes it under `<root>/etc/apt`: the scratch
//! config has its own `etc` tree (see [`scratch`]), so only the local repo is ever consulted.
//!
//! # Requirements on the machine
//!
//! `apt-get`, `dpkg`, `dpkg-deb`, `dpkg-query` (Debian/Ubuntu base) and `dpkg-scanpackages`
//! (Debian package `dpkg-dev`). Running apt as root is expected: dpkg installs files owned by
//! root into the scratch root.
#![allow(
    clippy::disallowed_methods,
    reason = "test infrastructure: it writes package trees and repositories with std::fs and runs dpkg-deb, dpkg-scanpackages, apt-get and dpkg-query itself; it is not part of the agent"
)]

mod cmd;
pub mod error;
pub mod repo;
pub mod scratch;
pub mod spec;

pub use error::{Error, Result};
pub use repo::AptRepo;
pub use scratch::{APT_CONFIG_RELATIVE, FrontendLock, SCRATCH_ETC_RELATIVE, ScratchRoot};
pub use spec::{
    COMPONENT_VERSION, LUSTRE_CLIENT_MODULES, MODULE_DIR_TEMPLATE, PackageSpec,
    amlfs_client_packages, kmod_package_name, linux_image_package_name, lustre_client_package_name,
    metapackage_name, module_dir,
};
