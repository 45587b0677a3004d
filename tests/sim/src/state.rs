//! The simulated node's state, the one source of truth its files are rendered from.
//!
//! Stored at `NODE/.sim/state.json`. Commands (shims, faults, load) take the node lock, load
//! the state, change it, save it and re-render. Faults are overlays kept apart from the base
//! state, so `heal` removes exactly what a fault added.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::SimError;

/// The Lustre client versions the simulator lays files out for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum LustreVersion {
    #[serde(rename = "2.10")]
    V2_10,
    #[serde(rename = "2.12")]
    V2_12,
    #[serde(rename = "2.15")]
    V2_15,
    #[serde(rename = "2.16")]
    V2_16,
    #[serde(rename = "2.17")]
    V2_17,
}

impl LustreVersion {
    pub const ALL: [LustreVersion; 5] = [
        LustreVersion::V2_10,
        LustreVersion::V2_12,
        LustreVersion::V2_15,
        LustreVersion::V2_16,
        LustreVersion::V2_17,
    ];

    pub fn parse(text: &str) -> Result<Self, SimError> {
        Ok(match text {
            "2.10" => LustreVersion::V2_10,
            "2.12" => LustreVersion::V2_12,
            "2.15" => LustreVersion::V2_15,
            "2.16" => LustreVersion::V2_16,
            "2.17" => LustreVersion::V2_17,
            _ => {
                return Err(SimError::Usage(format!(
                    "unknown Lustre version {text:?}: use 2.10, 2.12, 2.15, 2.16 or 2.17"
                )));
            }
        })
    }

    /// The AMLFS-style client package version the sim's repository publishes.
    /// Constructed: the 2.15 and 2.17 strings are the examples AMLFS documents; the others
    /// follow the same `<version>-<commits>-g<hash>` shape.
    pub fn amlfs_version(self) -> &'static str {
        match self {
            LustreVersion::V2_10 => "2.10.8-1-g5a1e2b3",
            LustreVersion::V2_12 => "2.12.9-4-g0c2d4e6",
            LustreVersion::V2_15 => "2.15.7-33-g79ddf99",
            LustreVersion::V2_16 => "2.16.1-12-g8e3f1a2",
            LustreVersion::V2_17 => "2.17.0-19-gbb5310f",
        }
    }

    /// What `/sys/fs/lustre/version` and `/sys/module/lustre/version` hold: the numeric
    /// release (the 2.10.1 sample holds `2.10.1`).
    pub fn release(self) -> &'static str {
        self.amlfs_version().split('-').next().unwrap_or("")
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LustreVersion::V2_10 => "2.10",
            LustreVersion::V2_12 => "2.12",
            LustreVersion::V2_15 => "2.15",
            LustreVersion::V2_16 => "2.16",
            LustreVersion::V2_17 => "2.17",
        }
    }
}

/// The distributions a node can be.
pub const DISTROS: [&str; 7] = [
    "ubuntu-20.04",
    "ubuntu-22.04",
    "ubuntu-24.04",
    "alma-8",
    "alma-9",
    "rocky-9",
    "azurelinux-3",
];

/// The package manager family of a distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Deb,
    Rpm,
    Tdnf,
}

pub fn family(distro: &str) -> Family {
    if distro.starts_with("ubuntu") {
        Family::Deb
    } else if distro.starts_with("azurelinux") {
        Family::Tdnf
    } else {
        Family::Rpm
    }
}

/// I/O counters of one llite or osc device, as the kernel sums them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IoCounters {
    pub read_count: u64,
    pub read_sum: u64,
    pub read_sumsq: u64,
    pub read_min: u64,
    pub read_max: u64,
    pub write_count: u64,
    pub write_sum: u64,
    pub write_sumsq: u64,
    pub write_min: u64,
    pub write_max: u64,
    /// Metadata operations (open, close, getattr) counted together as opens for simplicity.
    pub opens: u64,
    /// `ost_read`'s waits; with the writes' they make `req_waittime`.
    #[serde(default)]
    pub read_wait: RpcWait,
    /// `ost_write`'s waits.
    #[serde(default)]
    pub write_wait: RpcWait,
}

/// RPC waits of one kind on one device, as the kernel sums them (`N samples [usecs] min max
/// sum sumsq`): each RPC's time from send to reply, in microseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RpcWait {
    pub count: u64,
    pub sum_us: u64,
    /// Wraps, as the kernel's u64 does.
    pub sumsq: u64,
    pub min_us: u64,
    pub max_us: u64,
}

