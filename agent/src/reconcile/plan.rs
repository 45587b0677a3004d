//! The planner: from the desired configuration and one observation to the ordered list of
//! what to do. Pure: it reads nothing, runs nothing and takes no time, so every decision is
//! unit-tested without a host.
//!
//! The order is the pass's order: repository files; the running kernel's client, then every
//! other installed kernel's; the lustre module; LNet; fstab and mounts (unmounts first, by
//! [`lfleet_mount::plan`]); the slurmd drop-in. An item whose state observation settles (as
//! desired, or failed with nothing to try) is an [`Entry::Settled`] result; everything else
//! is an [`Action`] for the executor.
//!
//! Entry points: [`plan`], and the parts [`plan_clients`], [`plan_lnet`] and
//! [`plan_remount`].

use lfleet_install::{Distro, DkmsDecision};
use lfleet_lnet::{DesiredLnet, LnetStep};
use lfleet_mount::{Knowledge, Step};
use lfleet_types::{FailureClass, ItemKind, ItemResult, LnetInterface};

use super::observe::{Observed, ObservedClient, ObservedLnet, ObservedRepository};
use crate::config::NodeConfig;
use crate::mount_apply::slurmd_drop_in;
use crate::repo::RepositoryConfig;

/// What a pass will do, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub entries: Vec<Entry>,
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// An item observation already settles.
    Settled(ItemResult),
    /// Something to do.
    Act(Action),
}

/// What the executor does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write a repository or key file.
    WriteRepositoryFile { path: String, contents: Vec<u8> },
    /// Install the client for `kernel`; DKMS is the fallback when no prebuilt package exists
    /// and the DKMS rule allows it. `replaces`: the version of the client installed now (a
    /// module present at another version is replaced, not taken as installed).
    InstallClient {
        kernel: String,
        running: bool,
        dkms: DkmsDecision,
        replaces: Option<String>,
    },
    /// `modprobe lustre` (needs the running kernel's client).
    LoadModule,
    /// A loaded module of another version, with the running kernel's client at the
    /// configured one: unmount `unmount` (the agent's own Lustre mounts), `lustre_rmmod`,
    /// `modprobe lustre`. A mount that will not unmount keeps the old module loaded: a
    /// stale module, which only a reboot clears. `loaded` is the old module's version,
    /// `wanted` the configured client's.
    ReloadModule {
        loaded: String,
        wanted: String,
        unmount: Vec<String>,
    },
    /// lnetctl steps, then a check that LNet shows `expected_nid`.
    ConfigureLnet {
        desired: DesiredLnet,
        steps: Vec<LnetStep>,
    },
    /// A mount step; mounts need the module and LNet.
    Mount(Step),
    /// Write or remove the slurmd drop-in (None removes it).
    Dropin(Option<String>),
}

// === impl Plan ===

impl Plan {
    fn settle(&mut self, kind: ItemKind, id: &str, failure: Option<FailureClass>, message: String) {
        self.entries.push(Entry::Settled(ItemResult {
            kind,
            id: id.to_owned(),
            failure,
            message,
        }));
    }

    fn ok(&mut self, kind: ItemKind, id: &str, message: impl Into<String>) {
        self.settle(kind, id, None, message.into());
    }

    fn fail(&mut self, kind: ItemKind, id: &str, class: FailureClass, message: impl Into<String>) {
        self.settle(kind, id, Some(class), message.into());
    }

    fn act(&mut self, action: Action) {
        self.entries.push(Entry::Act(action));
    }

    /// The actions, in order.
    pub fn actions(&self) -> impl Iterator<Item = &Action> {
        self.entries.iter().filter_map(|entry| match entry {
            Entry::Act(action) => Some(action),
            Entry::Settled(_) => None,
        })
    }

    /// True when there is nothing to do.
    pub fn is_quiet(&self) -> bool {
        self.actions().next().is_none()
    }
}

// === impl Action ===

