//! The installer against the real apt-get, apt-cache and dpkg, installing into a scratch node
//! root from a local repository of AMLFS-shaped packages (lfleet-aptrepo). Needs root, as CI
//! runs. The agent runs plain commands; only the runner's environment (APT_CONFIG) points apt
//! at the scratch root. The failure classes apt can produce here come from apt's own words:
//! a dpkg lock held with fcntl, a repository on a closed loopback port.

mod common;

use std::time::Duration;

use lfleet_agent::install::{Ensured, InstallPolicy, find_module, installed_kernels};
use lfleet_aptrepo::{
    AptRepo, SCRATCH_ETC_RELATIVE, ScratchRoot, amlfs_client_packages, kmod_package_name,
};
use lfleet_host::{HostRoot, SystemCommandRunner};
use lfleet_install::{Distro, FailureClass};

const L: &str = "2.15.7-33-g79ddf99";
const RUNNING: &str = "5.15.0-1075-azure";
const UPGRADE: &str = "5.15.0-1079-azure";

struct Node {
    _dir: tempfile::TempDir,
    host: HostRoot,
    repo: AptRepo,
    scratch: ScratchRoot,
}

/// A node root with the running kernel and an upgrade installed, and a repository that
/// publishes the client for the running kernel only.
fn node() -> Node {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("node");
    let host = HostRoot::new(&root);
    for kernel in [RUNNING, UPGRADE] {
        host.create_dir_all(format!("lib/modules/{kernel}/kernel"), 0o755)
            .unwrap();
        host.create_dir_all("boot", 0o755).unwrap();
        host.write_atomic(format!("boot/vmlinuz-{kernel}"), b"", 0o644)
            .unwrap();
    }
    let repo =
        AptRepo::create(&dir.path().join("repo"), &amlfs_client_packages(L, RUNNING)).unwrap();
    let scratch = ScratchRoot::prepare(&root, &repo).unwrap();
    Node {
        _dir: dir,
        host,
        repo,
        scratch,
    }
}

fn runner(node: &Node) -> SystemCommandRunner {
    let mut runner = SystemCommandRunner::from_env();
    for (key, value) in node.scratch.env() {
        runner = runner.with_env(key, value);
    }
    runner
}

fn policy() -> InstallPolicy {
    InstallPolicy {
        attempts: 1,
        backoff_base: Duration::from_millis(10),
        command_timeout: Duration::from_secs(120),
        ..InstallPolicy::new(L)
    }
}

/// Reads a file of the scratch root by its real path.
fn read(path: &std::path::Path) -> Vec<u8> {
    HostRoot::new("/").read_limited(path, 64 << 20).unwrap()
}

fn jammy() -> Distro {
    Distro::Ubuntu {
        version: "22.04".into(),
        codename: "jammy".into(),
    }
}

#[tokio::test]
async fn installs_the_running_kernels_client_and_then_has_nothing_to_do() {
    let node = node();
    let runner = runner(&node);
    let (distro, policy) = (jammy(), policy());
    let installer = common::installer(&node.host, &runner, &distro, &policy);
    let result = installer.ensure_client(RUNNING).await.unwrap();
    assert_eq!(
        result,
        Ensured::Installed {
            package: format!("amlfs-lustre-client-{L}={RUNNING}")
        }
    );
    let module = find_module(&node.host, RUNNING, "lustre")
        .unwrap()
        .expect("lustre.ko installed");
    assert!(
        module.starts_with(&format!("lib/modules/{RUNNING}/")),
        "{module}"
    );
    assert_eq!(
        node.scratch
            .installed_version(&format!("amlfs-lustre-client-{L}"))
            .unwrap()
            .as_deref(),
        Some(RUNNING)
    );
    let status = read(&node.scratch.status_path());
    // A second pass changes nothing: no run, the package database is byte-identical.
    assert_eq!(
        installer.ensure_client(RUNNING).await.unwrap(),
        Ensured::AlreadyPresent
    );
    assert_eq!(read(&node.scratch.status_path()), status);
}

