//! `SimNode`: creating a node root, and running changes against it under the node lock.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::fcntl::{Flock, FlockArg};

use crate::fault::{self, Fault};
use crate::render::{self, write_atomic};
use crate::state::{DISTROS, Family, Faults, LustreVersion, NodeState, family};
use crate::{SimError, shim};

/// What `lfleet-sim node create` builds.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub distro: String,
    pub kernel: String,
    pub lustre: LustreVersion,
    pub ib_hcas: u32,
    pub accelnet: bool,
    pub osts: u32,
    pub mdts: u32,
    pub hostname: String,
    /// Leave out the package-manager shims: tests run real apt/dpkg into the root instead.
    pub real_packages: bool,
    /// mount.lustre also makes a real mount (a tmpfs) at the mount point, a path of this
    /// machine, so systemd's mount units become active (a booted test node).
    pub real_mounts: bool,
    /// None: no EFI; Some(on): an EFI node with Secure Boot on or off.
    pub secure_boot: Option<bool>,
    /// A Confidential VM: its firmware lacks the certificate AMLFS signs modules with.
    pub confidential_vm: bool,
    /// Kernel lockdown in integrity mode; None: the distribution's default (on for Azure
    /// Linux 3, and with Secure Boot on).
    pub lockdown: Option<bool>,
    /// Kernels the repository publishes the client for besides the node's own.
    pub repo_kernels: Vec<String>,
    /// Client versions the repository publishes besides the node's own (`lustre`).
    pub repo_versions: Vec<LustreVersion>,
    /// The VF's driver: mlx4_core, mlx5_core or mana.
    pub vf_driver: String,
    /// The InfiniBand rate in Gb/s: 25, 100, 200 or 400.
    pub ib_rate_gbps: u32,
}

/// The VF drivers Azure's accelerated networking uses.
pub const VF_DRIVERS: [&str; 3] = ["mlx4_core", "mlx5_core", "mana"];

/// The InfiniBand rates a node can train at, with the sysfs rate text at full width.
pub const IB_RATES: [(u32, &str); 4] = [
    (25, "25 Gb/sec (1X EDR)"),
    (100, "100 Gb/sec (4X EDR)"),
    (200, "200 Gb/sec (4X HDR)"),
    (400, "400 Gb/sec (4X NDR)"),
];

impl NodeSpec {
    pub fn new(distro: &str, kernel: &str, lustre: LustreVersion) -> NodeSpec {
        NodeSpec {
            distro: distro.to_owned(),
            kernel: kernel.to_owned(),
            lustre,
            ib_hcas: 0,
            accelnet: false,
            osts: 4,
            mdts: 1,
            hostname: "node1".into(),
            real_packages: false,
            real_mounts: false,
            secure_boot: None,
            confidential_vm: false,
            lockdown: None,
            repo_kernels: Vec::new(),
            repo_versions: Vec::new(),
            vf_driver: "mlx5_core".into(),
            ib_rate_gbps: 25,
        }
    }
}

/// A load to run (`lfleet-sim load`). MB means 10^6 bytes.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub read_mbps: f64,
    pub write_mbps: f64,
    pub seconds: f64,
    /// Advance the node's clock by `seconds` at once instead of running in real time.
    pub instant: bool,
    /// Only this mount (default: every visible mount).
    pub mount: Option<String>,
}

/// How a load looks beyond its rates (`lfleet-sim load --noise N --md-ops R`).
#[derive(Debug, Clone, Default)]
pub struct LoadShape {
    /// Each load step, the node's RPC waits are its base times a factor drawn uniformly
    /// from [1 - noise, 1 + noise] (0.3: ±30%), one per node and step.
    pub noise: f64,
    /// Metadata operations per second (each an MDT RPC); 0: one per step, as before.
    pub md_ops_per_s: f64,
}

/// RPC waits of an idle AMLFS over TCP, in microseconds: `ost_read` and `ost_write` means of
/// the 2.15 client sample (1,891 and 2,599 µs) and its mdc `req_waittime` mean (1,409 µs).
pub const BASE_READ_WAIT_US: f64 = 1_900.0;
pub const BASE_WRITE_WAIT_US: f64 = 2_600.0;
pub const BASE_MD_WAIT_US: f64 = 1_400.0;

/// Targets differ a little (their servers' load): OSTn waits this much longer, the same on
/// every node, within ±10%.
pub fn target_weight(index: usize) -> f64 {
    1.0 + 0.05 * ((index * 7 % 5) as f64 - 2.0)
}