impl Action {
    /// What the action changes, as a plan shows it (`would: ...`).
    pub fn describe(&self, config: &NodeConfig) -> Vec<String> {
        match self {
            Action::WriteRepositoryFile { path, .. } => vec![format!("write /{path}")],
            Action::InstallClient { kernel, .. } => vec![format!(
                "install the Lustre {} client for kernel {kernel}",
                config.client.lustre_version
            )],
            Action::LoadModule => vec!["load the lustre module (modprobe lustre)".into()],
            Action::ReloadModule { unmount, .. } => unmount
                .iter()
                .map(|point| format!("unmount {point} (the client module is replaced)"))
                .chain([
                    "unload the lustre module (lustre_rmmod)".to_owned(),
                    "load the lustre module (modprobe lustre)".to_owned(),
                ])
                .collect(),
            Action::ConfigureLnet { steps, .. } => steps
                .iter()
                .map(|step| format!("lnetctl {}", step.lnetctl_args().join(" ")))
                .collect(),
            Action::Mount(step) => vec![describe_step(step)],
            Action::Dropin(wanted) => vec![format!(
                "{} the slurmd drop-in",
                if wanted.is_some() { "write" } else { "remove" }
            )],
        }
    }
}

/// A mount step in words.
pub fn describe_step(step: &Step) -> String {
    match step {
        Step::Unmount { mount_point, why } => format!("unmount {mount_point} ({why})"),
        Step::WriteFstab { .. } => "write /etc/fstab".to_owned(),
        Step::Mount {
            source,
            mount_point,
            ..
        } => format!("mount {source} at {mount_point}"),
    }
}

/// The whole pass.
pub fn plan(config: &NodeConfig, observed: &Observed) -> Plan {
    let mut plan = Plan::default();
    if let (Some(repository), Some(seen)) = (&config.repository, &observed.repository) {
        plan_repository(repository, &observed.distro, seen, &mut plan);
    }
    let wanted = config.client.lustre_version.as_str();
    plan_clients(&observed.clients, wanted, &observed.dkms, &mut plan);
    let reload = plan_module(config, observed, &mut plan);
    // A reload unloads LNet with the module and leaves the owned mounts unmounted: what
    // follows is planned from that state.
    if let Some(lnet) = &observed.lnet {
        if reload.is_some() {
            let mut after = lnet.clone();
            after.nis = None;
            plan_lnet(config, &after, &mut plan);
        } else {
            plan_lnet(config, lnet, &mut plan);
        }
    }
    match &reload {
        Some(unmounted) => {
            let mut after = observed.mounts.clone();
            after.mounts.retain(|m| !unmounted.contains(&m.mount_point));
            plan_mounts(config, &after, &mut plan);
        }
        None => plan_mounts(config, &observed.mounts, &mut plan),
    }
    plan_dropin(config, observed.dropin.as_deref(), &mut plan);
    plan
}

/// Repository files: the key must be readable; each file whose bytes differ is written.
fn plan_repository(
    repository: &RepositoryConfig,
    distro: &Distro,
    observed: &ObservedRepository,
    plan: &mut Plan,
) {
    let key = match &observed.key {
        Ok(key) => key,
        Err(why) => {
            plan.fail(
                ItemKind::Repository,
                &repository.key_file,
                FailureClass::RepositoryKeyMissing,
                why.clone(),
            );
            return;
        }
    };
    for file in crate::repo::desired_files(repository, distro, key) {
        let current = observed.current.get(&file.path).cloned().flatten();
        if current.as_deref() != Some(file.contents.as_slice()) {
            plan.act(Action::WriteRepositoryFile {
                path: file.path,
                contents: file.contents,
            });
        }
    }
}

/// Clients: each kernel without one, or with another version than `wanted`, gets an
/// install (a client whose version modinfo cannot tell is taken as it is).
pub fn plan_clients(
    clients: &[ObservedClient],
    wanted: &str,
    dkms: &DkmsDecision,
    plan: &mut Plan,
) {
    for client in clients {
        let other_version = client.version.as_deref().filter(|installed| {
            !wanted
                .parse::<lfleet_types::ClientVersion>()
                .is_ok_and(|w| w.matches_module(installed))
        });
        if client.present && other_version.is_none() {
            plan.ok(ItemKind::Package, &client.kernel, "client module present");
        } else {
            plan.act(Action::InstallClient {
                kernel: client.kernel.clone(),
                running: client.running,
                dkms: dkms.clone(),
                replaces: other_version.filter(|_| client.present).map(str::to_owned),
            });
        }
    }
}

