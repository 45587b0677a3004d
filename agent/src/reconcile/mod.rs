//! A reconcile pass in three steps: [`observe`] the node into one value, [`plan`] from the
//! desired configuration and that value (pure), [`apply`] the plan with one executor. In
//! [`Mode::Plan`] the plan is only described: nothing changes and only read-only commands
//! run.
//!
//! The items, in order: repository files; the client for the running kernel, then for every
//! other installed kernel (a reboot into one without a client is `reboot-unsafe`); the lustre
//! module (a stale loaded version is reported, not papered over); LNet on the interface the
//! route to the MGS uses; fstab and mounts (unmounts first); the slurmd drop-in. Every item
//! gets an [`ItemResult`]; a failed item does not stop the independent ones.
//!
//! Applies on a node are serialized by [`APPLY_LOCK`] (the daemon and the one-shot CLI
//! alike). Nothing is written before [`preflight`] says the node can be managed.
//!
//! Entry points: [`reconcile`], [`ensure_kernel_client`], [`lnet_up`], [`remount`].

pub mod apply;
pub mod observe;
pub mod plan;

use std::time::Duration;

use lfleet_host::{CommandSpec, HostRoot};
use lfleet_install::{Distro, FollowUp};
use lfleet_types::ItemResult;
use serde::Serialize;

use crate::config::NodeConfig;
use crate::install::{InstallPolicy, running_kernel};
use crate::node::NodeHandle;

pub use plan::{Plan, RemountRefusal};

/// Plan (change nothing) or apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Plan,
    Apply,
}

/// What a pass did or would do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Changes made (apply) or that would be made (plan), in order.
    pub changes: Vec<String>,
    pub items: Vec<ReportItem>,
    /// Problems to act on before something else breaks (`reboot-unsafe: ...`).
    pub findings: Vec<String>,
    /// Kernels whose client this pass installed or built.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub installed: Vec<String>,
}

/// One item's result and, when it failed, what happens next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportItem {
    pub result: ItemResult,
    /// [`lfleet_install::follow_up`]'s decision for a failed install or module item.
    pub follow_up: Option<FollowUpReport>,
    /// The item was not tried this pass: its follow-up holds it back (the failure is the
    /// last one seen).
    pub deferred: bool,
}

/// `--json` keeps the shape it has always had: `kind`, `id`, `ok`, `class` (empty when ok),
/// `message`, and `follow_up` when there is one.
impl Serialize for ReportItem {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let fields = 5 + usize::from(self.follow_up.is_some()) + usize::from(self.deferred);
        let mut item = serializer.serialize_struct("ReportItem", fields)?;
        item.serialize_field("kind", self.result.kind.as_str())?;
        item.serialize_field("id", &self.result.id)?;
        item.serialize_field("ok", &self.result.ok())?;
        item.serialize_field(
            "class",
            self.result.failure.map(|class| class.code()).unwrap_or(""),
        )?;
        item.serialize_field("message", &self.result.message)?;
        if let Some(follow_up) = &self.follow_up {
            item.serialize_field("follow_up", follow_up)?;
        }
        if self.deferred {
            item.serialize_field("deferred", &true)?;
        }
        item.end()
    }
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
    pub(crate) fn new(decision: &FollowUp, dkms_tried: bool) -> FollowUpReport {
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

impl Report {
    pub fn failed(&self) -> impl Iterator<Item = &ItemResult> {
        self.items
            .iter()
            .map(|item| &item.result)
            .filter(|item| !item.ok())
    }

    /// Every item's result, in order.
    pub fn results(&self) -> impl Iterator<Item = &ItemResult> {
        self.items.iter().map(|item| &item.result)
    }
}

/// The installer's policy from the configuration: one attempt per pass (the follow-up
/// schedules the next), the configured deadline of one package-manager run.
pub fn install_policy(config: &NodeConfig) -> InstallPolicy {
    InstallPolicy {
        command_timeout: Duration::from_secs(u64::from(config.install_timeout_seconds)),
        ..InstallPolicy::new(config.client.lustre_version.as_str())
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
    #[error(
        "mount point {mount_point} is or is below the symbolic link {link}: lfleet never mounts through a link (it could point anywhere)"
    )]
    SymlinkMountPoint { mount_point: String, link: String },
}