#[tokio::test]
async fn an_unpublished_upgrade_kernel_is_not_yet_published_and_nothing_is_half_installed() {
    let node = node();
    let runner = runner(&node);
    let (distro, policy) = (jammy(), policy());
    let installer = common::installer(&node.host, &runner, &distro, &policy);
    installer.ensure_client(RUNNING).await.unwrap();
    let status = read(&node.scratch.status_path());
    assert_eq!(
        installed_kernels(&node.host).unwrap(),
        vec![RUNNING.to_string(), UPGRADE.to_string()]
    );
    let err = installer.ensure_client(UPGRADE).await.unwrap_err();
    assert_eq!(err.class(), FailureClass::NotYetPublished, "{err}");
    assert!(
        err.to_string().contains(&format!("Version '{UPGRADE}'"))
            || format!("{:?}", err).contains("was not found"),
        "{err:?}"
    );
    assert_eq!(
        read(&node.scratch.status_path()),
        status,
        "dpkg status changed"
    );
    assert_eq!(find_module(&node.host, UPGRADE, "lustre").unwrap(), None);
}

#[tokio::test]
async fn a_published_upgrade_is_installed_before_any_reboot() {
    let mut node = node();
    for package in amlfs_client_packages(L, UPGRADE) {
        node.repo.add(&package).unwrap();
    }
    let runner = runner(&node);
    let (distro, policy) = (jammy(), policy());
    let installer = common::installer(&node.host, &runner, &distro, &policy);
    installer.ensure_client(RUNNING).await.unwrap();
    // The lists predate the upgrade's packages: the installer refreshes them itself.
    let result = installer.ensure_client(UPGRADE).await.unwrap();
    assert!(matches!(result, Ensured::Installed { .. }));
    // Both kernels now have their module, though only one metapackage version is installed.
    assert!(
        find_module(&node.host, RUNNING, "lustre")
            .unwrap()
            .is_some()
    );
    assert!(
        find_module(&node.host, UPGRADE, "lustre")
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn a_metapackage_published_before_its_kmod_is_a_dependency_failure() {
    let mut node = node();
    for package in amlfs_client_packages(L, UPGRADE) {
        if package.name != kmod_package_name(UPGRADE, L) {
            node.repo.add(&package).unwrap();
        }
    }
    let runner = runner(&node);
    let (distro, policy) = (jammy(), policy());
    let installer = common::installer(&node.host, &runner, &distro, &policy);
    let err = installer.ensure_client(UPGRADE).await.unwrap_err();
    assert_eq!(err.class(), FailureClass::DependencyNotPublished, "{err:?}");
    assert!(err.class().is_transient());
    assert_eq!(find_module(&node.host, UPGRADE, "lustre").unwrap(), None);
}

#[tokio::test]
async fn a_held_dpkg_lock_is_package_lock_held_in_apts_own_words() {
    let node = node();
    let runner = runner(&node);
    let distro = jammy();
    let policy = InstallPolicy {
        lock_timeout: Duration::from_secs(1),
        ..policy()
    };
    let installer = common::installer(&node.host, &runner, &distro, &policy);
    let status = read(&node.scratch.status_path());
    let lock = node.scratch.hold_frontend_lock().unwrap();
    let err = installer.ensure_client(RUNNING).await.unwrap_err();
    drop(lock);
    assert_eq!(err.class(), FailureClass::PackageLockHeld, "{err:?}");
    assert!(format!("{err:?}").contains("Could not get lock"), "{err:?}");
    assert_eq!(
        read(&node.scratch.status_path()),
        status,
        "nothing installed"
    );
}

/// A loopback port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn an_unreachable_repository_is_repository_unreachable_not_a_missing_package() {
    let node = node();
    // The node's only source refuses connections: apt-get update warns (and exits 0), and
    // install cannot find the package it never could list.
    HostRoot::new(node.scratch.root())
        .write_atomic(
            format!("{SCRATCH_ETC_RELATIVE}/sources.list"),
            format!(
                "deb [trusted=yes] http://127.0.0.1:{}/amlfs ./\n",
                closed_port()
            )
            .as_bytes(),
            0o644,
        )
        .unwrap();
    let runner = runner(&node);
    let (distro, policy) = (jammy(), policy());
    let installer = common::installer(&node.host, &runner, &distro, &policy);
    let err = installer.ensure_client(RUNNING).await.unwrap_err();
    assert_eq!(err.class(), FailureClass::RepositoryUnreachable, "{err:?}");
    assert!(
        err.to_string()
            .contains("the package lists could not be refreshed"),
        "{err}"
    );
    assert_eq!(find_module(&node.host, RUNNING, "lustre").unwrap(), None);
}
