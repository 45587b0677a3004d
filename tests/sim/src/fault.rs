//! Faults: each changes exactly what it names, as an overlay on the node's state, and `heal`
//! removes the overlay.

use crate::SimError;
use crate::render::ib_counter_width;
use crate::state::{LustreVersion, NodeState};

/// A fault to inject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// An OST or MDT import of a mount goes to DISCONN, EVICTED or CONNECTING.
    Import {
        mount: Option<String>,
        target: String,
        state: String,
    },
    /// The mount disappears from mountinfo, with its Lustre devices.
    MountLost { mount: Option<String> },
    /// health_check says LBUG.
    Lbug,
    /// A device of a mount reports unhealthy, so health_check says NOT HEALTHY.
    NotHealthy {
        mount: Option<String>,
        target: String,
    },
    /// The tcp NI's health value drops; with `recover_after` it is back at 1000 that many
    /// seconds (of wall-clock time, which the agent's windows use) later.
    LnetHealth {
        value: u32,
        recover_after: Option<u64>,
    },
    /// An IB port goes down.
    IbPortDown { hca: String },
    /// IB error counters rise.
    IbErrors {
        hca: String,
        counter: String,
        by: u64,
    },
    /// An IB counter sits at its saturation value.
    IbSaturate { hca: String, counter: String },
    /// An IB port trains at fewer lanes than its full width (4X, or the sample's 1X port
    /// cannot), so it runs at a fraction of its rate.
    IbDegraded { hca: String, width: u32 },
    /// The accelerated-networking VF disappears.
    VfRemoved,
    /// The VF is present but down.
    VfDown,
    /// The VF is up but carries no traffic: the synthetic NIC's counters move, the VF's not.
    VfIdle,
    /// The route to the MGS leaves through the VF instead of the synthetic NIC.
    MgsViaVf,
    /// The MGS does not answer: new mounts fail (mount.lustre's EIO, "Is the MGS running?").
    MgsUnreachable,
    /// The package repository stops answering (connection refused).
    RepoUnreachable,
    /// The repository publishes a kernel's metapackage but not yet its kmod package.
    RepoDependencyMissing { kernel: String },
    /// Another package-manager process (pid 4242) holds the package lock.
    PackageLockHeld,
    /// DKMS builds of the client fail to compile.
    DkmsBuildFails,
    /// Each DKMS build of the client takes this long (a real one takes minutes), holding the
    /// package manager as the real build holds dpkg's lock.
    DkmsSlow { seconds: u64 },
    /// A new kernel is installed (in /boot and /lib/modules), not running.
    KernelUpgrade { kernel: String },
    /// The repository stops publishing the client for a kernel.
    RepoMissing { kernel: String },
    /// The node's RPCs to one target (`OST0003`), or to every target of the mount, wait
    /// `factor_percent` / 100 times longer from the next load on: a degraded link or an
    /// overloaded client. Applied on every node for one target, it is that target's
    /// (server's) slowness as every client sees it.
    Slow {
        mount: Option<String>,
        target: Option<String>,
        factor_percent: u32,
    },
    /// The repository does not publish a client version (yet); `heal` publishes it.
    RepoMissingVersion { version: LustreVersion },
    /// A process holds a mount open: umount fails with EBUSY, so the module cannot be
    /// unloaded until a reboot (which ends the process).
    MountBusy { mount: Option<String> },
}

impl Fault {
    /// An import of the first mount in `state` (`DISCONN`, `EVICTED`, `CONNECTING`).
    pub fn import(target: &str, state: &str) -> Fault {
        Fault::Import {
            mount: None,
            target: target.to_owned(),
            state: state.to_owned(),
        }
    }
}

/// The fault kinds, as the CLI names them.
pub const KINDS: [&str; 24] = [
    "import",
    "mount-lost",
    "lbug",
    "not-healthy",
    "lnet-health",
    "ib-port-down",
    "ib-errors",
    "ib-saturate",
    "ib-degraded",
    "vf-removed",
    "vf-down",
    "vf-idle",
    "mgs-via-vf",
    "mgs-unreachable",
    "kernel-upgrade",
    "repo-missing",
    "repo-unreachable",
    "repo-dependency-missing",
    "package-lock-held",
    "dkms-build-fails",
    "dkms-slow",
    "slow",
    "repo-missing-version",
    "mount-busy",
];

