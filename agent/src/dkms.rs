//! The DKMS fallback: building the Lustre client for a kernel no prebuilt package serves,
//! only when policy allows it and Secure Boot is known to be off.
//!
//! AMLFS's prebuilt modules are signed; DKMS builds are not, so with Secure Boot on the
//! kernel would refuse them (and on Azure Linux 3 lockdown refuses them even with Secure Boot
//! merely off). The agent therefore never builds while Secure Boot is on or its state cannot
//! be read, and says so in the kernel's finding.
//!
//! Packages (AMLFS documentation): apt `linux-headers-<K>` and `amlfs-lustre-client-dkms-<L>`;
//! dnf and tdnf `kernel-devel-<K without arch>` and `lustre-client-dkms-<L with _>`. DKMS
//! installs the module under `/lib/modules/<K>/updates/dkms/`.
//!
//! Entry points: [`secure_boot`], [`build`].

use std::time::Duration;

use lfleet_host::{CommandSpec, HostRoot};
use lfleet_install::{Distro, FailureClass, PackageManager, classify};

use crate::install::find_module;
use crate::reconcile::NodeHandle;

/// The UEFI variable holding the Secure Boot state (4 attribute bytes, then 1 value byte).
pub const SECURE_BOOT_VAR: &str =
    "sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c";

/// Whether the kernel enforces module signatures through Secure Boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecureBoot {
    Enabled,
    Disabled,
    /// An EFI system whose variable cannot be read: treated as on.
    Unknown,
}

/// Reads the Secure Boot state. A machine booted without EFI has no Secure Boot.
pub fn secure_boot(host: &HostRoot) -> SecureBoot {
    match host.exists("sys/firmware/efi") {
        Ok(false) => return SecureBoot::Disabled,
        Ok(true) => {}
        Err(_) => return SecureBoot::Unknown,
    }
    match host.read_limited(SECURE_BOOT_VAR, 64) {
        Ok(bytes) if bytes.len() >= 5 && bytes[4] == 1 => SecureBoot::Enabled,
        Ok(bytes) if bytes.len() >= 5 => SecureBoot::Disabled,
        _ => SecureBoot::Unknown,
    }
}

/// The packages a DKMS build of `lustre_version` for `kernel` needs.
pub fn packages(manager: PackageManager, lustre_version: &str, kernel: &str) -> Vec<String> {
    match manager {
        PackageManager::Apt => vec![
            format!("linux-headers-{kernel}"),
            format!("amlfs-lustre-client-dkms-{lustre_version}"),
        ],
        PackageManager::Dnf | PackageManager::Tdnf => {
            let kernel = kernel
                .strip_suffix(".x86_64")
                .or_else(|| kernel.strip_suffix(".aarch64"))
                .unwrap_or(kernel);
            vec![
                format!("kernel-devel-{kernel}"),
                format!("lustre-client-dkms-{}", lustre_version.replace('-', "_")),
            ]
        }
    }
}

/// Builds the client for `kernel` with DKMS; `Err((class, message))` when it did not work.
pub async fn build(
    node: NodeHandle<'_>,
    distro: &Distro,
    lustre_version: &str,
    kernel: &str,
) -> Result<(), (FailureClass, String)> {
    let manager = distro.package_manager();
    let timeout = Duration::from_secs(1800);
    let mut spec = CommandSpec::new(manager.program(), timeout).args(["install", "-y"]);
    if manager == PackageManager::Apt {
        spec = spec
            .args(["--no-install-recommends", "-o", "DPkg::Lock::Timeout=120"])
            .env("DEBIAN_FRONTEND", "noninteractive");
    }
    let spec = spec.args(packages(manager, lustre_version, kernel));
    if let Err(error) = node.runner.run(&spec).await {
        let class = match classify(error.stdout(), error.stderr()) {
            FailureClass::Unknown => FailureClass::DkmsBuildFailed,
            other => other,
        };
        return Err((class, error.to_string()));
    }
    match find_module(node.host, kernel, "lustre") {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err((
            FailureClass::DkmsBuildFailed,
            format!("DKMS packages installed but no lustre module was built for {kernel}"),
        )),
        Err(error) => Err((FailureClass::Unknown, error.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secure_boot_comes_from_the_efi_variable() {
        let dir = tempfile::tempdir().unwrap();
        let host = HostRoot::new(dir.path());
        assert_eq!(
            secure_boot(&host),
            SecureBoot::Disabled,
            "no EFI, no Secure Boot"
        );
        host.create_dir_all("sys/firmware/efi/efivars", 0o755)
            .unwrap();
        assert_eq!(
            secure_boot(&host),
            SecureBoot::Unknown,
            "EFI without the variable"
        );
        host.write_atomic(SECURE_BOOT_VAR, &[6, 0, 0, 0, 1], 0o644)
            .unwrap();
        assert_eq!(secure_boot(&host), SecureBoot::Enabled);
        host.write_atomic(SECURE_BOOT_VAR, &[6, 0, 0, 0, 0], 0o644)
            .unwrap();
        assert_eq!(secure_boot(&host), SecureBoot::Disabled);
    }

    #[test]
    fn dkms_packages_per_manager() {
        assert_eq!(
            packages(
                PackageManager::Apt,
                "2.15.7-33-g79ddf99",
                "6.8.0-1030-azure"
            ),
            vec![
                "linux-headers-6.8.0-1030-azure",
                "amlfs-lustre-client-dkms-2.15.7-33-g79ddf99"
            ]
        );
        assert_eq!(
            packages(
                PackageManager::Dnf,
                "2.15.7-33-g79ddf99",
                "5.14.0-611.5.1.el9_7.x86_64"
            ),
            vec![
                "kernel-devel-5.14.0-611.5.1.el9_7",
                "lustre-client-dkms-2.15.7_33_g79ddf99"
            ]
        );
    }
}
