//! `lfleet-agent plan|apply` as a real process against lfleet-sim nodes: install, LNet,
//! fstab, mounts and the slurmd drop-in; idempotence proved by the command log and the tree;
//! kernel upgrades; removed and hand-made mounts; booting from the ledger; bad configs.
#![allow(
    clippy::disallowed_methods,
    reason = "the test snapshots simulated node roots and runs the agent binary"
)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use lfleet_sim::{Fault, LustreVersion, NodeSpec, SimNode};

const AGENT: &str = env!("CARGO_BIN_EXE_lfleet-agent");
const EXAMPLE: &str = include_str!("../../packaging/examples/agent.toml");

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    commands: Vec<String>,
}

fn agent(node: &Path, subcommand: &str, config: Option<&Path>) -> Run {
    let log = node
        .parent()
        .unwrap()
        .join(format!("commands-{}.log", std::process::id()));
    let _ = fs::remove_file(&log);
    let mut command = Command::new(AGENT);
    command.args([
        subcommand,
        "--root",
        node.to_str().unwrap(),
        "--command-log",
        log.to_str().unwrap(),
    ]);
    if let Some(config) = config {
        command.args(["--config", config.to_str().unwrap()]);
    }
    let output = command
        .env(
            "PATH",
            format!(
                "{}:/usr/sbin:/usr/bin:/sbin:/bin",
                node.join("bin").display()
            ),
        )
        .output()
        .unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        commands: fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect(),
    }
}

fn node(dir: &Path, distro: &str, kernel: &str, lustre: LustreVersion) -> SimNode {
    let mut spec = NodeSpec::new(distro, kernel, lustre);
    spec.accelnet = true;
    SimNode::create(&dir.join("node"), &spec).unwrap()
}

/// The agent config for a node's Lustre version, with the given mounts.
fn write_config(
    dir: &Path,
    name: &str,
    generation: u64,
    lustre: LustreVersion,
    mounts: &[(&str, &str)],
) -> PathBuf {
    let mut text = EXAMPLE
        .replace("generation = 1", &format!("generation = {generation}"))
        .replace("2.15.7-33-g79ddf99", lustre.amlfs_version());
    // Drop the example's own mount table (a line that starts with it; comments mention it too).
    let first = text.find("\n[[mounts]]").unwrap();
    text.truncate(first + 1);
    for (point, fsname) in mounts {
        text.push_str(&format!("[[mounts]]\nmgs_nids = \"10.0.1.4@tcp\"\nfsname = \"{fsname}\"\nmount_point = \"{point}\"\noptions = [\"noatime\", \"flock\"]\n\n"));
    }
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    path
}

/// Every file and link under the node root, with its bytes or target.
fn snapshot(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, into: &mut BTreeMap<String, Vec<u8>>) {
        for entry in fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            let key = path.strip_prefix(base).unwrap().display().to_string();
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.is_symlink() {
                into.insert(
                    key,
                    fs::read_link(&path)
                        .unwrap()
                        .display()
                        .to_string()
                        .into_bytes(),
                );
            } else if meta.is_dir() {
                into.insert(format!("{key}/"), Vec::new());
                walk(base, &path, into);
            } else {
                into.insert(key, fs::read(&path).unwrap());
            }
        }
    }
    let mut tree = BTreeMap::new();
    walk(root, root, &mut tree);
    tree
}

/// Commands that change a node; a second apply must run none.
fn mutating(commands: &[String]) -> Vec<&String> {
    let read_only = [
        "ip route get",
        "ip -o link show",
        "lnetctl net show",
        "modinfo ",
        "apt-cache madison",
        "dpkg-query",
        "rpm -q",
        "dnf list",
        "tdnf list",
    ];
    commands
        .iter()
        .filter(|c| !read_only.iter().any(|r| c.starts_with(r)))
        .collect()
}

fn read(node: &SimNode, relative: &str) -> String {
    fs::read_to_string(node.root().join(relative)).unwrap_or_default()
}

