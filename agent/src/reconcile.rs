//! One reconcile pass over a node: observe, then plan or apply each part in order.
//!
//! 1. The client for the running kernel; then for every other installed kernel, so a reboot
//!    into it finds a client (`reboot-unsafe` when one cannot be had).
//! 2. The lustre module: loaded, and the loaded version is the installed one (a stale module
//!    is reported, not papered over).
//! 3. LNet: the network on the interface the route to the MGS uses; NIDs verified.
//! 4. fstab and mounts, by [`lfleet_mount::plan`]; 5. the slurmd drop-in.
//!
//! In [`Mode::Plan`] nothing is changed and only read-only commands run. Every part reports an
//! [`ItemResult`]; a failed part does not stop the independent ones.
//!
//! Entry point: [`reconcile`].

use std::time::Duration;

use lfleet_host::{Clock, CommandSpec, HostRoot};
use lfleet_install::Distro;
use lfleet_lnet::{DesiredLnet, LnetStep};
use lfleet_mount::{Fstab, Knowledge, Observed, Step, parse_mountinfo};
use serde::Serialize;

use crate::config::{Dkms, NodeConfig};
use crate::install::{InstallPolicy, Installer, find_module, installed_kernels, running_kernel};
use crate::mount_apply::{FSTAB_PATH, MountExecutor, SLURMD_DROP_IN_PATH, slurmd_drop_in};
use crate::node::NodeHandle;
use lfleet_install::{DkmsDecision, Failure, FailureClass, FollowUp, follow_up};

/// Plan (change nothing) or apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Plan,
    Apply,
}

/// The outcome for one item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemResult {
    /// `package`, `module`, `lnet`, `fstab`, `mount`, `dropin`.
    pub kind: String,
    pub id: String,
    pub ok: bool,
    /// The failure class, empty when ok.
    pub class: String,
    pub message: String,
    /// What happens next for a failed item ([`lfleet_install::follow_up`]'s decision).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub follow_up: Option<FollowUpReport>,
}

/// A failed item's follow-up, as `apply` reports it and the reconciler acts on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FollowUpReport {
    /// `retry` or `refused`.
    pub action: String,
    /// Seconds until the retry (with jitter), for `retry`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u64>,
    /// Whether this pass tried a DKMS build for the item.
    pub dkms_tried: bool,
    /// The decision in words: when to retry and why DKMS was or was not tried, or the
    /// refusal's reason.
    pub text: String,
}

impl FollowUpReport {
    fn new(decision: &FollowUp, dkms_tried: bool) -> FollowUpReport {
        FollowUpReport {
            action: decision.action().to_owned(),
            retry_after_seconds: match decision {
                FollowUp::Retry { after, .. } => Some(after.as_secs()),
                _ => None,
            },
            dkms_tried,
            text: decision.to_string(),
        }
    }
}

/// What a pass did or would do.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Changes made (apply) or that would be made (plan), in order.
    pub changes: Vec<String>,
    pub items: Vec<ItemResult>,
    /// Problems to act on before something else breaks (`reboot-unsafe: ...`).
    pub findings: Vec<String>,
}

impl Report {
    pub fn failed(&self) -> impl Iterator<Item = &ItemResult> {
        self.items.iter().filter(|item| !item.ok)
    }

    fn ok(&mut self, kind: &str, id: &str, message: impl Into<String>) {
        self.items.push(ItemResult {
            kind: kind.into(),
            id: id.into(),
            ok: true,
            class: String::new(),
            message: message.into(),
            follow_up: None,
        });
    }

    fn fail(&mut self, kind: &str, id: &str, class: &str, message: impl Into<String>) {
        self.items.push(ItemResult {
            kind: kind.into(),
            id: id.into(),
            ok: false,
            class: class.into(),
            message: message.into(),
            follow_up: None,
        });
    }

    /// A failed install or module item, with its follow-up.
    fn fail_classified(
        &mut self,
        kind: &str,
        id: &str,
        class: FailureClass,
        message: impl Into<String>,
        follow_up: FollowUpReport,
    ) {
        self.fail(kind, id, class.code(), message);
        if let Some(item) = self.items.last_mut() {
            item.follow_up = Some(follow_up);
        }
    }
}

