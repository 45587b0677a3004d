//! End-to-end tests of lfleet-aptrepo with the REAL apt-get, dpkg and dpkg-query: each test
//! builds its own repository and scratch root in its own temporary directory, and checks
//! apt's own exit codes and messages and that the real system is untouched.
#![allow(
    clippy::disallowed_methods,
    reason = "test infrastructure: reads scratch-root files and runs dpkg-query/apt-get directly"
)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use lfleet_aptrepo::{
    AptRepo, COMPONENT_VERSION, LUSTRE_CLIENT_MODULES, PackageSpec, ScratchRoot,
    amlfs_client_packages, kmod_package_name, metapackage_name, module_dir,
};

const LUSTRE: &str = "2.15.7-33-g79ddf99";
const KERNEL_A: &str = "5.15.0-1075-azure";
const KERNEL_B: &str = "5.15.0-1079-azure";
const REAL_DPKG_LOG: &str = "/var/log/dpkg.log";

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Prints apt's output (visible with --nocapture or on failure) and returns (stdout, stderr).
fn show(what: &str, out: &Output) -> (String, String) {
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    println!(
        "--- {what}: exit {:?}\n--- stdout:\n{stdout}--- stderr:\n{stderr}",
        out.status.code()
    );
    (stdout, stderr)
}

fn update(scratch: &ScratchRoot) {
    let out = scratch.apt_get(&["update"]).unwrap();
    let (_, stderr) = show("apt-get update", &out);
    assert!(out.status.success(), "apt-get update failed");
    assert!(
        !stderr.contains("W:") && !stderr.contains("E:"),
        "update warned: {stderr}"
    );
}

fn install_arg(kernel: &str) -> String {
    format!("{}={kernel}", metapackage_name(LUSTRE))
}

/// A repository and scratch root in `tmp` with `packages` published and lists updated.
fn setup(tmp: &Path, packages: &[PackageSpec]) -> (AptRepo, ScratchRoot) {
    let repo = AptRepo::create(&tmp.join("repo"), packages).unwrap();
    let scratch = ScratchRoot::prepare(&tmp.join("root"), &repo).unwrap();
    update(&scratch);
    (repo, scratch)
}

fn assert_nothing_installed(scratch: &ScratchRoot, status_before: &[u8]) {
    let status_after = fs::read(scratch.status_path()).unwrap();
    assert_eq!(
        status_after, status_before,
        "dpkg status of the scratch root changed"
    );
    assert!(!scratch.root().join("lib/modules").exists());
    assert_eq!(
        scratch
            .installed_version(&metapackage_name(LUSTRE))
            .unwrap(),
        None
    );
}

