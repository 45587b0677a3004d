//! AMLFS client package names, as AMLFS publishes them (Microsoft's AMLFS client install
//! documentation and the repositories' package indexes).
//!
//! - apt: the package `amlfs-lustre-client-<L>` at version `<kernel release>`, installed as
//!   `amlfs-lustre-client-2.15.7-33-g79ddf99=5.15.0-1075-azure`.
//! - dnf and tdnf: `amlfs-lustre-client-<L>-<K>-1`, with `-` in `L` turned into `_`, and `K`
//!   the kernel release without its `.<arch>` suffix and with every `-` and `_` turned into
//!   `.`: `5.14.0-611.5.1.el9_7.x86_64` becomes `5.14.0.611.5.1.el9.7`.

use crate::distro::PackageManager;

/// Architectures whose suffix `uname -r` carries on RPM-based distributions.
const ARCH_SUFFIXES: [&str; 2] = [".x86_64", ".aarch64"];

/// One kernel-matched client package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientPackage {
    pub manager: PackageManager,
    /// The package name.
    pub name: String,
    /// The package version to ask for (apt only; dnf names carry it).
    pub version: Option<String>,
}

/// A Lustre version or kernel release with characters no package name holds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{field} {value:?} is not a valid package name part: only letters, digits, '.', '_', '-' and '+' are"
)]
pub struct PackageNameError {
    pub field: &'static str,
    pub value: String,
}

fn check_part(field: &'static str, value: &str) -> Result<(), PackageNameError> {
    let valid = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+'))
        && value.starts_with(|c: char| c.is_ascii_alphanumeric());
    if valid {
        Ok(())
    } else {
        Err(PackageNameError {
            field,
            value: value.to_owned(),
        })
    }
}

/// `K` for RPM names: the release without `.<arch>`, with `-` and `_` as `.`.
pub fn rpm_kernel_part(kernel_release: &str) -> String {
    let trimmed = ARCH_SUFFIXES
        .iter()
        .find_map(|suffix| kernel_release.strip_suffix(suffix))
        .unwrap_or(kernel_release);
    trimmed.replace(['-', '_'], ".")
}

// === impl ClientPackage ===

impl ClientPackage {
    /// The prebuilt client package for `lustre_version` on `kernel_release`.
    pub fn for_kernel(
        manager: PackageManager,
        lustre_version: &str,
        kernel_release: &str,
    ) -> Result<ClientPackage, PackageNameError> {
        check_part("Lustre version", lustre_version)?;
        check_part("kernel release", kernel_release)?;
        Ok(match manager {
            PackageManager::Apt => ClientPackage {
                manager,
                name: format!("amlfs-lustre-client-{lustre_version}"),
                version: Some(kernel_release.to_owned()),
            },
            PackageManager::Dnf | PackageManager::Tdnf => ClientPackage {
                manager,
                name: format!(
                    "amlfs-lustre-client-{}-{}-1",
                    lustre_version.replace('-', "_"),
                    rpm_kernel_part(kernel_release)
                ),
                version: None,
            },
        })
    }

    /// The argument the package manager's `install` takes.
    pub fn install_arg(&self) -> String {
        match &self.version {
            Some(version) => format!("{}={version}", self.name),
            None => self.name.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apt_names_carry_the_kernel_as_the_version() {
        let package = ClientPackage::for_kernel(
            PackageManager::Apt,
            "2.15.7-33-g79ddf99",
            "5.15.0-1075-azure",
        )
        .unwrap();
        assert_eq!(package.name, "amlfs-lustre-client-2.15.7-33-g79ddf99");
        assert_eq!(
            package.install_arg(),
            "amlfs-lustre-client-2.15.7-33-g79ddf99=5.15.0-1075-azure"
        );
    }

    #[test]
    fn rpm_names_follow_the_documented_transform() {
        // The example from the AMLFS documentation.
        let package = ClientPackage::for_kernel(
            PackageManager::Dnf,
            "2.15.7-33-g79ddf99",
            "5.14.0-611.5.1.el9_7.x86_64",
        )
        .unwrap();
        assert_eq!(
            package.install_arg(),
            "amlfs-lustre-client-2.15.7_33_g79ddf99-5.14.0.611.5.1.el9.7-1"
        );
        let azl = ClientPackage::for_kernel(
            PackageManager::Tdnf,
            "2.17.0-24-gf517bc4",
            "6.6.57.1-6.azl3",
        )
        .unwrap();
        assert_eq!(
            azl.install_arg(),
            "amlfs-lustre-client-2.17.0_24_gf517bc4-6.6.57.1.6.azl3-1"
        );
        assert_eq!(
            rpm_kernel_part("4.18.0-553.16.1.el8_10.aarch64"),
            "4.18.0.553.16.1.el8.10"
        );
    }

    #[test]
    fn refuses_parts_that_could_smuggle_arguments() {
        for (version, kernel) in [
            ("2.15.7 --force", "5.15.0-1075-azure"),
            ("-y", "5.15.0-1075-azure"),
            ("2.15.7", ""),
            ("2.15.7", "5.15.0=1"),
            ("2.15.7", "../x"),
        ] {
            assert!(
                ClientPackage::for_kernel(PackageManager::Apt, version, kernel).is_err(),
                "{version:?} {kernel:?}"
            );
        }
    }
}