impl RpcWait {
    /// Adds `count` RPCs whose waits average `mean_us`, spread as RPC latencies are (a
    /// floor near 0.6x the mean, a tail to 3x, a coefficient of variation of 0.5).
    pub fn add(&mut self, count: u64, mean_us: f64) {
        if count == 0 {
            return;
        }
        let mean = mean_us.max(1.0);
        let low = (mean * 0.6).round().max(1.0) as u64;
        let high = (mean * 3.0).round() as u64;
        self.min_us = if self.count == 0 {
            low
        } else {
            self.min_us.min(low)
        };
        self.max_us = self.max_us.max(high);
        self.count += count;
        self.sum_us += (mean * count as f64).round() as u64;
        let square = (mean * mean * 1.25).round() as u64;
        self.sumsq = self.sumsq.wrapping_add(square.wrapping_mul(count));
    }

    /// Both kinds together, as `req_waittime` counts every RPC of the device.
    pub fn combined(&self, other: &RpcWait) -> RpcWait {
        let present: Vec<&RpcWait> = [self, other].into_iter().filter(|w| w.count > 0).collect();
        RpcWait {
            count: self.count + other.count,
            sum_us: self.sum_us + other.sum_us,
            sumsq: self.sumsq.wrapping_add(other.sumsq),
            min_us: present.iter().map(|w| w.min_us).min().unwrap_or(0),
            max_us: present.iter().map(|w| w.max_us).max().unwrap_or(0),
        }
    }
}

/// One Lustre mount on the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimMount {
    pub source: String,
    pub fsname: String,
    pub mount_point: String,
    pub options: Vec<String>,
    /// The llite instance suffix, fresh at every mount.
    pub instance: String,
    pub mount_id: u32,
    /// Nanoseconds of sim time at mount (stats `start_time`).
    pub started_ns: u64,
    pub osts: u32,
    pub mdts: u32,
    pub llite: IoCounters,
    pub osc: Vec<IoCounters>,
    /// `req_waittime` of each MDT's mdc device.
    #[serde(default)]
    pub mdc_wait: Vec<RpcWait>,
}

/// Fault overlays. Each is removed by `heal`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Faults {
    /// (mount point, target such as OST0001) -> import state.
    pub imports: BTreeMap<String, String>,
    /// Mount points whose mount has disappeared.
    pub lost_mounts: BTreeSet<String>,
    pub lbug: bool,
    /// "mount point|target" whose device reports unhealthy.
    #[serde(default)]
    pub unhealthy: BTreeSet<String>,
    pub lnet_health: Option<u32>,
    /// HCAs whose port 1 is down.
    pub ib_down: BTreeSet<String>,
    /// "hca/counter" -> added amount.
    pub ib_errors: BTreeMap<String, u64>,
    /// "hca/counter" entries held at their saturation value.
    pub ib_saturated: BTreeSet<String>,
    pub vf_removed: bool,
    /// Kernels installed by a kernel-upgrade fault (not running).
    pub upgrade_kernels: BTreeSet<String>,
    /// Kernels the repository does not publish the client for.
    pub repo_missing: BTreeSet<String>,
    /// Kernel log lines the faults printed.
    pub kmsg: Vec<String>,
    /// The route to the MGS leaves through the VF (a misconfigured accelerated-networking
    /// node: a VF with an address of its own, or a policy route onto it).
    #[serde(default)]
    pub mgs_via_vf: bool,
    /// The MGS does not answer: new mounts fail.
    #[serde(default)]
    pub mgs_unreachable: bool,
    /// The VF is present but down.
    #[serde(default)]
    pub vf_down: bool,
    /// The VF carries no traffic: its byte counters stay at these (rx, tx) values while the
    /// synthetic NIC's keep moving.
    #[serde(default)]
    pub vf_idle: Option<(u64, u64)>,
    /// HCA -> the width (lanes) its port 1 trained at, below the full 4X (or the sample's 1X).
    #[serde(default)]
    pub ib_width: BTreeMap<String, u32>,
    /// Wall-clock milliseconds at which a dipped LNet health value is back at 1000 (LNet's
    /// recovery pings raise it as sends succeed); absent: the value stays low.
    #[serde(default)]
    pub lnet_health_recovers_at_ms: Option<u64>,
    /// "mount point|target" (or "mount point|*" for every target) -> how many times longer
    /// the node's RPCs to it wait, in percent (300: three times).
    #[serde(default)]
    pub slow: BTreeMap<String, u32>,
    /// The package repository cannot be reached.
    #[serde(default)]
    pub repo_unreachable: bool,
    /// Kernels whose metapackage is published but whose kmod package is not yet.
    #[serde(default)]
    pub repo_dependency_missing: BTreeSet<String>,
    /// Another process (pid 4242) holds the package manager's lock.
    #[serde(default)]
    pub package_lock: bool,
    /// A DKMS build of the client fails (the module does not compile for the kernel).
    #[serde(default)]
    pub dkms_build_fails: bool,
    /// How long each DKMS build of the client takes (0: at once).
    #[serde(default)]
    pub dkms_build_seconds: u64,
    /// Client versions the repository does not publish (yet).
    #[serde(default)]
    pub repo_missing_versions: BTreeSet<LustreVersion>,
    /// Mount points a process holds open (a shell's working directory, a job's open file):
    /// umount fails with EBUSY, so the module cannot be unloaded until a reboot.
    #[serde(default)]
    pub busy_mounts: BTreeSet<String>,
}

