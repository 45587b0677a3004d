//! The packages as Debian and the RPM distributions judge them: both .debs lintian-clean
//! (Debian's lintian, zero errors and warnings) and holding the man pages, lfleet's shell
//! completions (bash, zsh, fish) and the Grafana dashboards, and the EL8, EL9 and Azure Linux 3
//! RPMs (packaging/rpm/build.sh, rpmbuild, from binaries linked against EL8's glibc 2.28 by
//! packaging/rpm/portable-binaries.sh) installed, upgraded and erased with the real rpm in a
//! scratch root (an overlay of the node image: its /bin/sh and systemctl run the scriptlets,
//! chrooted by rpm), checking the files, the scriptlets' effects (units enabled on install,
//! an administrator's disable kept across an upgrade, config and state kept, nothing of
//! lfleet left after erase while the node's own fstab lines stay). Binaries that need a newer
//! C library than a distribution's (this machine's build, for EL8) are refused with a clear
//! reason. Needs root.
#![allow(
    clippy::disallowed_methods,
    reason = "the test builds packages and runs lintian and rpm on them"
)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use lfleet_node::{NodeImage, Overlay, paths_named};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn bindir() -> PathBuf {
    lfleet_harness::agent_binary()
        .parent()
        .unwrap()
        .to_path_buf()
}

fn output_text(output: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    files
}

/// Files both package formats must hold: man pages generated from the clap definitions,
/// the completions (zsh's directory differs: see [`packaged_zsh`]) and the dashboards.
const PACKAGED_DOCS: [&str; 9] = [
    "usr/share/man/man1/lfleet.1.gz",
    "usr/share/man/man1/lfleet-agent.1.gz",
    "usr/share/man/man1/lfleet-coordinator.1.gz",
    "usr/share/bash-completion/completions/lfleet",
    "usr/share/fish/vendor_completions.d/lfleet.fish",
    "usr/share/zsh/vendor-completions/_lfleet",
    "usr/share/lfleet-coordinator/grafana/fleet.json",
    "usr/share/lfleet-coordinator/grafana/filesystems.json",
    "usr/share/lfleet-coordinator/grafana/node.json",
];

/// Where a distribution's zsh reads completions: Debian's vendor-completions, the RPM
/// distributions' site-functions.
fn packaged_zsh(file: &str, rpm: bool) -> &str {
    if rpm && file == "usr/share/zsh/vendor-completions/_lfleet" {
        "usr/share/zsh/site-functions/_lfleet"
    } else {
        file
    }
}

#[test]
fn both_debs_are_lintian_clean() {
    let out = tempfile::tempdir().unwrap();
    let build = Command::new("bash")
        .arg(repo().join("packaging/deb/build.sh"))
        .arg(out.path())
        .arg(bindir())
        // lintian refuses uncompressed members; gzip is the quick one.
        .env("DEB_COMPRESSION", "gzip")
        .output()
        .unwrap();
    assert!(build.status.success(), "{}", output_text(&build));
    let debs = files_in(out.path());
    assert_eq!(debs.len(), 2, "{debs:?}");
    let contents: String = debs
        .iter()
        .map(|deb| {
            let listed = Command::new("dpkg-deb")
                .arg("--contents")
                .arg(deb)
                .output()
                .unwrap();
            assert!(listed.status.success(), "{}", output_text(&listed));
            String::from_utf8_lossy(&listed.stdout).into_owned()
        })
        .collect();
    for file in PACKAGED_DOCS {
        assert!(
            contents.contains(&format!("./{file}\n")),
            "{file} not in the debs:\n{contents}"
        );
    }
    let lintian = Command::new("lintian")
        .args(["--fail-on", "error,warning", "--no-tag-display-limit"])
        .args(&debs)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&lintian.stdout);
    let complaints: Vec<&str> = report
        .lines()
        .filter(|l| l.starts_with("E: ") || l.starts_with("W: "))
        .collect();
    assert!(
        lintian.status.success() && complaints.is_empty(),
        "lintian: {complaints:#?}\n{}",
        output_text(&lintian)
    );
}