/// The size of one simulated I/O: 1 MiB.
pub const IO_SIZE: u64 = 1 << 20;

/// A simulated node.
#[derive(Debug, Clone)]
pub struct SimNode {
    root: PathBuf,
}

/// The foreign fstab a fresh node has: cloud-image root, EFI, swap and CycleCloud's NFS,
/// with a comment, a tab and odd spacing, as real ones do.
pub const INITIAL_FSTAB: &str = "# /etc/fstab: static file system information.\n\
LABEL=cloudimg-rootfs\t/\t ext4\tdiscard,errors=remount-ro\t0 1\n\
UUID=7A1B-22C3  /boot/efi       vfat    umask=0077      0       1\n\
/dev/disk/cloud/azure_resource-part1\t/mnt\tauto\tdefaults,nofail,x-systemd.requires=cloud-init.service,comment=cloudconfig\t0\t2\n\
10.0.0.4:/sched   /sched nfs  rw,hard,vers=3  0 0\n";

const SHIMS_COMMON: [&str; 12] = [
    "mount",
    "modinfo",
    "umount",
    "mount.lustre",
    "modprobe",
    "lustre_rmmod",
    "lctl",
    "lnetctl",
    "lfs",
    "ip",
    "dkms",
    "mokutil",
];

impl SimNode {
    /// Builds a node root at `dir` (which must not exist or be empty).
    pub fn create(dir: &Path, spec: &NodeSpec) -> Result<SimNode, SimError> {
        if !DISTROS.contains(&spec.distro.as_str()) {
            return Err(SimError::Usage(format!(
                "unknown distro {:?}: use one of {}",
                spec.distro,
                DISTROS.join(", ")
            )));
        }
        for kernel in std::iter::once(&spec.kernel).chain(&spec.repo_kernels) {
            if kernel.is_empty() || kernel.contains(['/', ' ']) {
                return Err(SimError::Usage(format!("bad kernel release {kernel:?}")));
            }
        }
        if !VF_DRIVERS.contains(&spec.vf_driver.as_str()) {
            return Err(SimError::Usage(format!(
                "unknown VF driver {:?}: use one of {}",
                spec.vf_driver,
                VF_DRIVERS.join(", ")
            )));
        }
        if !IB_RATES.iter().any(|(rate, _)| *rate == spec.ib_rate_gbps) {
            return Err(SimError::Usage(format!(
                "InfiniBand rate {} Gb/s: use 25, 100, 200 or 400",
                spec.ib_rate_gbps
            )));
        }
        if spec.confidential_vm && spec.secure_boot != Some(true) {
            return Err(SimError::Usage(
                "a Confidential VM runs with Secure Boot on (--secure-boot on)".into(),
            ));
        }
        let io = |what: &str, path: &Path| {
            let (what, path) = (what.to_owned(), path.to_path_buf());
            move |source| SimError::Io { what, path, source }
        };
        fs::create_dir_all(dir.join(".sim")).map_err(io("creating", dir))?;
        let root = fs::canonicalize(dir).map_err(io("resolving", dir))?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let state = NodeState {
            distro: spec.distro.clone(),
            hostname: spec.hostname.clone(),
            lustre: spec.lustre,
            running_kernel: spec.kernel.clone(),
            kernels: BTreeSet::from([spec.kernel.clone()]),
            clients: BTreeSet::new(),
            deb_metas: BTreeMap::new(),
            installed: BTreeMap::new(),
            loaded: None,
            repo_versions: spec.repo_versions.iter().copied().collect(),
            real_packages: spec.real_packages,
            real_mounts: spec.real_mounts,
            loaded_modules: BTreeSet::new(),
            lnet_configured: false,
            lnet_nets: Vec::new(),
            mounts: Vec::new(),
            osts: spec.osts.max(1),
            mdts: spec.mdts.max(1),
            ib_hcas: spec.ib_hcas,
            accelnet: spec.accelnet,
            clock_ns: now.as_secs() * 1_000_000_000 + u64::from(now.subsec_nanos()),
            next_mount_id: 800,
            instance_counter: 0,
            eth0_rx_bytes: 874_354_587,
            eth0_tx_bytes: 563_352_563,
            lnet_send_count: 0,
            lnet_recv_count: 0,
            lnet_send_length: 0,
            lnet_recv_length: 0,
            faults: Faults::default(),
            dkms: false,
            headers: BTreeSet::new(),
            secure_boot: spec.secure_boot,
            kmod_cert_trusted: !spec.confidential_vm,
            lockdown: spec
                .lockdown
                .unwrap_or(family(&spec.distro) == Family::Tdnf || spec.secure_boot == Some(true)),
            repo_kernels: spec.repo_kernels.iter().cloned().collect(),
            vf_driver: spec.vf_driver.clone(),
            ib_rate_gbps: spec.ib_rate_gbps,
            dkms_half_installed: false,
            noise_seed: root
                .to_string_lossy()
                .bytes()
                .chain(now.as_nanos().to_le_bytes())
                .fold(0xcbf2_9ce4_8422_2325, |hash: u64, byte| {
                    (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
                }),
        };
        for dir_name in ["etc/kernel/postinst.d", "var/lib", "tmp", "usr/sbin", "bin"] {
            fs::create_dir_all(root.join(dir_name))
                .map_err(io("creating", &root.join(dir_name)))?;
        }
        write_atomic(&root.join("etc/fstab"), INITIAL_FSTAB.as_bytes())?;
        let exe = std::env::current_exe().map_err(io(
            "finding the lfleet-sim binary",
            Path::new("/proc/self/exe"),
        ))?;
        let exe = shim_binary(&exe)?;
        let mut shims: Vec<&str> = SHIMS_COMMON.to_vec();
        if !spec.real_packages {
            match family(&spec.distro) {
                Family::Deb => shims.extend(["apt-get", "apt-cache", "dpkg-query"]),
                Family::Rpm => shims.extend(["dnf", "rpm"]),
                Family::Tdnf => shims.extend(["tdnf", "rpm"]),
            }
        }
        for name in shims {
            let path = root.join("bin").join(name);
            let script = format!(
                "#!/bin/sh\n# lfleet-sim shim: the simulated node's {name}.\nexec '{}' shim --root '{}' {name} \"$@\"\n",
                exe.display(),
                root.display()
            );
            write_atomic(&path, script.as_bytes())?;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
                .map_err(io("chmod", &path))?;
        }
        state.save(&root)?;
        render::render(&root, &state)?;
        Ok(SimNode { root })
    }

    /// Opens an existing node.
    pub fn open(dir: &Path) -> Result<SimNode, SimError> {
        let root = fs::canonicalize(dir).map_err(|source| SimError::Io {
            what: "opening node".into(),
            path: dir.to_path_buf(),
            source,
        })?;
        if !root.join(".sim/state.json").exists() {
            return Err(SimError::Usage(format!(
                "{} is not an lfleet-sim node (no .sim/state.json)",
                root.display()
            )));
        }
        Ok(SimNode { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn bin_dir(&self) -> PathBuf {
        self.root.join("bin")
    }

    /// The current state (read without the lock; for inspection).
    pub fn state(&self) -> Result<NodeState, SimError> {
        NodeState::load(&self.root)
    }

    /// Runs `change` on the state under the node lock, then saves and re-renders.
    pub fn change<T>(
        &self,
        change: impl FnOnce(&mut NodeState) -> Result<T, SimError>,
    ) -> Result<T, SimError> {
        let lock_path = self.root.join(".sim/lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|source| SimError::Io {
                what: "opening the node lock".into(),
                path: lock_path.clone(),
                source,
            })?;
        let _lock =
            Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, errno)| SimError::Io {
                what: "locking".into(),
                path: lock_path.clone(),
                source: errno.into(),
            })?;
        let mut state = NodeState::load(&self.root)?;
        let result = change(&mut state)?;
        state.save(&self.root)?;
        render::render(&self.root, &state)?;
        Ok(result)
    }

    /// Injects a fault; returns a one-line summary of what changed.
    pub fn fault(&self, fault: &Fault) -> Result<String, SimError> {
        self.change(|state| fault::apply(state, fault))
    }

    /// Undoes every fault, or those of one kind.
    pub fn heal(&self, kind: Option<&str>) -> Result<String, SimError> {
        self.change(|state| fault::heal(state, kind))
    }

    /// Reboots: the given (or newest) kernel runs; mounts, modules and LNet are gone, and so
    /// are the processes that held mounts busy.
    pub fn reboot(&self, kernel: Option<&str>) -> Result<String, SimError> {
        self.change(|state| {
            let kernels = state.all_kernels();
            let next = match kernel {
                Some(k) if kernels.contains(k) => k.to_owned(),
                Some(k) => return Err(SimError::Usage(format!("kernel {k} is not installed"))),
                None => kernels
                    .iter()
                    .max_by(|a, b| version_cmp(a, b))
                    .cloned()
                    .unwrap_or_default(),
            };
            // A kernel that was installed by a fault is now simply installed.
            let upgrades = std::mem::take(&mut state.faults.upgrade_kernels);
            state.kernels.extend(upgrades);
            state.running_kernel = next.clone();
            state.mounts.clear();
            state.faults.lost_mounts.clear();
            state.faults.imports.clear();
            state.faults.busy_mounts.clear();
            state.loaded_modules.clear();
            state.loaded = None;
            state.lnet_configured = false;
            state.lnet_nets.clear();
            Ok(format!("rebooted into {next}"))
        })
    }

    /// Runs a load: counters advance consistently with the files' time stamps.
    pub fn load(&self, spec: &LoadSpec) -> Result<String, SimError> {
        self.load_shaped(spec, &LoadShape::default())
    }

    /// [`SimNode::load`] with per-node noise on the RPC waits and a metadata rate.
    pub fn load_shaped(&self, spec: &LoadSpec, shape: &LoadShape) -> Result<String, SimError> {
        if !(0.0..1.0).contains(&shape.noise) || !(0.0..=1e9).contains(&shape.md_ops_per_s) {
            return Err(SimError::Usage(
                "--noise is in [0, 1) and --md-ops from 0 to 10^9".into(),
            ));
        }
        if spec.instant {
            return self.change(|state| {
                advance(state, spec, shape, (spec.seconds * 1e9) as u64);
                Ok(format!("advanced {} s of load", spec.seconds))
            });
        }
        let steps = spec.seconds.ceil().max(1.0) as u64;
        // Each step credits the real time since the previous one (the first: since the load
        // began), never time from before the load.
        let now_ns = || {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            now.as_secs() * 1_000_000_000 + u64::from(now.subsec_nanos())
        };
        let mut last = now_ns();
        for _ in 0..steps {
            std::thread::sleep(Duration::from_secs(1));
            self.change(|state| {
                let now = now_ns();
                let elapsed = now.saturating_sub(last).max(1);
                last = now;
                advance(state, spec, shape, elapsed);
                Ok(())
            })?;
        }
        Ok(format!("ran {steps} s of load"))
    }
}

/// The binary shims should run: this executable when it is `lfleet-sim`, else the
/// `lfleet-sim` beside a test binary (target/<profile>/deps/x -> target/<profile>/lfleet-sim).
fn shim_binary(exe: &Path) -> Result<PathBuf, SimError> {
    if exe.file_name().is_some_and(|n| n == "lfleet-sim") {
        return Ok(exe.to_path_buf());
    }
    exe.ancestors()
        .skip(1)
        .take(3)
        .map(|dir| dir.join("lfleet-sim"))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            SimError::Usage(format!(
                "cannot find the lfleet-sim binary near {}; build it with `cargo build -p lfleet-sim`",
                exe.display()
            ))
        })
}

