//! The node's desired configuration, from `/etc/lfleet/agent.toml` (or the coordinator), and
//! what it means for fstab: the managed line of each mount.
//!
//! Parsing refuses unknown keys and validates every mount with the `MountSpec` rules; an
//! error names the line (from the TOML parser) or the field (`mounts[1].mount_point`).
//!
//! Entry points: [`NodeConfig::from_toml`], [`NodeConfig::desired_mounts`].

use lfleet_mount::DesiredMount;
use lfleet_types::{MountOption, MountSpec, RawMountSpec, SpecError};
use serde::{Deserialize, Serialize};

/// The unit the fstab lines require: ours, which brings LNet up from the ledger.
pub const LNET_UNIT: &str = "lfleet-lnet.service";

/// Default seconds a mount or umount may take.
pub const DEFAULT_MOUNT_TIMEOUT: u32 = 120;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Dkms {
    #[default]
    Forbidden,
    Allowed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientPolicy {
    pub lustre_version: String,
    #[serde(default)]
    pub dkms: Dkms,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LnetPolicy {
    #[serde(default = "default_network")]
    pub network: String,
    /// `auto` or an interface name.
    #[serde(default = "default_interface")]
    pub interface: String,
}

fn default_network() -> String {
    "tcp".into()
}

fn default_interface() -> String {
    "auto".into()
}

impl Default for LnetPolicy {
    fn default() -> Self {
        LnetPolicy {
            network: default_network(),
            interface: default_interface(),
        }
    }
}

fn default_role() -> String {
    "compute".into()
}

fn default_timeout() -> u32 {
    DEFAULT_MOUNT_TIMEOUT
}

/// The desired state of one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    pub generation: u64,
    #[serde(default = "default_role")]
    pub role: String,
    pub client: ClientPolicy,
    #[serde(default)]
    pub lnet: LnetPolicy,
    #[serde(default = "default_timeout")]
    pub mount_timeout_seconds: u32,
    #[serde(default)]
    pub mounts: Vec<MountSpec>,
    /// The package repository to set up; absent when the image already has one.
    #[serde(default)]
    pub repository: Option<crate::repo::RepositoryConfig>,
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Syntax(String),
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
}

/// The raw file: mounts as plain strings, so each is validated with its index in errors.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    generation: u64,
    #[serde(default = "default_role")]
    role: String,
    client: ClientPolicy,
    #[serde(default)]
    lnet: LnetPolicy,
    #[serde(default = "default_timeout")]
    mount_timeout_seconds: u32,
    #[serde(default)]
    mounts: Vec<RawMountSpec>,
    #[serde(default)]
    repository: Option<crate::repo::RepositoryConfig>,
}

// === impl NodeConfig ===

impl NodeConfig {
    /// Parses and validates agent.toml text.
    pub fn from_toml(text: &str) -> Result<NodeConfig, ConfigError> {
        let raw: RawConfig = toml::from_str(text)
            .map_err(|error| ConfigError::Syntax(error.to_string().trim().to_owned()))?;
        let invalid = |field: &str, reason: String| ConfigError::Invalid {
            field: field.to_owned(),
            reason,
        };
        if raw.generation == 0 {
            return Err(invalid("generation", "must be 1 or more".into()));
        }
        if !["head", "compute", "login"].contains(&raw.role.as_str()) {
            return Err(invalid(
                "role",
                format!("{:?} is not head, compute or login", raw.role),
            ));
        }
        let version_ok = !raw.client.lustre_version.is_empty()
            && raw
                .client
                .lustre_version
                .starts_with(|c: char| c.is_ascii_digit())
            && raw
                .client
                .lustre_version
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c));
        if !version_ok {
            return Err(invalid(
                "client.lustre_version",
                format!(
                    "{:?} is not an AMLFS client version such as 2.15.7-33-g79ddf99",
                    raw.client.lustre_version
                ),
            ));
        }
        let network_ok = ["tcp", "o2ib"].iter().any(|lnd| {
            raw.lnet
                .network
                .strip_prefix(lnd)
                .is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()))
        });
        if !network_ok {
            return Err(invalid(
                "lnet.network",
                format!("{:?} is not tcp[N] or o2ib[N]", raw.lnet.network),
            ));
        }
        let interface_ok = raw.lnet.interface == "auto"
            || (!raw.lnet.interface.is_empty()
                && raw.lnet.interface.len() <= 15
                && raw
                    .lnet
                    .interface
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)));
        if !interface_ok {
            return Err(invalid(
                "lnet.interface",
                format!(
                    "{:?} is not \"auto\" or an interface name",
                    raw.lnet.interface
                ),
            ));
        }
        if !(1..=3600).contains(&raw.mount_timeout_seconds) {
            return Err(invalid(
                "mount_timeout_seconds",
                "must be from 1 to 3600".into(),
            ));
        }
        if let Some(repository) = &raw.repository {
            repository.validate().map_err(ConfigError::Syntax)?;
        }
        let mut mounts = Vec::new();
        for (index, mount) in raw.mounts.into_iter().enumerate() {
            let spec =
                MountSpec::try_from(mount).map_err(|e| e.within(&format!("mounts[{index}]")))?;
            if mounts
                .iter()
                .any(|m: &MountSpec| m.mount_point == spec.mount_point)
            {
                return Err(invalid(
                    &format!("mounts[{index}].mount_point"),
                    format!("{} is listed twice", spec.mount_point),
                ));
            }
            mounts.push(spec);
        }
        Ok(NodeConfig {
            generation: raw.generation,
            role: raw.role,
            client: raw.client,
            lnet: raw.lnet,
            mount_timeout_seconds: raw.mount_timeout_seconds,
            mounts,
            repository: raw.repository,
        })
    }

    /// Each mount as the fstab line and mount the agent owns.
    pub fn desired_mounts(&self) -> Vec<DesiredMount> {
        self.mounts
            .iter()
            .map(|m| desired_mount(m, self.mount_timeout_seconds))
            .collect()
    }
}

