//! `coordinator.toml`: the server's own settings (`[server]`, `[slurm]`, `[policy]`, `[slow]`)
//! and the desired state of the fleet (`[client]`, `[lnet]`, `[[filesystems]]` with the
//! nodes each applies to). The same file format is what `lfleet config apply FILE` sends;
//! there `[server]` is ignored.
//!
//! A file is checked whole: every error is reported with its line and field
//! (`line 14: filesystems[1].mount_point: ...`), and a file with any error changes nothing.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;

use lfleet_types::{
    ClientPolicy, DkmsPolicy, LnetPolicy, MountRoots, MountSpec, RawMountSpec, Role, SpecError,
};
use serde::Deserialize;
use toml::Spanned;

use crate::hostlist::HostPattern;
use crate::identity::{EnrollmentRule, EnrollmentRules, NodeIdentity};

/// One refusal, where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// 1-based; 0 when the whole file is meant.
    pub line: u32,
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line > 0 {
            write!(f, "line {}: ", self.line)?;
        }
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Every refusal of a file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct ConfigErrors(pub Vec<FieldError>);

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Where agents and operators with certificates connect (mTLS).
    #[serde(default = "default_listen")]
    pub listen: String,
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// The file holding the join token agents enroll with.
    #[serde(default = "default_join_token_file")]
    pub join_token_file: PathBuf,
    /// Operators on this host (root only) connect here.
    #[serde(default = "default_admin_socket")]
    pub admin_socket: PathBuf,
    /// Names and addresses in the coordinator's certificate.
    #[serde(default = "default_server_names")]
    pub server_names: Vec<String>,
    /// The Prometheus endpoint; absent: off.
    #[serde(default)]
    pub metrics_listen: Option<String>,
    /// The web dashboard (an IP address and port; empty: off). Plain HTTP only on a
    /// loopback address; elsewhere only with `dashboard_tls`.
    #[serde(default = "default_dashboard_listen")]
    pub dashboard_listen: String,
    /// Serve the dashboard over TLS with the coordinator's certificate; browsers with an
    /// admin certificate may then read (from anywhere) and act.
    #[serde(default)]
    pub dashboard_tls: bool,
    /// Hours an agent certificate is valid; agents renew at half of it.
    #[serde(default = "default_cert_hours")]
    pub agent_certificate_hours: u32,
    /// Seconds instead of hours (tests of renewal); absent: `agent_certificate_hours`.
    #[serde(default)]
    pub agent_certificate_seconds: Option<u32>,
    /// A node that sent nothing for this long is SILENT, whatever its TCP connection says.
    #[serde(default = "default_silence")]
    pub silence_seconds: f64,
    /// HTTP/2 keepalive: a ping after this long without traffic, and the connection closed
    /// when the answer takes longer than this again.
    #[serde(default = "default_keepalive")]
    pub keepalive_seconds: f64,
    /// A TLS handshake that takes longer is dropped (an idle or stalled connection).
    #[serde(default = "default_handshake")]
    pub tls_handshake_seconds: f64,
    /// Connections served at once on the TLS port (capped below the open-file limit);
    /// more are refused.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Connections one source address may hold; more are refused.
    #[serde(default = "default_max_per_address")]
    pub max_connections_per_address: usize,
}

fn default_silence() -> f64 {
    30.0
}
fn default_keepalive() -> f64 {
    10.0
}
fn default_handshake() -> f64 {
    10.0
}
fn default_max_connections() -> usize {
    50_000
}
fn default_max_per_address() -> usize {
    64
}

impl ServerConfig {
    /// How long an agent certificate is valid, in seconds (at least a minute... or what a
    /// test asks for, at least 10 s).
    pub fn agent_certificate_lifetime_seconds(&self) -> u32 {
        self.agent_certificate_seconds
            .unwrap_or(self.agent_certificate_hours.saturating_mul(3600))
            .max(10)
    }
}

fn default_listen() -> String {
    "0.0.0.0:7443".into()
}
fn default_data_dir() -> PathBuf {
    "/var/lib/lfleet-coordinator".into()
}
fn default_join_token_file() -> PathBuf {
    "/etc/lfleet/join-token".into()
}
fn default_admin_socket() -> PathBuf {
    "/run/lfleet/coordinator.sock".into()
}
fn default_server_names() -> Vec<String> {
    vec!["localhost".into(), "127.0.0.1".into()]
}
fn default_dashboard_listen() -> String {
    "127.0.0.1:7444".into()
}
fn default_cert_hours() -> u32 {
    24
}