/// Compares kernel releases by their numeric parts.
pub fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let parts = |s: &str| -> Vec<u64> {
        s.split(|c: char| !c.is_ascii_digit())
            .filter_map(|p| p.parse().ok())
            .collect()
    };
    parts(a).cmp(&parts(b))
}

fn add_io(counters: &mut crate::state::IoCounters, bytes: u64, write: bool) {
    if bytes == 0 {
        return;
    }
    let full = bytes / IO_SIZE;
    let rest = bytes % IO_SIZE;
    let count = full + u64::from(rest > 0);
    // The kernel sums squares in a u64 that wraps (see the 2.10.1 osc sample).
    let sumsq = (IO_SIZE * IO_SIZE)
        .wrapping_mul(full)
        .wrapping_add(rest * rest);
    let min = if rest > 0 { rest } else { IO_SIZE };
    let (c, s, q, lo, hi) = if write {
        (
            &mut counters.write_count,
            &mut counters.write_sum,
            &mut counters.write_sumsq,
            &mut counters.write_min,
            &mut counters.write_max,
        )
    } else {
        (
            &mut counters.read_count,
            &mut counters.read_sum,
            &mut counters.read_sumsq,
            &mut counters.read_min,
            &mut counters.read_max,
        )
    };
    *lo = if *c == 0 { min } else { (*lo).min(min) };
    *hi = (*hi).max(if full > 0 { IO_SIZE } else { rest });
    *c += count;
    *s += bytes;
    *q = q.wrapping_add(sumsq);
}