#[test]
fn installs_metapackage_into_scratch_root_and_not_into_the_system() {
    let meta = metapackage_name(LUSTRE);
    // Precondition, so the "system untouched" checks below mean something.
    assert!(!Path::new("/lib/modules").join(KERNEL_A).exists());
    let real_before = Command::new("dpkg-query")
        .args(["-W", &meta])
        .output()
        .unwrap();
    assert!(
        !real_before.status.success(),
        "{meta} is installed on the real system"
    );
    // Only what is appended during this test counts: the real log may hold anything older,
    // and other package activity on the machine may append to it meanwhile.
    let real_log_len = fs::metadata(REAL_DPKG_LOG).map_or(0, |m| m.len());

    let tmp = tempfile::tempdir().unwrap();
    // Private like `mktemp -d`: apt's `_apt` download user cannot enter it.
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o700)).unwrap();
    // The root already holds files, like an lfleet-sim node root, including an apt source
    // for the real Microsoft repository that must be neither deleted nor read.
    let root = tmp.path().join("root");
    fs::create_dir_all(root.join("etc/apt/sources.list.d")).unwrap();
    fs::write(root.join("etc/hostname"), "node-1\n").unwrap();
    let amlfs_list = "deb [arch=amd64] http://amlfs.invalid/repos/amlfs-jammy/ jammy main\n";
    fs::write(root.join("etc/apt/sources.list.d/amlfs.list"), amlfs_list).unwrap();

    let (_repo, scratch) = setup(tmp.path(), &amlfs_client_packages(LUSTRE, KERNEL_A));

    // Exactly what the agent runs: plain apt-get, only APT_CONFIG (and PATH) in the env.
    let out = Command::new("apt-get")
        .args(["install", "-y", &install_arg(KERNEL_A)])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .envs(scratch.env())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let (stdout, stderr) = show("install", &out);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout.contains(&format!("Setting up {meta} ({KERNEL_A})")),
        "{stdout}"
    );
    assert!(!stderr.contains("W:"), "{stderr}");

    let modules = scratch.root().join(module_dir(KERNEL_A));
    for module in LUSTRE_CLIENT_MODULES {
        assert!(
            modules.join(module).is_file(),
            "{module} missing in {}",
            modules.display()
        );
    }
    assert!(scratch.root().join("sbin/mount.lustre").is_file());

    let query = Command::new("dpkg-query")
        .args(scratch.dpkg_query_args(&meta))
        .output()
        .unwrap();
    assert!(query.status.success());
    assert_eq!(
        text(&query.stdout),
        format!("install ok installed {KERNEL_A}\n")
    );
    let kmod = kmod_package_name(KERNEL_A, LUSTRE);
    assert_eq!(
        scratch.installed_version(&kmod).unwrap().as_deref(),
        Some(COMPONENT_VERSION)
    );
    assert!(
        fs::read_to_string(scratch.root().join("var/log/dpkg.log"))
            .unwrap()
            .contains(&kmod)
    );

    // Pre-existing files survive and the node's own apt source was never used.
    assert_eq!(
        fs::read_to_string(root.join("etc/hostname")).unwrap(),
        "node-1\n"
    );
    assert_eq!(
        fs::read_to_string(root.join("etc/apt/sources.list.d/amlfs.list")).unwrap(),
        amlfs_list
    );

    // Nothing changed in the real system.
    let real_after = Command::new("dpkg-query")
        .args(["-W", &meta])
        .output()
        .unwrap();
    assert!(
        !real_after.status.success(),
        "{meta} leaked into the real dpkg database"
    );
    assert!(!Path::new("/lib/modules").join(KERNEL_A).exists());
    let real_status = fs::read_to_string("/var/lib/dpkg/status").unwrap();
    assert!(!real_status.contains(&kmod));
    if let Ok(log) = fs::read(REAL_DPKG_LOG) {
        let start = usize::try_from(real_log_len).unwrap_or(0);
        let appended = text(log.get(start..).unwrap_or(&log));
        assert!(
            !appended.contains(&kmod),
            "scratch install was logged in {REAL_DPKG_LOG}"
        );
    }
}

#[test]
fn version_not_published_is_apts_own_error() {
    let tmp = tempfile::tempdir().unwrap();
    let (_repo, scratch) = setup(tmp.path(), &amlfs_client_packages(LUSTRE, KERNEL_A));
    let status_before = fs::read(scratch.status_path()).unwrap();

    let out = scratch
        .apt_get(&["install", "-y", &install_arg(KERNEL_B)])
        .unwrap();
    let (_, stderr) = show("install unpublished kernel", &out);
    assert_eq!(out.status.code(), Some(100));
    let expected = format!(
        "E: Version '{KERNEL_B}' for '{}' was not found",
        metapackage_name(LUSTRE)
    );
    assert!(stderr.contains(&expected), "{stderr}");
    assert_nothing_installed(&scratch, &status_before);
}

#[test]
fn dependency_not_yet_published_is_unmet_then_installs_once_published() {
    let tmp = tempfile::tempdir().unwrap();
    let mut packages = amlfs_client_packages(LUSTRE, KERNEL_A);
    packages.extend(amlfs_client_packages(LUSTRE, KERNEL_B));
    let (mut repo, scratch) = setup(tmp.path(), &packages);
    let kmod_b = kmod_package_name(KERNEL_B, LUSTRE);
    let kmod_b_spec = repo
        .published()
        .find(|spec| spec.name == kmod_b)
        .cloned()
        .unwrap();
    repo.remove(&kmod_b, COMPONENT_VERSION).unwrap();
    assert!(repo.deb_path(&kmod_b, COMPONENT_VERSION).is_none());
    update(&scratch);
    let status_before = fs::read(scratch.status_path()).unwrap();

    let out = scratch
        .apt_get(&["install", "-y", &install_arg(KERNEL_B)])
        .unwrap();
    let (stdout, stderr) = show("install with kmod unpublished", &out);
    assert_eq!(out.status.code(), Some(100));
    assert!(
        stdout.contains("The following packages have unmet dependencies:"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("Depends: {kmod_b} but it is not installable")),
        "{stdout}"
    );
    assert!(stderr.contains("E: Unable to correct problems, you have held broken packages."));
    assert_nothing_installed(&scratch, &status_before);

    // Publishing the kmod later makes the same command succeed after an update.
    repo.add(&kmod_b_spec).unwrap();
    update(&scratch);
    let out = scratch
        .apt_get(&["install", "-y", &install_arg(KERNEL_B)])
        .unwrap();
    show("install after kmod published", &out);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        scratch
            .root()
            .join(module_dir(KERNEL_B))
            .join("lustre.ko")
            .is_file()
    );
    assert!(!scratch.root().join(module_dir(KERNEL_A)).exists());
}

