//! The node's desired configuration, from `/etc/lfleet/agent.toml` (or the coordinator), and
//! what it means for fstab: the managed line of each mount.
//!
//! Parsing refuses unknown keys and validates every mount with the `MountSpec` rules; an
//! error names the line (from the TOML parser) or the field (`mounts[1].mount_point`).
//!
//! Entry points: [`NodeConfig::from_toml`], [`NodeConfig::desired_mounts`].

use lfleet_mount::DesiredMount;
use lfleet_types::{
    ClientPolicy, DesiredConfig, Generation, LnetPolicy, MountOption, MountSpec, RawMountSpec,
    Role, SpecError,
};
use serde::{Deserialize, Serialize};

/// The unit the fstab lines require: ours, which brings LNet up from the ledger.
pub const LNET_UNIT: &str = "lfleet-lnet.service";

/// Default seconds a mount or umount may take.
pub const DEFAULT_MOUNT_TIMEOUT: u32 = 120;

/// Default seconds one package-manager run may take.
pub const DEFAULT_INSTALL_TIMEOUT: u32 = 900;

fn default_install_timeout() -> u32 {
    DEFAULT_INSTALL_TIMEOUT
}

/// Default seconds between reconcile passes when nothing else asks for one.
pub const DEFAULT_RESYNC_SECONDS: u64 = 60;

/// One InfiniBand port the node must have (inventory, not discovery: a missing HCA fails).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IbPort {
    /// The HCA as sysfs names it (`mlx5_0`).
    pub hca: String,
    #[serde(default = "default_ib_port")]
    pub port: u32,
    /// The link rate the port must run at, in Gb/s as sysfs prints it (`200` for 4X HDR).
    pub rate_gbps: u32,
}

fn default_ib_port() -> u32 {
    1
}

/// What the health checks expect of this node and how long they wait before failing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthPolicy {
    /// The InfiniBand ports this node must have.
    #[serde(default)]
    pub ib_ports: Vec<IbPort>,
    /// Error counters are judged by how much they rose within this window.
    #[serde(default = "default_ib_error_window")]
    pub ib_error_window_seconds: u64,
    /// Whether every synthetic (hv_netvsc) NIC must have an accelerated-networking VF.
    #[serde(default)]
    pub accelnet: bool,
    /// How long a VF may be absent (Azure removes it during host servicing) before it fails.
    #[serde(default = "default_accelnet_grace")]
    pub accelnet_grace_seconds: u64,
    /// How long an LNet NI's health value must stay below 1000 before it fails.
    #[serde(default = "default_lnet_sustain")]
    pub lnet_health_sustain_seconds: u64,
}

fn default_ib_error_window() -> u64 {
    300
}

fn default_accelnet_grace() -> u64 {
    60
}

fn default_lnet_sustain() -> u64 {
    60
}

impl Default for HealthPolicy {
    fn default() -> Self {
        HealthPolicy {
            ib_ports: Vec::new(),
            ib_error_window_seconds: default_ib_error_window(),
            accelnet: false,
            accelnet_grace_seconds: default_accelnet_grace(),
            lnet_health_sustain_seconds: default_lnet_sustain(),
        }
    }
}

impl HealthPolicy {
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field: String, reason: String| ConfigError::Invalid { field, reason };
        for (index, port) in self.ib_ports.iter().enumerate() {
            let name_ok = !port.hca.is_empty()
                && port.hca.len() <= 64
                && port
                    .hca
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !name_ok {
                return Err(invalid(
                    format!("health.ib_ports[{index}].hca"),
                    format!("{:?} is not an HCA name such as mlx5_0", port.hca),
                ));
            }
            if !(1..=255).contains(&port.port) {
                return Err(invalid(
                    format!("health.ib_ports[{index}].port"),
                    "must be from 1 to 255".into(),
                ));
            }
            if !(1..=3200).contains(&port.rate_gbps) {
                return Err(invalid(
                    format!("health.ib_ports[{index}].rate_gbps"),
                    "must be from 1 to 3200 (Gb/s)".into(),
                ));
            }
            if self.ib_ports[..index]
                .iter()
                .any(|p| p.hca == port.hca && p.port == port.port)
            {
                return Err(invalid(
                    format!("health.ib_ports[{index}]"),
                    format!("{} port {} is listed twice", port.hca, port.port),
                ));
            }
        }
        for (field, value) in [
            (
                "health.ib_error_window_seconds",
                self.ib_error_window_seconds,
            ),
            ("health.accelnet_grace_seconds", self.accelnet_grace_seconds),
            (
                "health.lnet_health_sustain_seconds",
                self.lnet_health_sustain_seconds,
            ),
        ] {
            if value > 86_400 {
                return Err(invalid(field.into(), "must be at most 86400".into()));
            }
        }
        Ok(())
    }
}