/// Fresh node: client, LNet, fstab line, mount, drop-in; then a second apply changes nothing.
fn fresh_node_converges_and_stays_put(distro: &str, kernel: &str, lustre: LustreVersion) {
    let dir = tempfile::tempdir().unwrap();
    let node = node(dir.path(), distro, kernel, lustre);
    let config = write_config(
        dir.path(),
        "agent.toml",
        1,
        lustre,
        &[("/lustre", "lustrefs")],
    );

    let plan = agent(node.root(), "plan", Some(&config));
    assert_eq!(plan.code, 0, "{}{}", plan.stdout, plan.stderr);
    assert!(
        plan.stdout.contains(&format!(
            "would: install the Lustre {} client for kernel {kernel}",
            lustre.amlfs_version()
        )),
        "{}",
        plan.stdout
    );
    assert!(
        mutating(&plan.commands).is_empty(),
        "plan ran {:?}",
        plan.commands
    );

    let first = agent(node.root(), "apply", Some(&config));
    assert_eq!(first.code, 0, "{}{}", first.stdout, first.stderr);
    let state = node.state().unwrap();
    assert!(
        state.clients.contains(kernel),
        "client installed for the running kernel"
    );
    assert!(state.loaded_modules.contains("lustre"));
    assert_eq!(
        state.lnet_nets,
        vec![("tcp".to_string(), "eth0".to_string())],
        "LNet on eth0, never the VF"
    );
    let fstab = read(&node, "etc/fstab");
    assert!(fstab.contains("10.0.1.4@tcp:/lustrefs /lustre lustre defaults,nosuid,nodev,noatime,flock,_netdev,nofail,x-systemd.requires=lfleet-lnet.service,x-systemd.before=remote-fs.target,x-systemd.mount-timeout=120 0 0\n"), "{fstab}");
    assert!(
        fstab.starts_with(lfleet_sim::node::INITIAL_FSTAB),
        "foreign lines kept byte for byte"
    );
    assert!(read(&node, "proc/self/mountinfo").contains(" /lustre rw,noatime shared:"));
    assert_eq!(
        read(
            &node,
            "etc/systemd/system/slurmd.service.d/lfleet-mounts.conf"
        )
        .lines()
        .last(),
        Some("RequiresMountsFor=/lustre")
    );
    assert!(
        node.root().join("var/lib/lfleet/desired.json").exists(),
        "the accepted config is in the ledger"
    );

    let before = snapshot(node.root());
    let second = agent(node.root(), "apply", Some(&config));
    assert_eq!(second.code, 0, "{}{}", second.stdout, second.stderr);
    assert_eq!(second.stdout, "no changes\n");
    assert_eq!(
        mutating(&second.commands),
        Vec::<&String>::new(),
        "second apply ran mutating commands"
    );
    assert!(
        !second.commands.is_empty(),
        "the command log recorded the read-only queries"
    );
    assert_eq!(
        snapshot(node.root()),
        before,
        "second apply changed the node root"
    );
}

#[test]
fn ubuntu_2204_node_converges_and_a_second_apply_changes_nothing() {
    fresh_node_converges_and_stays_put("ubuntu-22.04", "5.15.0-1075-azure", LustreVersion::V2_15);
}

#[test]
fn alma_9_node_converges_and_a_second_apply_changes_nothing() {
    fresh_node_converges_and_stays_put(
        "alma-9",
        "5.14.0-427.13.1.el9_4.x86_64",
        LustreVersion::V2_12,
    );
}

#[test]
fn azure_linux_3_node_converges_and_a_second_apply_changes_nothing() {
    fresh_node_converges_and_stays_put("azurelinux-3", "6.6.57.1-6.azl3", LustreVersion::V2_17);
}