/// The node's noise factor for this step: uniform in [1 - noise, 1 + noise], drawn from its
/// own seed and its clock, so nodes differ and every step differs.
fn noise_factor(state: &NodeState, noise: f64) -> f64 {
    use rand::{Rng, SeedableRng};
    if noise == 0.0 {
        return 1.0;
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(state.noise_seed ^ state.clock_ns);
    1.0 + noise * (2.0 * rng.random::<f64>() - 1.0)
}

fn advance(state: &mut NodeState, spec: &LoadSpec, shape: &LoadShape, elapsed_ns: u64) {
    let seconds = elapsed_ns as f64 / 1e9;
    let read = (spec.read_mbps * 1e6 * seconds).round() as u64;
    let write = (spec.write_mbps * 1e6 * seconds).round() as u64;
    let md_ops = (shape.md_ops_per_s * seconds).round() as u64;
    let noise = noise_factor(state, shape.noise);
    let lost = state.faults.lost_mounts.clone();
    let slow: Vec<Vec<f64>> = state
        .mounts
        .iter()
        .map(|m| {
            (0..m.osts)
                .map(|i| state.slow_factor(&m.mount_point, &format!("OST{i:04x}")))
                .chain(
                    (0..m.mdts).map(|i| state.slow_factor(&m.mount_point, &format!("MDT{i:04x}"))),
                )
                .collect()
        })
        .collect();
    for (mount, slow) in state
        .mounts
        .iter_mut()
        .zip(&slow)
        .filter(|(m, _)| !lost.contains(&m.mount_point))
    {
        if spec
            .mount
            .as_deref()
            .is_some_and(|only| only != mount.mount_point)
        {
            continue;
        }
        add_io(&mut mount.llite, read, false);
        add_io(&mut mount.llite, write, true);
        let opens = if shape.md_ops_per_s > 0.0 {
            md_ops
        } else {
            u64::from(read + write > 0)
        };
        mount.llite.opens += opens;
        // Each open is a request to the MDTs (getattr and close ride on it), spread evenly.
        let mdts = mount.mdts.max(1) as usize;
        mount.mdc_wait.resize(mdts, Default::default());
        for (index, wait) in mount.mdc_wait.iter_mut().enumerate() {
            let share = opens / mdts as u64 + u64::from((index as u64) < opens % mdts as u64);
            let factor = slow
                .get(mount.osts as usize + index)
                .copied()
                .unwrap_or(1.0);
            wait.add(
                share * 2,
                BASE_MD_WAIT_US * target_weight(index) * noise * factor,
            );
        }
        // Striped evenly over the OSTs; the last takes the remainder, so the sums agree.
        let osts = mount.osc.len().max(1) as u64;
        for (index, osc) in mount.osc.iter_mut().enumerate() {
            let share = |total: u64| {
                if index as u64 == osts - 1 {
                    total - total / osts * (osts - 1)
                } else {
                    total / osts
                }
            };
            let (reads, writes) = (osc.read_count, osc.write_count);
            add_io(osc, share(read), false);
            add_io(osc, share(write), true);
            let wait = target_weight(index) * noise * slow.get(index).copied().unwrap_or(1.0);
            osc.read_wait
                .add(osc.read_count - reads, BASE_READ_WAIT_US * wait);
            osc.write_wait
                .add(osc.write_count - writes, BASE_WRITE_WAIT_US * wait);
        }
        state.lnet_send_count += write.div_ceil(IO_SIZE);
        state.lnet_recv_count += read.div_ceil(IO_SIZE);
        state.lnet_send_length += write;
        state.lnet_recv_length += read;
        state.eth0_tx_bytes += write;
        state.eth0_rx_bytes += read;
    }
    state.clock_ns += elapsed_ns;
}

/// Runs a shim against the node at `root` (the `lfleet-sim shim` entry point).
pub fn run_shim(root: &Path, name: &str, args: &[String]) -> shim::ShimOutput {
    match SimNode::open(root) {
        Ok(node) => shim::run(&node, name, args),
        Err(error) => shim::ShimOutput::fail(1, format!("lfleet-sim: {error}\n")),
    }
}