/// Where the coordinator is and how to join it. Absent: the agent runs from this file alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoordinatorPolicy {
    /// `https://HOST:PORT`.
    pub url: String,
    /// The coordinator's CA certificate (PEM). Like every path here, a path on the node
    /// (under `--root`).
    #[serde(default = "default_ca_file")]
    pub ca_file: String,
    /// The join token, used to enroll (and re-enroll) for a certificate.
    #[serde(default = "default_join_token_file")]
    pub join_token_file: String,
    /// This node's name (default: /etc/hostname).
    #[serde(default)]
    pub node_name: Option<String>,
    /// The CycleCloud nodearray, for the coordinator's selectors.
    #[serde(default)]
    pub nodearray: String,
}

fn default_ca_file() -> String {
    "/etc/lfleet/ca.pem".into()
}

fn default_join_token_file() -> String {
    "/etc/lfleet/join-token".into()
}

/// The running agent's metrics for Prometheus: an endpoint (off unless enabled; loopback
/// unless told otherwise) and/or a file for node_exporter's textfile collector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusPolicy {
    #[serde(default)]
    pub enabled: bool,
    /// `address:port` to listen on.
    #[serde(default = "default_prometheus_listen")]
    pub listen: String,
    /// Where to write the metrics every collection interval for node_exporter's textfile
    /// collector (an absolute path ending in `.prom`); none by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub textfile: Option<String>,
}

/// The agent's default metrics port: not taken on Prometheus's default-port allocations
/// list (whose 9100-9999 range is full; 9464 is OpenTelemetry's exporter's).
pub const DEFAULT_PROMETHEUS_PORT: u16 = 10988;

fn default_prometheus_listen() -> String {
    format!("127.0.0.1:{DEFAULT_PROMETHEUS_PORT}")
}

impl Default for PrometheusPolicy {
    fn default() -> Self {
        PrometheusPolicy {
            enabled: false,
            listen: default_prometheus_listen(),
            textfile: None,
        }
    }
}

/// Checks a textfile path: absolute, plain (no `.`, `..` or empty components, no control
/// characters), outside the kernel's filesystems, and a `*.prom` file (node_exporter's
/// textfile collector reads only those).
pub fn textfile_problem(path: &str) -> Option<String> {
    if !path.starts_with('/') {
        return Some(format!("{path:?} is not an absolute path"));
    }
    if path.chars().any(char::is_control) {
        return Some(format!("{path:?} contains a control character"));
    }
    let parts: Vec<&str> = path[1..].split('/').collect();
    if parts
        .iter()
        .any(|p| p.is_empty() || *p == "." || *p == "..")
    {
        return Some(format!(
            "{path:?} has an empty, `.` or `..` component; write the plain path"
        ));
    }
    if ["proc", "sys", "dev"].contains(&parts[0]) {
        return Some(format!("{path:?} is under /{}", parts[0]));
    }
    let file = parts.last().copied().unwrap_or_default();
    if file.len() <= ".prom".len() || !file.ends_with(".prom") {
        return Some(format!(
            "{path:?} does not name a *.prom file (the only files node_exporter's textfile collector reads)"
        ));
    }
    None
}

fn default_timeout() -> u32 {
    DEFAULT_MOUNT_TIMEOUT
}

fn default_resync() -> u64 {
    DEFAULT_RESYNC_SECONDS
}