#[test]
fn an_installed_kernel_upgrade_gets_its_client_before_any_reboot_or_is_reported_unsafe() {
    let dir = tempfile::tempdir().unwrap();
    let running = "5.15.0-1075-azure";
    let upgrade = "5.15.0-1079-azure";
    let node = node(dir.path(), "ubuntu-22.04", running, LustreVersion::V2_15);
    let config = write_config(
        dir.path(),
        "agent.toml",
        1,
        LustreVersion::V2_15,
        &[("/lustre", "lustrefs")],
    );
    assert_eq!(agent(node.root(), "apply", Some(&config)).code, 0);

    // Not yet published: reported before the reboot, nothing half-installed.
    node.fault(&Fault::KernelUpgrade {
        kernel: upgrade.into(),
    })
    .unwrap();
    node.fault(&Fault::RepoMissing {
        kernel: upgrade.into(),
    })
    .unwrap();
    let run = agent(node.root(), "apply", Some(&config));
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains(&format!(
            "reboot-unsafe: kernel {upgrade} has no Lustre client (not-yet-published)"
        )),
        "{}",
        run.stdout
    );
    assert!(!node.state().unwrap().clients.contains(upgrade));
    assert!(
        !node
            .root()
            .join(format!("lib/modules/{upgrade}/updates"))
            .exists(),
        "nothing half-installed"
    );
    assert!(
        read(&node, "proc/self/mountinfo").contains(" /lustre "),
        "the running mount is untouched"
    );

    // Published now: the next pass retries and installs it.
    node.heal(Some("repo-missing")).unwrap();
    let run = agent(node.root(), "apply", Some(&config));
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains(&format!(
            "did: installed amlfs-lustre-client-2.15.7-33-g79ddf99={upgrade}"
        )),
        "{}",
        run.stdout
    );
    assert!(
        node.root()
            .join(format!("lib/modules/{upgrade}/updates/fs/lustre/lustre.ko"))
            .exists()
    );
    // And after the reboot the new kernel mounts with no install step.
    node.reboot(Some(upgrade)).unwrap();
    let run = agent(node.root(), "apply", Some(&config));
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(!run.stdout.contains("installed"), "{}", run.stdout);
    assert!(read(&node, "proc/self/mountinfo").contains(" /lustre "));
}

#[test]
fn a_mount_removed_from_config_is_unmounted_and_a_hand_made_mount_is_never_touched() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(
        dir.path(),
        "ubuntu-22.04",
        "5.15.0-1075-azure",
        LustreVersion::V2_15,
    );
    let both = write_config(
        dir.path(),
        "both.toml",
        1,
        LustreVersion::V2_15,
        &[("/lustre", "lustrefs"), ("/scratch", "scratch")],
    );
    assert_eq!(agent(node.root(), "apply", Some(&both)).code, 0);
    // An operator mounts something by hand.
    fs::create_dir_all(node.root().join("handmade")).unwrap();
    let out = Command::new(node.root().join("bin/mount"))
        .args(["-t", "lustre", "10.0.9.9@tcp:/other", "/handmade"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(read(&node, "proc/self/mountinfo").contains(" /scratch "));

    let one = write_config(
        dir.path(),
        "one.toml",
        2,
        LustreVersion::V2_15,
        &[("/lustre", "lustrefs")],
    );
    let run = agent(node.root(), "apply", Some(&one));
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.commands.contains(&"umount /scratch".to_string()),
        "{:?}",
        run.commands
    );
    assert!(
        !run.commands.iter().any(|c| c.contains("/handmade")),
        "{:?}",
        run.commands
    );
    let mountinfo = read(&node, "proc/self/mountinfo");
    assert!(
        !mountinfo.contains(" /scratch ")
            && mountinfo.contains(" /handmade ")
            && mountinfo.contains(" /lustre ")
    );
    let fstab = read(&node, "etc/fstab");
    assert!(
        !fstab.contains("/scratch") && fstab.contains(" /lustre lustre "),
        "{fstab}"
    );
    assert_eq!(
        read(
            &node,
            "etc/systemd/system/slurmd.service.d/lfleet-mounts.conf"
        )
        .lines()
        .last(),
        Some("RequiresMountsFor=/lustre")
    );

    // The older config is refused in favour of the ledger's newer one: /scratch stays gone.
    let run = agent(node.root(), "apply", Some(&both));
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.stdout, "no changes\n");
}

#[test]
fn a_restarted_agent_with_no_configuration_file_boots_from_the_ledger_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(
        dir.path(),
        "ubuntu-22.04",
        "5.15.0-1075-azure",
        LustreVersion::V2_15,
    );
    let config = write_config(
        dir.path(),
        "agent.toml",
        3,
        LustreVersion::V2_15,
        &[("/lustre", "lustrefs")],
    );
    assert_eq!(agent(node.root(), "apply", Some(&config)).code, 0);
    fs::remove_file(&config).unwrap();
    let before = snapshot(node.root());
    // No --config and no /etc/lfleet/agent.toml: the ledger is the desired state.
    let run = agent(node.root(), "apply", None);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.stdout, "no changes\n");
    assert_eq!(mutating(&run.commands), Vec::<&String>::new());
    assert_eq!(snapshot(node.root()), before);
    // With neither, nothing happens and the agent says why.
    let empty = tempfile::tempdir().unwrap();
    let bare = node_bare(empty.path());
    let run = agent(bare.root(), "apply", None);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("no desired configuration"),
        "{}",
        run.stderr
    );
}