/// The managed fstab options of a mount: `defaults`, the user's options (with `noatime` and
/// `flock` unless they chose otherwise), then what boot ordering needs: `_netdev`, `nofail`
/// (a missing filesystem must not stop the boot), the LNet unit, an explicit order before
/// `remote-fs.target` (systemd drops that order for `nofail` mounts), and a mount timeout.
pub fn desired_mount(spec: &MountSpec, timeout_seconds: u32) -> DesiredMount {
    let mut options = vec!["defaults".to_string()];
    let has = |wanted: &dyn Fn(&MountOption) -> bool| spec.options.iter().any(wanted);
    if !has(&|o| matches!(o, MountOption::Noatime)) {
        options.push("noatime".into());
    }
    if !has(&|o| {
        matches!(
            o,
            MountOption::Flock | MountOption::Localflock | MountOption::Noflock
        )
    }) {
        options.push("flock".into());
    }
    let mut timeout = timeout_seconds;
    for option in &spec.options {
        match option {
            MountOption::MountTimeout(seconds) => timeout = *seconds,
            MountOption::Requires(unit) if unit == LNET_UNIT => {}
            MountOption::Before(unit) if unit == "remote-fs.target" => {}
            other => options.push(other.to_string()),
        }
    }
    options.extend([
        "_netdev".to_string(),
        "nofail".to_string(),
        format!("x-systemd.requires={LNET_UNIT}"),
        "x-systemd.before=remote-fs.target".to_string(),
        format!("x-systemd.mount-timeout={timeout}"),
    ]);
    DesiredMount {
        source: spec.source().to_string(),
        mount_point: spec.mount_point.to_string(),
        fstab_options: options,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../packaging/examples/agent.toml");

    #[test]
    fn the_example_config_parses_and_renders_the_documented_fstab_line() {
        let config = NodeConfig::from_toml(EXAMPLE).unwrap();
        assert_eq!(config.generation, 1);
        assert_eq!(config.client.dkms, Dkms::Forbidden);
        let mounts = config.desired_mounts();
        assert_eq!(
            mounts[0].fstab_entry().render(),
            "10.0.1.4@tcp:/lustrefs /lustre lustre defaults,noatime,flock,_netdev,nofail,x-systemd.requires=lfleet-lnet.service,x-systemd.before=remote-fs.target,x-systemd.mount-timeout=120 0 0"
        );
        assert_eq!(mounts[0].mount_options(), vec!["noatime", "flock"]);
    }

    /// "line N" of the `generation` key in the example.
    static GENERATION_LINE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let index = EXAMPLE
            .lines()
            .position(|l| l.starts_with("generation ="))
            .unwrap();
        format!("line {}", index + 1)
    });

    #[test]
    fn bad_configs_name_the_line_or_field() {
        let cases = [
            (
                EXAMPLE.replace("10.0.1.4@tcp", "10.0.1.4@gni"),
                "mounts[0].mgs_nids",
            ),
            (
                EXAMPLE.replace("\"/lustre\"", "\"lustre\""),
                "mounts[0].mount_point",
            ),
            (
                EXAMPLE.replace("\"/lustre\"", "\"/etc/lustre\""),
                "under /etc",
            ),
            (
                EXAMPLE.replace("role = \"compute\"", "role = \"gpu\""),
                "role",
            ),
            (
                EXAMPLE.replace("generation = 1", "generation = 1\nbogus = 2"),
                "unknown field `bogus`",
            ),
            (
                EXAMPLE.replace("generation = 1", "generation = \"x\""),
                GENERATION_LINE.as_str(),
            ),
            (
                EXAMPLE.replace(
                    "lustre_version = \"2.15.7-33-g79ddf99\"",
                    "lustre_version = \"2.15;rm\"",
                ),
                "client.lustre_version",
            ),
            (
                EXAMPLE.replace("interface = \"auto\"", "interface = \"eth0 eth1\""),
                "lnet.interface",
            ),
            (
                format!(
                    "{EXAMPLE}\n[[mounts]]\nmgs_nids = \"10.0.1.5@tcp\"\nfsname = \"b\"\nmount_point = \"/lustre\"\n"
                ),
                "listed twice",
            ),
        ];
        for (text, fragment) in cases {
            let err = NodeConfig::from_toml(&text).unwrap_err().to_string();
            assert!(err.contains(fragment), "expected {fragment:?} in {err}");
        }
    }

    #[test]
    fn user_choices_replace_the_defaults_they_conflict_with() {
        let spec = MountSpec::new(
            "10.0.1.4@tcp",
            "fs",
            "/scratch",
            &["localflock", "ro", "x-systemd.mount-timeout=30"],
        )
        .unwrap();
        let mount = desired_mount(&spec, 120);
        assert_eq!(
            mount.fstab_options.join(","),
            "defaults,noatime,localflock,ro,_netdev,nofail,x-systemd.requires=lfleet-lnet.service,x-systemd.before=remote-fs.target,x-systemd.mount-timeout=30"
        );
    }
}