impl Faults {
    pub fn is_empty(&self) -> bool {
        *self == Faults::default()
    }
}

/// Everything about a simulated node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    pub distro: String,
    pub hostname: String,
    pub lustre: LustreVersion,
    pub running_kernel: String,
    /// Installed kernels (base), the running one included.
    pub kernels: BTreeSet<String>,
    /// Kernels with the client package installed (deb: the kmod; rpm: the package).
    pub clients: BTreeSet<String>,
    /// Per client version, the version of its deb metapackage installed (a kernel release:
    /// apt keeps one version of a package name installed).
    #[serde(default)]
    pub deb_metas: BTreeMap<LustreVersion, String>,
    /// The client version installed for each kernel in `clients` (absent: `lustre`).
    #[serde(default)]
    pub installed: BTreeMap<String, LustreVersion>,
    /// The version of the loaded lustre module (absent while it is loaded: `lustre`).
    #[serde(default)]
    pub loaded: Option<LustreVersion>,
    /// Client versions the repository publishes besides `lustre`.
    #[serde(default)]
    pub repo_versions: BTreeSet<LustreVersion>,
    /// Whether the node's package shims are real apt/dpkg instead (modules come from files).
    pub real_packages: bool,
    /// Mounts are also real (a tmpfs at the real mount point), so systemd's mount units
    /// become active; mount points are then this machine's paths, not the node root's.
    #[serde(default)]
    pub real_mounts: bool,
    pub loaded_modules: BTreeSet<String>,
    pub lnet_configured: bool,
    /// (network, interface) pairs configured in LNet.
    pub lnet_nets: Vec<(String, String)>,
    pub mounts: Vec<SimMount>,
    pub osts: u32,
    pub mdts: u32,
    pub ib_hcas: u32,
    pub accelnet: bool,
    /// Sim time in nanoseconds since the epoch; only `load` moves it.
    pub clock_ns: u64,
    pub next_mount_id: u32,
    pub instance_counter: u32,
    pub eth0_rx_bytes: u64,
    pub eth0_tx_bytes: u64,
    pub lnet_send_count: u64,
    pub lnet_recv_count: u64,
    pub lnet_send_length: u64,
    pub lnet_recv_length: u64,
    pub faults: Faults,
    /// The DKMS client package is installed: modules are built for kernels with headers.
    #[serde(default)]
    pub dkms: bool,
    /// Kernels whose headers (linux-headers / kernel-devel) are installed.
    #[serde(default)]
    pub headers: BTreeSet<String>,
    /// None: booted without EFI; Some(on): the Secure Boot state in the EFI variable.
    #[serde(default)]
    pub secure_boot: Option<bool>,
    /// Whether the firmware trusts the certificate AMLFS signs its modules with (the Azure
    /// Services Linux Kmod PCA): Trusted Launch VMs do, Confidential VMs do not.
    #[serde(default = "yes")]
    pub kmod_cert_trusted: bool,
    /// Kernel lockdown in integrity mode (Azure Linux 3's default; Ubuntu's with Secure Boot).
    #[serde(default)]
    pub lockdown: bool,
    /// Kernels the repository publishes the client for besides the node's own.
    #[serde(default)]
    pub repo_kernels: BTreeSet<String>,
    /// The driver of the accelerated-networking VF: mlx4_core, mlx5_core or mana.
    #[serde(default = "mlx5")]
    pub vf_driver: String,
    /// The InfiniBand rate the HCAs train at in Gb/s: 25 (the sample's 1X EDR), 100 (4X EDR),
    /// 200 (4X HDR) or 400 (4X NDR).
    #[serde(default = "sample_ib_rate")]
    pub ib_rate_gbps: u32,
    /// The DKMS package whose build failed is left half-configured (dpkg) or installed with
    /// no module (rpm), until it is removed.
    #[serde(default)]
    pub dkms_half_installed: bool,
    /// Seeds the node's own noise under `load --noise` (set at creation, per node).
    #[serde(default)]
    pub noise_seed: u64,
}