fn node_bare(dir: &Path) -> SimNode {
    node(
        dir,
        "ubuntu-22.04",
        "5.15.0-1075-azure",
        LustreVersion::V2_15,
    )
}

#[test]
fn a_bad_configuration_is_refused_clearly_and_the_node_root_is_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(
        dir.path(),
        "ubuntu-22.04",
        "5.15.0-1075-azure",
        LustreVersion::V2_15,
    );
    let good = write_config(
        dir.path(),
        "good.toml",
        1,
        LustreVersion::V2_15,
        &[("/lustre", "lustrefs")],
    );
    let good_text = fs::read_to_string(&good).unwrap();
    let cases = [
        (
            "invalid NID",
            good_text.replace("10.0.1.4@tcp", "10.0.1.400@tcp"),
            "mounts[0].mgs_nids",
        ),
        (
            "relative mount point",
            good_text.replace("\"/lustre\"", "\"lustre\""),
            "is not absolute",
        ),
        (
            "mount point under /etc",
            good_text.replace("\"/lustre\"", "\"/etc/lustre\""),
            "under /etc",
        ),
        (
            "option injection",
            good_text.replace("\"noatime\", \"flock\"", "\"noatime,suid\""),
            "contains ','",
        ),
    ];
    for (what, text, fragment) in cases {
        let before = snapshot(node.root());
        let path = dir.path().join("bad.toml");
        fs::write(&path, text).unwrap();
        for subcommand in ["plan", "apply"] {
            let run = agent(node.root(), subcommand, Some(&path));
            assert_eq!(run.code, 2, "{what}: {}{}", run.stdout, run.stderr);
            assert!(run.stderr.contains(fragment), "{what}: {}", run.stderr);
            assert!(run.commands.is_empty(), "{what}: ran {:?}", run.commands);
        }
        assert_eq!(
            snapshot(node.root()),
            before,
            "{what} changed the node root"
        );
    }
    // An unknown distribution: refused before anything runs.
    fs::write(
        node.root().join("etc/os-release"),
        "ID=debian\nVERSION_ID=\"12\"\n",
    )
    .unwrap();
    let before = snapshot(node.root());
    let run = agent(node.root(), "apply", Some(&good));
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("unsupported distribution debian 12"),
        "{}",
        run.stderr
    );
    assert_eq!(
        snapshot(node.root()),
        before,
        "an unsupported node got written to"
    );
    assert!(mutating(&run.commands).is_empty());
}

/// Runs a kernel hook script from packaging/ as the kernel packages do, against the node:
/// its exit code, what it printed, and how long it took.
fn hook(node: &SimNode, script: &str, args: &[&str]) -> (i32, String, std::time::Duration) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../packaging/kernel")
        .join(script);
    let started = std::time::Instant::now();
    let output = Command::new(&path)
        .args(args)
        .env("LFLEET_AGENT", AGENT)
        .env("LFLEET_ROOT", node.root())
        .env(
            "PATH",
            format!(
                "{}:/usr/sbin:/usr/bin:/sbin:/bin",
                node.root().join("bin").display()
            ),
        )
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
        started.elapsed(),
    )
}

/// The background install a hook started (its pid is in what the hook printed), once it
/// has ended (at most 30 s).
fn background_done(said: &str) {
    let pid: u32 = said
        .split("(pid ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no background pid in {said:?}"));
    for _ in 0..300 {
        if !Path::new(&format!("/proc/{pid}")).exists() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("the background install {pid} did not end");
}