/// Why a pass could not even observe the node. Nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("reading {what}")]
    Host {
        what: &'static str,
        #[source]
        source: lfleet_host::HostError,
    },
    #[error(transparent)]
    Distro(#[from] lfleet_install::DistroError),
    #[error("/etc/fstab cannot be managed safely")]
    Fstab(#[source] lfleet_mount::FstabError),
    #[error("/proc/self/mountinfo is unreadable")]
    Mountinfo(#[source] lfleet_mount::MountInfoError),
    #[error(
        "another lfleet-agent holds {path} (mounts and installs are serialized per node); gave up after {waited:?}"
    )]
    Busy { path: String, waited: Duration },
}

/// The lock that serializes applies on a node (daemon and one-shot CLI alike).
pub const APPLY_LOCK: &str = "run/lfleet/agent.lock";
/// How long an apply waits for another one to finish.
pub const APPLY_LOCK_WAIT: Duration = Duration::from_secs(60);

/// Takes the node's apply lock, polling until `wait` has passed.
async fn lock_node(
    host: &HostRoot,
    wait: Duration,
) -> Result<lfleet_host::LockGuard, ReconcileError> {
    let started = tokio::time::Instant::now();
    loop {
        match host.try_lock(APPLY_LOCK) {
            Ok(Some(guard)) => return Ok(guard),
            Ok(None) if started.elapsed() < wait => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Ok(None) => {
                return Err(ReconcileError::Busy {
                    path: format!("/{APPLY_LOCK}"),
                    waited: wait,
                });
            }
            Err(source) => {
                return Err(ReconcileError::Host {
                    what: "the apply lock",
                    source,
                });
            }
        }
    }
}

const QUERY_TIMEOUT: Duration = Duration::from_secs(30);

async fn query(
    node: NodeHandle<'_>,
    program: &str,
    args: &[&str],
) -> Result<String, lfleet_host::CommandError> {
    let spec = CommandSpec::new(program, QUERY_TIMEOUT).args(args.iter().copied());
    node.runner.run(&spec).await.map(|output| output.stdout)
}

async fn change(
    node: NodeHandle<'_>,
    program: &str,
    args: &[String],
    timeout: Duration,
) -> Result<(), lfleet_host::CommandError> {
    let spec = CommandSpec::new(program, timeout).args(args.iter().cloned());
    node.runner.run(&spec).await.map(|_| ())
}

/// The installer's policy from the configuration.
fn install_policy(config: &NodeConfig) -> InstallPolicy {
    InstallPolicy {
        command_timeout: Duration::from_secs(u64::from(config.install_timeout_seconds)),
        ..InstallPolicy::new(&config.client.lustre_version)
    }
}

/// A fraction in [0, 1) for a retry's jitter, from the clock's nanoseconds.
fn jitter(clock: &dyn Clock) -> f64 {
    let nanos = clock
        .wall()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    f64::from(nanos % 1_000_000) / 1_000_000.0
}

/// The follow-up of a failed item other than a kernel's client (no DKMS question there).
fn follow_up_of(class: FailureClass, clock: &dyn Clock) -> FollowUpReport {
    let not_applicable = DkmsDecision::Refused("not applicable".into());
    let decision = follow_up(&Failure {
        class,
        attempt: 1,
        dkms: &not_applicable,
        dkms_failed: false,
        jitter: jitter(clock),
    });
    FollowUpReport::new(&decision, false)
}

/// The read-only checks that must pass before the agent writes anything to a node (its
/// ledger, its lock): the distribution is one lfleet supports.
pub fn preflight(host: &HostRoot) -> Result<Distro, ReconcileError> {
    let os_release =
        host.read_to_string("etc/os-release")
            .map_err(|source| ReconcileError::Host {
                what: "/etc/os-release",
                source,
            })?;
    Ok(Distro::from_os_release(&os_release)?)
}