/// The module: the loaded version is the configured one, or it is loaded now. A loaded
/// module of another version is replaced when the running kernel's client is (or is about
/// to be installed at) the configured version: the agent's own mounts are unmounted, the
/// module unloaded and loaded again; the mounts they held are returned by the mount plan.
/// Otherwise the stale module is reported, never papered over. Returns the mount points a
/// reload unmounts.
fn plan_module(config: &NodeConfig, observed: &Observed, plan: &mut Plan) -> Option<Vec<String>> {
    let wanted = &config.client.lustre_version;
    let release = wanted.as_str().split('-').next().unwrap_or("");
    match &observed.loaded_module {
        Some(version) if wanted.matches_module(version) => {
            plan.ok(
                ItemKind::Module,
                "lustre",
                format!("lustre {release} loaded"),
            );
            None
        }
        Some(version) => {
            let running = observed.clients.iter().find(|c| c.running);
            let running_at_wanted = running.is_some_and(|client| {
                let installing = plan.actions().any(|action| {
                    matches!(action, Action::InstallClient { kernel, .. } if *kernel == client.kernel)
                });
                installing
                    || (client.present
                        && client
                            .version
                            .as_deref()
                            .is_some_and(|v| wanted.matches_module(v)))
            });
            if !running_at_wanted {
                plan.fail(
                    ItemKind::Module,
                    "lustre",
                    FailureClass::StaleModule,
                    format!(
                        "loaded lustre module is {} but the installed client is {release}; unmount, lustre_rmmod or reboot to load it",
                        version.trim()
                    ),
                );
                return None;
            }
            let owned: Vec<String> = observed
                .mounts
                .fstab
                .managed()
                .iter()
                .filter(|entry| {
                    observed
                        .mounts
                        .mounts
                        .iter()
                        .any(|m| m.mount_point == entry.file && m.fstype == "lustre")
                })
                .map(|entry| entry.file.clone())
                .collect();
            plan.act(Action::ReloadModule {
                loaded: version.trim().to_owned(),
                wanted: wanted.to_string(),
                unmount: owned.clone(),
            });
            Some(owned)
        }
        None => {
            plan.act(Action::LoadModule);
            None
        }
    }
}

/// LNet: the network on the interface the route to the MGS uses (or the configured one).
pub fn plan_lnet(config: &NodeConfig, observed: &ObservedLnet, plan: &mut Plan) {
    let network = config.lnet.network.as_str();
    let route = match &observed.route {
        Ok(route) => route,
        Err(why) => {
            plan.fail(
                ItemKind::Lnet,
                network,
                FailureClass::NoRoute,
                format!("no route to the MGS {}: {why}", observed.mgs),
            );
            return;
        }
    };
    let configured = match &config.lnet.interface {
        LnetInterface::Auto => None,
        LnetInterface::Named(name) => Some(name.as_str()),
    };
    let interface = match lfleet_lnet::choose_interface(route, &observed.links, configured) {
        Ok(interface) => interface,
        Err(error) => {
            plan.fail(
                ItemKind::Lnet,
                network,
                FailureClass::BadInterface,
                lfleet_types::error_chain(&error),
            );
            return;
        }
    };
    let through_interface = interface == route.dev
        || observed
            .links
            .iter()
            .any(|l| l.name == route.dev && l.master.as_deref() == Some(&interface));
    let Some(address) = route.src.filter(|_| through_interface) else {
        plan.fail(
            ItemKind::Lnet,
            network,
            FailureClass::NoAddress,
            format!(
                "cannot tell the address of {interface} from the route to {}",
                observed.mgs
            ),
        );
        return;
    };
    let desired = DesiredLnet {
        network: network.to_owned(),
        interface,
        address,
    };
    let steps = lfleet_lnet::plan(&desired, observed.nis.as_deref());
    if steps.is_empty() {
        plan.ok(
            ItemKind::Lnet,
            network,
            format!("{} on {}", desired.expected_nid(), desired.interface),
        );
    } else {
        plan.act(Action::ConfigureLnet { desired, steps });
    }
}