#[test]
fn the_kernel_hooks_return_at_once_and_with_no_agent_a_background_install_gets_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(
        dir.path(),
        "ubuntu-22.04",
        "5.15.0-1075-azure",
        LustreVersion::V2_15,
    );
    let config = write_config(
        dir.path(),
        "agent.toml",
        1,
        LustreVersion::V2_15,
        &[("/lustre", "lustrefs")],
    );
    assert_eq!(agent(node.root(), "apply", Some(&config)).code, 0);
    // Not published yet: the hook succeeds at once (the kernel install must not fail or
    // wait); the background install finds nothing to install and ends.
    node.fault(&Fault::KernelUpgrade {
        kernel: "5.15.0-1079-azure".into(),
    })
    .unwrap();
    node.fault(&Fault::RepoMissing {
        kernel: "5.15.0-1079-azure".into(),
    })
    .unwrap();
    let (code, said, took) = hook(
        &node,
        "postinst.d/zz-lfleet-agent",
        &["5.15.0-1079-azure", "/boot/vmlinuz-5.15.0-1079-azure"],
    );
    assert_eq!(code, 0, "{said}");
    assert!(took < std::time::Duration::from_secs(2), "{took:?}");
    assert!(said.contains("no running agent"), "{said}");
    background_done(&said);
    assert!(!node.state().unwrap().clients.contains("5.15.0-1079-azure"));
    // Published: the background install puts the client there.
    node.heal(Some("repo-missing")).unwrap();
    let (code, said, took) = hook(
        &node,
        "postinst.d/zz-lfleet-agent",
        &["5.15.0-1079-azure", "/boot/vmlinuz-5.15.0-1079-azure"],
    );
    assert_eq!(code, 0, "{said}");
    assert!(took < std::time::Duration::from_secs(2), "{took:?}");
    background_done(&said);
    assert!(node.state().unwrap().clients.contains("5.15.0-1079-azure"));

    // The RHEL-family kernel-install plugin does the same.
    let alma_dir = tempfile::tempdir().unwrap();
    let alma = node_with(
        alma_dir.path(),
        "alma-9",
        "5.14.0-427.13.1.el9_4.x86_64",
        LustreVersion::V2_15,
    );
    let config = write_config(
        alma_dir.path(),
        "agent.toml",
        1,
        LustreVersion::V2_15,
        &[("/lustre", "lustrefs")],
    );
    assert_eq!(agent(alma.root(), "apply", Some(&config)).code, 0);
    alma.fault(&Fault::KernelUpgrade {
        kernel: "5.14.0-503.11.1.el9_5.x86_64".into(),
    })
    .unwrap();
    let (code, said, took) = hook(
        &alma,
        "install.d/90-lfleet-agent.install",
        &[
            "add",
            "5.14.0-503.11.1.el9_5.x86_64",
            "/boot/vmlinuz-5.14.0-503.11.1.el9_5.x86_64",
        ],
    );
    assert_eq!(code, 0, "{said}");
    assert!(took < std::time::Duration::from_secs(2), "{took:?}");
    background_done(&said);
    assert!(
        alma.state()
            .unwrap()
            .clients
            .contains("5.14.0-503.11.1.el9_5.x86_64")
    );
    // Other kernel-install commands are none of its business.
    let (code, said, _) = hook(
        &alma,
        "install.d/90-lfleet-agent.install",
        &["remove", "5.14.0-503.11.1.el9_5.x86_64"],
    );
    assert_eq!((code, said.as_str()), (0, ""));
}

fn node_with(dir: &Path, distro: &str, kernel: &str, lustre: LustreVersion) -> SimNode {
    node(dir, distro, kernel, lustre)
}

#[test]
fn lnet_up_brings_lnet_back_after_a_reboot_from_the_ledger_alone() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(
        dir.path(),
        "ubuntu-22.04",
        "5.15.0-1075-azure",
        LustreVersion::V2_15,
    );
    let config = write_config(
        dir.path(),
        "agent.toml",
        1,
        LustreVersion::V2_15,
        &[("/lustre", "lustrefs")],
    );
    assert_eq!(agent(node.root(), "apply", Some(&config)).code, 0);
    fs::remove_file(&config).unwrap();
    node.reboot(None).unwrap();
    assert!(node.state().unwrap().lnet_nets.is_empty());
    let run = agent(node.root(), "lnet-up", None);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(
        node.state().unwrap().lnet_nets,
        vec![("tcp".to_string(), "eth0".to_string())]
    );
    assert!(
        run.commands.iter().all(|c| !c.starts_with("mount")),
        "lnet-up mounts nothing: {:?}",
        run.commands
    );
}