/// One pass. `Err` only when observation itself fails; per-item failures are in the report.
pub async fn reconcile(
    node: NodeHandle<'_>,
    config: &NodeConfig,
    mode: Mode,
) -> Result<Report, ReconcileError> {
    let host = node.host;
    let distro = preflight(host)?;
    // Applies are serialized per node: concurrent Lustre mounts and unmounts fail or crash.
    let _lock = match mode {
        Mode::Apply => Some(lock_node(host, APPLY_LOCK_WAIT).await?),
        Mode::Plan => None,
    };
    let running = running_kernel(host).map_err(|source| ReconcileError::Host {
        what: "the running kernel",
        source,
    })?;
    let kernels = installed_kernels(host).map_err(|source| ReconcileError::Host {
        what: "installed kernels",
        source,
    })?;
    let fstab_text = host
        .read_optional(FSTAB_PATH)
        .map_err(|source| ReconcileError::Host {
            what: "/etc/fstab",
            source,
        })?
        .unwrap_or_default();
    let fstab = Fstab::parse(&fstab_text).map_err(ReconcileError::Fstab)?;
    let mountinfo = host
        .read_to_string("proc/self/mountinfo")
        .map_err(|source| ReconcileError::Host {
            what: "mountinfo",
            source,
        })?;
    let mounts = parse_mountinfo(&mountinfo).map_err(ReconcileError::Mountinfo)?;

    let mut report = Report::default();
    let policy = install_policy(config);
    // Decided once per pass, when the first kernel lacks a prebuilt client.
    let mut dkms: Option<DkmsDecision> = None;

    // 0. The package repository, when configured.
    if let Some(repository) = &config.repository {
        repository_files(host, repository, &distro, mode, &mut report);
    }

    // 1. Clients: the running kernel first, then every other installed kernel.
    let mut running_ok = true;
    let mut others: Vec<&String> = kernels.iter().filter(|k| **k != running).collect();
    others.sort();
    for kernel in std::iter::once(&running).chain(others) {
        let present = find_module(host, kernel, "lustre")
            .map_err(|source| ReconcileError::Host {
                what: "kernel modules",
                source,
            })?
            .is_some();
        if present {
            report.ok("package", kernel, "client module present");
            continue;
        }
        if mode == Mode::Plan {
            report.changes.push(format!(
                "install the Lustre {} client for kernel {kernel}",
                config.client.lustre_version
            ));
            continue;
        }
        let installer = Installer {
            host,
            runner: node.runner,
            clock: node.clock,
            distro: &distro,
            policy: &policy,
        };
        match installer.ensure_client(kernel).await {
            Ok(done) => {
                if let crate::install::Ensured::Installed { package } = done {
                    report.changes.push(format!("installed {package}"));
                }
                report.ok("package", kernel, "client installed");
            }
            Err(error) => {
                let prebuilt = error.class();
                let mut class = prebuilt;
                let mut message = lfleet_types::ErrorChain(&error).to_string();
                if dkms.is_none() {
                    dkms = Some(
                        crate::dkms::decision(node, &distro, config.client.dkms == Dkms::Allowed)
                            .await,
                    );
                }
                let dkms = dkms.as_ref().unwrap_or(&DkmsDecision::Build);
                let mut failure = Failure {
                    class: prebuilt,
                    attempt: 1,
                    dkms,
                    dkms_failed: false,
                    jitter: jitter(node.clock),
                };
                let mut decision = follow_up(&failure);
                let dkms_tried = decision == FollowUp::BuildWithDkms;
                if dkms_tried {
                    match crate::dkms::build(node, &distro, &config.client.lustre_version, kernel)
                        .await
                    {
                        Ok(()) => {
                            report.changes.push(format!(
                                "built the Lustre client for kernel {kernel} with DKMS"
                            ));
                            report.ok("package", kernel, "client built with DKMS");
                            continue;
                        }
                        Err((dkms_class, dkms_message)) => {
                            class = dkms_class;
                            message = format!("{message}; DKMS fallback failed: {dkms_message}");
                            if dkms_class.is_transient() {
                                // The build never ran (a lock, the repository): try it again.
                                failure.class = dkms_class;
                            } else {
                                failure.dkms_failed = true;
                            }
                            decision = follow_up(&failure);
                        }
                    }
                }
                report.fail_classified(
                    "package",
                    kernel,
                    class,
                    message,
                    FollowUpReport::new(&decision, dkms_tried),
                );
                if *kernel == running {
                    running_ok = false;
                } else {
                    report.findings.push(format!(
                        "reboot-unsafe: kernel {kernel} has no Lustre client ({class})"
                    ));
                }
            }
        }
    }

    // 2. The module.
    let expected_release = config
        .client
        .lustre_version
        .split('-')
        .next()
        .unwrap_or("")
        .to_owned();
    let loaded = host
        .read_optional("sys/module/lustre/version")
        .map_err(|source| ReconcileError::Host {
            what: "the lustre module version",
            source,
        })?;
    let module_ok = match loaded {
        Some(version)
            if crate::install::module_version_matches(&version, &config.client.lustre_version) =>
        {
            report.ok(
                "module",
                "lustre",
                format!("lustre {expected_release} loaded"),
            );
            true
        }
        Some(version) => {
            // Never papered over: the mounts run on the old module until someone unloads it.
            report.fail("module", "lustre", "stale-module", format!(
                "loaded lustre module is {} but the installed client is {expected_release}; unmount, lustre_rmmod or reboot to load it",
                version.trim()
            ));
            true
        }
        None if !running_ok => {
            // A consequence of the package item's failure, which names the cause.
            report.fail(
                "module",
                "lustre",
                "not-ready",
                format!("not loaded: no client for the running kernel {running}"),
            );
            false
        }
        None if mode == Mode::Plan => {
            report
                .changes
                .push("load the lustre module (modprobe lustre)".into());
            true
        }
        None => match change(node, "modprobe", &["lustre".to_string()], QUERY_TIMEOUT).await {
            Ok(()) => {
                report.changes.push("loaded the lustre module".into());
                report.ok("module", "lustre", "lustre loaded");
                true
            }
            Err(error) => {
                let class = lfleet_install::classify(error.stdout(), error.stderr());
                report.fail_classified(
                    "module",
                    "lustre",
                    class,
                    lfleet_types::ErrorChain(&error).to_string(),
                    follow_up_of(class, node.clock),
                );
                false
            }
        },
    };

    // 3. LNet, for the first mount's MGS.
    let mut lnet_ok = true;
    if let Some(first) = config.mounts.first() {
        lnet_ok = lnet(node, config, first, mode, &mut report).await;
    }

    // 4. fstab and mounts.
    let desired = config.desired_mounts();
    let plan = lfleet_mount::plan(&desired, &Observed { mounts, fstab }, Knowledge::Complete);
    for conflict in &plan.conflicts {
        report.fail(
            "mount",
            &conflict.mount_point,
            "conflict",
            conflict.reason.clone(),
        );
    }
    let executor = MountExecutor {
        host,
        runner: node.runner,
        timeout: Duration::from_secs(u64::from(config.mount_timeout_seconds)),
    };
    let mut failed_points = Vec::new();
    for step in &plan.steps {
        let (kind, id, what) = match step {
            Step::Unmount { mount_point, why } => (
                "mount",
                mount_point.clone(),
                format!("unmount {mount_point} ({why})"),
            ),
            Step::WriteFstab { .. } => (
                "fstab",
                "/etc/fstab".to_string(),
                "write /etc/fstab".to_string(),
            ),
            Step::Mount {
                source,
                mount_point,
                ..
            } => (
                "mount",
                mount_point.clone(),
                format!("mount {source} at {mount_point}"),
            ),
        };
        if mode == Mode::Plan {
            report.changes.push(what);
            continue;
        }
        if matches!(step, Step::Mount { .. }) && !(module_ok && lnet_ok) {
            report.fail(
                kind,
                &id,
                "not-ready",
                "not mounted: the client module or LNet is not ready",
            );
            failed_points.push(id);
            continue;
        }
        match executor.apply(step).await {
            Ok(()) => {
                report.changes.push(what);
                report.ok(kind, &id, "done");
            }
            Err(error) => {
                report.fail(kind, &id, "mount-failed", lfleet_types::error_chain(&error));
                failed_points.push(id);
            }
        }
    }
    for want in &desired {
        let failed = failed_points.contains(&want.mount_point)
            || plan
                .conflicts
                .iter()
                .any(|c| c.mount_point == want.mount_point);
        if !failed
            && !report
                .items
                .iter()
                .any(|i| i.kind == "mount" && i.id == want.mount_point)
        {
            report.ok(
                "mount",
                &want.mount_point,
                if mode == Mode::Plan {
                    "as desired"
                } else {
                    "mounted"
                },
            );
        }
    }

    // 5. The slurmd drop-in.
    let points: Vec<&str> = desired.iter().map(|m| m.mount_point.as_str()).collect();
    let wanted = slurmd_drop_in(&points);
    let current =
        host.read_optional(SLURMD_DROP_IN_PATH)
            .map_err(|source| ReconcileError::Host {
                what: "the slurmd drop-in",
                source,
            })?;
    if wanted != current {
        if mode == Mode::Plan {
            report.changes.push(format!(
                "{} the slurmd drop-in",
                if wanted.is_some() { "write" } else { "remove" }
            ));
        } else {
            let result = match &wanted {
                Some(text) => host
                    .create_dir_all("etc/systemd/system/slurmd.service.d", 0o755)
                    .and_then(|()| host.write_atomic(SLURMD_DROP_IN_PATH, text.as_bytes(), 0o644)),
                None => host.remove_file(SLURMD_DROP_IN_PATH),
            };
            match result {
                Ok(()) => {
                    report.changes.push(format!(
                        "{} the slurmd drop-in",
                        if wanted.is_some() { "wrote" } else { "removed" }
                    ));
                    report.ok("dropin", "slurmd", "done");
                    daemon_reload(node).await;
                }
                Err(error) => report.fail(
                    "dropin",
                    "slurmd",
                    "write-failed",
                    lfleet_types::error_chain(&error),
                ),
            }
        }
    }
    Ok(report)
}

