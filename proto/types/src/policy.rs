//! The node-wide desired state besides mounts, one definition for the agent's and the
//! coordinator's configuration files and for the wire: [`ClientPolicy`] (which Lustre client
//! version, whether DKMS may build it), [`LnetPolicy`] (which LNet network on which
//! interface) and a node's [`Role`].
//!
//! Each value is validated when it is parsed; a refusal is a [`SpecError`] naming the field.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Generation, MountSpec, SpecError};

// === impl ClientVersion ===

/// An AMLFS Lustre client version as its packages name it: `2.15.7-33-g79ddf99`, `2.15.4`.
/// It starts with a digit and holds only ASCII letters, digits, `.`, `-` and `_`, at most 64
/// bytes, so it can stand in a package name and a command argument as it is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientVersion(String);

impl ClientVersion {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether a module's own version (`/sys/module/lustre/version`, `modinfo -F version`)
    /// is this one: a release-tag build prints `2.15.7`; a build from `git describe` (as
    /// AMLFS's are) prints the whole version with `-` as `_` (lustre-release
    /// LUSTRE-VERSION-GEN).
    pub fn matches_module(&self, module_version: &str) -> bool {
        let module_version = module_version.trim();
        let release = self.0.split('-').next().unwrap_or("");
        module_version == release || module_version == self.0.replace('-', "_")
    }
}

impl FromStr for ClientVersion {
    type Err = SpecError;

    fn from_str(text: &str) -> Result<Self, SpecError> {
        let good = text.starts_with(|c: char| c.is_ascii_digit())
            && text.len() <= 64
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c));
        if good {
            Ok(ClientVersion(text.to_owned()))
        } else {
            Err(SpecError::new(
                "lustre_version",
                text,
                "is not an AMLFS client version such as 2.15.7-33-g79ddf99",
            ))
        }
    }
}

impl fmt::Display for ClientVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

serde_via_string!(ClientVersion);

// === impl DkmsPolicy ===

/// Whether the agent may build the client with DKMS when no kernel-matched package exists.
/// Off by default: a DKMS build needs compilers on the node and is refused by Secure Boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DkmsPolicy {
    #[default]
    Forbidden,
    Allowed,
}

impl DkmsPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            DkmsPolicy::Forbidden => "forbidden",
            DkmsPolicy::Allowed => "allowed",
        }
    }

    pub fn is_allowed(self) -> bool {
        self == DkmsPolicy::Allowed
    }
}

impl FromStr for DkmsPolicy {
    type Err = SpecError;

    fn from_str(text: &str) -> Result<Self, SpecError> {
        match text {
            "forbidden" => Ok(DkmsPolicy::Forbidden),
            "allowed" => Ok(DkmsPolicy::Allowed),
            _ => Err(SpecError::new("dkms", text, "is not forbidden or allowed")),
        }
    }
}

impl fmt::Display for DkmsPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The Lustre client a node should run.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientPolicy {
    pub lustre_version: ClientVersion,
    #[serde(default)]
    pub dkms: DkmsPolicy,
}

// === impl LnetNetwork ===

/// An LNet network: `tcp` or `o2ib` with an optional number (`tcp1`); `tcp0` is `tcp`'s
/// spelling with its number and is kept as written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LnetNetwork(String);

impl LnetNetwork {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for LnetNetwork {
    fn default() -> Self {
        LnetNetwork("tcp".into())
    }
}

impl FromStr for LnetNetwork {
    type Err = SpecError;

    fn from_str(text: &str) -> Result<Self, SpecError> {
        let good = ["tcp", "o2ib"].iter().any(|lnd| {
            text.strip_prefix(lnd).is_some_and(|number| {
                number.len() <= 5 && number.chars().all(|c| c.is_ascii_digit())
            })
        });
        if good {
            Ok(LnetNetwork(text.to_owned()))
        } else {
            Err(SpecError::new("network", text, "is not tcp[N] or o2ib[N]"))
        }
    }
}

impl fmt::Display for LnetNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

serde_via_string!(LnetNetwork);

// === impl LnetInterface ===

/// The interface LNet uses: `auto` (the one the route to the MGS leaves by, a VF resolved to
/// its synthetic NIC) or a named interface (at most 15 bytes of `[A-Za-z0-9._-]`, the
/// kernel's IFNAMSIZ).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum LnetInterface {
    #[default]
    Auto,
    Named(String),
}

impl FromStr for LnetInterface {
    type Err = SpecError;