#[test]
fn the_repository_and_its_key_are_written_once_for_apt_and_dnf() {
    const KEY: &str = "-----BEGIN PGP PUBLIC KEY BLOCK-----\nconstructed test key, not a real one\n-----END PGP PUBLIC KEY BLOCK-----\n";
    for (distro, kernel, repo_file, key_file, line) in [
        (
            "ubuntu-22.04",
            "5.15.0-1075-azure",
            "etc/apt/sources.list.d/lfleet-amlfs.list",
            "etc/apt/keyrings/lfleet-amlfs.asc",
            "deb [arch=amd64 signed-by=/etc/apt/keyrings/lfleet-amlfs.asc] https://mirror.example.invalid/repos/amlfs-jammy/ jammy main",
        ),
        (
            "alma-9",
            "5.14.0-427.13.1.el9_4.x86_64",
            "etc/yum.repos.d/lfleet-amlfs.repo",
            "etc/pki/rpm-gpg/lfleet-amlfs.asc",
            "gpgcheck=1",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let node = node(dir.path(), distro, kernel, LustreVersion::V2_15);
        fs::create_dir_all(node.root().join("etc/lfleet")).unwrap();
        fs::write(node.root().join("etc/lfleet/amlfs.asc"), KEY).unwrap();
        let path = write_config(
            dir.path(),
            "agent.toml",
            1,
            LustreVersion::V2_15,
            &[("/lustre", "lustrefs")],
        );
        let url = if distro.starts_with("ubuntu") {
            "https://mirror.example.invalid/repos/amlfs-{codename}/"
        } else {
            "https://mirror.example.invalid/yumrepos/amlfs-el{major}"
        };
        let text = fs::read_to_string(&path).unwrap()
            + &format!("[repository]\nurl = \"{url}\"\nkey_file = \"/etc/lfleet/amlfs.asc\"\n");
        fs::write(&path, text).unwrap();
        let run = agent(node.root(), "apply", Some(&path));
        assert_eq!(run.code, 0, "{distro}: {}{}", run.stdout, run.stderr);
        assert!(
            read(&node, repo_file).lines().any(|l| l == line),
            "{distro}: {}",
            read(&node, repo_file)
        );
        assert_eq!(read(&node, key_file), KEY);
        let again = agent(node.root(), "apply", Some(&path));
        assert_eq!(again.stdout, "no changes\n", "{distro}");
        // An edited repository file is put back.
        fs::write(node.root().join(repo_file), "edited\n").unwrap();
        let run = agent(node.root(), "apply", Some(&path));
        assert_eq!(run.stdout, format!("did: write /{repo_file}\n"), "{distro}");
    }
}

#[test]
fn dkms_builds_an_unpublished_kernels_client_only_when_allowed_and_secure_boot_is_off() {
    let upgrade = "5.15.0-1079-azure";
    for (secure_boot, dkms, expect_built) in [
        (Some(false), "allowed", true),
        (Some(true), "allowed", false),
        (None, "forbidden", false),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = NodeSpec::new("ubuntu-22.04", "5.15.0-1075-azure", LustreVersion::V2_15);
        spec.secure_boot = secure_boot;
        let node = SimNode::create(&dir.path().join("node"), &spec).unwrap();
        let path = write_config(
            dir.path(),
            "agent.toml",
            1,
            LustreVersion::V2_15,
            &[("/lustre", "lustrefs")],
        );
        let text = fs::read_to_string(&path)
            .unwrap()
            .replace("dkms = \"forbidden\"", &format!("dkms = \"{dkms}\""));
        fs::write(&path, text).unwrap();
        assert_eq!(agent(node.root(), "apply", Some(&path)).code, 0);
        node.fault(&Fault::KernelUpgrade {
            kernel: upgrade.into(),
        })
        .unwrap();
        node.fault(&Fault::RepoMissing {
            kernel: upgrade.into(),
        })
        .unwrap();
        let run = agent(node.root(), "apply", Some(&path));
        let built = node
            .root()
            .join(format!("lib/modules/{upgrade}/updates/dkms/lustre.ko"))
            .exists();
        assert_eq!(
            built, expect_built,
            "{secure_boot:?} {dkms}: {}{}",
            run.stdout, run.stderr
        );
        let tried = run
            .commands
            .iter()
            .any(|c| c.contains("amlfs-lustre-client-dkms-"));
        if expect_built {
            assert_eq!(run.code, 0, "{}", run.stdout);
            assert!(
                run.stdout.contains(&format!(
                    "did: built the Lustre client for kernel {upgrade} with DKMS"
                )),
                "{}",
                run.stdout
            );
        } else {
            assert!(
                !tried,
                "{secure_boot:?} {dkms}: DKMS must not be tried: {:?}",
                run.commands
            );
            assert_eq!(run.code, 1);
            assert!(
                run.stdout.contains(&format!(
                    "reboot-unsafe: kernel {upgrade} has no Lustre client (not-yet-published)"
                )),
                "{}",
                run.stdout
            );
            if secure_boot == Some(true) {
                assert!(
                    run.stdout.contains("DKMS not tried: Secure Boot is on"),
                    "{}",
                    run.stdout
                );
            }
        }
    }
}

/// A client version change: a busy mount keeps the old module loaded (stale-module, nothing
/// unloaded behind the job holding it); once the mount is free the agent unmounts its own
/// mount, reloads the module at the new version and mounts again.
#[test]
fn a_client_version_change_reloads_the_module_unless_a_busy_mount_holds_it_stale() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = NodeSpec::new("ubuntu-22.04", "5.15.0-1075-azure", LustreVersion::V2_15);
    spec.accelnet = true;
    spec.repo_versions = vec![LustreVersion::V2_16];
    let node = SimNode::create(&dir.path().join("node"), &spec).unwrap();
    let old = write_config(
        dir.path(),
        "old.toml",
        1,
        LustreVersion::V2_15,
        &[("/lustre", "lustrefs")],
    );
    assert_eq!(agent(node.root(), "apply", Some(&old)).code, 0);
    assert_eq!(read(&node, "sys/module/lustre/version").trim(), "2.15.7");

    node.fault(&Fault::MountBusy {
        mount: Some("/lustre".into()),
    })
    .unwrap();
    let new = write_config(
        dir.path(),
        "new.toml",
        2,
        LustreVersion::V2_16,
        &[("/lustre", "lustrefs")],
    );
    let held = agent(node.root(), "apply", Some(&new));
    assert_eq!(held.code, 1, "{}{}", held.stdout, held.stderr);
    assert!(held.stdout.contains("(stale-module)"), "{}", held.stdout);
    assert!(
        held.stdout
            .contains("the loaded lustre module 2.15.7 cannot be unloaded to load the installed 2.16.1-12-g8e3f1a2"),
        "{}",
        held.stdout
    );
    assert!(
        !held.commands.iter().any(|c| c.starts_with("lustre_rmmod")),
        "{:?}",
        held.commands
    );
    // The new client is installed; the old module and the busy mount stay as they were.
    assert!(
        read(
            &node,
            "lib/modules/5.15.0-1075-azure/updates/fs/lustre/lustre.ko"
        )
        .contains("version=2.16.1\n"),
        "{}",
        held.stdout
    );
    assert_eq!(read(&node, "sys/module/lustre/version").trim(), "2.15.7");
    assert!(read(&node, "proc/self/mountinfo").contains(" /lustre "));

    node.heal(Some("mount-busy")).unwrap();
    let newer = write_config(
        dir.path(),
        "newer.toml",
        3,
        LustreVersion::V2_16,
        &[("/lustre", "lustrefs")],
    );
    let reloaded = agent(node.root(), "apply", Some(&newer));
    assert_eq!(reloaded.code, 0, "{}{}", reloaded.stdout, reloaded.stderr);
    // The command that first starts with `step`, by position in the log.
    let at = |step: &str| {
        reloaded
            .commands
            .iter()
            .position(|c| c.starts_with(step))
            .unwrap_or_else(|| panic!("no {step} in {:?}", reloaded.commands))
    };
    let (unmounted, unloaded, loaded) = (at("umount"), at("lustre_rmmod"), at("modprobe"));
    let remounted = reloaded.commands[loaded..]
        .iter()
        .any(|c| c.starts_with("mount ") && c.contains("/lustre"));
    assert!(
        unmounted < unloaded && unloaded < loaded && remounted,
        "{:?}",
        reloaded.commands
    );
    assert_eq!(
        read(&node, "sys/module/lustre/version").trim(),
        "2.16.1",
        "{}",
        reloaded.stdout
    );
    assert!(read(&node, "proc/self/mountinfo").contains(" /lustre "));
    let again = agent(node.root(), "apply", Some(&newer));
    assert_eq!(
        (again.code, again.stdout.as_str()),
        (0, "no changes\n"),
        "{}",
        again.stderr
    );
}