/// Makes sure one kernel has its client (the kernel postinst hook's job). Serialized with
/// applies.
pub async fn ensure_kernel_client(
    node: NodeHandle<'_>,
    config: &NodeConfig,
    kernel: &str,
) -> Result<Report, ReconcileError> {
    let distro = preflight(node.host)?;
    let _lock = lock_node(node.host, APPLY_LOCK_WAIT).await?;
    let policy = install_policy(config);
    let installer = Installer {
        host: node.host,
        runner: node.runner,
        clock: node.clock,
        distro: &distro,
        policy: &policy,
    };
    let mut report = Report::default();
    match installer.ensure_client(kernel).await {
        Ok(crate::install::Ensured::Installed { package }) => {
            report.changes.push(format!("installed {package}"));
            report.ok("package", kernel, "client installed");
        }
        Ok(crate::install::Ensured::AlreadyPresent) => {
            report.ok("package", kernel, "client module present")
        }
        Err(error) => {
            let class = error.class();
            report.fail_classified(
                "package",
                kernel,
                class,
                lfleet_types::ErrorChain(&error).to_string(),
                follow_up_of(class, node.clock),
            );
            report.findings.push(format!(
                "reboot-unsafe: kernel {kernel} has no Lustre client ({class})"
            ));
        }
    }
    Ok(report)
}