fn mount_point(state: &NodeState, mount: &Option<String>) -> Result<String, SimError> {
    match mount {
        Some(m) if state.mounts.iter().any(|x| &x.mount_point == m) => Ok(m.clone()),
        Some(m) => Err(SimError::Usage(format!(
            "{m} is not a Lustre mount on this node"
        ))),
        None => state
            .mounts
            .first()
            .map(|m| m.mount_point.clone())
            .ok_or_else(|| SimError::Usage("the node has no Lustre mount".into())),
    }
}

/// The mount point and mount a target (`OST0001`, `MDT0000`) of `mount` belongs to.
fn target_of<'a>(
    state: &'a NodeState,
    mount: &Option<String>,
    target: &str,
) -> Result<(String, &'a crate::state::SimMount), SimError> {
    let point = mount_point(state, mount)?;
    let sim_mount = state
        .mounts
        .iter()
        .find(|m| m.mount_point == point)
        .expect("checked");
    let valid = target
        .strip_prefix("OST")
        .and_then(|n| u32::from_str_radix(n, 16).ok())
        .is_some_and(|n| n < sim_mount.osts)
        || target
            .strip_prefix("MDT")
            .and_then(|n| u32::from_str_radix(n, 16).ok())
            .is_some_and(|n| n < sim_mount.mdts);
    if !valid || target.len() != 7 {
        return Err(SimError::Usage(format!(
            "{target} is not a target of {point} (OST0000..OST{:04x}, MDT0000..)",
            sim_mount.osts - 1
        )));
    }
    Ok((point, sim_mount))
}

fn require_vf(state: &NodeState) -> Result<(), SimError> {
    if state.vf_present() {
        Ok(())
    } else {
        Err(SimError::Usage(
            "the node has no accelerated-networking VF".into(),
        ))
    }
}

/// Wall-clock milliseconds since the epoch.
pub fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn check_hca(state: &NodeState, hca: &str) -> Result<(), SimError> {
    let known = (0..state.ib_hcas).any(|i| format!("mlx5_{i}") == hca);
    if known {
        Ok(())
    } else {
        Err(SimError::Usage(format!(
            "no InfiniBand HCA {hca} on this node"
        )))
    }
}