/// Checks a `dashboard_listen` value: empty is off; otherwise an IP address and port, and
/// a non-loopback address only with TLS.
pub fn dashboard_address(listen: &str, tls: bool) -> Result<Option<SocketAddr>, String> {
    if listen.is_empty() {
        return Ok(None);
    }
    let address: SocketAddr = listen.parse().map_err(|_| {
        format!("{listen:?} is not an IP address and port (such as 127.0.0.1:7444)")
    })?;
    if !address.ip().is_loopback() && !tls {
        return Err(format!(
            "{listen} is not a loopback address, and the dashboard is never served in plain \
             HTTP beyond this host: set dashboard_tls = true (browsers then need an admin \
             certificate) or listen on 127.0.0.1"
        ));
    }
    Ok(Some(address))
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            data_dir: default_data_dir(),
            join_token_file: default_join_token_file(),
            admin_socket: default_admin_socket(),
            server_names: default_server_names(),
            metrics_listen: None,
            dashboard_listen: default_dashboard_listen(),
            dashboard_tls: false,
            agent_certificate_hours: default_cert_hours(),
            agent_certificate_seconds: None,
            silence_seconds: default_silence(),
            keepalive_seconds: default_keepalive(),
            tls_handshake_seconds: default_handshake(),
            max_connections: default_max_connections(),
            max_connections_per_address: default_max_per_address(),
        }
    }
}

/// `[client]` as written, checked into a [`ClientPolicy`] with its span.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    lustre_version: String,
    #[serde(default = "default_dkms")]
    dkms: String,
}

fn default_dkms() -> String {
    "forbidden".into()
}

/// `[lnet]` as written, checked into an [`LnetPolicy`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLnet {
    #[serde(default = "default_network")]
    network: String,
    #[serde(default = "default_interface")]
    interface: String,
}

fn default_network() -> String {
    "tcp".into()
}
fn default_interface() -> String {
    "auto".into()
}

impl Default for RawLnet {
    fn default() -> Self {
        RawLnet {
            network: default_network(),
            interface: default_interface(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFilesystem {
    name: Spanned<String>,
    mgs_nids: Spanned<String>,
    fsname: Spanned<String>,
    mount_point: Spanned<String>,
    #[serde(default)]
    options: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    roles: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    nodes: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    nodearrays: Option<Spanned<Vec<String>>>,
}

/// How the coordinator reaches Slurm.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmConfig {
    /// Off by default: the coordinator drains nothing until told to.
    #[serde(default)]
    pub enabled: bool,
    #[serde(default = "default_scontrol")]
    pub scontrol: String,
    /// SLURM_CONF for scontrol; absent: Slurm's default.
    #[serde(default)]
    pub slurm_conf: Option<String>,
    #[serde(default = "default_slurm_timeout")]
    pub timeout_seconds: u64,
}

fn default_scontrol() -> String {
    "scontrol".into()
}
fn default_slurm_timeout() -> u64 {
    10
}

impl Default for SlurmConfig {
    fn default() -> Self {
        SlurmConfig {
            enabled: false,
            scontrol: default_scontrol(),
            slurm_conf: None,
            timeout_seconds: default_slurm_timeout(),
        }
    }
}

/// One `[[enrollment.rules]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    nodes: Vec<String>,
    #[serde(default = "default_rule_role")]
    role: String,
    #[serde(default)]
    nodearray: String,
    #[serde(default = "default_slurm_name")]
    slurm_name: String,
}

fn default_rule_role() -> String {
    Role::default().to_string()
}
fn default_slurm_name() -> String {
    "{name}".into()
}

/// `[mount_policy]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMountPolicy {
    allowed_roots: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnrollment {
    #[serde(default)]
    rules: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    server: Option<ServerConfig>,
    #[serde(default)]
    enrollment: Option<Spanned<RawEnrollment>>,
    #[serde(default)]
    mount_policy: Option<Spanned<RawMountPolicy>>,
    #[serde(default)]
    slurm: Option<SlurmConfig>,
    #[serde(default)]
    policy: Option<Spanned<crate::policy::Policy>>,
    #[serde(default)]
    slow: Option<Spanned<crate::slow::SlowConfig>>,
    client: Spanned<RawClient>,
    #[serde(default)]
    lnet: Option<Spanned<RawLnet>>,
    #[serde(default)]
    filesystems: Vec<RawFilesystem>,
}

/// A filesystem and the nodes that mount it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filesystem {
    pub name: String,
    pub spec: MountSpec,
    /// Empty: every role.
    pub roles: Vec<Role>,
    /// Host lists; empty: every node.
    pub nodes: Vec<HostPattern>,
    /// CycleCloud nodearrays; empty: every nodearray.
    pub nodearrays: Vec<String>,
}

impl Filesystem {
    /// Whether `node` mounts this filesystem: every selector given must match.
    pub fn applies_to(&self, node: &NodeIdentity) -> bool {
        (self.roles.is_empty() || self.roles.contains(&node.role))
            && (self.nodes.is_empty() || self.nodes.iter().any(|p| p.matches(&node.name)))
            && (self.nodearrays.is_empty() || self.nodearrays.contains(&node.nodearray))
    }
}

/// The desired state of the fleet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    pub client: ClientPolicy,
    pub lnet: LnetPolicy,
    pub filesystems: Vec<Filesystem>,
    /// The text it was read from (stored with its generation, shown by `config show`).
    pub text: String,
}