fn rpm(root: &Path, args: &[&str]) -> Output {
    Command::new("rpm")
        .arg("--root")
        .arg(root)
        // Debian's rpm keeps its database in $HOME by default; a node keeps it here.
        .args(["--dbpath", "/var/lib/rpm"])
        .args(args)
        .output()
        .unwrap()
}

fn rpm_ok(root: &Path, args: &[&str]) -> String {
    let output = rpm(root, args);
    assert!(
        output.status.success(),
        "rpm {args:?}: {}",
        output_text(&output)
    );
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The binaries linked against glibc 2.28 (packaging/rpm/portable-binaries.sh, a debug build;
/// tests/ci.sh builds them before the tests, so this finds them fresh).
fn portable_bindir() -> PathBuf {
    let output = Command::new("bash")
        .arg(repo().join("packaging/rpm/portable-binaries.sh"))
        .env("LFLEET_PROFILE", "dev")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", output_text(&output));
    let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    // Nothing newer than EL8's C library is needed.
    for program in ["lfleet-agent", "lfleet-coordinator", "lfleet"] {
        let symbols = Command::new("objdump")
            .arg("-T")
            .arg(dir.join(program))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&symbols.stdout);
        let newest = text
            .split("GLIBC_")
            .skip(1)
            .filter_map(|rest| {
                let version: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_digit() || *c == '.')
                    .collect();
                let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
                Some((parts.next()?, parts.next().unwrap_or(0)))
            })
            .max();
        assert!(
            newest.is_some_and(|v| v <= (2, 28)),
            "{program} needs glibc {newest:?}"
        );
    }
    dir
}

fn build_rpms_from(out: &Path, bindir: &Path, dists: &str, version: &str) -> Output {
    Command::new("bash")
        .arg(repo().join("packaging/rpm/build.sh"))
        .arg(out)
        .arg(bindir)
        .env("LFLEET_RPM_DISTS", dists)
        .env("LFLEET_VERSION", version)
        // The quick compression: the test reads the payload once.
        .env("LFLEET_RPM_PAYLOAD", "w1.gzdio")
        .output()
        .unwrap()
}

const NODE_FSTAB: &str = "# the node's own lines\nUUID=abc /\text4  defaults 0 1\n";
const MANAGED: &str = "# BEGIN lfleet-agent managed Lustre mounts: lfleet-agent rewrites every line up to END\n10.0.1.4@tcp:/lustrefs /lustre lustre defaults,_netdev 0 0\n# END lfleet-agent managed Lustre mounts\n";

