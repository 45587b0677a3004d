//! The .debs (packaging/deb/build.sh over the built binaries) installed into a scratch root
//! with the real dpkg (`--root`, maintainer scripts run chrootless with DPKG_ROOT) and purged:
//! the expected files, the conffiles (everything in /etc), the units enabled through
//! deb-systemd-helper, the state directory; after purge nothing of lfleet is left, while
//! the node's other fstab lines and repository files are.
//! `--force-depends`: the scratch root's dpkg database has no systemd package.
#![allow(
    clippy::disallowed_methods,
    reason = "the test builds packages and installs them into a scratch root with dpkg"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

const AGENT: &str = env!("CARGO_BIN_EXE_lfleet-agent");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn build(out: &Path) -> (PathBuf, PathBuf) {
    let bindir = Path::new(AGENT).parent().unwrap();
    assert!(
        bindir.join("lfleet-coordinator").is_file(),
        "build the workspace first"
    );
    let output = Command::new("bash")
        .arg(repo().join("packaging/deb/build.sh"))
        .arg(out)
        .arg(bindir)
        // Debug binaries are large; compressing them is all the time a test would spend.
        .env("DEB_COMPRESSION", "none")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let find = |prefix: &str| {
        std::fs::read_dir(out)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
            .unwrap()
    };
    (find("lfleet-agent_"), find("lfleet-coordinator_"))
}

fn dpkg(root: &Path, args: &[&str]) {
    let output = Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .arg(format!("--log={}", root.join("var/log/dpkg.log").display()))
        .args(["--force-script-chrootless", "--force-depends"])
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "dpkg {args:?}: {output:?}");
}

fn scratch_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    for dir in [
        "var/lib/dpkg/info",
        "var/lib/dpkg/updates",
        "var/log",
        "etc/apt/sources.list.d",
        "etc/apt/keyrings",
    ] {
        std::fs::create_dir_all(root.path().join(dir)).unwrap();
    }
    std::fs::write(root.path().join("var/lib/dpkg/status"), "").unwrap();
    root
}

/// Every path under `root` that names lfleet, but dpkg's own records.
fn lfleet_paths(root: &Path) -> Vec<String> {
    lfleet_node::paths_named(root, "lfleet", &["var/lib/dpkg", "var/log/dpkg.log"])
}