/// Applies `fault`; returns what changed.
pub fn apply(state: &mut NodeState, fault: &Fault) -> Result<String, SimError> {
    match fault {
        Fault::Import {
            mount,
            target,
            state: import_state,
        } => {
            if !["DISCONN", "EVICTED", "CONNECTING"].contains(&import_state.as_str()) {
                return Err(SimError::Usage(format!(
                    "import state {import_state:?}: use DISCONN, EVICTED or CONNECTING"
                )));
            }
            let (point, sim_mount) = target_of(state, mount, target)?;
            if import_state == "EVICTED" {
                // The kernel's message (lustre/ptlrpc/import.c), as /dev/kmsg records it.
                let kind = if target.starts_with("OST") {
                    "osc"
                } else {
                    "mdc"
                };
                let line = format!(
                    "3,{},{},-;LustreError: 167-0: {fs}-{target}-{kind}-{inst}: This client was evicted by {fs}-{target}; in progress operations using this service will fail.",
                    1000 + state.faults.kmsg.len(),
                    state.clock_ns / 1000 % 1_000_000_000_000,
                    fs = sim_mount.fsname,
                    inst = sim_mount.instance,
                );
                state.faults.kmsg.push(line);
            }
            state
                .faults
                .imports
                .insert(format!("{point}|{target}"), import_state.clone());
            Ok(format!("{point}: import {target} is {import_state}"))
        }
        Fault::Slow {
            mount,
            target,
            factor_percent,
        } => {
            if !(100..=100_000).contains(factor_percent) {
                return Err(SimError::Usage(
                    "--factor is from 1 to 1000 (times the normal wait)".into(),
                ));
            }
            let point = match target {
                Some(target) => target_of(state, mount, target)?.0,
                None => mount_point(state, mount)?,
            };
            let which = target.as_deref().unwrap_or("*");
            state
                .faults
                .slow
                .insert(format!("{point}|{which}"), *factor_percent);
            Ok(format!(
                "{point}: RPCs to {} wait {:.2}x longer",
                target.as_deref().unwrap_or("every target"),
                f64::from(*factor_percent) / 100.0
            ))
        }
        Fault::MountLost { mount } => {
            let point = mount_point(state, mount)?;
            state.faults.lost_mounts.insert(point.clone());
            Ok(format!("{point}: mount lost"))
        }
        Fault::Lbug => {
            state.faults.lbug = true;
            Ok("health_check says LBUG".into())
        }
        Fault::NotHealthy { mount, target } => {
            let (point, _) = target_of(state, mount, target)?;
            state.faults.unhealthy.insert(format!("{point}|{target}"));
            Ok(format!("{point}: {target} reports unhealthy"))
        }
        Fault::LnetHealth {
            value,
            recover_after,
        } => {
            if *value > 1000 {
                return Err(SimError::Usage(
                    "LNet health values run from 0 to 1000".into(),
                ));
            }
            state.faults.lnet_health = Some(*value);
            state.faults.lnet_health_recovers_at_ms =
                recover_after.map(|seconds| wall_ms() + seconds * 1000);
            Ok(match recover_after {
                Some(seconds) => {
                    format!("LNet NI health value is {value}, back at 1000 in {seconds} s")
                }
                None => format!("LNet NI health value is {value}"),
            })
        }
        Fault::IbPortDown { hca } => {
            check_hca(state, hca)?;
            state.faults.ib_down.insert(hca.clone());
            Ok(format!("{hca} port 1 is DOWN"))
        }
        Fault::IbErrors { hca, counter, by } => {
            check_hca(state, hca)?;
            *state
                .faults
                .ib_errors
                .entry(format!("{hca}/{counter}"))
                .or_default() += by;
            Ok(format!("{hca} {counter} rose by {by}"))
        }
        Fault::IbSaturate { hca, counter } => {
            check_hca(state, hca)?;
            state.faults.ib_saturated.insert(format!("{hca}/{counter}"));
            Ok(format!(
                "{hca} {counter} saturated at 2^{}-1",
                ib_counter_width(counter)
            ))
        }
        Fault::IbDegraded { hca, width } => {
            check_hca(state, hca)?;
            let full = crate::render::ib_full_width(state.ib_rate_gbps);
            if !(1..full).contains(width) {
                return Err(SimError::Usage(format!(
                    "{hca} runs {full}X at full width: a degraded width is 1 to {}",
                    full.saturating_sub(1)
                )));
            }
            state.faults.ib_width.insert(hca.clone(), *width);
            Ok(format!("{hca} port 1 trained at {width}X"))
        }
        Fault::VfRemoved => {
            require_vf(state)?;
            state.faults.vf_removed = true;
            Ok(format!("VF {} removed", crate::render::VF))
        }
        Fault::VfDown => {
            require_vf(state)?;
            state.faults.vf_down = true;
            Ok(format!("VF {} is down", crate::render::VF))
        }
        Fault::VfIdle => {
            require_vf(state)?;
            state.faults.vf_idle = Some((state.eth0_rx_bytes, state.eth0_tx_bytes));
            Ok(format!("VF {} carries no traffic", crate::render::VF))
        }
        Fault::MgsViaVf => {
            require_vf(state)?;
            state.faults.mgs_via_vf = true;
            Ok(format!(
                "the route to the MGS leaves through VF {}",
                crate::render::VF
            ))
        }
        Fault::MgsUnreachable => {
            state.faults.mgs_unreachable = true;
            Ok("the MGS stops answering: new mounts fail".into())
        }
        Fault::RepoUnreachable => {
            state.faults.repo_unreachable = true;
            Ok("the package repository refuses connections".into())
        }
        Fault::RepoDependencyMissing { kernel } => {
            state.faults.repo_dependency_missing.insert(kernel.clone());
            Ok(format!(
                "the repository publishes the metapackage for {kernel} but not its kmod"
            ))
        }
        Fault::PackageLockHeld => {
            state.faults.package_lock = true;
            Ok("process 4242 holds the package manager's lock".into())
        }
        Fault::DkmsBuildFails => {
            state.faults.dkms_build_fails = true;
            Ok("DKMS builds of the client fail".into())
        }
        Fault::DkmsSlow { seconds } => {
            state.faults.dkms_build_seconds = *seconds;
            Ok(format!("a DKMS build of the client takes {seconds} s"))
        }
        Fault::KernelUpgrade { kernel } => {
            if kernel.is_empty()
                || kernel.contains(['/', ' '])
                || state.all_kernels().contains(kernel)
            {
                return Err(SimError::Usage(format!(
                    "kernel {kernel:?} is invalid or already installed"
                )));
            }
            state.faults.upgrade_kernels.insert(kernel.clone());
            Ok(format!("kernel {kernel} installed (not running)"))
        }
        Fault::RepoMissing { kernel } => {
            state.faults.repo_missing.insert(kernel.clone());
            Ok(format!(
                "repository no longer publishes the client for {kernel}"
            ))
        }
        Fault::RepoMissingVersion { version } => {
            state.faults.repo_missing_versions.insert(*version);
            Ok(format!(
                "the repository does not publish client {}",
                version.amlfs_version()
            ))
        }
        Fault::MountBusy { mount } => {
            let point = mount_point(state, mount)?;
            state.faults.busy_mounts.insert(point.clone());
            Ok(format!(
                "a process holds {point} open: it cannot be unmounted"
            ))
        }
    }
}