    fn from_str(text: &str) -> Result<Self, SpecError> {
        if text == "auto" {
            return Ok(LnetInterface::Auto);
        }
        let good = !text.is_empty()
            && text.len() <= 15
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if good {
            Ok(LnetInterface::Named(text.to_owned()))
        } else {
            Err(SpecError::new(
                "interface",
                text,
                "is not \"auto\" or an interface name",
            ))
        }
    }
}

impl fmt::Display for LnetInterface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LnetInterface::Auto => f.write_str("auto"),
            LnetInterface::Named(name) => f.write_str(name),
        }
    }
}

serde_via_string!(LnetInterface);

/// How LNet is configured on a node.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LnetPolicy {
    #[serde(default)]
    pub network: LnetNetwork,
    #[serde(default)]
    pub interface: LnetInterface,
}

// === impl DesiredConfig ===

/// Everything a node should be, as the coordinator sends it: a generation (agents refuse
/// older ones), the node's mounts, its client and its LNet. An agent keeps the one it
/// accepted in its ledger (serde; unknown fields are ignored so an older ledger still loads).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredConfig {
    pub generation: Generation,
    #[serde(default)]
    pub mounts: Vec<MountSpec>,
    pub client: ClientPolicy,
    #[serde(default)]
    pub lnet: LnetPolicy,
}

// === impl Role ===

/// What a node is in the cluster. Decided by the coordinator (enrollment policy), never by
/// what an agent claims; it selects which filesystems a node mounts and which checks drain it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Role {
    Head,
    #[default]
    Compute,
    Login,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Head, Role::Compute, Role::Login];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Head => "head",
            Role::Compute => "compute",
            Role::Login => "login",
        }
    }
}

impl FromStr for Role {
    type Err = SpecError;

    fn from_str(text: &str) -> Result<Self, SpecError> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == text)
            .ok_or_else(|| SpecError::new("role", text, "is not head, compute or login"))
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

serde_via_string!(Role);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_versions() {
        for good in ["2.15.7-33-g79ddf99", "2.15.4", "2.16.1_rc1"] {
            assert_eq!(good.parse::<ClientVersion>().unwrap().as_str(), good);
        }
        for bad in ["", "v2.15", "2.15;rm", "2.15 x", "2.15/..", &"2".repeat(65)] {
            let error = bad.parse::<ClientVersion>().unwrap_err();
            assert_eq!(error.field, "lustre_version", "{bad:?}");
        }
    }

    #[test]
    fn lnet_networks_and_interfaces() {
        for good in ["tcp", "tcp0", "tcp1", "o2ib", "o2ib12"] {
            assert_eq!(good.parse::<LnetNetwork>().unwrap().as_str(), good);
        }
        for bad in ["", "tcpx", "gni", "tcp-1", "o2ib123456", "TCP"] {
            assert!(bad.parse::<LnetNetwork>().is_err(), "{bad:?}");
        }
        assert_eq!(
            "auto".parse::<LnetInterface>().unwrap(),
            LnetInterface::Auto
        );
        assert_eq!(
            "eth0".parse::<LnetInterface>().unwrap(),
            LnetInterface::Named("eth0".into())
        );
        for bad in ["", "eth0 eth1", "a/b", "0123456789abcdef", "eth0\n"] {
            let error = bad.parse::<LnetInterface>().unwrap_err();
            assert_eq!(error.field, "interface", "{bad:?}");
        }
        let policy: LnetPolicy = serde_json::from_str("{}").unwrap();
        assert_eq!(policy.network.as_str(), "tcp");
        assert_eq!(policy.interface, LnetInterface::Auto);
    }

    #[test]
    fn dkms_and_roles_parse_and_print_the_same_words() {
        for policy in [DkmsPolicy::Forbidden, DkmsPolicy::Allowed] {
            assert_eq!(policy.as_str().parse::<DkmsPolicy>().unwrap(), policy);
        }
        assert!("yes".parse::<DkmsPolicy>().is_err());
        for role in Role::ALL {
            assert_eq!(role.to_string().parse::<Role>().unwrap(), role);
        }
        assert_eq!(
            "scheduler".parse::<Role>().unwrap_err().to_string(),
            "role: \"scheduler\" is not head, compute or login"
        );
        let client: ClientPolicy = serde_json::from_str(r#"{"lustre_version":"2.15.4"}"#).unwrap();
        assert_eq!(client.dkms, DkmsPolicy::Forbidden);
        assert!(
            serde_json::from_str::<ClientPolicy>(r#"{"lustre_version":"2.15.4","dkms":"on"}"#)
                .is_err()
        );
    }
}