/// fstab and mounts by [`lfleet_mount::plan`]; conflicts are failed items, and every desired
/// mount with nothing to do is as desired.
fn plan_mounts(config: &NodeConfig, observed: &lfleet_mount::Observed, plan: &mut Plan) {
    let desired = config.desired_mounts();
    let mount_plan = lfleet_mount::plan(&desired, observed, Knowledge::Complete);
    for conflict in &mount_plan.conflicts {
        plan.fail(
            ItemKind::Mount,
            &conflict.mount_point,
            FailureClass::MountConflict,
            conflict.reason.clone(),
        );
    }
    let touched = |point: &str| {
        mount_plan.conflicts.iter().any(|c| c.mount_point == point)
            || mount_plan.steps.iter().any(|step| match step {
                Step::Unmount { mount_point, .. } | Step::Mount { mount_point, .. } => {
                    mount_point == point
                }
                Step::WriteFstab { .. } => false,
            })
    };
    for want in &desired {
        if !touched(&want.mount_point) {
            plan.ok(ItemKind::Mount, &want.mount_point, "mounted as desired");
        }
    }
    for step in mount_plan.steps {
        plan.act(Action::Mount(step));
    }
}

fn plan_dropin(config: &NodeConfig, current: Option<&str>, plan: &mut Plan) {
    let desired = config.desired_mounts();
    let points: Vec<&str> = desired.iter().map(|m| m.mount_point.as_str()).collect();
    let wanted = slurmd_drop_in(&points);
    if wanted.as_deref() != current {
        plan.act(Action::Dropin(wanted));
    }
}

/// Why a remount was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemountRefusal {
    #[error("{mount_point} is not a mount lfleet manages on this node (not in its fstab block)")]
    NotOwned { mount_point: String },
    #[error("{mount_point} is not in the desired configuration")]
    NotDesired { mount_point: String },
}