#[test]
fn the_rpms_install_upgrade_and_erase_on_a_scratch_root_with_their_scriptlets() {
    let out = tempfile::tempdir().unwrap();
    // EL8's C library is older than this machine's: its binaries are refused for EL8, with
    // the way out, and nothing written.
    let refused = build_rpms_from(out.path(), &bindir(), "el8 el9 azl3", "0.1.0");
    assert!(!refused.status.success(), "{}", output_text(&refused));
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(
        why.contains("el8 has 2.28") && why.contains("BINDIR"),
        "{why}"
    );
    assert!(files_in(out.path()).is_empty());

    // Linked against glibc 2.28: every distribution's RPM.
    let portable = portable_bindir();
    let built = build_rpms_from(out.path(), &portable, "el8 el9 azl3", "0.1.0");
    assert!(built.status.success(), "{}", output_text(&built));
    let next = tempfile::tempdir().unwrap();
    let built = build_rpms_from(next.path(), &portable, "el8 el9 azl3", "0.1.1");
    assert!(built.status.success(), "{}", output_text(&built));

    let image = NodeImage::get();
    for dist in ["el8", "el9", "azl3"] {
        let package = |dir: &Path, name: &str, version: &str| {
            dir.join(format!("{name}-{version}-1.{dist}.x86_64.rpm"))
                .display()
                .to_string()
        };
        let node = Overlay::new(&image);
        let r = node.root();
        fs::write(node.path("etc/fstab"), format!("{NODE_FSTAB}{MANAGED}")).unwrap();
        rpm_ok(r, &["--initdb"]);
        // The scratch root's rpm database has no glibc or systemd package: --nodeps.
        rpm_ok(
            r,
            &[
                "-i",
                "--nodeps",
                &package(out.path(), "lfleet-agent", "0.1.0"),
                &package(out.path(), "lfleet-coordinator", "0.1.0"),
            ],
        );
        for file in [
            "usr/bin/lfleet-agent",
            "usr/bin/lfleet-coordinator",
            "usr/bin/lfleet",
            "usr/lib/systemd/system/lfleet-agent.service",
            "usr/lib/systemd/system/lfleet-lnet.service",
            "usr/lib/systemd/system/lfleet-coordinator.service",
            "usr/lib/kernel/install.d/90-lfleet-agent.install",
            "usr/share/man/man1/lfleet-agent.1.gz",
            "etc/lfleet/agent.toml",
            "etc/lfleet/coordinator.toml",
        ] {
            assert!(node.path(file).is_file(), "{dist}: {file} missing");
        }
        for file in PACKAGED_DOCS.map(|file| packaged_zsh(file, true)) {
            assert!(node.path(file).is_file(), "{dist}: {file} missing");
        }
        let configs = rpm_ok(
            r,
            &["-q", "--configfiles", "lfleet-agent", "lfleet-coordinator"],
        );
        assert!(
            configs.contains("/etc/lfleet/agent.toml")
                && configs.contains("/etc/lfleet/coordinator.toml"),
            "{configs}"
        );
        // The shipped agent configuration is inert: no mounts, no coordinator.
        let shipped = fs::read_to_string(node.path("etc/lfleet/agent.toml")).unwrap();
        assert!(
            !shipped
                .lines()
                .any(|l| l.starts_with("[[mounts]]") || l.starts_with("[coordinator]")),
            "{shipped}"
        );
        // %post enabled the units (systemctl, offline in the chroot).
        let wants = node.path("etc/systemd/system/multi-user.target.wants");
        for unit in [
            "lfleet-agent.service",
            "lfleet-lnet.service",
            "lfleet-coordinator.service",
        ] {
            assert!(wants.join(unit).is_symlink(), "{dist}: {unit} not enabled");
        }
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(node.path("var/lib/lfleet"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700, "{dist}");

        // What cluster-init and enrollment leave; then the administrator disables the agent.
        let configured =
            "generation = 1\n[client]\nlustre_version = \"2.15.7-33-g79ddf99\"\n# cluster-init\n";
        fs::write(node.path("etc/lfleet/agent.toml"), configured).unwrap();
        fs::create_dir_all(node.path("var/lib/lfleet/tls")).unwrap();
        fs::write(
            node.path("var/lib/lfleet/desired.json"),
            "{\"generation\": 3}\n",
        )
        .unwrap();
        let disable = node.chroot(&["systemctl", "disable", "lfleet-agent.service"]);
        assert!(disable.status.success());
        assert!(!wants.join("lfleet-agent.service").exists());

        let upgraded = rpm_ok(
            r,
            &[
                "-U",
                "--nodeps",
                &package(next.path(), "lfleet-agent", "0.1.1"),
                &package(next.path(), "lfleet-coordinator", "0.1.1"),
            ],
        );
        assert_eq!(
            rpm_ok(r, &["-q", "lfleet-agent"]).trim(),
            format!("lfleet-agent-0.1.1-1.{dist}.x86_64"),
            "{upgraded}"
        );
        assert_eq!(
            fs::read_to_string(node.path("etc/lfleet/agent.toml")).unwrap(),
            configured,
            "{dist}: the upgrade replaced the edited configuration"
        );
        assert!(node.path("var/lib/lfleet/desired.json").is_file());
        assert!(node.path("var/lib/lfleet/tls").is_dir());
        assert!(
            !wants.join("lfleet-agent.service").exists(),
            "{dist}: the upgrade re-enabled the agent the administrator disabled"
        );
        assert!(wants.join("lfleet-lnet.service").is_symlink());

        rpm_ok(r, &["-e", "lfleet-agent", "lfleet-coordinator"]);
        assert_eq!(
            paths_named(r, "lfleet", &["var/lib/rpm", "proc"]),
            Vec::<String>::new(),
            "{dist}"
        );
        assert_eq!(
            fs::read_to_string(node.path("etc/fstab")).unwrap(),
            NODE_FSTAB,
            "{dist}: the node's own fstab lines"
        );
    }
}