/// Brings LNet up as desired (the lfleet-lnet.service's job at boot). Serialized with applies.
pub async fn lnet_up(node: NodeHandle<'_>, config: &NodeConfig) -> Result<Report, ReconcileError> {
    preflight(node.host)?;
    let _lock = lock_node(node.host, APPLY_LOCK_WAIT).await?;
    let mut report = Report::default();
    if let Some(first) = config.mounts.first() {
        lnet(node, config, first, Mode::Apply, &mut report).await;
    }
    Ok(report)
}

/// Writes the repository and key files where they differ from what they should be.
fn repository_files(
    host: &HostRoot,
    repository: &crate::repo::RepositoryConfig,
    distro: &Distro,
    mode: Mode,
    report: &mut Report,
) {
    let key = match host.read_limited(&repository.key_file, 1 << 20) {
        Ok(key) => key,
        Err(error) => {
            report.fail(
                "repository",
                &repository.key_file,
                "repository-key-missing",
                lfleet_types::error_chain(&error),
            );
            return;
        }
    };
    for file in crate::repo::desired_files(repository, distro, &key) {
        let current = host.read_limited(&file.path, 1 << 20).ok();
        if current.as_deref() == Some(file.contents.as_slice()) {
            continue;
        }
        let what = format!("write /{}", file.path);
        if mode == Mode::Plan {
            report.changes.push(what);
            continue;
        }
        let dir = std::path::Path::new(&file.path)
            .parent()
            .map(|p| p.to_path_buf())
            .unwrap_or_default();
        match host
            .create_dir_all(&dir, 0o755)
            .and_then(|()| host.write_atomic(&file.path, &file.contents, 0o644))
        {
            Ok(()) => report.changes.push(what),
            Err(error) => report.fail(
                "repository",
                &file.path,
                "write-failed",
                lfleet_types::error_chain(&error),
            ),
        }
    }
}

/// Tells systemd about changed units, on a host booted with systemd (sd_booted's test).
async fn daemon_reload(node: NodeHandle<'_>) {
    if node.host.exists("run/systemd/system").unwrap_or(false)
        && let Err(error) = change(
            node,
            "systemctl",
            &["daemon-reload".to_string()],
            QUERY_TIMEOUT,
        )
        .await
    {
        tracing::warn!(error = %lfleet_types::ErrorChain(&error), "systemctl daemon-reload failed");
    }
}