/// Refuses a config whose mount points are, or lie below, a symbolic link on this node (a
/// link could send a mount over `/etc` or `/root`). Read-only; run before anything is
/// written.
///
/// Nothing at or below a Lustre filesystem mounted now is looked at: an lstat there is a
/// call into that filesystem, which blocks while it hangs (and this runs on the agent's
/// runtime). Such a mount point was resolved by the kernel when it was mounted, and a path
/// below it is Lustre's own.
pub fn check_mount_points(host: &HostRoot, config: &NodeConfig) -> Result<(), ReconcileError> {
    let lustre: Vec<String> = host
        .read_to_string("proc/self/mountinfo")
        .ok()
        .and_then(|text| lfleet_mount::parse_mountinfo(&text).ok())
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m.fstype == "lustre")
        .map(|m| m.mount_point)
        .collect();
    for mount in &config.mounts {
        let point = mount.mount_point.as_str();
        // The part of the path above the first Lustre mount on it.
        let mut above = std::path::PathBuf::from("/");
        for component in std::path::Path::new(point).components().skip(1) {
            let next = above.join(component);
            if lustre.iter().any(|m| std::path::Path::new(m) == next) {
                break;
            }
            above = next;
        }
        if let Some(link) = host
            .first_symlink(&above)
            .map_err(host_error("a mount point's path"))?
        {
            return Err(ReconcileError::SymlinkMountPoint {
                mount_point: point.to_owned(),
                link,
            });
        }
    }
    Ok(())
}

/// Maps a host error to the pass error naming what was being read.
pub(crate) fn host_error(
    what: &'static str,
) -> impl FnOnce(lfleet_host::HostError) -> ReconcileError {
    move |source| ReconcileError::Host { what, source }
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

pub(crate) const QUERY_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs a read-only command; its stdout.
pub(crate) async fn query(
    node: NodeHandle<'_>,
    program: &str,
    args: &[&str],
) -> Result<String, lfleet_host::CommandError> {
    let spec = CommandSpec::new(program, QUERY_TIMEOUT).args(args.iter().copied());
    node.runner.run(&spec).await.map(|output| output.stdout)
}

/// Runs a command that changes the node.
pub(crate) async fn change(
    node: NodeHandle<'_>,
    program: &str,
    args: &[String],
    timeout: Duration,
) -> Result<(), lfleet_host::CommandError> {
    let spec = CommandSpec::new(program, timeout).args(args.iter().cloned());
    node.runner.run(&spec).await.map(|_| ())
}

/// The read-only checks that must pass before the agent writes anything to a node (its
/// ledger, its lock): the distribution is one lfleet supports.
pub fn preflight(host: &HostRoot) -> Result<Distro, ReconcileError> {
    let os_release = host
        .read_to_string("etc/os-release")
        .map_err(host_error("/etc/os-release"))?;
    Ok(Distro::from_os_release(&os_release)?)
}

/// The plan as a report of what would change; nothing is run.
pub fn describe(config: &NodeConfig, plan: &Plan) -> Report {
    let mut report = Report::default();
    for entry in &plan.entries {
        match entry {
            plan::Entry::Settled(item) => report.items.push(ReportItem {
                result: item.clone(),
                follow_up: None,
                deferred: false,
            }),
            plan::Entry::Act(action) => report.changes.extend(action.describe(config)),
        }
    }
    report
}

/// One whole pass with the default install policy. `Err` only when observation itself
/// fails; per-item failures are in the report.
pub async fn reconcile(
    node: NodeHandle<'_>,
    config: &NodeConfig,
    mode: Mode,
) -> Result<Report, ReconcileError> {
    let memory = apply::Memory::default();
    reconcile_with(node, config, mode, &install_policy(config), &memory).await
}

/// One whole pass: observe, plan, then describe or apply.
pub async fn reconcile_with(
    node: NodeHandle<'_>,
    config: &NodeConfig,
    mode: Mode,
    install: &InstallPolicy,
    memory: &apply::Memory,
) -> Result<Report, ReconcileError> {
    let distro = preflight(node.host)?;
    check_mount_points(node.host, config)?;
    // Applies are serialized per node: concurrent Lustre mounts and unmounts fail or crash.
    let _lock = match mode {
        Mode::Apply => Some(lock_node(node.host, APPLY_LOCK_WAIT).await?),
        Mode::Plan => None,
    };
    let observed = observe::observe(node, config, distro).await?;
    let plan = plan::plan(config, &observed);
    Ok(match mode {
        Mode::Plan => describe(config, &plan),
        Mode::Apply => execute(node, config, &observed.distro, install, memory, plan).await,
    })
}

async fn execute(
    node: NodeHandle<'_>,
    config: &NodeConfig,
    distro: &Distro,
    install: &InstallPolicy,
    memory: &apply::Memory,
    plan: Plan,
) -> Report {
    let context = apply::Context {
        node,
        distro,
        install,
        memory,
        mount_timeout: Duration::from_secs(u64::from(config.mount_timeout_seconds)),
    };
    apply::execute(context, plan).await
}

/// Makes sure one kernel has its client (the kernel hook's job), with the same plan and
/// executor as a whole pass. Serialized with applies.
pub async fn ensure_kernel_client(
    node: NodeHandle<'_>,
    config: &NodeConfig,
    kernel: &str,
    install: &InstallPolicy,
) -> Result<Report, ReconcileError> {
    let distro = preflight(node.host)?;
    let _lock = lock_node(node.host, APPLY_LOCK_WAIT).await?;
    let running = running_kernel(node.host).map_err(host_error("the running kernel"))?;
    let clients = observe::observe_clients(node, &running, &[kernel]).await?;
    let dkms = observe::observe_dkms(node, config, &distro, &clients).await;
    let mut plan = Plan::default();
    plan::plan_clients(
        &clients,
        config.client.lustre_version.as_str(),
        &dkms,
        &mut plan,
    );
    let memory = apply::Memory::default();
    Ok(execute(node, config, &distro, install, &memory, plan).await)
}

/// The kernel hook's background install, when no agent runs: [`ensure_kernel_client`] again
/// while the package lock is held (by the kernel's own installation, which started the
/// hook) or the apply lock is (by another agent command), with backoff up to `patience`.
pub async fn install_new_kernel(
    node: NodeHandle<'_>,
    config: &NodeConfig,
    kernel: &str,
    patience: Duration,
) -> Result<Report, ReconcileError> {
    use lfleet_install::FailureClass;
    let started = tokio::time::Instant::now();
    let mut wait = Duration::from_secs(1);
    loop {
        let install = install_policy(config);
        let result = ensure_kernel_client(node, config, kernel, &install).await;
        let waiting = match &result {
            Ok(report) => report.failed().any(|item| {
                matches!(
                    item.failure,
                    Some(FailureClass::PackageLockHeld | FailureClass::RepositoryUnreachable)
                )
            }),
            Err(ReconcileError::Busy { .. }) => true,
            Err(_) => false,
        };
        if !waiting || started.elapsed() + wait > patience {
            return result;
        }
        tracing::info!(kernel, ?wait, "the package lock is held; trying again");
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(30));
    }
}