/// The desired state of one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    pub generation: Generation,
    #[serde(default)]
    pub role: Role,
    pub client: ClientPolicy,
    #[serde(default)]
    pub lnet: LnetPolicy,
    #[serde(default = "default_timeout")]
    pub mount_timeout_seconds: u32,
    /// Seconds one package-manager run may take, its wait for the package lock included
    /// (dnf and tdnf wait for their lock without a limit of their own). Node-local.
    #[serde(default = "default_install_timeout")]
    pub install_timeout_seconds: u32,
    /// Seconds between reconcile passes of a running agent when nothing else asks for one.
    #[serde(default = "default_resync")]
    pub resync_seconds: u64,
    /// The longest a failed install waits for its scheduled retry (default: each failure
    /// class's own schedule, up to 6 hours for a client not published yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_max_seconds: Option<u64>,
    #[serde(default)]
    pub mounts: Vec<MountSpec>,
    /// The package repository to set up; absent when the image already has one.
    #[serde(default)]
    pub repository: Option<crate::repo::RepositoryConfig>,
    /// What the health checks expect.
    #[serde(default)]
    pub health: HealthPolicy,
    /// The agent's own Prometheus endpoint.
    #[serde(default)]
    pub prometheus: PrometheusPolicy,
    /// The coordinator to join, if any.
    #[serde(default)]
    pub coordinator: Option<CoordinatorPolicy>,
    /// Where this node lets filesystems be mounted. Node-local: a pushed config is checked
    /// against the node's own list, so a compromised coordinator cannot mount over `/root`.
    #[serde(default)]
    pub mount_policy: MountPolicy,
}

/// `[mount_policy]`: the roots mount points must be on or below.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountPolicy {
    #[serde(default = "default_allowed_roots")]
    pub allowed_roots: Vec<String>,
}

fn default_allowed_roots() -> Vec<String> {
    lfleet_types::DEFAULT_ALLOWED_MOUNT_ROOTS
        .iter()
        .map(|r| (*r).to_owned())
        .collect()
}

impl Default for MountPolicy {
    fn default() -> Self {
        MountPolicy {
            allowed_roots: default_allowed_roots(),
        }
    }
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
    #[serde(default)]
    role: Option<String>,
    client: RawClient,
    #[serde(default)]
    lnet: RawLnet,
    #[serde(default = "default_timeout")]
    mount_timeout_seconds: u32,
    #[serde(default = "default_install_timeout")]
    install_timeout_seconds: u32,
    #[serde(default = "default_resync")]
    resync_seconds: u64,
    #[serde(default)]
    retry_max_seconds: Option<u64>,
    #[serde(default)]
    mounts: Vec<RawMountSpec>,
    #[serde(default)]
    repository: Option<crate::repo::RepositoryConfig>,
    #[serde(default)]
    health: HealthPolicy,
    #[serde(default)]
    prometheus: PrometheusPolicy,
    #[serde(default)]
    coordinator: Option<CoordinatorPolicy>,
    #[serde(default)]
    mount_policy: MountPolicy,
}

/// `[client]` as written, so each value is validated with its field in errors.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    lustre_version: String,
    #[serde(default)]
    dkms: Option<String>,
}

/// `[lnet]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLnet {
    #[serde(default)]
    network: Option<String>,
    #[serde(default)]
    interface: Option<String>,
}

// === impl NodeConfig ===