fn yes() -> bool {
    true
}

fn mlx5() -> String {
    "mlx5_core".into()
}

fn sample_ib_rate() -> u32 {
    25
}

impl NodeState {
    /// Kernels present on the node: base plus kernel-upgrade faults.
    pub fn all_kernels(&self) -> BTreeSet<String> {
        self.kernels
            .iter()
            .chain(&self.faults.upgrade_kernels)
            .cloned()
            .collect()
    }

    /// Kernels the repository publishes the client for: every present kernel and the
    /// repository's own, less repo-missing faults.
    pub fn published(&self) -> BTreeSet<String> {
        self.all_kernels()
            .into_iter()
            .chain(self.repo_kernels.iter().cloned())
            .filter(|k| !self.faults.repo_missing.contains(k))
            .collect()
    }

    /// The client version installed for `kernel`, if any.
    pub fn installed_version(&self, kernel: &str) -> Option<LustreVersion> {
        self.clients
            .contains(kernel)
            .then(|| self.installed.get(kernel).copied().unwrap_or(self.lustre))
    }

    /// The version of the loaded (or next loaded) client: what sysfs shows and lays out.
    pub fn running_lustre(&self) -> LustreVersion {
        self.loaded.unwrap_or(self.lustre)
    }

    /// The client versions the repository publishes: the node's own and `repo_versions`,
    /// less repo-missing-version faults.
    pub fn published_versions(&self) -> BTreeSet<LustreVersion> {
        std::iter::once(self.lustre)
            .chain(self.repo_versions.iter().copied())
            .filter(|v| !self.faults.repo_missing_versions.contains(v))
            .collect()
    }

    /// Whether the accelerated-networking VF exists.
    pub fn vf_present(&self) -> bool {
        self.accelnet && !self.faults.vf_removed
    }

    /// The health value of the tcp NI at wall-clock `now_ms`.
    pub fn lnet_health_at(&self, now_ms: u64) -> u32 {
        match (
            self.faults.lnet_health,
            self.faults.lnet_health_recovers_at_ms,
        ) {
            (Some(_), Some(recovers)) if now_ms >= recovers => 1000,
            (Some(value), _) => value,
            (None, _) => 1000,
        }
    }

    /// How many times longer RPCs of `mount_point` to `target` wait under the slow faults.
    pub fn slow_factor(&self, mount_point: &str, target: &str) -> f64 {
        [target, "*"]
            .iter()
            .filter_map(|t| self.faults.slow.get(&format!("{mount_point}|{t}")))
            .map(|percent| f64::from(*percent) / 100.0)
            .product()
    }

    /// Mounts that are visible (not lost).
    pub fn visible_mounts(&self) -> impl Iterator<Item = &SimMount> {
        self.mounts
            .iter()
            .filter(|m| !self.faults.lost_mounts.contains(&m.mount_point))
    }

    /// The address of eth0 (and so of the tcp NID).
    pub fn eth0_address(&self) -> &'static str {
        "10.0.0.5"
    }

    pub fn load(root: &Path) -> Result<NodeState, SimError> {
        let path = root.join(".sim/state.json");
        let text = std::fs::read_to_string(&path).map_err(|source| SimError::Io {
            what: "reading the sim state".into(),
            path: path.clone(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| SimError::State { path, source })
    }

    pub fn save(&self, root: &Path) -> Result<(), SimError> {
        let text = serde_json::to_string_pretty(self).expect("state serializes");
        crate::render::write_atomic(&root.join(".sim/state.json"), text.as_bytes())
    }
}