/// Brings LNet up as desired (lfleet-lnet.service's job at boot). Serialized with applies.
pub async fn lnet_up(node: NodeHandle<'_>, config: &NodeConfig) -> Result<Report, ReconcileError> {
    let distro = preflight(node.host)?;
    let _lock = lock_node(node.host, APPLY_LOCK_WAIT).await?;
    let mut plan = Plan::default();
    if let Some(first) = config.mounts.first()
        && let Some(observed) = observe::observe_lnet(node, first).await
    {
        plan::plan_lnet(config, &observed, &mut plan);
    }
    let memory = apply::Memory::default();
    Ok(execute(
        node,
        config,
        &distro,
        &install_policy(config),
        &memory,
        plan,
    )
    .await)
}

/// Why a remount did not run.
#[derive(Debug, thiserror::Error)]
pub enum RemountError {
    #[error("remount refused")]
    Refused(#[source] RemountRefusal),
    #[error("remount could not observe the node")]
    Reconcile(#[source] ReconcileError),
}

/// Unmounts and mounts one mount the agent owns (a coordinator's command). Serialized with
/// applies.
pub async fn remount(
    node: NodeHandle<'_>,
    config: &NodeConfig,
    mount_point: &str,
) -> Result<Report, RemountError> {
    let distro = preflight(node.host).map_err(RemountError::Reconcile)?;
    let _lock = lock_node(node.host, APPLY_LOCK_WAIT)
        .await
        .map_err(RemountError::Reconcile)?;
    let observed = observe::observe_mounts(node.host).map_err(RemountError::Reconcile)?;
    let plan = plan::plan_remount(config, &observed, mount_point).map_err(RemountError::Refused)?;
    let memory = apply::Memory::default();
    Ok(execute(
        node,
        config,
        &distro,
        &install_policy(config),
        &memory,
        plan,
    )
    .await)
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
