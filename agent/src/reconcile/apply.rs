//! The executor: carries out a [`Plan`]'s actions in order and reports a result for every
//! item. A failed item does not stop the independent ones; mounts wait for their
//! prerequisites (the running kernel's client, the module, LNet) and fail `not-ready`
//! without them.
//!
//! Entry point: [`execute`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use lfleet_host::Clock;
use lfleet_install::{Distro, DkmsDecision, Failure, FailureClass, FollowUp, follow_up};
use lfleet_lnet::LnetStep;
use lfleet_mount::Step;
use lfleet_types::{ItemKind, ItemResult, error_chain};

use super::plan::{Action, Entry, Plan, describe_step};
use super::{FollowUpReport, QUERY_TIMEOUT, Report, ReportItem, change, query};
use crate::install::{Ensured, InstallPolicy, Installer};
use crate::mount_apply::{MountExecutor, SLURMD_DROP_IN_PATH};
use crate::node::NodeHandle;

/// What the executor needs beyond the node.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub node: NodeHandle<'a>,
    pub distro: &'a Distro,
    pub install: &'a InstallPolicy,
    /// What earlier passes left for the follow-up rules (empty for a one-shot pass).
    pub memory: &'a Memory,
    /// Deadline of one mount or umount.
    pub mount_timeout: Duration,
}

/// What the reconciler remembers between passes for the follow-up rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Memory {
    /// Failures in a row per item (kind, id).
    pub failures: BTreeMap<(ItemKind, String), u32>,
    /// Kernels whose DKMS build failed; not built again until the kernel or client changes.
    pub dkms_failed: BTreeSet<String>,
    /// Items held back by their follow-up: not tried again before `until` (or, with none,
    /// until the client version changes or an operator asks).
    pub deferred: BTreeMap<(ItemKind, String), Deferral>,
}

/// A failed item held back, with what it last said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deferral {
    pub class: FailureClass,
    pub message: String,
    pub follow_up: FollowUpReport,
    /// When it may be tried again; `None`: not on a schedule.
    pub until: Option<tokio::time::Instant>,
}

impl Memory {
    /// The deferral holding `kind`/`id` back at `now`, if any.
    fn holding(&self, kind: ItemKind, id: &str, now: tokio::time::Instant) -> Option<&Deferral> {
        self.deferred
            .get(&(kind, id.to_owned()))
            .filter(|deferral| deferral.until.is_none_or(|until| until > now))
    }

    /// This failure's number in a row for the item (1 the first time).
    fn attempt(&self, kind: ItemKind, id: &str) -> u32 {
        self.failures
            .get(&(kind, id.to_owned()))
            .copied()
            .unwrap_or(0)
            + 1
    }
}

