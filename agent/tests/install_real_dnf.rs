//! The installer against the real dnf (Debian 12's dnf 4.14), installing into a scratch root
//! from a local repository of AMLFS-shaped RPMs built here with rpmbuild and indexed with
//! createrepo_c. Needs root, as CI runs.
//!
//! dnf has no environment variable that moves it into another root, so the test puts a small
//! wrapper named `dnf` first on the agent's search path: it runs the real /usr/bin/dnf with
//! `--installroot`, `--releasever` (Debian has no system-release package) and the scratch
//! root's own repository directory and cache, and passes every argument on. Messages, exit
//! codes and the installed files are dnf's and rpm's own. The packages are constructed (names
//! and versions as AMLFS documents them; contents are placeholders). The failure classes dnf
//! produces come from its own words: its metadata lock held by a live process, a repository
//! on a closed loopback port.
#![allow(
    clippy::disallowed_methods,
    reason = "the test builds RPMs and a repository with rpmbuild and createrepo_c, and writes a wrapper"
)]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use lfleet_agent::install::{Ensured, InstallPolicy, find_module};
use lfleet_host::{HostRoot, SystemCommandRunner};
use lfleet_install::package::rpm_kernel_part;
use lfleet_install::{Distro, FailureClass};

const L: &str = "2.15.7-33-g79ddf99";
const RUNNING: &str = "5.14.0-427.13.1.el9_4.x86_64";
const SAME_SERIES: &str = "5.14.0-427.20.1.el9_4.x86_64";
const OTHER_SERIES: &str = "5.14.0-503.11.1.el9_5.x86_64";