#[test]
fn the_agent_deb_installs_enables_and_purges_to_nothing() {
    let out = tempfile::tempdir().unwrap();
    let (agent, _) = build(out.path());
    let root = scratch_root();
    let r = root.path();
    // A node the agent managed: its fstab block next to the node's own line, its drop-in and
    // repository files next to someone else's.
    std::fs::write(
        r.join("etc/fstab"),
        "UUID=abc / ext4 defaults 0 1\n# BEGIN lfleet-agent managed Lustre mounts: lfleet-agent rewrites every line up to END\n10.0.1.4@tcp:/lustrefs /lustre lustre defaults,_netdev 0 0\n# END lfleet-agent managed Lustre mounts\n",
    )
    .unwrap();
    dpkg(r, &["-i", agent.to_str().unwrap()]);
    for file in [
        "usr/bin/lfleet-agent",
        "lib/systemd/system/lfleet-agent.service",
        "lib/systemd/system/lfleet-lnet.service",
        "usr/lib/tmpfiles.d/lfleet-agent.conf",
        "etc/kernel/postinst.d/zz-lfleet-agent",
        "etc/lfleet/agent.toml",
        "usr/share/doc/lfleet-agent/copyright",
        "usr/share/doc/lfleet-agent/changelog.gz",
        "usr/share/doc/lfleet-agent/examples/agent.toml",
    ] {
        assert!(r.join(file).is_file(), "{file} missing");
    }
    let conffiles =
        std::fs::read_to_string(r.join("var/lib/dpkg/info/lfleet-agent.conffiles")).unwrap();
    assert_eq!(
        conffiles.trim(),
        "/etc/kernel/postinst.d/zz-lfleet-agent\n/etc/lfleet/agent.toml"
    );
    // The kernel-install plugin is the RPM's; Debian and Ubuntu kernels run postinst.d.
    assert!(
        !r.join("usr/lib/kernel/install.d/90-lfleet-agent.install")
            .exists()
    );
    for (link, target) in [
        (
            "etc/systemd/system/multi-user.target.wants/lfleet-agent.service",
            "/lib/systemd/system/lfleet-agent.service",
        ),
        (
            "etc/systemd/system/multi-user.target.wants/lfleet-lnet.service",
            "/lib/systemd/system/lfleet-lnet.service",
        ),
    ] {
        assert_eq!(
            std::fs::read_link(r.join(link)).unwrap().to_str(),
            Some(target),
            "{link}"
        );
    }
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(r.join("var/lib/lfleet"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
    // What the agent writes at run time, to be purged too (and what it did not write, kept).
    std::fs::create_dir_all(r.join("etc/systemd/system/slurmd.service.d")).unwrap();
    std::fs::write(
        r.join("etc/systemd/system/slurmd.service.d/lfleet-mounts.conf"),
        "[Unit]\n",
    )
    .unwrap();
    std::fs::write(
        r.join("etc/apt/sources.list.d/lfleet-amlfs.list"),
        "deb x y z\n",
    )
    .unwrap();
    std::fs::write(r.join("etc/apt/keyrings/lfleet-amlfs.asc"), "key\n").unwrap();
    std::fs::write(r.join("etc/apt/sources.list.d/other.list"), "deb other\n").unwrap();
    std::fs::write(r.join("var/lib/lfleet/desired.json"), "{}\n").unwrap();

    dpkg(r, &["--purge", "lfleet-agent"]);
    assert_eq!(lfleet_paths(r), Vec::<String>::new());
    assert_eq!(
        std::fs::read_to_string(r.join("etc/fstab")).unwrap(),
        "UUID=abc / ext4 defaults 0 1\n"
    );
    assert_eq!(
        std::fs::read_to_string(r.join("etc/apt/sources.list.d/other.list")).unwrap(),
        "deb other\n"
    );
}

#[test]
fn the_coordinator_deb_installs_and_purges_to_nothing() {
    let out = tempfile::tempdir().unwrap();
    let (_, coordinator) = build(out.path());
    let root = scratch_root();
    let r = root.path();
    dpkg(r, &["-i", coordinator.to_str().unwrap()]);
    for file in [
        "usr/bin/lfleet-coordinator",
        "usr/bin/lfleet",
        "lib/systemd/system/lfleet-coordinator.service",
        "etc/lfleet/coordinator.toml",
    ] {
        assert!(r.join(file).is_file(), "{file} missing");
    }
    assert!(
        r.join("etc/systemd/system/multi-user.target.wants/lfleet-coordinator.service")
            .is_symlink()
    );
    // What it makes at run time.
    std::fs::create_dir_all(r.join("var/lib/lfleet-coordinator")).unwrap();
    std::fs::write(r.join("var/lib/lfleet-coordinator/coordinator.db"), "x").unwrap();
    std::fs::write(r.join("etc/lfleet/join-token"), "t\n").unwrap();
    dpkg(r, &["--purge", "lfleet-coordinator"]);
    assert_eq!(lfleet_paths(r), Vec::<String>::new());
}

/// packaging/image/bake.sh into an image root that a used build VM left identity in: the
/// package is installed and enabled, the identity and state are gone, and with
/// --lustre-version the client is installed for the image's kernel (a sim root: its kernel
/// and package manager are the simulator's).
#[test]
fn image_bake_installs_and_leaves_no_identity() {
    let out = tempfile::tempdir().unwrap();
    let (agent, _) = build(out.path());
    let dir = tempfile::tempdir().unwrap();
    let spec = lfleet_sim::NodeSpec::new(
        "ubuntu-22.04",
        "5.15.0-1075-azure",
        lfleet_sim::LustreVersion::V2_15,
    );
    let node = lfleet_sim::SimNode::create(&dir.path().join("image"), &spec).unwrap();
    let r = node.root();
    for sub in [
        "var/lib/dpkg/info",
        "var/lib/dpkg/updates",
        "var/log",
        "var/lib/lfleet/tls",
        "etc/lfleet",
    ] {
        std::fs::create_dir_all(r.join(sub)).unwrap();
    }
    if !r.join("var/lib/dpkg/status").exists() {
        std::fs::write(r.join("var/lib/dpkg/status"), "").unwrap();
    }
    for leftover in [
        "var/lib/lfleet/tls/node.key",
        "var/lib/lfleet/desired.json",
        "var/lib/lfleet/checks.json",
        "etc/lfleet/join-token",
    ] {
        std::fs::write(r.join(leftover), "from the build VM\n").unwrap();
    }
    let bindir = Path::new(AGENT).parent().unwrap();
    let output = Command::new("bash")
        .arg(repo().join("packaging/image/bake.sh"))
        .arg(&agent)
        .args(["--lustre-version", "2.15.7-33-g79ddf99"])
        .env("IMAGE_ROOT", r)
        .env(
            "PATH",
            format!(
                "{}:{}:/usr/sbin:/usr/bin:/sbin:/bin",
                bindir.display(),
                r.join("bin").display()
            ),
        )
        .env("DPKG_FORCE", "depends")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(r.join("usr/bin/lfleet-agent").is_file());
    assert!(
        r.join("etc/systemd/system/multi-user.target.wants/lfleet-agent.service")
            .is_symlink()
    );
    for gone in [
        "var/lib/lfleet/tls",
        "var/lib/lfleet/desired.json",
        "var/lib/lfleet/checks.json",
        "etc/lfleet/join-token",
    ] {
        assert!(!r.join(gone).exists(), "{gone} baked into the image");
    }
    // The client for the image's kernel is in the image.
    let modules = r.join("lib/modules/5.15.0-1075-azure");
    let found = Command::new("find")
        .arg(&modules)
        .args(["-name", "lustre.ko*"])
        .output()
        .unwrap();
    assert!(
        !found.stdout.is_empty(),
        "no lustre module under {}",
        modules.display()
    );
}