/// A remount of one mount the agent owns: unmount (when mounted) and mount again. Refused
/// for a mount point outside the agent's fstab block: the agent never touches what it does
/// not own.
pub fn plan_remount(
    config: &NodeConfig,
    observed: &lfleet_mount::Observed,
    mount_point: &str,
) -> Result<Plan, RemountRefusal> {
    let owned = observed
        .fstab
        .managed()
        .iter()
        .any(|entry| entry.file == mount_point);
    if !owned {
        return Err(RemountRefusal::NotOwned {
            mount_point: mount_point.to_owned(),
        });
    }
    let want = config
        .desired_mounts()
        .into_iter()
        .find(|m| m.mount_point == mount_point)
        .ok_or_else(|| RemountRefusal::NotDesired {
            mount_point: mount_point.to_owned(),
        })?;
    let mut plan = Plan::default();
    if observed
        .mounts
        .iter()
        .any(|m| m.mount_point == mount_point && m.fstype == "lustre")
    {
        plan.act(Action::Mount(Step::Unmount {
            mount_point: mount_point.to_owned(),
            why: "remount requested".into(),
        }));
    }
    plan.act(Action::Mount(Step::Mount {
        source: want.source.clone(),
        mount_point: want.mount_point.clone(),
        options: want.mount_options(),
    }));
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lfleet_lnet::{Link, LocalNi, Route};
    use lfleet_mount::{Fstab, parse_mountinfo};

    const EXAMPLE: &str = include_str!("../../../packaging/examples/agent.toml");
    const RUNNING: &str = "5.15.0-1075-azure";
    const OTHER: &str = "5.15.0-1079-azure";

    fn config(extra: &str) -> NodeConfig {
        NodeConfig::from_toml(&format!("{EXAMPLE}\n{extra}")).unwrap()
    }

    fn eth0() -> Link {
        Link {
            name: "eth0".into(),
            flags: vec!["UP".into()],
            master: None,
            link_type: Some("link/ether".into()),
        }
    }

    /// The fstab with the managed block `config` wants.
    fn managed_fstab(config: &NodeConfig) -> Fstab {
        let entries = config
            .desired_mounts()
            .iter()
            .map(|m| m.fstab_entry())
            .collect();
        Fstab::parse("/dev/sda1 / ext4 defaults 0 1\n")
            .unwrap()
            .with_managed(entries)
    }

    /// Every action of `plan` as a plan shows it.
    fn described(plan: &Plan, config: &NodeConfig) -> Vec<String> {
        plan.actions()
            .flat_map(|action| action.describe(config))
            .collect()
    }

    /// A node exactly as `config` wants it.
    fn converged(config: &NodeConfig) -> Observed {
        let mountinfo = "22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n\
             40 22 0:50 / /lustre rw,noatime - lustre 10.0.1.4@tcp:/lustrefs rw,flock,lazystatfs\n";
        Observed {
            distro: Distro::Ubuntu {
                version: "22.04".into(),
                codename: "jammy".into(),
            },
            clients: vec![
                ObservedClient {
                    kernel: RUNNING.into(),
                    running: true,
                    present: true,
                    version: Some("2.15.7".into()),
                },
                ObservedClient {
                    kernel: OTHER.into(),
                    running: false,
                    present: true,
                    version: Some("2.15.7".into()),
                },
            ],
            loaded_module: Some("2.15.7\n".into()),
            dkms: DkmsDecision::Refused("not needed".into()),
            repository: None,
            lnet: Some(ObservedLnet {
                mgs: "10.0.1.4".into(),
                route: Ok(Route {
                    dev: "eth0".into(),
                    src: Some("10.0.0.5".parse().unwrap()),
                    via: None,
                }),
                links: vec![eth0()],
                nis: Some(vec![LocalNi {
                    net_type: "tcp".into(),
                    nid: "10.0.0.5@tcp".into(),
                    status: Some("up".into()),
                    interfaces: vec!["eth0".into()],
                    health_value: None,
                }]),
            }),
            mounts: lfleet_mount::Observed {
                mounts: parse_mountinfo(mountinfo).unwrap(),
                fstab: managed_fstab(config),
            },
            dropin: slurmd_drop_in(&["/lustre"]),
        }
    }

    fn settled(plan: &Plan) -> Vec<(ItemKind, String, Option<FailureClass>)> {
        plan.entries
            .iter()
            .filter_map(|entry| match entry {
                Entry::Settled(item) => Some((item.kind, item.id.clone(), item.failure)),
                Entry::Act(_) => None,
            })
            .collect()
    }

    #[test]
    fn a_converged_node_has_nothing_to_do_and_every_item_is_as_desired() {
        let config = config("");
        let plan = plan(&config, &converged(&config));
        assert!(plan.is_quiet(), "{plan:#?}");
        assert_eq!(
            settled(&plan),
            vec![
                (ItemKind::Package, RUNNING.to_owned(), None),
                (ItemKind::Package, OTHER.to_owned(), None),
                (ItemKind::Module, "lustre".to_owned(), None),
                (ItemKind::Lnet, "tcp".to_owned(), None),
                (ItemKind::Mount, "/lustre".to_owned(), None),
            ]
        );
    }

    #[test]
    fn a_fresh_node_gets_client_module_lnet_fstab_mount_and_drop_in_in_that_order() {
        let config = config("");
        let mut observed = converged(&config);
        for client in &mut observed.clients {
            client.present = false;
        }
        observed.loaded_module = None;
        observed.lnet.as_mut().unwrap().nis = None;
        observed.mounts = lfleet_mount::Observed {
            mounts: parse_mountinfo("22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n").unwrap(),
            fstab: Fstab::parse("/dev/sda1 / ext4 defaults 0 1\n").unwrap(),
        };
        observed.dropin = None;
        let plan = plan(&config, &observed);
        assert_eq!(
            described(&plan, &config),
            vec![
                format!("install the Lustre 2.15.7-33-g79ddf99 client for kernel {RUNNING}"),
                format!("install the Lustre 2.15.7-33-g79ddf99 client for kernel {OTHER}"),
                "load the lustre module (modprobe lustre)".to_owned(),
                "lnetctl lnet configure".to_owned(),
                "lnetctl net add --net tcp --if eth0".to_owned(),
                "write /etc/fstab".to_owned(),
                "mount 10.0.1.4@tcp:/lustrefs at /lustre".to_owned(),
                "write the slurmd drop-in".to_owned(),
            ]
        );
        let running_first = plan.actions().next();
        assert!(
            matches!(running_first, Some(Action::InstallClient { running: true, kernel, .. }) if kernel == RUNNING)
        );
    }

    #[test]
    fn a_loaded_module_of_another_version_is_stale_when_the_installed_one_is_unknown() {
        let config = config("");
        let mut observed = converged(&config);
        observed.loaded_module = Some("2.15.4\n".into());
        observed.clients[0].version = None;
        let plan = plan(&config, &observed);
        assert!(plan.is_quiet());
        assert!(settled(&plan).contains(&(
            ItemKind::Module,
            "lustre".to_owned(),
            Some(FailureClass::StaleModule)
        )));
    }

    #[test]
    fn a_new_client_version_installs_for_every_kernel_then_reloads_and_remounts() {
        let config =
            NodeConfig::from_toml(&EXAMPLE.replace("2.15.7-33-g79ddf99", "2.16.1-12-g8e3f1a2"))
                .unwrap();
        let observed = converged(&config);
        let plan = plan(&config, &observed);
        assert_eq!(
            described(&plan, &config),
            vec![
                format!("install the Lustre 2.16.1-12-g8e3f1a2 client for kernel {RUNNING}"),
                format!("install the Lustre 2.16.1-12-g8e3f1a2 client for kernel {OTHER}"),
                "unmount /lustre (the client module is replaced)".to_owned(),
                "unload the lustre module (lustre_rmmod)".to_owned(),
                "load the lustre module (modprobe lustre)".to_owned(),
                "lnetctl lnet configure".to_owned(),
                "lnetctl net add --net tcp --if eth0".to_owned(),
                "mount 10.0.1.4@tcp:/lustrefs at /lustre".to_owned(),
            ]
        );
        // The modules present are another version: installed over, not taken as installed.
        assert!(plan.actions().all(|action| match action {
            Action::InstallClient { replaces, .. } => replaces.as_deref() == Some("2.15.7"),
            _ => true,
        }));
        // Installed already (a pass whose reload failed, or a reboot away): only the reload.
        let mut installed = observed.clone();
        for client in &mut installed.clients {
            client.version = Some("2.16.1".into());
        }
        let again = super::plan(&config, &installed);
        assert!(matches!(
            again.actions().next(),
            Some(Action::ReloadModule { unmount, .. }) if unmount == &["/lustre".to_string()]
        ));
        // The right module loaded: nothing to do.
        installed.loaded_module = Some("2.16.1\n".into());
        assert!(super::plan(&config, &installed).is_quiet());
    }

    #[test]
    fn each_missing_client_is_one_install_carrying_the_nodes_dkms_verdict() {
        let config = config("");
        for verdict in [
            DkmsDecision::Build,
            DkmsDecision::Refused("Secure Boot is on".into()),
        ] {
            let mut observed = converged(&config);
            observed.clients[1].present = false;
            observed.dkms = verdict.clone();
            let plan = plan(&config, &observed);
            let actions: Vec<&Action> = plan.actions().collect();
            assert_eq!(
                actions,
                vec![&Action::InstallClient {
                    kernel: OTHER.into(),
                    running: false,
                    dkms: verdict,
                    replaces: None,
                }]
            );
        }
    }

    #[test]
    fn lnet_problems_are_settled_failures_named_by_class() {
        let config = config("");
        let mut observed = converged(&config);
        observed.lnet.as_mut().unwrap().route =
            Err("RTNETLINK answers: Network is unreachable".into());
        assert!(settled(&plan(&config, &observed)).contains(&(
            ItemKind::Lnet,
            "tcp".to_owned(),
            Some(FailureClass::NoRoute)
        )));

        let named =
            NodeConfig::from_toml(&EXAMPLE.replace("interface = \"auto\"", "interface = \"eth7\""))
                .unwrap();
        let observed = converged(&named);
        assert!(settled(&plan(&named, &observed)).contains(&(
            ItemKind::Lnet,
            "tcp".to_owned(),
            Some(FailureClass::BadInterface)
        )));

        let mut observed = converged(&config);
        observed.lnet.as_mut().unwrap().nis = Some(vec![LocalNi {
            net_type: "tcp".into(),
            nid: "10.0.0.9@tcp".into(),
            status: Some("up".into()),
            interfaces: vec!["eth1".into()],
            health_value: None,
        }]);
        let actions: Vec<String> = plan(&config, &observed)
            .actions()
            .flat_map(|a| a.describe(&config))
            .collect();
        assert_eq!(
            actions,
            vec![
                "lnetctl net del --net tcp",
                "lnetctl net add --net tcp --if eth0"
            ]
        );
    }

    #[test]
    fn repository_files_are_written_only_where_they_differ_and_a_missing_key_fails_its_item() {
        let config = config(
            "[repository]\nurl = \"https://packages.example/{codename}\"\nkey_file = \"/etc/lfleet/amlfs.gpg\"\n",
        );
        let mut observed = converged(&config);
        observed.repository = Some(ObservedRepository {
            key: Err("read /etc/lfleet/amlfs.gpg: No such file or directory (os error 2)".into()),
            current: Default::default(),
        });
        let plan_missing = plan(&config, &observed);
        assert!(plan_missing.is_quiet());
        assert_eq!(
            settled(&plan_missing)[0],
            (
                ItemKind::Repository,
                "/etc/lfleet/amlfs.gpg".to_owned(),
                Some(FailureClass::RepositoryKeyMissing)
            )
        );

        let key = b"key bytes".to_vec();
        let files =
            crate::repo::desired_files(config.repository.as_ref().unwrap(), &observed.distro, &key);
        assert_eq!(files.len(), 2);
        let mut current: std::collections::BTreeMap<String, Option<Vec<u8>>> = files
            .iter()
            .map(|f| (f.path.clone(), Some(f.contents.clone())))
            .collect();
        observed.repository = Some(ObservedRepository {
            key: Ok(key.clone()),
            current: current.clone(),
        });
        assert!(plan(&config, &observed).is_quiet());
        current.insert(files[1].path.clone(), Some(b"old".to_vec()));
        observed.repository = Some(ObservedRepository {
            key: Ok(key),
            current,
        });
        let actions: Vec<Action> = plan(&config, &observed).actions().cloned().collect();
        assert_eq!(
            actions,
            vec![Action::WriteRepositoryFile {
                path: files[1].path.clone(),
                contents: files[1].contents.clone()
            }]
        );
    }

    #[test]
    fn a_mount_point_held_by_another_filesystem_is_a_conflict_never_an_action() {
        let config = config("");
        let mut observed = converged(&config);
        observed.mounts.mounts = parse_mountinfo(
            "22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n40 22 0:51 / /lustre rw - nfs server:/export rw\n",
        )
        .unwrap();
        observed.mounts.fstab = Fstab::parse("/dev/sda1 / ext4 defaults 0 1\n").unwrap();
        let plan = plan(&config, &observed);
        assert!(settled(&plan).contains(&(
            ItemKind::Mount,
            "/lustre".to_owned(),
            Some(FailureClass::MountConflict)
        )));
        assert!(
            !plan.actions().any(|a| matches!(a, Action::Mount(_))),
            "{plan:#?}"
        );
    }

    #[test]
    fn with_no_mounts_left_the_drop_in_is_removed_and_the_old_mount_unmounted() {
        let config =
            NodeConfig::from_toml(&EXAMPLE[..EXAMPLE.find("[[mounts]]").unwrap()]).unwrap();
        let observed = converged(&crate::config::NodeConfig::from_toml(EXAMPLE).unwrap());
        let actions: Vec<String> = plan(&config, &observed)
            .actions()
            .flat_map(|a| a.describe(&config))
            .collect();
        assert_eq!(
            actions,
            vec![
                "unmount /lustre (no longer in the desired configuration)",
                "write /etc/fstab",
                "remove the slurmd drop-in"
            ]
        );
    }

    #[test]
    fn a_remount_is_allowed_only_for_an_owned_mount() {
        let config = config("");
        let observed = converged(&config);
        let plan = plan_remount(&config, &observed.mounts, "/lustre").unwrap();
        let actions: Vec<String> = plan.actions().flat_map(|a| a.describe(&config)).collect();
        assert_eq!(
            actions,
            vec![
                "unmount /lustre (remount requested)",
                "mount 10.0.1.4@tcp:/lustrefs at /lustre"
            ]
        );
        assert_eq!(
            plan_remount(&config, &observed.mounts, "/"),
            Err(RemountRefusal::NotOwned {
                mount_point: "/".into()
            })
        );
        let mut foreign = observed.mounts.clone();
        foreign.fstab =
            Fstab::parse("10.0.1.4@tcp:/lustrefs /lustre lustre defaults 0 0\n").unwrap();
        assert!(matches!(
            plan_remount(&config, &foreign, "/lustre"),
            Err(RemountRefusal::NotOwned { .. })
        ));
    }
}
