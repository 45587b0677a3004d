//! Distribution detection from `/etc/os-release` (os-release(5)).
//!
//! Supported: Ubuntu 20.04, 22.04 and 24.04 (apt), RHEL-compatible 8 and 9 (AlmaLinux,
//! Rocky, RHEL; dnf) and Azure Linux 3 (tdnf), the distributions AMLFS publishes clients for.

use std::fmt;

/// The package manager a distribution installs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackageManager {
    Apt,
    Dnf,
    Tdnf,
}

impl PackageManager {
    /// The program name.
    pub fn program(self) -> &'static str {
        match self {
            PackageManager::Apt => "apt-get",
            PackageManager::Dnf => "dnf",
            PackageManager::Tdnf => "tdnf",
        }
    }
}

/// A supported distribution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Distro {
    /// Ubuntu, with its codename (`jammy`), which names the AMLFS repository.
    Ubuntu {
        version: String,
        codename: String,
    },
    /// A RHEL-compatible distribution: `id` is `almalinux`, `rocky` or `rhel`.
    Rhel {
        id: String,
        major: u32,
    },
    AzureLinux3,
}

/// Why a distribution is not supported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DistroError {
    #[error("os-release has no {field} field")]
    MissingField { field: &'static str },
    #[error(
        "unsupported distribution {id} {version}: lfleet installs AMLFS clients on Ubuntu 20.04/22.04/24.04, AlmaLinux/Rocky/RHEL 8 and 9, and Azure Linux 3"
    )]
    Unsupported { id: String, version: String },
}

// === impl Distro ===

impl Distro {
    /// Reads os-release text (`KEY=value` lines, values optionally quoted).
    pub fn from_os_release(text: &str) -> Result<Distro, DistroError> {
        let field = |name: &str| -> Option<String> {
            text.lines().find_map(|line| {
                let (key, value) = line.split_once('=')?;
                (key.trim() == name).then(|| value.trim().trim_matches(['"', '\'']).to_owned())
            })
        };
        let id = field("ID").ok_or(DistroError::MissingField { field: "ID" })?;
        let version = field("VERSION_ID").ok_or(DistroError::MissingField {
            field: "VERSION_ID",
        })?;
        let unsupported = || DistroError::Unsupported {
            id: id.clone(),
            version: version.clone(),
        };
        let major: Option<u32> = version.split('.').next().and_then(|m| m.parse().ok());
        match id.as_str() {
            "ubuntu" => {
                let codename = match version.as_str() {
                    "20.04" => "focal",
                    "22.04" => "jammy",
                    "24.04" => "noble",
                    _ => return Err(unsupported()),
                };
                Ok(Distro::Ubuntu {
                    version: version.clone(),
                    codename: codename.to_owned(),
                })
            }
            "almalinux" | "rocky" | "rhel" => match major {
                Some(major @ (8 | 9)) => Ok(Distro::Rhel {
                    id: id.clone(),
                    major,
                }),
                _ => Err(unsupported()),
            },
            "azurelinux" if major == Some(3) => Ok(Distro::AzureLinux3),
            _ => Err(unsupported()),
        }
    }

    pub fn package_manager(&self) -> PackageManager {
        match self {
            Distro::Ubuntu { .. } => PackageManager::Apt,
            Distro::Rhel { .. } => PackageManager::Dnf,
            Distro::AzureLinux3 => PackageManager::Tdnf,
        }
    }
}

impl fmt::Display for Distro {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Distro::Ubuntu { version, .. } => write!(f, "ubuntu-{version}"),
            Distro::Rhel { id, major } => write!(f, "{id}-{major}"),
            Distro::AzureLinux3 => f.write_str("azurelinux-3"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_the_supported_distributions() {
        let jammy = "PRETTY_NAME=\"Ubuntu 22.04.4 LTS\"\nNAME=\"Ubuntu\"\nVERSION_ID=\"22.04\"\nVERSION_CODENAME=jammy\nID=ubuntu\nID_LIKE=debian\n";
        assert_eq!(
            Distro::from_os_release(jammy).unwrap(),
            Distro::Ubuntu {
                version: "22.04".into(),
                codename: "jammy".into()
            }
        );
        let alma = "NAME=\"AlmaLinux\"\nVERSION=\"9.4 (Seafoam Ocelot)\"\nID=\"almalinux\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.4\"\n";
        let distro = Distro::from_os_release(alma).unwrap();
        assert_eq!(
            distro,
            Distro::Rhel {
                id: "almalinux".into(),
                major: 9
            }
        );
        assert_eq!(distro.package_manager(), PackageManager::Dnf);
        let azl = "NAME=\"Microsoft Azure Linux\"\nVERSION=\"3.0.20240824\"\nID=azurelinux\nVERSION_ID=\"3.0\"\n";
        assert_eq!(Distro::from_os_release(azl).unwrap(), Distro::AzureLinux3);
        assert_eq!(Distro::AzureLinux3.package_manager().program(), "tdnf");
    }

    #[test]
    fn refuses_what_amlfs_does_not_publish_for() {
        for (text, fragment) in [
            (
                "ID=ubuntu\nVERSION_ID=\"18.04\"\n",
                "unsupported distribution ubuntu 18.04",
            ),
            (
                "ID=debian\nVERSION_ID=\"12\"\n",
                "unsupported distribution debian 12",
            ),
            (
                "ID=rocky\nVERSION_ID=\"10.0\"\n",
                "unsupported distribution rocky 10.0",
            ),
            ("VERSION_ID=\"9\"\n", "os-release has no ID field"),
            ("ID=rhel\n", "os-release has no VERSION_ID field"),
        ] {
            let err = Distro::from_os_release(text).unwrap_err();
            assert!(err.to_string().contains(fragment), "{text:?}: {err}");
        }
    }
}