impl Desired {
    /// The mounts of one node.
    pub fn mounts_for(&self, node: &NodeIdentity) -> Vec<MountSpec> {
        self.filesystems
            .iter()
            .filter(|f| f.applies_to(node))
            .map(|f| f.spec.clone())
            .collect()
    }
}

/// What differs between two desired states, in words (empty when they are the same; comments
/// and layout never count).
pub fn differences(running: &Desired, candidate: &Desired) -> Vec<String> {
    let mut out = Vec::new();
    if running.client != candidate.client {
        out.push(format!(
            "[client] {} -> {}",
            running.client.lustre_version, candidate.client.lustre_version
        ));
    }
    if running.lnet != candidate.lnet {
        out.push("[lnet] changed".into());
    }
    for fs in &candidate.filesystems {
        match running.filesystems.iter().find(|r| r.name == fs.name) {
            None => out.push(format!("filesystem {} added", fs.name)),
            Some(old) if old != fs => out.push(format!("filesystem {} changed", fs.name)),
            Some(_) => {}
        }
    }
    for fs in &running.filesystems {
        if !candidate.filesystems.iter().any(|c| c.name == fs.name) {
            out.push(format!("filesystem {} removed", fs.name));
        }
    }
    out
}

/// A whole coordinator.toml.
#[derive(Debug, Clone, PartialEq)]
pub struct CoordinatorFile {
    pub server: ServerConfig,
    /// `[enrollment]`: who a node is (like `[server]`, read at start, not by `config apply`).
    pub enrollment: EnrollmentRules,
    pub slurm: SlurmConfig,
    pub policy: crate::policy::Policy,
    /// `[slow]`: slow-node detection (read at start, like `[policy]`).
    pub slow: crate::slow::SlowConfig,
    pub desired: Desired,
}

fn line_of(text: &str, offset: usize) -> u32 {
    text[..offset.min(text.len())].matches('\n').count() as u32 + 1
}

