//! Observation: everything a reconcile pass decides from, read into one value before any
//! decision. Files are read through the host root; the only commands run are read-only
//! (`ip route get`, `ip -o link show`, `lnetctl net show`, `modinfo -k KVER -F version
//! lustre`). Nothing here decides or changes anything.
//!
//! An observation that fails where a wrong guess could destroy something (fstab, mountinfo,
//! the kernels) is an error for the whole pass: unknown is not absent. A part that can only
//! fail its own item (the route to the MGS, the repository key) is kept as that part's
//! finding and judged by the planner.
//!
//! Entry points: [`observe`], and the parts [`observe_clients`] and [`observe_lnet`] that the
//! kernel hook and `lnet-up` use alone.

use std::collections::BTreeMap;

use lfleet_host::HostRoot;
use lfleet_install::{Distro, DkmsDecision};
use lfleet_lnet::{Link, LocalNi, Route};
use lfleet_mount::{Fstab, parse_mountinfo};
use lfleet_types::{MountSpec, error_chain};

use super::{ReconcileError, host_error, query};
use crate::config::NodeConfig;
use crate::install::{find_module, installed_kernels, running_kernel};
use crate::mount_apply::{FSTAB_PATH, SLURMD_DROP_IN_PATH};
use crate::node::NodeHandle;
use crate::repo::RepositoryConfig;

/// What the node looked like when the pass began.
#[derive(Debug, Clone)]
pub struct Observed {
    pub distro: Distro,
    /// The running kernel first, then every other installed kernel in order.
    pub clients: Vec<ObservedClient>,
    /// `/sys/module/lustre/version`, when the module is loaded.
    pub loaded_module: Option<String>,
    /// Whether a DKMS build may be tried (asked only when a kernel lacks its client).
    pub dkms: DkmsDecision,
    pub repository: Option<ObservedRepository>,
    /// None when no mount is desired (there is no MGS to route to).
    pub lnet: Option<ObservedLnet>,
    pub mounts: lfleet_mount::Observed,
    /// The slurmd drop-in as it is on disk.
    pub dropin: Option<String>,
}

/// Whether one kernel has a Lustre client module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedClient {
    pub kernel: String,
    pub running: bool,
    pub present: bool,
    /// The installed module's version (`modinfo -F version`); None when absent or when
    /// modinfo could not tell (then the installed client is taken as it is).
    pub version: Option<String>,
}

/// The repository key and the files it should produce, as they are on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedRepository {
    /// The key's bytes, or why they could not be read.
    pub key: Result<Vec<u8>, String>,
    /// Each desired file's current bytes (None: absent or unreadable).
    pub current: BTreeMap<String, Option<Vec<u8>>>,
}

/// LNet and the way to the first mount's MGS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedLnet {
    /// The MGS address the route was asked for.
    pub mgs: String,
    /// `ip route get <mgs>`, or why it gave no route.
    pub route: Result<Route, String>,
    pub links: Vec<Link>,
    /// `lnetctl net show`; None when LNet is not configured (the command failed).
    pub nis: Option<Vec<LocalNi>>,
}

/// Observes everything a full pass needs.
pub async fn observe(
    node: NodeHandle<'_>,
    config: &NodeConfig,
    distro: Distro,
) -> Result<Observed, ReconcileError> {
    let host = node.host;
    let running = running_kernel(host).map_err(host_error("the running kernel"))?;
    let kernels = installed_kernels(host).map_err(host_error("installed kernels"))?;
    let mut others: Vec<&String> = kernels.iter().filter(|k| **k != running).collect();
    others.sort();
    let wanted: Vec<&str> = std::iter::once(running.as_str())
        .chain(others.into_iter().map(String::as_str))
        .collect();
    let clients = observe_clients(node, &running, &wanted).await?;
    let loaded_module = host
        .read_optional("sys/module/lustre/version")
        .map_err(host_error("the lustre module version"))?;
    let mounts = observe_mounts(host)?;
    let dropin = host
        .read_optional(SLURMD_DROP_IN_PATH)
        .map_err(host_error("the slurmd drop-in"))?;
    let repository = config
        .repository
        .as_ref()
        .map(|repository| observe_repository(node, repository, &distro));
    let lnet = match config.mounts.first() {
        Some(first) => observe_lnet(node, first).await,
        None => None,
    };
    let dkms = observe_dkms(node, config, &distro, &clients).await;
    Ok(Observed {
        distro,
        clients,
        loaded_module,
        dkms,
        repository,
        lnet,
        mounts,
        dropin,
    })
}