#[test]
fn every_other_supported_distribution_converges_and_stays_put() {
    for (distro, kernel, lustre) in [
        ("ubuntu-20.04", "5.15.0-1089-azure", LustreVersion::V2_15),
        ("ubuntu-24.04", "6.8.0-1026-azure", LustreVersion::V2_16),
        (
            "alma-8",
            "4.18.0-553.16.1.el8_10.x86_64",
            LustreVersion::V2_10,
        ),
        (
            "rocky-9",
            "5.14.0-503.11.1.el9_5.x86_64",
            LustreVersion::V2_15,
        ),
    ] {
        fresh_node_converges_and_stays_put(distro, kernel, lustre);
    }
}

#[test]
fn an_owned_mount_that_drifted_to_another_source_is_remounted() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(
        dir.path(),
        "ubuntu-22.04",
        "5.15.0-1075-azure",
        LustreVersion::V2_15,
    );
    let path = write_config(
        dir.path(),
        "agent.toml",
        1,
        LustreVersion::V2_15,
        &[("/lustre", "lustrefs")],
    );
    assert_eq!(agent(node.root(), "apply", Some(&path)).code, 0);
    // Someone remounts the managed mount point from another MGS.
    let bin = node.root().join("bin");
    assert!(
        Command::new(bin.join("umount"))
            .arg("/lustre")
            .status()
            .unwrap()
            .success()
    );
    assert!(
        Command::new(bin.join("mount"))
            .args(["-t", "lustre", "10.0.1.99@tcp:/lustrefs", "/lustre"])
            .status()
            .unwrap()
            .success()
    );
    let run = agent(node.root(), "apply", Some(&path));
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("did: unmount /lustre (source is 10.0.1.99@tcp:/lustrefs but should be 10.0.1.4@tcp:/lustrefs)"), "{}", run.stdout);
    let mounts: Vec<&String> = run
        .commands
        .iter()
        .filter(|c| c.starts_with("umount") || c.starts_with("mount"))
        .collect();
    assert_eq!(
        mounts,
        [
            "umount /lustre",
            "mount -t lustre -o nosuid,nodev,noatime,flock 10.0.1.4@tcp:/lustrefs /lustre"
        ],
        "unmount before mount"
    );
    assert!(read(&node, "proc/self/mountinfo").contains(" - lustre 10.0.1.4@tcp:/lustrefs "));
}