fn run(command: &mut Command) {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Builds the metapackage and (optionally) the kmod for `kernel` into `repo`, and re-indexes it.
fn publish(work: &Path, repo: &Path, kernel: &str, with_kmod: bool) {
    let top = work.join("rpmbuild");
    for dir in ["SPECS", "BUILD", "RPMS", "SOURCES", "BUILDROOT", "SRPMS"] {
        fs::create_dir_all(top.join(dir)).unwrap();
    }
    let k = rpm_kernel_part(kernel);
    let l = L.replace('-', "_");
    let kmod = format!(
        "Name: kmod-lustre-client-{k}\nVersion: {l}\nRelease: 1\nSummary: constructed test kmod\nLicense: GPL\nBuildArch: x86_64\nAutoReqProv: no\n%description\nconstructed for lfleet tests\n%install\nmkdir -p %{{buildroot}}/lib/modules/{kernel}/extra/lustre-client/fs\nfor m in lustre lnet ksocklnd; do echo placeholder > %{{buildroot}}/lib/modules/{kernel}/extra/lustre-client/fs/$m.ko; done\n%files\n/lib/modules/{kernel}/extra/lustre-client/fs/lustre.ko\n/lib/modules/{kernel}/extra/lustre-client/fs/lnet.ko\n/lib/modules/{kernel}/extra/lustre-client/fs/ksocklnd.ko\n"
    );
    let meta = format!(
        "Name: amlfs-lustre-client-{l}\nVersion: {k}\nRelease: 1\nSummary: constructed test metapackage\nLicense: GPL\nBuildArch: x86_64\nAutoReqProv: no\nRequires: kmod-lustre-client-{k}\n%description\nconstructed for lfleet tests\n%files\n"
    );
    let mut specs = vec![("meta.spec", meta)];
    if with_kmod {
        specs.push(("kmod.spec", kmod));
    }
    for (name, text) in specs {
        let spec = top.join("SPECS").join(name);
        fs::write(&spec, text).unwrap();
        run(Command::new("rpmbuild")
            .arg("--quiet")
            .arg("--define")
            .arg(format!("_topdir {}", top.display()))
            .arg("-bb")
            .arg(&spec));
    }
    fs::create_dir_all(repo).unwrap();
    for entry in fs::read_dir(top.join("RPMS/x86_64")).unwrap().flatten() {
        fs::rename(entry.path(), repo.join(entry.file_name())).unwrap();
    }
    run(Command::new("createrepo_c").arg("-q").arg(repo));
}

struct Node {
    _work: tempfile::TempDir,
    work: PathBuf,
    host: HostRoot,
    repo: PathBuf,
    runner: SystemCommandRunner,
}

fn node() -> Node {
    let work_dir = tempfile::tempdir().unwrap();
    let work = work_dir.path().to_path_buf();
    let root = work.join("root");
    let host = HostRoot::new(&root);
    for kernel in [RUNNING, SAME_SERIES, OTHER_SERIES] {
        host.create_dir_all(format!("lib/modules/{kernel}/kernel"), 0o755)
            .unwrap();
        host.create_dir_all("boot", 0o755).unwrap();
        host.write_atomic(format!("boot/vmlinuz-{kernel}"), b"", 0o644)
            .unwrap();
    }
    for dir in ["var/log", "var/cache/dnf", "var/lib/dnf"] {
        host.create_dir_all(dir, 0o755).unwrap();
    }
    let repo = work.join("repo");
    publish(&work, &repo, RUNNING, true);
    let repos_d = work.join("repos.d");
    fs::create_dir_all(&repos_d).unwrap();
    fs::write(repos_d.join("amlfs.repo"), format!("[amlfs]\nname=constructed AMLFS test repository\nbaseurl=file://{}\nenabled=1\ngpgcheck=0\n", repo.display())).unwrap();
    let bin = work.join("bin");
    fs::create_dir_all(&bin).unwrap();
    let wrapper = bin.join("dnf");
    fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n# The real dnf, moved into the scratch root.\nexec /usr/bin/dnf --installroot='{root}' --releasever=9 --setopt=reposdir='{repos}' --setopt=cachedir='{root}/var/cache/dnf' --setopt=logdir='{root}/var/log' --setopt=persistdir='{root}/var/lib/dnf' \"$@\"\n",
            root = root.display(),
            repos = repos_d.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
    let runner =
        SystemCommandRunner::new(format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", bin.display()));
    Node {
        _work: work_dir,
        work,
        host,
        repo,
        runner,
    }
}

fn policy() -> InstallPolicy {
    InstallPolicy {
        attempts: 1,
        backoff_base: Duration::from_millis(10),
        command_timeout: Duration::from_secs(300),
        ..InstallPolicy::new(L)
    }
}

fn alma() -> Distro {
    Distro::Rhel {
        id: "almalinux".into(),
        major: 9,
    }
}

fn host_has_package(name: &str) -> bool {
    Command::new("rpm")
        .args(["-q", name])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[tokio::test]
async fn real_dnf_installs_the_running_kernels_client_into_the_scratch_root_only() {
    let node = node();
    let (distro, policy) = (alma(), policy());
    let installer = common::installer(&node.host, &node.runner, &distro, &policy);
    let result = installer.ensure_client(RUNNING).await.unwrap();
    assert_eq!(
        result,
        Ensured::Installed {
            package: format!(
                "amlfs-lustre-client-2.15.7_33_g79ddf99-{}-1",
                rpm_kernel_part(RUNNING)
            )
        }
    );
    let module = find_module(&node.host, RUNNING, "lustre")
        .unwrap()
        .expect("lustre.ko installed");
    assert_eq!(
        module,
        format!("lib/modules/{RUNNING}/extra/lustre-client/fs/lustre.ko")
    );
    assert_eq!(
        installer.ensure_client(RUNNING).await.unwrap(),
        Ensured::AlreadyPresent
    );
    assert!(
        !host_has_package("amlfs-lustre-client-2.15.7_33_g79ddf99"),
        "the real system must not get the package"
    );
    assert!(!Path::new(&format!("/lib/modules/{RUNNING}")).exists());
}

#[tokio::test]
async fn real_dnf_missing_kernels_are_classified_by_the_series_the_repository_serves() {
    let node = node();
    let (distro, policy) = (alma(), policy());
    let installer = common::installer(&node.host, &node.runner, &distro, &policy);
    installer.ensure_client(RUNNING).await.unwrap();
    let err = installer.ensure_client(SAME_SERIES).await.unwrap_err();
    assert_eq!(err.class(), FailureClass::NotYetPublished, "{err:?}");
    assert!(
        format!("{err:?}").contains("Unable to find a match"),
        "dnf's own words: {err:?}"
    );
    let err = installer.ensure_client(OTHER_SERIES).await.unwrap_err();
    assert_eq!(err.class(), FailureClass::SeriesUnsupported, "{err:?}");
    assert_eq!(
        find_module(&node.host, SAME_SERIES, "lustre").unwrap(),
        None,
        "nothing half-installed"
    );
}

#[tokio::test]
async fn real_dnf_a_newly_published_kernel_is_found_after_one_refresh() {
    let node = node();
    let (distro, policy) = (alma(), policy());
    let installer = common::installer(&node.host, &node.runner, &distro, &policy);
    installer.ensure_client(RUNNING).await.unwrap();
    publish(&node.work, &node.repo, SAME_SERIES, true);
    let result = installer.ensure_client(SAME_SERIES).await.unwrap();
    assert!(matches!(result, Ensured::Installed { .. }));
    assert!(
        find_module(&node.host, SAME_SERIES, "lustre")
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn real_dnf_a_metapackage_whose_kmod_is_not_published_is_a_dependency_failure() {
    let node = node();
    publish(&node.work, &node.repo, SAME_SERIES, false);
    let (distro, policy) = (alma(), policy());
    let installer = common::installer(&node.host, &node.runner, &distro, &policy);
    let err = installer.ensure_client(SAME_SERIES).await.unwrap_err();
    assert_eq!(err.class(), FailureClass::DependencyNotPublished, "{err:?}");
    assert!(format!("{err:?}").contains("nothing provides"), "{err:?}");
}

#[tokio::test]
async fn real_dnf_an_unreachable_repository_is_repository_unreachable_not_a_missing_package() {
    let node = node();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    fs::write(
        node.work.join("repos.d/amlfs.repo"),
        format!("[amlfs]\nname=constructed AMLFS test repository\nbaseurl=http://127.0.0.1:{port}/amlfs-el9/\nenabled=1\ngpgcheck=0\n"),
    )
    .unwrap();
    let (distro, policy) = (alma(), policy());
    let installer = common::installer(&node.host, &node.runner, &distro, &policy);
    let err = installer.ensure_client(RUNNING).await.unwrap_err();
    // Debian's dnf skips the repository and then misses the package: the repository is the
    // cause, and the class says so.
    assert_eq!(err.class(), FailureClass::RepositoryUnreachable, "{err:?}");
    assert!(
        format!("{err:?}").contains("Curl error (7)"),
        "dnf's own words: {err:?}"
    );
    assert_eq!(find_module(&node.host, RUNNING, "lustre").unwrap(), None);
}

#[tokio::test]
async fn real_dnf_its_metadata_lock_held_by_a_live_process_is_package_lock_held() {
    let node = node();
    // dnf/lock.py: a lock file naming a live pid makes dnf wait for it without a limit.
    let holder = std::process::id();
    node.host
        .write_atomic(
            "var/cache/dnf/metadata_lock.pid",
            holder.to_string().as_bytes(),
            0o644,
        )
        .unwrap();
    let distro = alma();
    let policy = InstallPolicy {
        command_timeout: Duration::from_secs(4),
        ..policy()
    };
    let installer = common::installer(&node.host, &node.runner, &distro, &policy);
    let err = installer.ensure_client(RUNNING).await.unwrap_err();
    assert_eq!(err.class(), FailureClass::PackageLockHeld, "{err:?}");
    assert!(
        err.to_string()
            .contains(&format!("Waiting for process with pid {holder} to finish.")),
        "{err}"
    );
    assert_eq!(find_module(&node.host, RUNNING, "lustre").unwrap(), None);
}
