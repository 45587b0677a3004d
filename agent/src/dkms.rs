//! The DKMS fallback: building the Lustre client for a kernel no prebuilt package serves,
//! only when [`lfleet_install::dkms_decision`] allows it (policy, Secure Boot, kernel
//! lockdown, and Azure Linux 3's default lockdown; the rule is stated there).
//!
//! Packages (AMLFS documentation): apt `linux-headers-<K>` and `amlfs-lustre-client-dkms-<L>`
//! (which pulls `lustre-client-modules-dkms-<L>`, whose postinst runs the build); dnf and tdnf
//! `kernel-devel-<K without arch>` and `lustre-client-dkms-<L with _>`. DKMS installs the
//! module under `/lib/modules/<K>/updates/dkms/`. A build that fails leaves its package
//! half-configured (dpkg) or installed without a module (rpm), which would break every later
//! package operation or hide the failure; the DKMS packages are then purged again, so nothing
//! is left half-installed.
//!
//! Entry points: [`decision`], [`secure_boot`], [`lockdown`], [`build`].

use std::time::Duration;

use lfleet_host::{CommandSpec, HostRoot};
use lfleet_install::{
    Distro, DkmsDecision, FailureClass, Lockdown, PackageManager, SecureBoot, classify,
    dkms_decision,
};

use crate::install::find_module;
use crate::node::NodeHandle;

/// The UEFI variable holding the Secure Boot state (4 attribute bytes, then 1 value byte).
pub const SECURE_BOOT_VAR: &str =
    "sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c";

/// The kernel's lockdown mode.
pub const LOCKDOWN_PATH: &str = "sys/kernel/security/lockdown";

/// Reads the Secure Boot state from the EFI variable. A machine booted without EFI has no
/// Secure Boot.
pub fn secure_boot(host: &HostRoot) -> SecureBoot {
    match host.exists("sys/firmware/efi") {
        Ok(false) => return SecureBoot::Disabled,
        Ok(true) => {}
        Err(_) => return SecureBoot::Unknown,
    }
    match host.read_limited(SECURE_BOOT_VAR, 64) {
        Ok(bytes) => SecureBoot::from_efivar(&bytes),
        Err(_) => SecureBoot::Unknown,
    }
}

/// Reads the kernel's lockdown mode; `Unknown` when securityfs does not show it.
pub fn lockdown(host: &HostRoot) -> Lockdown {
    match host.read_optional(LOCKDOWN_PATH) {
        Ok(Some(text)) => Lockdown::parse(&text),
        _ => Lockdown::Unknown,
    }
}

/// Whether a DKMS build may be tried on this node. An EFI variable that cannot be read is
/// asked of `mokutil --sb-state` before it counts as unknown.
pub async fn decision(node: NodeHandle<'_>, distro: &Distro, policy_allows: bool) -> DkmsDecision {
    let mut state = secure_boot(node.host);
    if policy_allows && state == SecureBoot::Unknown {
        let spec = CommandSpec::new("mokutil", Duration::from_secs(30)).arg("--sb-state");
        if let Ok(output) = node.runner.run(&spec).await {
            state = SecureBoot::from_mokutil(&output.stdout);
        }
    }
    dkms_decision(distro, policy_allows, state, lockdown(node.host))
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
    let failed = match node.runner.run(&spec).await {
        Err(error) => {
            let class = match classify(error.stdout(), error.stderr()) {
                FailureClass::Unknown => FailureClass::DkmsBuildFailed,
                other => other,
            };
            // DKMS's own two lines first: the package manager's tail is about dpkg.
            let dkms_said: Vec<&str> = error
                .stdout()
                .lines()
                .chain(error.stderr().lines())
                .map(str::trim)
                .filter(|l| l.starts_with("Error! ") || l.starts_with("Consult "))
                .collect();
            let mut message = dkms_said.join(" ");
            if !message.is_empty() {
                message.push_str(": ");
            }
            message.push_str(&lfleet_types::ErrorChain(&error).to_string());
            (class, message)
        }
        Ok(output) => match find_module(node.host, kernel, "lustre") {
            Ok(Some(_)) => return Ok(()),
            // rpm keeps a package whose scriptlet failed: the build's words are in the output.
            Ok(None) => (
                FailureClass::DkmsBuildFailed,
                format!(
                    "DKMS packages installed but no lustre module was built for {kernel}{}",
                    output
                        .stdout
                        .lines()
                        .chain(output.stderr.lines())
                        .find(|l| l.contains("Bad return status for module build"))
                        .map(|l| format!(": {}", l.trim()))
                        .unwrap_or_default()
                ),
            ),
            Err(error) => return Err((FailureClass::Unknown, lfleet_types::error_chain(&error))),
        },
    };
    if failed.0 == FailureClass::DkmsBuildFailed {
        purge(node, manager, lustre_version).await;
    }
    Err(failed)
}

/// The DKMS packages a failed build leaves behind (dpkg: half-configured).
pub fn leftover_packages(manager: PackageManager, lustre_version: &str) -> Vec<String> {
    match manager {
        PackageManager::Apt => vec![
            format!("amlfs-lustre-client-dkms-{lustre_version}"),
            format!("lustre-client-modules-dkms-{lustre_version}"),
        ],
        PackageManager::Dnf | PackageManager::Tdnf => vec![format!(
            "lustre-client-dkms-{}",
            lustre_version.replace('-', "_")
        )],
    }
}

/// Removes what a failed build left, so the package database is consistent again.
async fn purge(node: NodeHandle<'_>, manager: PackageManager, lustre_version: &str) {
    let timeout = Duration::from_secs(900);
    let spec = match manager {
        PackageManager::Apt => CommandSpec::new("apt-get", timeout)
            .args(["purge", "-y", "-o", "DPkg::Lock::Timeout=120"])
            .env("DEBIAN_FRONTEND", "noninteractive"),
        PackageManager::Dnf | PackageManager::Tdnf => {
            CommandSpec::new(manager.program(), timeout).args(["remove", "-y"])
        }
    }
    .args(leftover_packages(manager, lustre_version));
    if let Err(error) = node.runner.run(&spec).await {
        tracing::error!(
            error = %lfleet_types::ErrorChain(&error),
            "removing the packages of a failed DKMS build failed: the package database needs a person"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lockdown_comes_from_securityfs() {
        let dir = tempfile::tempdir().unwrap();
        let host = HostRoot::new(dir.path());
        assert_eq!(lockdown(&host), Lockdown::Unknown);
        host.create_dir_all("sys/kernel/security", 0o755).unwrap();
        host.write_atomic(LOCKDOWN_PATH, b"none [integrity] confidentiality\n", 0o644)
            .unwrap();
        assert_eq!(lockdown(&host), Lockdown::Integrity);
    }

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