impl NodeConfig {
    /// Parses and validates agent.toml text.
    pub fn from_toml(text: &str) -> Result<NodeConfig, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|error| {
            ConfigError::Syntax(lfleet_types::error_chain(&error).trim().to_owned())
        })?;
        let invalid = |field: &str, reason: String| ConfigError::Invalid {
            field: field.to_owned(),
            reason,
        };
        if raw.generation == 0 {
            return Err(invalid("generation", "must be 1 or more".into()));
        }
        let role = match &raw.role {
            Some(role) => role.parse::<Role>()?,
            None => Role::default(),
        };
        let client = ClientPolicy {
            lustre_version: raw
                .client
                .lustre_version
                .parse()
                .map_err(|e: SpecError| e.within("client"))?,
            dkms: match &raw.client.dkms {
                Some(dkms) => dkms.parse().map_err(|e: SpecError| e.within("client"))?,
                None => Default::default(),
            },
        };
        let lnet = LnetPolicy {
            network: match &raw.lnet.network {
                Some(network) => network.parse().map_err(|e: SpecError| e.within("lnet"))?,
                None => Default::default(),
            },
            interface: match &raw.lnet.interface {
                Some(interface) => interface.parse().map_err(|e: SpecError| e.within("lnet"))?,
                None => Default::default(),
            },
        };
        if !(1..=7200).contains(&raw.install_timeout_seconds) {
            return Err(invalid(
                "install_timeout_seconds",
                "must be from 1 to 7200".into(),
            ));
        }
        if !(1..=3600).contains(&raw.mount_timeout_seconds) {
            return Err(invalid(
                "mount_timeout_seconds",
                "must be from 1 to 3600".into(),
            ));
        }
        if !(1..=86_400).contains(&raw.resync_seconds) {
            return Err(invalid("resync_seconds", "must be from 1 to 86400".into()));
        }
        if raw
            .retry_max_seconds
            .is_some_and(|seconds| !(1..=86_400).contains(&seconds))
        {
            return Err(invalid(
                "retry_max_seconds",
                "must be from 1 to 86400".into(),
            ));
        }
        if let Some(repository) = &raw.repository {
            repository.validate().map_err(ConfigError::Syntax)?;
        }
        raw.health.validate()?;
        if raw
            .prometheus
            .listen
            .parse::<std::net::SocketAddr>()
            .is_err()
        {
            return Err(invalid(
                "prometheus.listen",
                format!(
                    "{:?} is not address:port, such as 127.0.0.1:{DEFAULT_PROMETHEUS_PORT} or [::1]:{DEFAULT_PROMETHEUS_PORT}",
                    raw.prometheus.listen
                ),
            ));
        }
        if let Some(problem) = raw
            .prometheus
            .textfile
            .as_deref()
            .and_then(textfile_problem)
        {
            return Err(invalid("prometheus.textfile", problem));
        }
        if let Some(coordinator) = &raw.coordinator {
            let url_ok = coordinator
                .url
                .strip_prefix("https://")
                .is_some_and(|rest| !rest.is_empty() && !rest.contains(char::is_whitespace));
            if !url_ok {
                return Err(invalid(
                    "coordinator.url",
                    format!("{:?} is not https://HOST:PORT", coordinator.url),
                ));
            }
            if let Some(name) = &coordinator.node_name
                && name.parse::<lfleet_types::NodeName>().is_err()
            {
                return Err(invalid(
                    "coordinator.node_name",
                    format!("{name:?} is not a host name"),
                ));
            }
        }
        let roots = lfleet_types::MountRoots::new(&raw.mount_policy.allowed_roots)
            .map_err(|e| e.within("mount_policy"))?;
        let mut mounts = Vec::new();
        for (index, mount) in raw.mounts.into_iter().enumerate() {
            let spec =
                MountSpec::try_from(mount).map_err(|e| e.within(&format!("mounts[{index}]")))?;
            roots
                .check(&spec.mount_point)
                .map_err(|e| e.within(&format!("mounts[{index}]")))?;
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
        // The file is written on the agent's loop: never on a Lustre mount, which can hang.
        if let Some(path) = &raw.prometheus.textfile
            && let Some(mount) = mounts
                .iter()
                .find(|m| std::path::Path::new(path).starts_with(m.mount_point.as_str()))
        {
            return Err(invalid(
                "prometheus.textfile",
                format!("{path:?} is on the Lustre mount {}", mount.mount_point),
            ));
        }
        Ok(NodeConfig {
            generation: Generation(raw.generation),
            role,
            client,
            lnet,
            mount_timeout_seconds: raw.mount_timeout_seconds,
            install_timeout_seconds: raw.install_timeout_seconds,
            resync_seconds: raw.resync_seconds,
            retry_max_seconds: raw.retry_max_seconds,
            mounts,
            repository: raw.repository,
            health: raw.health,
            prometheus: raw.prometheus,
            coordinator: raw.coordinator,
            mount_policy: raw.mount_policy,
        })
    }

    /// The generation-carrying part: generation, client, LNet and mounts.
    pub fn desired_state(&self) -> DesiredConfig {
        DesiredConfig {
            generation: self.generation,
            client: self.client.clone(),
            lnet: self.lnet.clone(),
            mounts: self.mounts.clone(),
        }
    }

    /// This node's own settings with `desired` as the generation-carrying part.
    pub fn with_desired_state(&self, desired: DesiredConfig) -> NodeConfig {
        NodeConfig {
            generation: desired.generation,
            client: desired.client,
            lnet: desired.lnet,
            mounts: desired.mounts,
            ..self.clone()
        }
    }

    /// A configuration with default node settings around `desired` (a node with no
    /// agent.toml, running from its ledger alone).
    pub fn from_desired_state(desired: DesiredConfig) -> NodeConfig {
        NodeConfig {
            generation: desired.generation,
            role: Role::default(),
            client: desired.client,
            lnet: desired.lnet,
            mount_timeout_seconds: DEFAULT_MOUNT_TIMEOUT,
            install_timeout_seconds: DEFAULT_INSTALL_TIMEOUT,
            resync_seconds: DEFAULT_RESYNC_SECONDS,
            retry_max_seconds: None,
            mounts: desired.mounts,
            repository: None,
            health: HealthPolicy::default(),
            prometheus: PrometheusPolicy::default(),
            coordinator: None,
            mount_policy: MountPolicy::default(),
        }
    }

    /// Checks a configuration assembled in memory (a coordinator's push over this node's
    /// settings) with exactly the rules a file is checked with.
    pub fn revalidated(&self) -> Result<NodeConfig, ConfigError> {
        let text = toml::to_string(self)
            .map_err(|error| ConfigError::Syntax(lfleet_types::error_chain(&error)))?;
        NodeConfig::from_toml(&text)
    }

    /// Each mount as the fstab line and mount the agent owns.
    pub fn desired_mounts(&self) -> Vec<DesiredMount> {
        self.mounts
            .iter()
            .map(|m| desired_mount(m, self.mount_timeout_seconds))
            .collect()
    }
}