/// What earlier actions left ready for later ones.
#[derive(Debug)]
struct Readiness {
    /// The running kernel, when its client could not be had.
    running_client_missing: Option<String>,
    module: bool,
    lnet: bool,
    /// A reload that did not happen: the old module (and LNet) stay as they were.
    reload_failed: bool,
    /// Owned mounts a reload could not unmount: still mounted on the old module.
    still_mounted: BTreeSet<String>,
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
fn follow_up_of(
    context: Context<'_>,
    kind: ItemKind,
    id: &str,
    class: FailureClass,
) -> FollowUpReport {
    let not_applicable = DkmsDecision::Refused("not applicable".into());
    let decision = follow_up(&Failure {
        class,
        attempt: context.memory.attempt(kind, id),
        dkms: &not_applicable,
        dkms_failed: false,
        jitter: jitter(context.node.clock),
    });
    FollowUpReport::new(&decision, false)
}

/// Runs the plan's actions; settled entries are reported as they are.
pub async fn execute(context: Context<'_>, plan: Plan) -> Report {
    let mut report = Report::default();
    // Settled failures gate what follows just as failed actions do.
    let mut ready = Readiness {
        running_client_missing: None,
        module: true,
        lnet: true,
        reload_failed: false,
        still_mounted: BTreeSet::new(),
    };
    for entry in &plan.entries {
        if let Entry::Settled(item) = entry
            && item.kind == ItemKind::Lnet
            && !item.ok()
        {
            ready.lnet = false;
        }
    }
    for entry in plan.entries {
        match entry {
            Entry::Settled(item) => report.items.push(ReportItem {
                result: item,
                follow_up: None,
                deferred: false,
            }),
            Entry::Act(action) => run(context, action, &mut ready, &mut report).await,
        }
    }
    report
}

async fn run(context: Context<'_>, action: Action, ready: &mut Readiness, report: &mut Report) {
    let node = context.node;
    match action {
        Action::WriteRepositoryFile { path, contents } => {
            let dir = std::path::Path::new(&path)
                .parent()
                .map(|p| p.to_path_buf())
                .unwrap_or_default();
            match node
                .host
                .create_dir_all(&dir, 0o755)
                .and_then(|()| node.host.write_atomic(&path, &contents, 0o644))
            {
                Ok(()) => report.changes.push(format!("write /{path}")),
                Err(error) => report.fail(
                    ItemKind::Repository,
                    &path,
                    FailureClass::WriteFailed,
                    error_chain(&error),
                ),
            }
        }
        Action::InstallClient {
            kernel,
            running,
            dkms,
            replaces,
        } => {
            let now = node.clock.monotonic();
            let ok = match context.memory.holding(ItemKind::Package, &kernel, now) {
                Some(deferral) => {
                    report.held(ItemKind::Package, &kernel, deferral);
                    if !running && replaces.is_none() {
                        report.findings.push(format!(
                            "reboot-unsafe: kernel {kernel} has no Lustre client ({})",
                            deferral.class
                        ));
                    }
                    false
                }
                None => {
                    let replace = replaces.is_some();
                    install_client(context, &kernel, running, replace, &dkms, report).await
                }
            };
            if running && !ok {
                ready.running_client_missing = Some(kernel);
            }
        }
        Action::LoadModule => {
            if let Some(running) = &ready.running_client_missing {
                // A consequence of the package item's failure, which names the cause.
                ready.module = false;
                report.fail(
                    ItemKind::Module,
                    "lustre",
                    FailureClass::NotReady,
                    format!("not loaded: no client for the running kernel {running}"),
                );
                return;
            }
            if let Some(deferral) =
                context
                    .memory
                    .holding(ItemKind::Module, "lustre", node.clock.monotonic())
            {
                ready.module = false;
                report.held(ItemKind::Module, "lustre", deferral);
                return;
            }
            load_module(context, "lustre loaded", ready, report).await;
        }
        Action::ReloadModule {
            loaded,
            wanted,
            unmount,
        } => reload_module(context, [&loaded, &wanted], &unmount, ready, report).await,
        Action::ConfigureLnet { desired, steps } => {
            if ready.reload_failed {
                // The module was not unloaded, so LNet is still up as it was.
                return;
            }
            ready.lnet = configure_lnet(node, &desired, &steps, report).await;
        }
        Action::Mount(step) => {
            let (kind, id) = match &step {
                Step::Unmount { mount_point, .. } | Step::Mount { mount_point, .. } => {
                    (ItemKind::Mount, mount_point.clone())
                }
                Step::WriteFstab { .. } => (ItemKind::Fstab, "/etc/fstab".to_string()),
            };
            if matches!(step, Step::Mount { .. }) && ready.still_mounted.contains(&id) {
                report.ok(kind, &id, "still mounted on the old client module");
                return;
            }
            if matches!(step, Step::Mount { .. }) && !(ready.module && ready.lnet) {
                report.fail(
                    kind,
                    &id,
                    FailureClass::NotReady,
                    "not mounted: the client module or LNet is not ready".to_owned(),
                );
                return;
            }
            let executor = MountExecutor {
                host: node.host,
                runner: node.runner,
                timeout: context.mount_timeout,
            };
            match executor.apply(&step).await {
                Ok(()) => {
                    report.changes.push(describe_step(&step));
                    report.ok(kind, &id, "done");
                }
                Err(error) => {
                    report.fail(kind, &id, FailureClass::MountFailed, error_chain(&error))
                }
            }
        }
        Action::Dropin(wanted) => {
            let result = match &wanted {
                Some(text) => node
                    .host
                    .create_dir_all("etc/systemd/system/slurmd.service.d", 0o755)
                    .and_then(|()| {
                        node.host
                            .write_atomic(SLURMD_DROP_IN_PATH, text.as_bytes(), 0o644)
                    }),
                None => node.host.remove_file(SLURMD_DROP_IN_PATH),
            };
            match result {
                Ok(()) => {
                    report.changes.push(format!(
                        "{} the slurmd drop-in",
                        if wanted.is_some() { "wrote" } else { "removed" }
                    ));
                    report.ok(ItemKind::Dropin, "slurmd", "done");
                    daemon_reload(node).await;
                }
                Err(error) => report.fail(
                    ItemKind::Dropin,
                    "slurmd",
                    FailureClass::WriteFailed,
                    error_chain(&error),
                ),
            }
        }
    }
}

/// Replaces a loaded module of another version: unmounts the agent's own mounts, unloads
/// the module (`lustre_rmmod`, which takes LNet with it) and loads the installed one. Not
/// tried without the running kernel's client at the configured version, nor while an
/// earlier failure holds it. A mount that will not unmount (busy) or a module that will not
/// unload is a stale module: the old one stays loaded, the mounts that did unmount are
/// mounted again on it, and only a reboot loads the new one.
async fn reload_module(
    context: Context<'_>,
    [loaded, wanted]: [&str; 2],
    unmount: &[String],
    ready: &mut Readiness,
    report: &mut Report,
) {
    let node = context.node;
    if let Some(running) = &ready.running_client_missing {
        ready.reload_failed = true;
        report.fail(
            ItemKind::Module,
            "lustre",
            FailureClass::NotReady,
            format!("not reloaded: the configured client could not be installed for the running kernel {running}"),
        );
        return;
    }
    if let Some(deferral) =
        context
            .memory
            .holding(ItemKind::Module, "lustre", node.clock.monotonic())
    {
        ready.reload_failed = true;
        report.held(ItemKind::Module, "lustre", deferral);
        return;
    }
    let executor = MountExecutor {
        host: node.host,
        runner: node.runner,
        timeout: context.mount_timeout,
    };
    let mut busy = Vec::new();
    for point in unmount {
        let step = Step::Unmount {
            mount_point: point.clone(),
            why: "the client module is replaced".into(),
        };
        match executor.apply(&step).await {
            Ok(()) => report.changes.push(describe_step(&step)),
            Err(error) => {
                ready.still_mounted.insert(point.clone());
                busy.push(format!("{point}: {}", error_chain(&error)));
            }
        }
    }
    let unloaded = if busy.is_empty() {
        change(node, "lustre_rmmod", &[], QUERY_TIMEOUT)
            .await
            .map_err(|error| error_chain(&error))
    } else {
        Err(format!("not unloaded while mounted: {}", busy.join("; ")))
    };
    if let Err(why) = unloaded {
        ready.reload_failed = true;
        report.fail(
            ItemKind::Module,
            "lustre",
            FailureClass::StaleModule,
            format!(
                "the loaded lustre module {loaded} cannot be unloaded to load the installed {wanted} ({why}); a reboot loads the new client"
            ),
        );
        report.follow(follow_up_of(
            context,
            ItemKind::Module,
            "lustre",
            FailureClass::StaleModule,
        ));
        return;
    }
    report.changes.push("unloaded the lustre module".into());
    load_module(context, "lustre reloaded", ready, report).await;
}

/// `modprobe lustre`; a failure is the module item's, with its follow-up.
async fn load_module(context: Context<'_>, done: &str, ready: &mut Readiness, report: &mut Report) {
    match change(
        context.node,
        "modprobe",
        &["lustre".to_string()],
        QUERY_TIMEOUT,
    )
    .await
    {
        Ok(()) => {
            report.changes.push("loaded the lustre module".into());
            report.ok(ItemKind::Module, "lustre", done);
        }
        Err(error) => {
            ready.module = false;
            let class = lfleet_install::classify(error.stdout(), error.stderr());
            report.fail(ItemKind::Module, "lustre", class, error_chain(&error));
            report.follow(follow_up_of(context, ItemKind::Module, "lustre", class));
        }
    }
}

/// Installs one kernel's client, falling back to DKMS when the follow-up rule says so; true
/// when the kernel has one. A failure carries its follow-up.
async fn install_client(
    context: Context<'_>,
    kernel: &str,
    running: bool,
    replace: bool,
    dkms: &DkmsDecision,
    report: &mut Report,
) -> bool {
    let node = context.node;
    let installer = Installer {
        host: node.host,
        runner: node.runner,
        clock: node.clock,
        distro: context.distro,
        policy: context.install,
    };
    let ensured = if replace {
        installer.replace_client(kernel).await
    } else {
        installer.ensure_client(kernel).await
    };
    let error = match ensured {
        Ok(done) => {
            if let Ensured::Installed { package } = done {
                report.changes.push(format!("installed {package}"));
                report.installed.push(kernel.to_owned());
            }
            report.ok(ItemKind::Package, kernel, "client installed");
            return true;
        }
        Err(error) => error,
    };
    let prebuilt = error.class();
    let mut class = prebuilt;
    let mut message = error_chain(&error);
    let mut failure = Failure {
        class: prebuilt,
        attempt: context.memory.attempt(ItemKind::Package, kernel),
        dkms,
        dkms_failed: context.memory.dkms_failed.contains(kernel),
        jitter: jitter(node.clock),
    };
    let mut decision = follow_up(&failure);
    let dkms_tried = decision == FollowUp::BuildWithDkms;
    if dkms_tried {
        let version = context.install.lustre_version.as_str();
        match crate::dkms::build(node, context.distro, version, kernel).await {
            Ok(()) => {
                report.changes.push(format!(
                    "built the Lustre client for kernel {kernel} with DKMS"
                ));
                report.installed.push(kernel.to_owned());
                report.ok(ItemKind::Package, kernel, "client built with DKMS");
                return true;
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
    report.fail(ItemKind::Package, kernel, class, message);
    report.follow(FollowUpReport::new(&decision, dkms_tried));
    if !running {
        report.findings.push(format!(
            "reboot-unsafe: kernel {kernel} has no Lustre client ({class})"
        ));
    }
    false
}

/// Runs the lnetctl steps, then checks LNet shows the NID; true when it does.
async fn configure_lnet(
    node: NodeHandle<'_>,
    desired: &lfleet_lnet::DesiredLnet,
    steps: &[LnetStep],
    report: &mut Report,
) -> bool {
    let network = desired.network.as_str();
    for step in steps {
        let args = step.lnetctl_args();
        if let Err(error) = change(node, "lnetctl", &args, QUERY_TIMEOUT).await {
            report.fail(
                ItemKind::Lnet,
                network,
                FailureClass::LnetConfigFailed,
                error_chain(&error),
            );
            return false;
        }
        report.changes.push(format!("lnetctl {}", args.join(" ")));
    }
    let now = query(node, "lnetctl", &["net", "show"])
        .await
        .map(|out| lfleet_lnet::parse_net_show(&out))
        .unwrap_or_default();
    if now.iter().any(|ni| ni.nid == desired.expected_nid()) {
        report.ok(
            ItemKind::Lnet,
            network,
            format!("{} on {}", desired.expected_nid(), desired.interface),
        );
        true
    } else {
        report.fail(
            ItemKind::Lnet,
            network,
            FailureClass::NidMissing,
            format!(
                "LNet does not report {} after configuring it",
                desired.expected_nid()
            ),
        );
        false
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

// === impl Report ===

impl Report {
    pub(crate) fn ok(&mut self, kind: ItemKind, id: &str, message: impl Into<String>) {
        self.items.push(ReportItem {
            result: ItemResult {
                kind,
                id: id.to_owned(),
                failure: None,
                message: message.into(),
            },
            follow_up: None,
            deferred: false,
        });
    }

    pub(crate) fn fail(&mut self, kind: ItemKind, id: &str, class: FailureClass, message: String) {
        self.items.push(ReportItem {
            result: ItemResult {
                kind,
                id: id.to_owned(),
                failure: Some(class),
                message,
            },
            follow_up: None,
            deferred: false,
        });
    }

    /// An item its follow-up holds back: its last failure again, nothing run.
    fn held(&mut self, kind: ItemKind, id: &str, deferral: &Deferral) {
        self.items.push(ReportItem {
            result: ItemResult {
                kind,
                id: id.to_owned(),
                failure: Some(deferral.class),
                message: deferral.message.clone(),
            },
            follow_up: Some(deferral.follow_up.clone()),
            deferred: true,
        });
    }

    /// Attaches a follow-up to the item just reported.
    fn follow(&mut self, follow_up: FollowUpReport) {
        if let Some(item) = self.items.last_mut() {
            item.follow_up = Some(follow_up);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lfleet_host::{FakeClock, FakeCommandRunner, FakeResponse, HostRoot};

    const RUNNING: &str = "5.15.0-1075-azure";
    const OTHER: &str = "5.15.0-1079-azure";

    async fn run_plan(entries: Vec<Entry>, runner: &FakeCommandRunner) -> Report {
        let dir = tempfile::tempdir().unwrap();
        let host = HostRoot::new(dir.path());
        let clock = FakeClock::at_unix(1_700_000_000);
        let distro = Distro::Ubuntu {
            version: "22.04".into(),
            codename: "jammy".into(),
        };
        let install = InstallPolicy::new("2.15.7-33-g79ddf99");
        let memory = Memory::default();
        let context = Context {
            node: NodeHandle {
                host: &host,
                runner,
                clock: &clock,
            },
            distro: &distro,
            install: &install,
            memory: &memory,
            mount_timeout: Duration::from_secs(5),
        };
        execute(context, Plan { entries }).await
    }

    fn install(kernel: &str, running: bool) -> Entry {
        Entry::Act(Action::InstallClient {
            kernel: kernel.into(),
            running,
            dkms: DkmsDecision::Refused("client.dkms is \"forbidden\"".into()),
            replaces: None,
        })
    }

    fn failure_of(report: &Report, kind: ItemKind) -> Option<FailureClass> {
        report
            .results()
            .find(|item| item.kind == kind)
            .and_then(|item| item.failure)
    }

    #[tokio::test]
    async fn without_the_running_kernels_client_nothing_is_loaded_or_mounted() {
        let runner = FakeCommandRunner::new();
        runner.respond(
            "apt-get",
            FakeResponse::fail(
                100,
                "E: Unable to locate package amlfs-lustre-client-2.15.7-33-g79ddf99\n",
            ),
        );
        runner.respond("apt-cache", FakeResponse::ok(""));
        let report = run_plan(
            vec![
                install(RUNNING, true),
                Entry::Act(Action::LoadModule),
                Entry::Act(Action::Mount(Step::Mount {
                    source: "10.0.1.4@tcp:/lustrefs".into(),
                    mount_point: "/lustre".into(),
                    options: vec!["noatime".into()],
                })),
            ],
            &runner,
        )
        .await;
        assert!(
            failure_of(&report, ItemKind::Package).is_some(),
            "{report:#?}"
        );
        assert_eq!(
            failure_of(&report, ItemKind::Module),
            Some(FailureClass::NotReady)
        );
        let package = &report.items[0];
        assert!(
            package.follow_up.is_some(),
            "a failed install says what happens next: {package:#?}"
        );
        assert_eq!(
            failure_of(&report, ItemKind::Mount),
            Some(FailureClass::NotReady)
        );
        // The running kernel's failure is the node's, not a reboot risk.
        assert!(report.findings.is_empty(), "{:?}", report.findings);
        let ran = runner.log_lines();
        assert!(
            !ran.iter()
                .any(|l| l.starts_with("modprobe") || l.starts_with("mount")),
            "{ran:#?}"
        );
    }

    #[tokio::test]
    async fn another_kernel_without_a_client_is_reboot_unsafe_and_does_not_block_the_rest() {
        let runner = FakeCommandRunner::new();
        runner.respond(
            "apt-get",
            FakeResponse::fail(
                100,
                "E: Unable to locate package amlfs-lustre-client-2.15.7-33-g79ddf99\n",
            ),
        );
        runner.respond("apt-cache", FakeResponse::ok(""));
        runner.respond("modprobe", FakeResponse::ok(""));
        let report = run_plan(
            vec![install(OTHER, false), Entry::Act(Action::LoadModule)],
            &runner,
        )
        .await;
        assert_eq!(report.findings.len(), 1, "{report:#?}");
        assert!(
            report.findings[0].starts_with(&format!(
                "reboot-unsafe: kernel {OTHER} has no Lustre client"
            )),
            "{:?}",
            report.findings
        );
        assert_eq!(failure_of(&report, ItemKind::Module), None);
        assert_eq!(report.changes, vec!["loaded the lustre module"]);
    }
}