/// Removes every fault overlay, or those of `kind`.
pub fn heal(state: &mut NodeState, kind: Option<&str>) -> Result<String, SimError> {
    if let Some(kind) = kind.filter(|k| !KINDS.contains(k)) {
        return Err(SimError::Usage(format!(
            "unknown fault kind {kind:?}: use one of {}",
            KINDS.join(", ")
        )));
    }
    let all = kind.is_none();
    let is = |k: &str| all || kind == Some(k);
    let faults = &mut state.faults;
    if is("import") {
        faults.imports.clear();
        faults.kmsg.clear();
    }
    if is("mount-lost") {
        faults.lost_mounts.clear();
    }
    if is("lbug") {
        faults.lbug = false;
    }
    if is("not-healthy") {
        faults.unhealthy.clear();
    }
    if is("lnet-health") {
        faults.lnet_health = None;
        faults.lnet_health_recovers_at_ms = None;
    }
    if is("ib-degraded") {
        faults.ib_width.clear();
    }
    if is("vf-down") {
        faults.vf_down = false;
    }
    if is("vf-idle") {
        faults.vf_idle = None;
    }
    if is("mgs-via-vf") {
        faults.mgs_via_vf = false;
    }
    if is("mgs-unreachable") {
        faults.mgs_unreachable = false;
    }
    if is("repo-unreachable") {
        faults.repo_unreachable = false;
    }
    if is("repo-dependency-missing") {
        faults.repo_dependency_missing.clear();
    }
    if is("package-lock-held") {
        faults.package_lock = false;
    }
    if is("dkms-build-fails") {
        faults.dkms_build_fails = false;
    }
    if is("dkms-slow") {
        faults.dkms_build_seconds = 0;
    }
    if is("ib-port-down") {
        faults.ib_down.clear();
    }
    if is("ib-errors") {
        faults.ib_errors.clear();
    }
    if is("ib-saturate") {
        faults.ib_saturated.clear();
    }
    if is("vf-removed") {
        faults.vf_removed = false;
    }
    if is("kernel-upgrade") {
        // A client installed for the removed kernel goes with it.
        let removed = std::mem::take(&mut faults.upgrade_kernels);
        state.clients.retain(|k| !removed.contains(k));
    }
    if is("slow") {
        faults.slow.clear();
    }
    if is("repo-missing") {
        state.faults.repo_missing.clear();
    }
    if is("repo-missing-version") {
        state.faults.repo_missing_versions.clear();
    }
    if is("mount-busy") {
        state.faults.busy_mounts.clear();
    }
    Ok(format!("healed {}", kind.unwrap_or("all faults")))
}