/// fstab and the mount table; either unreadable or malformed fails the pass.
pub fn observe_mounts(host: &HostRoot) -> Result<lfleet_mount::Observed, ReconcileError> {
    let fstab_text = host
        .read_optional(FSTAB_PATH)
        .map_err(host_error("/etc/fstab"))?
        .unwrap_or_default();
    let fstab = Fstab::parse(&fstab_text).map_err(ReconcileError::Fstab)?;
    let mountinfo = host
        .read_to_string("proc/self/mountinfo")
        .map_err(host_error("mountinfo"))?;
    let mounts = parse_mountinfo(&mountinfo).map_err(ReconcileError::Mountinfo)?;
    Ok(lfleet_mount::Observed { mounts, fstab })
}

/// Whether each of `kernels` has a client module, and its version; `running` names the
/// running kernel.
pub async fn observe_clients(
    node: NodeHandle<'_>,
    running: &str,
    kernels: &[&str],
) -> Result<Vec<ObservedClient>, ReconcileError> {
    let mut clients = Vec::with_capacity(kernels.len());
    for kernel in kernels {
        let present = find_module(node.host, kernel, "lustre")
            .map_err(host_error("kernel modules"))?
            .is_some();
        let version = if present {
            query(node, "modinfo", &["-k", kernel, "-F", "version", "lustre"])
                .await
                .ok()
                .map(|out| out.trim().to_owned())
                .filter(|v| !v.is_empty())
        } else {
            None
        };
        clients.push(ObservedClient {
            kernel: (*kernel).to_owned(),
            running: *kernel == running,
            present,
            version,
        });
    }
    Ok(clients)
}

/// The DKMS rule's verdict for this node (policy, Secure Boot, lockdown), asked only when a
/// kernel lacks its client: the answer may take a command (`mokutil --sb-state`).
pub async fn observe_dkms(
    node: NodeHandle<'_>,
    config: &NodeConfig,
    distro: &Distro,
    clients: &[ObservedClient],
) -> DkmsDecision {
    if clients.iter().all(|client| client.present) {
        return DkmsDecision::Refused("not needed: every kernel has its client".into());
    }
    crate::dkms::decision(node, distro, config.client.dkms.is_allowed()).await
}

/// The key and the files the repository configuration names.
fn observe_repository(
    node: NodeHandle<'_>,
    repository: &RepositoryConfig,
    distro: &Distro,
) -> ObservedRepository {
    let key = node
        .host
        .read_limited(&repository.key_file, 1 << 20)
        .map_err(|error| error_chain(&error));
    let current = match &key {
        Ok(key) => crate::repo::desired_files(repository, distro, key)
            .into_iter()
            .map(|file| {
                let bytes = node.host.read_limited(&file.path, 1 << 20).ok();
                (file.path, bytes)
            })
            .collect(),
        Err(_) => BTreeMap::new(),
    };
    ObservedRepository { key, current }
}

/// The route to `first`'s MGS, the links, and LNet's networks. None when the mount names no
/// MGS address.
pub async fn observe_lnet(node: NodeHandle<'_>, first: &MountSpec) -> Option<ObservedLnet> {
    let mgs = first.mgs.all().next()?.address.to_string();
    let route = query(node, "ip", &["route", "get", &mgs])
        .await
        .map_err(|error| error_chain(&error))
        .and_then(|out| lfleet_lnet::parse_route_get(&out).map_err(|error| error_chain(&error)));
    let links = query(node, "ip", &["-o", "link", "show"])
        .await
        .map(|out| lfleet_lnet::parse_links(&out))
        .unwrap_or_default();
    let nis = query(node, "lnetctl", &["net", "show"])
        .await
        .ok()
        .map(|out| lfleet_lnet::parse_net_show(&out));
    Some(ObservedLnet {
        mgs,
        route,
        links,
        nis,
    })
}