#[test]
fn on_dnf_nodes_a_missing_kernel_is_classified_by_the_series_the_repository_serves() {
    let running = "5.14.0-427.13.1.el9_4.x86_64";
    for (upgrade, class) in [
        ("5.14.0-427.20.1.el9_4.x86_64", "not-yet-published"),
        ("5.14.0-503.11.1.el9_5.x86_64", "kernel-series-unsupported"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let node = node(dir.path(), "alma-9", running, LustreVersion::V2_15);
        let path = write_config(
            dir.path(),
            "agent.toml",
            1,
            LustreVersion::V2_15,
            &[("/lustre", "lustrefs")],
        );
        assert_eq!(agent(node.root(), "apply", Some(&path)).code, 0);
        node.fault(&Fault::KernelUpgrade {
            kernel: upgrade.into(),
        })
        .unwrap();
        node.fault(&Fault::RepoMissing {
            kernel: upgrade.into(),
        })
        .unwrap();
        let run = agent(node.root(), "apply", Some(&path));
        assert_eq!(run.code, 1);
        assert!(
            run.stdout.contains(&format!(
                "reboot-unsafe: kernel {upgrade} has no Lustre client ({class})"
            )),
            "{}",
            run.stdout
        );
        assert!(
            run.commands
                .iter()
                .any(|c| c == "dnf list --showduplicates amlfs-lustre-client-2.15.7_33_g79ddf99"),
            "{:?}",
            run.commands
        );
    }
}

#[test]
fn a_module_reporting_the_full_git_describe_version_is_not_stale() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(
        dir.path(),
        "ubuntu-22.04",
        "5.15.0-1075-azure",
        LustreVersion::V2_15,
    );
    let path = write_config(
        dir.path(),
        "agent.toml",
        1,
        LustreVersion::V2_15,
        &[("/lustre", "lustrefs")],
    );
    assert_eq!(agent(node.root(), "apply", Some(&path)).code, 0);
    // What lustre-release's LUSTRE-VERSION-GEN makes of 2.15.7-33-g79ddf99.
    fs::write(
        node.root().join("sys/module/lustre/version"),
        "2.15.7_33_g79ddf99\n",
    )
    .unwrap();
    let run = agent(node.root(), "apply", Some(&path));
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "no changes\n"),
        "{}",
        run.stderr
    );
}