/// The managed fstab options of a mount: `defaults,nosuid,nodev` (no set-user-ID programs or
/// device files from a shared filesystem), the user's options (with `noatime` and `flock`
/// unless they chose otherwise), then what boot ordering needs: `_netdev`, `nofail`
/// (a missing filesystem must not stop the boot), the LNet unit, an explicit order before
/// `remote-fs.target` (systemd drops that order for `nofail` mounts), and a mount timeout.
pub fn desired_mount(spec: &MountSpec, timeout_seconds: u32) -> DesiredMount {
    let mut options = vec![
        "defaults".to_string(),
        "nosuid".to_string(),
        "nodev".to_string(),
    ];
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
            MountOption::Nosuid | MountOption::Nodev => {}
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
        assert_eq!(config.generation, Generation(1));
        assert_eq!(config.client.dkms, lfleet_types::DkmsPolicy::Forbidden);
        assert_eq!(config.resync_seconds, DEFAULT_RESYNC_SECONDS);
        let mounts = config.desired_mounts();
        assert_eq!(
            mounts[0].fstab_entry().render(),
            "10.0.1.4@tcp:/lustrefs /lustre lustre defaults,nosuid,nodev,noatime,flock,_netdev,nofail,x-systemd.requires=lfleet-lnet.service,x-systemd.before=remote-fs.target,x-systemd.mount-timeout=120 0 0"
        );
        assert_eq!(
            mounts[0].mount_options(),
            vec!["nosuid", "nodev", "noatime", "flock"]
        );
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
            (
                format!(
                    "{EXAMPLE}\n[health]\nib_ports = [{{ hca = \"mlx5_0;x\", rate_gbps = 200 }}]\n"
                ),
                "health.ib_ports[0].hca",
            ),
            (
                format!(
                    "{EXAMPLE}\n[health]\nib_ports = [{{ hca = \"mlx5_0\", port = 0, rate_gbps = 200 }}]\n"
                ),
                "health.ib_ports[0].port",
            ),
            (
                format!(
                    "{EXAMPLE}\n[health]\nib_ports = [{{ hca = \"mlx5_0\", rate_gbps = 0 }}]\n"
                ),
                "health.ib_ports[0].rate_gbps",
            ),
            (
                format!(
                    "{EXAMPLE}\n[health]\nib_ports = [{{ hca = \"mlx5_0\", rate_gbps = 200 }}, {{ hca = \"mlx5_0\", port = 1, rate_gbps = 200 }}]\n"
                ),
                "mlx5_0 port 1 is listed twice",
            ),
            (
                format!("{EXAMPLE}\n[health]\naccelnet_grace_seconds = 100000\n"),
                "health.accelnet_grace_seconds",
            ),
            (
                format!("{EXAMPLE}\n[health]\nib_port = []\n"),
                "unknown field `ib_port`",
            ),
            (
                format!("{EXAMPLE}\n[prometheus]\nenabled = true\nlisten = \"localhost\"\n"),
                "prometheus.listen",
            ),
            (
                format!("{EXAMPLE}\n[prometheus]\ntextfile = \"lfleet.prom\"\n"),
                "prometheus.textfile: \"lfleet.prom\" is not an absolute path",
            ),
            (
                format!(
                    "{EXAMPLE}\n[prometheus]\ntextfile = \"/var/lib/prometheus/node-exporter/lfleet.txt\"\n"
                ),
                "does not name a *.prom file",
            ),
            (
                format!("{EXAMPLE}\n[prometheus]\ntextfile = \"/var/lib/../etc/lfleet.prom\"\n"),
                "`..` component",
            ),
            (
                format!("{EXAMPLE}\n[prometheus]\ntextfile = \"/var/lib/prometheus/\"\n"),
                "prometheus.textfile",
            ),
            (
                format!("{EXAMPLE}\n[prometheus]\ntextfile = \"/proc/lfleet.prom\"\n"),
                "is under /proc",
            ),
            (
                format!("{EXAMPLE}\n[prometheus]\ntextfile = \"/lustre/node.prom\"\n"),
                "is on the Lustre mount /lustre",
            ),
        ];
        for (text, fragment) in cases {
            let err = NodeConfig::from_toml(&text).unwrap_err().to_string();
            assert!(err.contains(fragment), "expected {fragment:?} in {err}");
        }
    }

    /// A minimal config with one mount at `point` with `options`, and `policy` appended.
    fn one_mount(point: &str, options: &str, policy: &str) -> String {
        format!(
            "generation = 1\n[client]\nlustre_version = \"2.15.4\"\n[[mounts]]\nmgs_nids = \"10.0.1.4@tcp\"\nfsname = \"lustrefs\"\nmount_point = \"{point}\"\noptions = [{options}]\n{policy}"
        )
    }

    #[test]
    fn mount_points_must_be_below_an_allowed_root_of_this_node() {
        for bad in [
            "/root",
            "/var/spool/cron/x",
            "/var/lib/dpkg/x",
            "/opt/cycle/x",
            "/home",
        ] {
            let error = NodeConfig::from_toml(&one_mount(bad, "", "")).unwrap_err();
            let text = error.to_string();
            assert!(
                text.contains("mounts[0].mount_point") && text.contains("allowed root"),
                "{bad}: {text}"
            );
        }
        for good in ["/lustre", "/mnt/lustre/a", "/scratch", "/work/x"] {
            NodeConfig::from_toml(&one_mount(good, "", "")).unwrap();
        }
        // The node's own list replaces the default one.
        let narrow = "[mount_policy]\nallowed_roots = [\"/amlfs\"]\n";
        assert!(NodeConfig::from_toml(&one_mount("/lustre", "", narrow)).is_err());
        NodeConfig::from_toml(&one_mount("/amlfs/fs1", "", narrow)).unwrap();
        let bad_root = "[mount_policy]\nallowed_roots = [\"/etc\"]\n";
        let error = NodeConfig::from_toml(&one_mount("/etc/x", "", bad_root)).unwrap_err();
        assert!(
            error.to_string().contains("mount_policy.allowed_roots"),
            "{error}"
        );
    }

    #[test]
    fn nosuid_and_nodev_are_always_written_and_noexec_may_be_added() {
        let config = NodeConfig::from_toml(&one_mount(
            "/lustre",
            "\"nosuid\", \"nodev\", \"noexec\"",
            "",
        ))
        .unwrap();
        let options = &config.desired_mounts()[0].fstab_options;
        assert_eq!(&options[..3], ["defaults", "nosuid", "nodev"]);
        assert_eq!(options.iter().filter(|o| *o == "nosuid").count(), 1);
        assert!(options.contains(&"noexec".to_string()));
        let plain = NodeConfig::from_toml(&one_mount("/lustre", "", "")).unwrap();
        let options = &plain.desired_mounts()[0].fstab_options;
        assert!(
            options.contains(&"nosuid".to_string()) && !options.contains(&"noexec".to_string())
        );
        assert!(NodeConfig::from_toml(&one_mount("/lustre", "\"suid\"", "")).is_err());
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
            "defaults,nosuid,nodev,noatime,localflock,ro,_netdev,nofail,x-systemd.requires=lfleet-lnet.service,x-systemd.before=remote-fs.target,x-systemd.mount-timeout=30"
        );
    }
}