/// Brings LNet to the desired network on the right interface; true when it is there.
async fn lnet(
    node: NodeHandle<'_>,
    config: &NodeConfig,
    first: &lfleet_types::MountSpec,
    mode: Mode,
    report: &mut Report,
) -> bool {
    let Some(mgs) = first.mgs.all().next() else {
        return true;
    };
    let mgs_address = mgs.address.to_string();
    let route = match query(node, "ip", &["route", "get", &mgs_address])
        .await
        .map_err(|e| lfleet_types::error_chain(&e))
        .and_then(|out| {
            lfleet_lnet::parse_route_get(&out).map_err(|e| lfleet_types::error_chain(&e))
        }) {
        Ok(route) => route,
        Err(error) => {
            report.fail(
                "lnet",
                &config.lnet.network,
                "no-route",
                format!("no route to the MGS {mgs_address}: {error}"),
            );
            return false;
        }
    };
    let links = query(node, "ip", &["-o", "link", "show"])
        .await
        .map(|out| lfleet_lnet::parse_links(&out))
        .unwrap_or_default();
    let configured = (config.lnet.interface != "auto").then_some(config.lnet.interface.as_str());
    let interface = match lfleet_lnet::choose_interface(&route, &links, configured) {
        Ok(interface) => interface,
        Err(error) => {
            report.fail(
                "lnet",
                &config.lnet.network,
                "bad-interface",
                lfleet_types::error_chain(&error),
            );
            return false;
        }
    };
    let Some(address) = route.src.filter(|_| {
        interface == route.dev
            || links
                .iter()
                .any(|l| l.name == route.dev && l.master.as_deref() == Some(&interface))
    }) else {
        report.fail(
            "lnet",
            &config.lnet.network,
            "no-address",
            format!("cannot tell the address of {interface} from the route to {mgs_address}"),
        );
        return false;
    };
    let desired = DesiredLnet {
        network: config.lnet.network.clone(),
        interface,
        address,
    };
    let observed = query(node, "lnetctl", &["net", "show"])
        .await
        .ok()
        .map(|out| lfleet_lnet::parse_net_show(&out));
    let steps = lfleet_lnet::plan(&desired, observed.as_deref());
    if steps.is_empty() {
        report.ok(
            "lnet",
            &desired.network,
            format!("{} on {}", desired.expected_nid(), desired.interface),
        );
        return true;
    }
    if mode == Mode::Plan {
        for step in &steps {
            report
                .changes
                .push(format!("lnetctl {}", step.lnetctl_args().join(" ")));
        }
        return true;
    }
    for step in &steps {
        if let Err(error) = change(node, "lnetctl", &step.lnetctl_args(), QUERY_TIMEOUT).await {
            report.fail(
                "lnet",
                &desired.network,
                "lnet-config-failed",
                lfleet_types::error_chain(&error),
            );
            return false;
        }
        report
            .changes
            .push(format!("lnetctl {}", step.lnetctl_args().join(" ")));
        if *step == LnetStep::Configure {
            continue;
        }
    }
    // Verify: the NID must now be there.
    let now = query(node, "lnetctl", &["net", "show"])
        .await
        .map(|out| lfleet_lnet::parse_net_show(&out))
        .unwrap_or_default();
    if now.iter().any(|ni| ni.nid == desired.expected_nid()) {
        report.ok(
            "lnet",
            &desired.network,
            format!("{} on {}", desired.expected_nid(), desired.interface),
        );
        true
    } else {
        report.fail(
            "lnet",
            &desired.network,
            "nid-missing",
            format!(
                "LNet does not report {} after configuring it",
                desired.expected_nid()
            ),
        );
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_second_apply_waits_for_the_first_and_gives_up_with_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let host = HostRoot::new(dir.path());
        let held = host.try_lock(APPLY_LOCK).unwrap().expect("free");
        let err = lock_node(&host, Duration::from_secs(2)).await.unwrap_err();
        assert!(matches!(err, ReconcileError::Busy { .. }), "{err}");
        assert!(err.to_string().contains("/run/lfleet/agent.lock"), "{err}");
        drop(held);
        assert!(lock_node(&host, Duration::from_secs(2)).await.is_ok());
    }
}