#[test]
fn unknown_package_is_unable_to_locate() {
    let tmp = tempfile::tempdir().unwrap();
    let (_repo, scratch) = setup(tmp.path(), &amlfs_client_packages(LUSTRE, KERNEL_A));
    let status_before = fs::read(scratch.status_path()).unwrap();

    let wanted = format!("{}={KERNEL_A}", metapackage_name("2.17.0-19-gbb5310f"));
    let out = scratch.apt_get(&["install", "-y", &wanted]).unwrap();
    let (_, stderr) = show("install unknown package", &out);
    assert_eq!(out.status.code(), Some(100));
    assert!(
        stderr.contains("E: Unable to locate package amlfs-lustre-client-2.17.0-19-gbb5310f"),
        "{stderr}"
    );
    assert_nothing_installed(&scratch, &status_before);
}

#[test]
fn held_frontend_lock_makes_apt_get_fail_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (_repo, scratch) = setup(tmp.path(), &amlfs_client_packages(LUSTRE, KERNEL_A));
    let status_before = fs::read(scratch.status_path()).unwrap();

    let lock = scratch.hold_frontend_lock().unwrap();
    let out = scratch
        .apt_get(&["install", "-y", &install_arg(KERNEL_A)])
        .unwrap();
    let (_, stderr) = show("install while locked", &out);
    assert_eq!(out.status.code(), Some(100));
    let expected = format!(
        "E: Could not get lock {}. It is held by process {}",
        lock.path().display(),
        std::process::id()
    );
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(
        stderr.contains("E: Unable to acquire the dpkg frontend lock"),
        "{stderr}"
    );
    assert_nothing_installed(&scratch, &status_before);

    drop(lock);
    let out = scratch
        .apt_get(&["install", "-y", &install_arg(KERNEL_A)])
        .unwrap();
    show("install after unlock", &out);
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn repo_index_follows_add_and_remove() {
    let tmp = tempfile::tempdir().unwrap();
    let mut packages = amlfs_client_packages(LUSTRE, KERNEL_A);
    // The shared lustre-client spec appears twice; identical specs are kept once.
    packages.extend(amlfs_client_packages(LUSTRE, KERNEL_B));
    let mut repo = AptRepo::create(&tmp.path().join("repo"), &packages).unwrap();
    let index = || fs::read_to_string(repo_index_path(&tmp.path().join("repo"))).unwrap();
    let meta = metapackage_name(LUSTRE);
    let stanza_a = format!("Package: {meta}\nVersion: {KERNEL_A}\n");
    let stanza_b = format!("Package: {meta}\nVersion: {KERNEL_B}\n");
    assert!(index().contains(&stanza_a) && index().contains(&stanza_b));
    assert_eq!(repo.published().count(), 7);

    repo.remove(&meta, KERNEL_B).unwrap();
    assert!(index().contains(&stanza_a) && !index().contains(&stanza_b));
    assert!(repo.remove(&meta, KERNEL_B).is_err());

    let extra = PackageSpec::new("lfleet-extra", "3.0").with_file("usr/share/x", "y");
    repo.add(&extra).unwrap();
    assert!(index().contains("Package: lfleet-extra\nVersion: 3.0\n"));
    assert!(repo.deb_path("lfleet-extra", "3.0").unwrap().is_file());

    let clash = PackageSpec::new("lfleet-extra", "3.0").with_file("usr/share/x", "z");
    let err = AptRepo::create(&tmp.path().join("repo2"), &[extra, clash]).unwrap_err();
    assert!(err.to_string().contains("lfleet-extra 3.0"), "{err}");
}

fn repo_index_path(dir: &Path) -> std::path::PathBuf {
    dir.join("Packages")
}