/// Parses and checks a file; every problem is reported.
pub fn parse(text: &str) -> Result<CoordinatorFile, ConfigErrors> {
    if text.len() > 1 << 20 {
        return Err(ConfigErrors(vec![FieldError {
            line: 0,
            field: "file".into(),
            message: "is larger than 1 MiB".into(),
        }]));
    }
    let raw: RawFile = toml::from_str(text).map_err(|error| {
        let line = error.span().map(|s| line_of(text, s.start)).unwrap_or(0);
        ConfigErrors(vec![FieldError {
            line,
            field: "file".into(),
            message: error.message().trim().to_owned(),
        }])
    })?;
    let mut errors = Vec::new();
    let mut error = |span: std::ops::Range<usize>, field: String, message: String| {
        errors.push(FieldError {
            line: line_of(text, span.start),
            field,
            message,
        });
    };
    let raw_client = raw.client.get_ref().clone();
    let client_span = raw.client.span();
    let mut spec_error = |span: std::ops::Range<usize>, parent: &str, e: SpecError| {
        let e = e.within(parent);
        error(span, e.field, format!("{:?} {}", e.value, e.reason));
    };
    let lustre_version = raw_client
        .lustre_version
        .parse()
        .map_err(|e| spec_error(client_span.clone(), "client", e))
        .ok();
    let dkms = raw_client
        .dkms
        .parse::<DkmsPolicy>()
        .map_err(|e| spec_error(client_span.clone(), "client", e))
        .unwrap_or_default();
    let raw_lnet = raw
        .lnet
        .as_ref()
        .map(|l| l.get_ref().clone())
        .unwrap_or_default();
    let lnet_span = raw.lnet.as_ref().map(|l| l.span()).unwrap_or(0..0);
    let network = raw_lnet
        .network
        .parse()
        .map_err(|e| spec_error(lnet_span.clone(), "lnet", e))
        .unwrap_or_default();
    let interface = raw_lnet
        .interface
        .parse()
        .map_err(|e| spec_error(lnet_span.clone(), "lnet", e))
        .unwrap_or_default();
    let lnet = LnetPolicy { network, interface };
    let roots = match &raw.mount_policy {
        Some(policy) => MountRoots::new(&policy.get_ref().allowed_roots).unwrap_or_else(|e| {
            let e = e.within("mount_policy");
            error(
                policy.span(),
                e.field,
                format!("{:?} {}", e.value, e.reason),
            );
            MountRoots::default()
        }),
        None => MountRoots::default(),
    };
    let mut filesystems = Vec::new();
    let mut names = BTreeSet::new();
    for (index, fs) in raw.filesystems.into_iter().enumerate() {
        let field = |name: &str| format!("filesystems[{index}].{name}");
        if !names.insert(fs.name.get_ref().clone()) {
            error(
                fs.name.span(),
                field("name"),
                format!("{:?} is listed twice", fs.name.get_ref()),
            );
        }
        if fs.name.get_ref().is_empty()
            || fs.name.get_ref().len() > 64
            || !fs
                .name
                .get_ref()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
        {
            error(
                fs.name.span(),
                field("name"),
                "a name is 1 to 64 letters, digits, '-' or '_'".into(),
            );
        }
        let options = fs
            .options
            .as_ref()
            .map(|o| o.get_ref().clone())
            .unwrap_or_default();
        // Each field on its own first, so every bad field of a filesystem is reported.
        let mut fields_ok = true;
        for (result, span, name) in [
            (
                fs.mgs_nids.get_ref().parse::<lfleet_types::MgsNids>().err(),
                fs.mgs_nids.span(),
                "mgs_nids",
            ),
            (
                fs.fsname.get_ref().parse::<lfleet_types::FsName>().err(),
                fs.fsname.span(),
                "fsname",
            ),
            (
                fs.mount_point
                    .get_ref()
                    .parse::<lfleet_types::MountPoint>()
                    .and_then(|point| roots.check(&point))
                    .err(),
                fs.mount_point.span(),
                "mount_point",
            ),
        ] {
            if let Some(spec_error) = result {
                fields_ok = false;
                error(
                    span,
                    field(name),
                    format!("{:?} {}", spec_error.value, spec_error.reason),
                );
            }
        }
        let spec = if fields_ok {
            match MountSpec::try_from(RawMountSpec {
                mgs_nids: fs.mgs_nids.get_ref().clone(),
                fsname: fs.fsname.get_ref().clone(),
                mount_point: fs.mount_point.get_ref().clone(),
                options,
            }) {
                Ok(spec) => Some(spec),
                Err(spec_error) => {
                    let span = fs
                        .options
                        .as_ref()
                        .map(|o| o.span())
                        .unwrap_or(fs.name.span());
                    error(
                        span,
                        field(&spec_error.field),
                        format!("{:?} {}", spec_error.value, spec_error.reason),
                    );
                    None
                }
            }
        } else {
            None
        };
        let mut roles = Vec::new();
        for role in fs
            .roles
            .as_ref()
            .map(|r| r.get_ref().clone())
            .unwrap_or_default()
        {
            match role.parse::<Role>() {
                Ok(role) => roles.push(role),
                Err(spec_error) => error(
                    fs.roles.as_ref().map(|r| r.span()).unwrap_or(0..0),
                    field("roles"),
                    format!("{:?} {}", spec_error.value, spec_error.reason),
                ),
            }
        }
        let mut patterns = Vec::new();
        for pattern in fs
            .nodes
            .as_ref()
            .map(|n| n.get_ref().clone())
            .unwrap_or_default()
        {
            match HostPattern::parse(&pattern) {
                Ok(p) => patterns.push(p),
                Err(message) => error(
                    fs.nodes.as_ref().map(|n| n.span()).unwrap_or(0..0),
                    field("nodes"),
                    message,
                ),
            }
        }
        let nodearrays = fs
            .nodearrays
            .as_ref()
            .map(|n| n.get_ref().clone())
            .unwrap_or_default();
        if let Some(bad) = nodearrays.iter().find(|n| {
            n.is_empty()
                || n.len() > 64
                || !n
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
        }) {
            error(
                fs.nodearrays.as_ref().map(|n| n.span()).unwrap_or(0..0),
                field("nodearrays"),
                format!("{bad:?} is not a nodearray name"),
            );
        }
        if let Some(spec) = spec {
            filesystems.push((
                fs.mount_point.span(),
                index,
                Filesystem {
                    name: fs.name.get_ref().clone(),
                    spec,
                    roles,
                    nodes: patterns,
                    nodearrays,
                },
            ));
        }
    }
    // Two filesystems on one mount point for the same node would fight; refuse any overlap of
    // mount points outright (selectors cannot be proven disjoint in general).
    let mut points = BTreeSet::new();
    for (span, index, fs) in &filesystems {
        if !points.insert(fs.spec.mount_point.as_str().to_owned()) {
            error(
                span.clone(),
                format!("filesystems[{index}].mount_point"),
                format!(
                    "{} is used by two filesystems",
                    fs.spec.mount_point.as_str()
                ),
            );
        }
    }
    let policy = match &raw.policy {
        Some(policy) => {
            if let Err(message) = policy.get_ref().validate() {
                error(policy.span(), "policy".into(), message);
            }
            policy.get_ref().clone()
        }
        None => crate::policy::Policy::default(),
    };
    let mut rules = Vec::new();
    if let Some(enrollment) = &raw.enrollment {
        let span = enrollment.span();
        for (index, rule) in enrollment.get_ref().rules.iter().enumerate() {
            let field = |name: &str| format!("enrollment.rules[{index}].{name}");
            let mut nodes = Vec::new();
            for pattern in &rule.nodes {
                match HostPattern::parse(pattern) {
                    Ok(p) => nodes.push(p),
                    Err(message) => error(span.clone(), field("nodes"), message),
                }
            }
            if rule.nodes.is_empty() {
                error(span.clone(), field("nodes"), "lists no host pattern".into());
            }
            let role = rule.role.parse::<Role>().unwrap_or_else(|e| {
                error(
                    span.clone(),
                    field("role"),
                    format!("{:?} {}", e.value, e.reason),
                );
                Role::default()
            });
            let nodearray_ok = rule.nodearray.len() <= 64
                && rule
                    .nodearray
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c));
            if !nodearray_ok {
                error(
                    span.clone(),
                    field("nodearray"),
                    format!("{:?} is not a nodearray name", rule.nodearray),
                );
            }
            let example = rule
                .slurm_name
                .replace("{name}", "hpc-1")
                .replace("{short}", "hpc-1");
            if example.parse::<lfleet_types::NodeName>().is_err() {
                error(
                    span.clone(),
                    field("slurm_name"),
                    format!(
                        "{:?} does not make a node name from {{name}} or {{short}}",
                        rule.slurm_name
                    ),
                );
            }
            rules.push(EnrollmentRule {
                nodes,
                role,
                nodearray: rule.nodearray.clone(),
                slurm_name: rule.slurm_name.clone(),
            });
        }
    }
    if let Some(server) = &raw.server {
        for (field, value, low, high) in [
            (
                "server.silence_seconds",
                server.silence_seconds,
                1.0,
                3600.0,
            ),
            (
                "server.keepalive_seconds",
                server.keepalive_seconds,
                0.5,
                600.0,
            ),
            (
                "server.tls_handshake_seconds",
                server.tls_handshake_seconds,
                0.5,
                120.0,
            ),
        ] {
            if !(low..=high).contains(&value) {
                error(
                    0..0,
                    field.into(),
                    format!("{value} is not from {low} to {high}"),
                );
            }
        }
        if let Err(message) = dashboard_address(&server.dashboard_listen, server.dashboard_tls) {
            error(0..0, "server.dashboard_listen".into(), message);
        }
        if server.max_connections == 0 || server.max_connections_per_address == 0 {
            error(
                0..0,
                "server.max_connections".into(),
                "connection caps are at least 1".into(),
            );
        }
    }
    let slow = match &raw.slow {
        Some(slow) => {
            if let Err(message) = slow.get_ref().validate() {
                error(slow.span(), "slow".into(), message);
            }
            slow.get_ref().clone()
        }
        None => crate::slow::SlowConfig::default(),
    };
    let Some(lustre_version) = lustre_version.filter(|_| errors.is_empty()) else {
        return Err(ConfigErrors(errors));
    };
    Ok(CoordinatorFile {
        server: raw.server.unwrap_or_default(),
        enrollment: EnrollmentRules { rules },
        slurm: raw.slurm.unwrap_or_default(),
        policy,
        slow,
        desired: Desired {
            client: ClientPolicy {
                lustre_version,
                dkms,
            },
            lnet,
            filesystems: filesystems.into_iter().map(|(_, _, f)| f).collect(),
            text: text.to_owned(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../packaging/examples/coordinator.toml");

    #[test]
    fn the_example_parses() {
        let file = parse(EXAMPLE).unwrap();
        assert_eq!(file.server.listen, "0.0.0.0:7443");
        assert_eq!(file.desired.filesystems.len(), 1);
        let node = NodeIdentity {
            name: "hpc-pg0-7".into(),
            role: Role::Compute,
            nodearray: "hpc".into(),
        };
        assert_eq!(file.desired.mounts_for(&node).len(), 1);
    }

    #[test]
    fn every_error_is_reported_with_its_line_and_field() {
        let text = EXAMPLE
            .replace("mgs_nids = \"10.0.1.4@tcp\"", "mgs_nids = \"10.0.1.4@gni\"")
            .replace(
                "mount_point = \"/lustre\"",
                "mount_point = \"/lustre\"\nroles = [\"gpu\"]",
            )
            .replace("network = \"tcp\"", "network = \"eth\"");
        let errors = parse(&text).unwrap_err().0;
        let line_of =
            |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() as u32 + 1;
        let fields: Vec<(&str, u32)> = errors.iter().map(|e| (e.field.as_str(), e.line)).collect();
        assert!(
            fields.contains(&("filesystems[0].mgs_nids", line_of("10.0.1.4@gni"))),
            "{errors:?}"
        );
        assert!(
            fields.contains(&("filesystems[0].roles", line_of("\"gpu\""))),
            "{errors:?}"
        );
        assert!(
            fields.iter().any(|(f, _)| *f == "lnet.network"),
            "{errors:?}"
        );
        let syntax = parse("[client]\nlustre_version = \n").unwrap_err().0;
        assert_eq!(syntax[0].line, 2, "{syntax:?}");
        let unknown = parse(&format!("{EXAMPLE}\nbogus = 1\n")).unwrap_err().0;
        assert!(unknown[0].message.contains("unknown field"), "{unknown:?}");
        let twice = format!(
            "{EXAMPLE}\n[[filesystems]]\nname = \"b\"\nmgs_nids = \"10.0.1.5@tcp\"\nfsname = \"b\"\nmount_point = \"/lustre\"\n"
        );
        assert!(
            parse(&twice)
                .unwrap_err()
                .0
                .iter()
                .any(|e| e.message.contains("used by two filesystems"))
        );
    }

    #[test]
    fn selectors_choose_nodes() {
        let text = format!(
            "{EXAMPLE}\n[[filesystems]]\nname = \"scratch\"\nmgs_nids = \"10.0.1.5@tcp\"\nfsname = \"scratch\"\nmount_point = \"/scratch\"\nroles = [\"compute\"]\nnodes = [\"hpc-pg0-[1-4]\"]\n"
        );
        let desired = parse(&text).unwrap().desired;
        let node = |name: &str, role: &str| NodeIdentity {
            name: name.into(),
            role: role.parse().unwrap(),
            nodearray: String::new(),
        };
        assert_eq!(desired.mounts_for(&node("hpc-pg0-3", "compute")).len(), 2);
        assert_eq!(desired.mounts_for(&node("hpc-pg0-5", "compute")).len(), 1);
        assert_eq!(desired.mounts_for(&node("hpc-pg0-3", "head")).len(), 1);
    }

    #[test]
    fn plain_http_is_refused_beyond_loopback() {
        assert_eq!(dashboard_address("", false), Ok(None));
        assert!(
            dashboard_address("127.0.0.1:7444", false)
                .unwrap()
                .is_some()
        );
        assert!(dashboard_address("[::1]:7444", false).unwrap().is_some());
        for far in ["0.0.0.0:7444", "10.1.0.4:7444", "[::]:7444"] {
            let refused = dashboard_address(far, false).unwrap_err();
            assert!(refused.contains("dashboard_tls = true"), "{refused}");
            assert!(
                dashboard_address(far, true).unwrap().is_some(),
                "{far} with TLS"
            );
        }
        assert!(
            dashboard_address("localhost:7444", false)
                .unwrap_err()
                .contains("not an IP address")
        );
    }
}
