//! lfleet-sim end to end: nodes are created by the built binary and changed through their
//! `bin/` shims run as real processes, as the agent will run them.
#![allow(
    clippy::disallowed_methods,
    reason = "the test inspects simulated node roots and runs the simulator's binary"
)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const SIM: &str = env!("CARGO_BIN_EXE_lfleet-sim");
const JAMMY_KERNEL: &str = "5.15.0-1075-azure";
const ALMA_KERNEL: &str = "5.14.0-427.13.1.el9_4.x86_64";

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn sim(args: &[&str]) -> Out {
    let output = Command::new(SIM).args(args).output().unwrap();
    Out {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs a command from the node's `bin/` by name, with the node's bin first on PATH.
fn shim(node: &Path, program: &str, args: &[&str]) -> Out {
    let path = format!("{}:/usr/bin:/bin", node.join("bin").display());
    let output = Command::new(node.join("bin").join(program))
        .args(args)
        .env("PATH", path)
        .output()
        .unwrap();
    Out {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn create(dir: &Path, distro: &str, kernel: &str, lustre: &str, extra: &[&str]) -> PathBuf {
    let node = dir.join(distro);
    let mut args = vec![
        "node",
        "create",
        node.to_str().unwrap(),
        "--distro",
        distro,
        "--kernel",
        kernel,
        "--lustre",
        lustre,
    ];
    args.extend(extra);
    let out = sim(&args);
    assert_eq!(out.code, 0, "{}", out.stderr);
    node
}

fn read(node: &Path, relative: &str) -> String {
    fs::read_to_string(node.join(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

fn glob_one(node: &Path, dir: &str, prefix: &str) -> String {
    let mut names: Vec<String> = fs::read_dir(node.join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort();
    assert!(!names.is_empty(), "nothing named {prefix}* in {dir}");
    names.remove(0)
}

fn mount_lustre(node: &Path) -> Out {
    fs::create_dir_all(node.join("lustre")).unwrap();
    shim(
        node,
        "mount",
        &[
            "-t",
            "lustre",
            "-o",
            "noatime,flock",
            "10.0.1.4@tcp:/lustrefs",
            "/lustre",
        ],
    )
}

#[test]
fn ubuntu_2204_with_lustre_215_installs_mounts_and_lays_out_files_in_debugfs() {
    let dir = tempfile::tempdir().unwrap();
    let node = create(dir.path(), "ubuntu-22.04", JAMMY_KERNEL, "2.15", &[]);
    assert!(read(&node, "etc/os-release").contains("VERSION_CODENAME=jammy"));
    assert_eq!(
        read(&node, "proc/sys/kernel/osrelease"),
        format!("{JAMMY_KERNEL}\n")
    );
    assert!(node.join(format!("boot/vmlinuz-{JAMMY_KERNEL}")).exists());
    assert!(!node.join("bin/dnf").exists(), "an Ubuntu node has no dnf");

    // No module before the package: modprobe fails as kmod does, mount as mount.lustre does.
    let out = shim(&node, "modprobe", &["lustre"]);
    assert_eq!((out.code, out.stderr.as_str()), (1, format!("modprobe: FATAL: Module lustre not found in directory /lib/modules/{JAMMY_KERNEL}\n").as_str()));
    let out = mount_lustre(&node);
    assert_eq!(out.code, 19, "{}", out.stderr);
    assert!(out.stderr.starts_with(
        "mount.lustre: mount 10.0.1.4@tcp:/lustrefs at /lustre failed: No such device"
    ));

    let package = format!("amlfs-lustre-client-2.15.7-33-g79ddf99={JAMMY_KERNEL}");
    let out = shim(
        &node,
        "apt-get",
        &["install", "-y", "-o", "DPkg::Lock::Timeout=60", &package],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        node.join(format!(
            "lib/modules/{JAMMY_KERNEL}/updates/fs/lustre/lustre.ko"
        ))
        .exists()
    );
    let out = shim(
        &node,
        "dpkg-query",
        &[
            "-W",
            "-f=${Status} ${Version}\\n",
            "amlfs-lustre-client-2.15.7-33-g79ddf99",
        ],
    );
    assert_eq!(out.stdout, format!("install ok installed {JAMMY_KERNEL}\n"));
    assert_eq!(shim(&node, "modprobe", &["lustre"]).code, 0);
    assert_eq!(read(&node, "sys/module/lustre/version"), "2.15.7\n");
    assert!(read(&node, "proc/filesystems").contains("nodev\tlustre\n"));

    let out = mount_lustre(&node);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mountinfo = read(&node, "proc/self/mountinfo");
    let line = mountinfo.lines().last().unwrap();
    assert!(line.ends_with("/ /lustre rw,noatime shared:800 - lustre 10.0.1.4@tcp:/lustrefs rw,flock,lazystatfs,encrypt"), "{line}");
    // 2.12+: stats in debugfs; import and state in /proc; kbytes in sysfs; LNet stats in debugfs.
    let llite = glob_one(&node, "sys/kernel/debug/lustre/llite", "lustrefs-");
    let instance = llite.trim_start_matches("lustrefs-").to_owned();
    assert_eq!(instance.len(), 16);
    let stats = read(
        &node,
        &format!("sys/kernel/debug/lustre/llite/{llite}/stats"),
    );
    let header: Vec<&str> = stats
        .lines()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(
        header,
        ["snapshot_time", "start_time", "elapsed_time"],
        "a fresh mount's stats are header only"
    );
    for ost in 0..4 {
        let osc = format!("lustrefs-OST{ost:04x}-osc-{instance}");
        assert!(
            node.join(format!("sys/kernel/debug/lustre/osc/{osc}/stats"))
                .exists()
        );
        let import = read(&node, &format!("proc/fs/lustre/osc/{osc}/import"));
        assert!(
            import.contains(&format!(
                "    name: {osc}\n    target: lustrefs-OST{ost:04x}_UUID\n    state: FULL\n"
            )),
            "{import}"
        );
        assert!(import.contains("       idle: 0 sec\n") && !import.contains("nids_stats"));
        assert!(
            node.join(format!("sys/fs/lustre/osc/{osc}/kbytesavail"))
                .exists()
        );
        assert!(
            !node
                .join(format!("proc/fs/lustre/osc/{osc}/stats"))
                .exists()
        );
    }
    assert!(
        node.join(format!(
            "proc/fs/lustre/mdc/lustrefs-MDT0000-mdc-{instance}/md_stats"
        ))
        .exists()
    );
    assert!(node.join("sys/kernel/debug/lnet/stats").exists());
    assert_eq!(read(&node, "sys/fs/lustre/health_check"), "healthy\n");
    assert_eq!(
        shim(&node, "lfs", &["getname", "/lustre"]).stdout,
        format!("lustrefs-{instance} /lustre\n")
    );

    // umount removes the line and the devices; a second mount gets a fresh instance.
    assert_eq!(shim(&node, "umount", &["/lustre"]).code, 0);
    assert!(!read(&node, "proc/self/mountinfo").contains("lustre"));
    assert!(
        !node
            .join(format!("sys/kernel/debug/lustre/llite/{llite}"))
            .exists()
    );
    let out = shim(&node, "umount", &["/lustre"]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (32, "umount: /lustre: not mounted.\n")
    );
    assert_eq!(mount_lustre(&node).code, 0);
    let again = glob_one(&node, "sys/kernel/debug/lustre/llite", "lustrefs-");
    assert_ne!(again, llite, "a remount must get a new instance");
}

#[test]
fn alma_9_with_lustre_210_installs_with_dnf_and_keeps_files_in_proc() {
    let dir = tempfile::tempdir().unwrap();
    let node = create(dir.path(), "alma-9", ALMA_KERNEL, "2.10", &[]);
    assert!(!node.join("bin/apt-get").exists());
    let name = "amlfs-lustre-client-2.10.8_1_g5a1e2b3-5.14.0.427.13.1.el9.4-1";
    assert_eq!(shim(&node, "rpm", &["-q", name]).code, 1);
    let out = shim(&node, "dnf", &["install", "-y", name]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.ends_with("Complete!\n"));
    assert!(
        node.join(format!(
            "lib/modules/{ALMA_KERNEL}/extra/lustre-client/fs/lustre.ko"
        ))
        .exists()
    );
    assert_eq!(
        shim(&node, "rpm", &["-q", name]).stdout,
        format!("{name}.x86_64\n")
    );
    assert_eq!(shim(&node, "modprobe", &["lustre"]).code, 0);
    assert_eq!(mount_lustre(&node).code, 0);
    // 2.10: everything under /proc/fs/lustre, LNet stats in /proc/sys/lnet.
    let llite = glob_one(&node, "proc/fs/lustre/llite", "lustrefs-");
    let stats = read(&node, &format!("proc/fs/lustre/llite/{llite}/stats"));
    assert_eq!(
        stats.lines().count(),
        1,
        "2.10 has only snapshot_time in the header: {stats}"
    );
    assert!(stats.starts_with("snapshot_time             ") && stats.ends_with(" secs.nsecs\n"));
    let instance = llite.trim_start_matches("lustrefs-");
    let import = read(
        &node,
        &format!("proc/fs/lustre/osc/lustrefs-OST0000-osc-{instance}/import"),
    );
    assert!(!import.contains("idle:"), "2.10 imports have no idle line");
    assert!(
        node.join(format!(
            "proc/fs/lustre/osc/lustrefs-OST0000-osc-{instance}/kbytesavail"
        ))
        .exists()
    );
    assert!(node.join("proc/sys/lnet/stats").exists());
    assert!(!node.join("sys/kernel/debug/lustre").exists());
}

#[test]
fn lustre_217_moves_imports_to_debugfs_and_216_quotes_nids() {
    let dir = tempfile::tempdir().unwrap();
    for (lustre, import_dir) in [
        ("2.16", "proc/fs/lustre"),
        ("2.17", "sys/kernel/debug/lustre"),
    ] {
        let node = create(
            &dir.path().join(lustre),
            "ubuntu-24.04",
            "6.8.0-1026-azure",
            lustre,
            &[],
        );
        let version = if lustre == "2.16" {
            "2.16.1-12-g8e3f1a2"
        } else {
            "2.17.0-19-gbb5310f"
        };
        let out = shim(
            &node,
            "apt-get",
            &[
                "install",
                "-y",
                &format!("amlfs-lustre-client-{version}=6.8.0-1026-azure"),
            ],
        );
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert_eq!(shim(&node, "modprobe", &["lustre"]).code, 0);
        assert_eq!(mount_lustre(&node).code, 0);
        let osc = glob_one(&node, &format!("{import_dir}/osc"), "lustrefs-OST0000");
        let import = read(&node, &format!("{import_dir}/osc/{osc}/import"));
        assert!(
            import.contains("failover_nids: [ \"10.0.1.4@tcp\" ]")
                && import.contains("nids_stats:"),
            "{import}"
        );
        let stats = read(&node, &format!("sys/kernel/debug/lustre/osc/{osc}/stats"));
        let pad = if lustre == "2.17" { 35 } else { 25 };
        assert_eq!(
            stats.find("1"),
            Some(pad + 1),
            "name column of {lustre}: {stats}"
        );
    }
}

/// Every file of a node (outside .sim) plus what the shims report, for before/after diffs.
fn observe(node: &Path) -> BTreeMap<String, String> {
    fn walk(base: &Path, dir: &Path, into: &mut BTreeMap<String, String>) {
        for entry in fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            let relative = path.strip_prefix(base).unwrap().display().to_string();
            if relative == ".sim" {
                continue;
            }
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.is_symlink() {
                into.insert(
                    relative,
                    format!("-> {}", fs::read_link(&path).unwrap().display()),
                );
            } else if meta.is_dir() {
                walk(base, &path, into);
            } else {
                into.insert(relative, fs::read_to_string(&path).unwrap_or_default());
            }
        }
    }
    let mut seen = BTreeMap::new();
    walk(node, node, &mut seen);
    seen.insert(
        "$ lnetctl net show -v 3".into(),
        shim(node, "lnetctl", &["net", "show", "-v", "3"]).stdout,
    );
    seen.insert(
        "$ ip -o link show".into(),
        shim(node, "ip", &["-o", "link", "show"]).stdout,
    );
    seen.insert(
        "$ ip route get 10.0.1.4".into(),
        shim(node, "ip", &["route", "get", "10.0.1.4"]).stdout,
    );
    seen.insert(
        "$ apt-cache madison".into(),
        shim(
            node,
            "apt-cache",
            &["madison", "amlfs-lustre-client-2.15.7-33-g79ddf99"],
        )
        .stdout,
    );
    seen
}

fn changed(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> Vec<String> {
    let keys: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    keys.into_iter()
        .filter(|k| before.get(*k) != after.get(*k))
        .cloned()
        .collect()
}

#[test]
fn each_fault_changes_exactly_what_it_claims_and_heal_undoes_it() {
    let dir = tempfile::tempdir().unwrap();
    let node = create(
        dir.path(),
        "ubuntu-22.04",
        JAMMY_KERNEL,
        "2.15",
        &["--ib", "2", "--ib-rate", "200", "--accelnet"],
    );
    assert_eq!(
        shim(
            &node,
            "apt-get",
            &[
                "install",
                "-y",
                &format!("amlfs-lustre-client-2.15.7-33-g79ddf99={JAMMY_KERNEL}")
            ]
        )
        .code,
        0
    );
    assert_eq!(shim(&node, "modprobe", &["lustre"]).code, 0);
    assert_eq!(mount_lustre(&node).code, 0);
    let inst = glob_one(&node, "sys/kernel/debug/lustre/llite", "lustrefs-")
        .trim_start_matches("lustrefs-")
        .to_owned();
    let osc1 = format!("proc/fs/lustre/osc/lustrefs-OST0001-osc-{inst}");
    let baseline = observe(&node);
    let n = node.to_str().unwrap();

    // (fault arguments, exactly the keys that must change)
    let all_mount_paths: Vec<String> = baseline
        .keys()
        .filter(|k| k.contains(&inst) || k.contains("lustre/mgc/"))
        .cloned()
        .collect();
    let mut lost = all_mount_paths.clone();
    lost.push("proc/self/mountinfo".into());
    let ib_counter = "sys/class/infiniband/mlx5_0/ports/1/counters/symbol_error".to_string();
    let vf_paths: Vec<String> = baseline
        .keys()
        .filter(|k| k.starts_with("sys/class/net/enP30832s1/") || k.ends_with("lower_enP30832s1"))
        .cloned()
        .collect();
    let mut vf = vf_paths.clone();
    vf.extend(["proc/net/dev".to_string(), "$ ip -o link show".to_string()]);
    let upgrade = "5.15.0-1079-azure";
    let table: Vec<(Vec<&str>, Vec<String>)> = vec![
        (
            vec!["import", "--target", "OST0001", "--state", "DISCONN"],
            vec![format!("{osc1}/import"), format!("{osc1}/state")],
        ),
        (
            vec!["import", "--target", "OST0001", "--state", "EVICTED"],
            vec![
                "dev/kmsg".into(),
                format!("{osc1}/import"),
                format!("{osc1}/state"),
            ],
        ),
        (
            vec!["import", "--target", "MDT0000", "--state", "CONNECTING"],
            vec![
                format!("proc/fs/lustre/mdc/lustrefs-MDT0000-mdc-{inst}/import"),
                format!("proc/fs/lustre/mdc/lustrefs-MDT0000-mdc-{inst}/state"),
            ],
        ),
        (vec!["mount-lost"], lost),
        (vec!["lbug"], vec!["sys/fs/lustre/health_check".into()]),
        (
            vec!["not-healthy", "--target", "OST0001"],
            vec!["sys/fs/lustre/health_check".into()],
        ),
        (
            vec!["lnet-health", "--value", "100"],
            vec!["$ lnetctl net show -v 3".into()],
        ),
        (
            vec!["ib-port-down", "--hca", "mlx5_0"],
            vec![
                "$ ip -o link show".into(),
                "sys/class/infiniband/mlx5_0/ports/1/phys_state".into(),
                "sys/class/infiniband/mlx5_0/ports/1/state".into(),
                "sys/class/net/ib0/operstate".into(),
            ],
        ),
        (
            vec!["ib-errors", "--hca", "mlx5_0", "--by", "7"],
            vec![ib_counter.clone()],
        ),
        (
            vec!["ib-saturate", "--hca", "mlx5_0"],
            vec![ib_counter.clone()],
        ),
        (
            vec!["ib-degraded", "--hca", "mlx5_0", "--width", "2"],
            vec!["sys/class/infiniband/mlx5_0/ports/1/rate".into()],
        ),
        (vec!["vf-removed"], vf),
        (
            vec!["vf-down"],
            vec![
                "$ ip -o link show".into(),
                "sys/class/net/enP30832s1/operstate".into(),
            ],
        ),
        // Idle shows only when traffic moves (below); a route shows in `ip route get`.
        (vec!["vf-idle"], vec![]),
        (vec!["mgs-via-vf"], vec!["$ ip route get 10.0.1.4".into()]),
        (
            vec!["lnet-health", "--value", "300", "--recover-after", "3600"],
            vec!["$ lnetctl net show -v 3".into()],
        ),
        // Package faults change what the package managers answer, not the node's files
        // (package_faults_fail_each_package_manager_in_its_own_words).
        (vec!["repo-unreachable"], vec![]),
        (vec!["package-lock-held"], vec![]),
        (vec!["dkms-build-fails"], vec![]),
        (vec!["dkms-slow", "--seconds", "1"], vec![]),
        (
            vec!["repo-dependency-missing", "--kernel", JAMMY_KERNEL],
            vec![],
        ),
        (
            vec!["kernel-upgrade", "--kernel", upgrade],
            vec![
                format!("boot/config-{upgrade}"),
                format!("boot/vmlinuz-{upgrade}"),
                format!("lib/modules/{upgrade}/kernel/.sim-kernel"),
                format!("lib/modules/{upgrade}/modules.dep"),
                "$ apt-cache madison".into(),
            ],
        ),
        (
            vec!["repo-missing", "--kernel", JAMMY_KERNEL],
            vec!["$ apt-cache madison".into()],
        ),
    ];
    for (fault, mut expected) in table {
        let mut args = vec!["fault", n];
        args.extend(&fault);
        let out = sim(&args);
        assert_eq!(out.code, 0, "{fault:?}: {}", out.stderr);
        let after = observe(&node);
        expected.sort();
        assert_eq!(
            changed(&baseline, &after),
            expected,
            "fault {fault:?} changed something else"
        );
        let out = sim(&["heal", n]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        let healed = observe(&node);
        assert_eq!(
            changed(&baseline, &healed),
            Vec::<String>::new(),
            "heal after {fault:?} left changes"
        );
    }
    // Spot checks of what the faults wrote.
    sim(&[
        "fault", n, "import", "--target", "OST0001", "--state", "EVICTED",
    ]);
    assert!(read(&node, &format!("{osc1}/import")).contains("    state: EVICTED\n"));
    assert!(read(&node, &format!("{osc1}/state")).starts_with("current_state: EVICTED\n"));
    assert!(read(&node, "dev/kmsg").contains(&format!("LustreError: 167-0: lustrefs-OST0001-osc-{inst}: This client was evicted by lustrefs-OST0001; in progress operations using this service will fail.")));
    sim(&[
        "fault",
        n,
        "ib-saturate",
        "--hca",
        "mlx5_1",
        "--counter",
        "link_downed",
    ]);
    assert_eq!(
        read(
            &node,
            "sys/class/infiniband/mlx5_1/ports/1/counters/link_downed"
        ),
        "255\n"
    );
    sim(&["fault", n, "lnet-health", "--value", "0"]);
    assert!(
        shim(&node, "lnetctl", &["net", "show", "-v", "3"])
            .stdout
            .contains("health value: 0\n")
    );
    sim(&["fault", n, "not-healthy", "--target", "OST0001"]);
    assert_eq!(
        read(&node, "sys/fs/lustre/health_check"),
        format!("device lustrefs-OST0001-osc-{inst} reported unhealthy\nNOT HEALTHY\n")
    );
    // A dip that recovers: low, then back at 1000 once its time has passed.
    sim(&[
        "fault",
        n,
        "lnet-health",
        "--value",
        "200",
        "--recover-after",
        "1",
    ]);
    let net_show = || shim(&node, "lnetctl", &["net", "show", "-v", "3"]).stdout;
    assert!(net_show().contains("health value: 200\n"), "{}", net_show());
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert!(
        net_show().contains("                  health value: 1000\n                  interrupts"),
        "{}",
        net_show()
    );
    assert_eq!(
        read(&node, "sys/class/infiniband/mlx5_1/ports/1/rate"),
        "200 Gb/sec (4X HDR)\n"
    );
    sim(&["fault", n, "ib-degraded", "--hca", "mlx5_1", "--width", "2"]);
    assert_eq!(
        read(&node, "sys/class/infiniband/mlx5_1/ports/1/rate"),
        "100 Gb/sec (2X HDR)\n"
    );
    sim(&["fault", n, "mgs-via-vf"]);
    assert!(
        shim(&node, "ip", &["route", "get", "10.0.1.4"])
            .stdout
            .starts_with("10.0.1.4 via 10.0.0.1 dev enP30832s1 src 10.0.0.5")
    );
    // An idle VF: the synthetic NIC's bytes move under load, the VF's do not.
    sim(&["fault", n, "vf-idle"]);
    let vf_rx = read(&node, "sys/class/net/enP30832s1/statistics/rx_bytes");
    let eth_rx = read(&node, "sys/class/net/eth0/statistics/rx_bytes");
    sim(&[
        "load",
        n,
        "--read-mbps",
        "100",
        "--seconds",
        "2",
        "--instant",
    ]);
    assert_eq!(
        read(&node, "sys/class/net/enP30832s1/statistics/rx_bytes"),
        vf_rx
    );
    assert_ne!(
        read(&node, "sys/class/net/eth0/statistics/rx_bytes"),
        eth_rx
    );
    // Bad fault arguments change nothing.
    let before = observe(&node);
    for bad in [
        vec!["import", "--target", "OST0009", "--state", "DISCONN"],
        vec!["import", "--target", "OST0001", "--state", "FULL"],
        vec!["ib-port-down", "--hca", "mlx5_7"],
        vec!["ib-degraded", "--hca", "mlx5_0", "--width", "4"],
        vec!["lnet-health", "--value", "2000"],
        vec!["nonsense"],
    ] {
        let mut args = vec!["fault", n];
        args.extend(&bad);
        let out = sim(&args);
        assert_eq!(out.code, 2, "{bad:?} should be refused");
        assert!(!out.stderr.is_empty());
    }
    assert_eq!(changed(&before, &observe(&node)), Vec::<String>::new());
}

#[test]
fn package_managers_fail_as_the_real_ones_when_the_repository_lacks_a_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let ubuntu = create(dir.path(), "ubuntu-22.04", JAMMY_KERNEL, "2.15", &[]);
    sim(&[
        "fault",
        ubuntu.to_str().unwrap(),
        "repo-missing",
        "--kernel",
        JAMMY_KERNEL,
    ]);
    let out = shim(
        &ubuntu,
        "apt-get",
        &[
            "install",
            "-y",
            &format!("amlfs-lustre-client-2.15.7-33-g79ddf99={JAMMY_KERNEL}"),
        ],
    );
    assert_eq!(out.code, 100);
    assert_eq!(
        out.stderr,
        format!(
            "E: Version '{JAMMY_KERNEL}' for 'amlfs-lustre-client-2.15.7-33-g79ddf99' was not found\n"
        )
    );
    assert!(
        !ubuntu
            .join(format!("lib/modules/{JAMMY_KERNEL}/updates"))
            .exists(),
        "nothing installed"
    );
    let out = shim(
        &ubuntu,
        "apt-get",
        &["install", "-y", "amlfs-lustre-client-9.9.9=1"],
    );
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (
            100,
            "E: Unable to locate package amlfs-lustre-client-9.9.9\n"
        )
    );

    let alma = create(dir.path(), "alma-9", ALMA_KERNEL, "2.15", &[]);
    sim(&[
        "fault",
        alma.to_str().unwrap(),
        "repo-missing",
        "--kernel",
        ALMA_KERNEL,
    ]);
    let name = "amlfs-lustre-client-2.15.7_33_g79ddf99-5.14.0.427.13.1.el9.4-1";
    let out = shim(&alma, "dnf", &["install", "-y", name]);
    assert_eq!(out.code, 1);
    assert_eq!(out.stdout, format!("No match for argument: {name}\n"));
    assert_eq!(
        out.stderr,
        format!("Error: Unable to find a match: {name}\n")
    );
    sim(&["heal", alma.to_str().unwrap(), "repo-missing"]);
    assert_eq!(shim(&alma, "dnf", &["install", "-y", name]).code, 0);
}

/// (name, count, unit, sum) of every counter line.
fn counters(stats: &str) -> BTreeMap<String, (u64, String, Option<u64>)> {
    stats
        .lines()
        .filter(|l| l.contains(" samples ["))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (
                f[0].to_owned(),
                (
                    f[1].parse().unwrap(),
                    f[3].trim_matches(['[', ']']).to_owned(),
                    f.get(6).map(|s| s.parse().unwrap()),
                ),
            )
        })
        .collect()
}

fn header_seconds(stats: &str, key: &str) -> f64 {
    stats
        .lines()
        .find(|l| l.starts_with(key))
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn load_advances_counters_consistently_with_the_time_stamps() {
    let dir = tempfile::tempdir().unwrap();
    let (node, instance) = loaded_node(dir.path());
    let path = format!("sys/kernel/debug/lustre/llite/lustrefs-{instance}/stats");
    let before = read(&node, &path);
    let out = sim(&[
        "load",
        node.to_str().unwrap(),
        "--write-mbps",
        "500",
        "--read-mbps",
        "100",
        "--seconds",
        "10",
        "--instant",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let after = read(&node, &path);
    let elapsed =
        header_seconds(&after, "snapshot_time") - header_seconds(&before, "snapshot_time");
    assert!((elapsed - 10.0).abs() < 1e-6, "{elapsed}");
    let c = counters(&after);
    assert_eq!(c["write_bytes"].2, Some(5_000_000_000));
    assert_eq!(c["read_bytes"].2, Some(1_000_000_000));
    assert_eq!(c["write_bytes"].0, 5_000_000_000u64.div_ceil(1 << 20));
    assert_eq!(c["write"].1, "usecs");
    // The OSTs' wire bytes add up to the mount's.
    let osc_sum: u64 = (0..4)
        .map(|ost| {
            counters(&read(
                &node,
                &format!("sys/kernel/debug/lustre/osc/lustrefs-OST{ost:04x}-osc-{instance}/stats"),
            ))["write_bytes"]
                .2
                .unwrap()
        })
        .sum();
    assert_eq!(osc_sum, 5_000_000_000);
}

/// A mounted 2.15 node, and the instance of its mount.
fn loaded_node(dir: &Path) -> (PathBuf, String) {
    let node = create(dir, "ubuntu-22.04", JAMMY_KERNEL, "2.15", &[]);
    shim(
        &node,
        "apt-get",
        &[
            "install",
            "-y",
            &format!("amlfs-lustre-client-2.15.7-33-g79ddf99={JAMMY_KERNEL}"),
        ],
    );
    shim(&node, "modprobe", &["lustre"]);
    assert_eq!(mount_lustre(&node).code, 0);
    let llite = glob_one(&node, "sys/kernel/debug/lustre/llite", "lustrefs-");
    let instance = llite.trim_start_matches("lustrefs-").to_owned();
    (node, instance)
}

/// (req_waittime count, sum) of each OST and of MDT0000, then ost_read + ost_write.
fn waits(node: &Path, instance: &str) -> (Vec<(u64, u64)>, (u64, u64)) {
    let stats = |kind: &str, target: &str| {
        counters(&read(
            node,
            &format!("sys/kernel/debug/lustre/{kind}/lustrefs-{target}-{kind}-{instance}/stats"),
        ))
    };
    let mut per_target = Vec::new();
    let mut by_op = (0, 0);
    for ost in 0..4 {
        let c = stats("osc", &format!("OST{ost:04x}"));
        let (count, _, sum) = c
            .get("req_waittime")
            .cloned()
            .unwrap_or((0, String::new(), None));
        per_target.push((count, sum.unwrap_or(0)));
        for op in ["ost_read", "ost_write"] {
            if let Some((count, unit, sum)) = c.get(op) {
                assert_eq!(unit, "usecs");
                by_op.0 += count;
                by_op.1 += sum.unwrap();
            }
        }
    }
    let c = stats("mdc", "MDT0000");
    let (count, _, sum) = c
        .get("req_waittime")
        .cloned()
        .unwrap_or((0, String::new(), None));
    per_target.push((count, sum.unwrap_or(0)));
    (per_target, by_op)
}

/// Mean wait per target of what happened between two readings.
fn mean_waits(before: &[(u64, u64)], after: &[(u64, u64)]) -> Vec<f64> {
    before
        .iter()
        .zip(after)
        .map(|((c0, s0), (c1, s1))| (s1 - s0) as f64 / (c1 - c0) as f64)
        .collect()
}

fn load(node: &Path, extra: &[&str]) {
    let mut args = vec![
        "load",
        node.to_str().unwrap(),
        "--write-mbps",
        "400",
        "--read-mbps",
        "100",
        "--md-ops",
        "20",
        "--seconds",
        "60",
        "--instant",
    ];
    args.extend(extra);
    let out = sim(&args);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[test]
fn rpc_waits_follow_load_noise_and_the_slow_fault_consistently_with_the_counters() {
    let dir = tempfile::tempdir().unwrap();
    let (node, instance) = loaded_node(dir.path());
    let n = node.to_str().unwrap();
    let (start, _) = waits(&node, &instance);
    assert!(start.iter().all(|(count, _)| *count == 0), "{start:?}");
    load(&node, &[]);
    let (first, by_op) = waits(&node, &instance);
    // req_waittime counts every RPC: the OSTs' reads and writes, 2 per metadata operation.
    let osc_total: (u64, u64) = first[..4]
        .iter()
        .fold((0, 0), |(c, s), (c1, s1)| (c + c1, s + s1));
    assert_eq!(osc_total, by_op);
    assert_eq!(first[4].0, 2 * 20 * 60);
    let base = mean_waits(&start, &first);
    // Realistic waits: 1.4 to 3 ms, the same on every run without noise.
    assert!(
        base.iter().all(|m| (1_200.0..3_000.0).contains(m)),
        "{base:?}"
    );

    // Three times slower on every target: the same RPCs, three times the wait.
    let out = sim(&["fault", n, "slow", "--factor", "3"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "/lustre: RPCs to every target wait 3.00x longer\n"
    );
    load(&node, &[]);
    let (second, _) = waits(&node, &instance);
    let slow = mean_waits(&first, &second);
    for (index, (mean, normal)) in slow.iter().zip(&base).enumerate() {
        assert!(
            (mean / normal - 3.0).abs() < 0.01,
            "target {index}: {mean} vs {normal}"
        );
        assert_eq!(
            second[index].0 - first[index].0,
            first[index].0 - start[index].0
        );
    }

    // Healed, then OST0003 alone twice as slow.
    sim(&["heal", n, "slow"]);
    let out = sim(&["fault", n, "slow", "--factor", "2", "--target", "OST0003"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    load(&node, &[]);
    let (third, _) = waits(&node, &instance);
    let ratios: Vec<f64> = mean_waits(&second, &third)
        .iter()
        .zip(&base)
        .map(|(m, b)| (m / b * 100.0).round() / 100.0)
        .collect();
    assert_eq!(ratios, vec![1.0, 1.0, 1.0, 2.0, 1.0]);

    // ±30% noise: each load draws the node's own factor, within the bound, not all equal.
    sim(&["heal", n, "slow"]);
    let mut previous = third;
    let mut factors = Vec::new();
    for _ in 0..12 {
        load(&node, &["--noise", "0.3"]);
        let (now, _) = waits(&node, &instance);
        let means = mean_waits(&previous, &now);
        let factor = means[0] / base[0];
        assert!((0.69..=1.31).contains(&factor), "{factor}");
        // One factor per node and load: every target moves together.
        for (mean, normal) in means.iter().zip(&base) {
            assert!((mean / normal - factor).abs() < 0.01, "{means:?}");
        }
        factors.push(factor);
        previous = now;
    }
    let spread = factors.iter().cloned().fold(f64::MIN, f64::max)
        - factors.iter().cloned().fold(f64::MAX, f64::min);
    assert!(spread > 0.1, "{factors:?}");

    // Bad arguments change nothing.
    let before = observe(&node);
    for bad in [
        vec!["fault", n, "slow", "--factor", "0.5"],
        vec!["fault", n, "slow"],
        vec!["fault", n, "slow", "--factor", "3", "--target", "OST0009"],
        vec!["load", n, "--write-mbps", "1", "--noise", "1.5"],
    ] {
        let out = sim(&bad);
        assert_eq!(out.code, 2, "{bad:?} should be refused");
        assert!(!out.stderr.is_empty());
    }
    assert_eq!(changed(&before, &observe(&node)), Vec::<String>::new());
}

#[test]
fn rendered_stats_have_the_shape_of_the_real_samples() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
    let dir = tempfile::tempdir().unwrap();
    for (lustre, sample, strip_param_line) in [
        ("2.10", "lustre-2.10.1_llite_stats.txt", false),
        ("2.15", "lustre-2.15plus_llite_stats_lctl.txt", true),
    ] {
        let node = create(
            &dir.path().join(lustre),
            "ubuntu-22.04",
            JAMMY_KERNEL,
            lustre,
            &[],
        );
        let version = if lustre == "2.10" {
            "2.10.8-1-g5a1e2b3"
        } else {
            "2.15.7-33-g79ddf99"
        };
        shim(
            &node,
            "apt-get",
            &[
                "install",
                "-y",
                &format!("amlfs-lustre-client-{version}={JAMMY_KERNEL}"),
            ],
        );
        shim(&node, "modprobe", &["lustre"]);
        assert_eq!(mount_lustre(&node).code, 0);
        sim(&[
            "load",
            node.to_str().unwrap(),
            "--write-mbps",
            "10",
            "--read-mbps",
            "10",
            "--seconds",
            "1",
            "--instant",
        ]);
        let base = if lustre == "2.10" {
            "proc/fs/lustre/llite"
        } else {
            "sys/kernel/debug/lustre/llite"
        };
        let llite = glob_one(&node, base, "lustrefs-");
        let rendered = read(&node, &format!("{base}/{llite}/stats"));
        let real = fs::read_to_string(fixtures.join(sample)).unwrap();
        let real: String = if strip_param_line {
            real.lines().skip(1).map(|l| format!("{l}\n")).collect()
        } else {
            real
        };
        // Same header keys, in order; same value column (name padded to 25 plus a space).
        let keys = |text: &str| -> Vec<String> {
            text.lines()
                .filter(|l| !l.contains(" samples ["))
                .map(|l| l.split_whitespace().next().unwrap().to_owned())
                .collect()
        };
        assert_eq!(keys(&rendered), keys(&real), "{lustre} header");
        for line in rendered.lines() {
            assert_eq!(
                line.find(|c: char| c.is_ascii_digit()),
                Some(26),
                "{lustre}: {line}"
            );
        }
        // Every counter the simulator prints has the unit and field count the sample shows.
        let real_counters = counters(&real);
        let field_count = |text: &str, name: &str| {
            text.lines()
                .find(|l| l.split_whitespace().next() == Some(name))
                .map(|l| l.split_whitespace().count())
        };
        for (name, (_, unit, _)) in counters(&rendered) {
            if let Some((_, real_unit, _)) = real_counters.get(&name) {
                assert_eq!(&unit, real_unit, "{lustre} {name}");
                assert_eq!(
                    field_count(&rendered, &name),
                    field_count(&real, &name),
                    "{lustre} {name}"
                );
            }
        }
    }
}

#[test]
fn package_faults_fail_each_package_manager_in_its_own_words() {
    const AZL_KERNEL: &str = "6.6.121.1-1.azl3";
    let dir = tempfile::tempdir().unwrap();
    let ubuntu = create(dir.path(), "ubuntu-22.04", JAMMY_KERNEL, "2.15", &[]);
    let alma = create(dir.path(), "alma-9", ALMA_KERNEL, "2.15", &[]);
    let azl = create(dir.path(), "azurelinux-3", AZL_KERNEL, "2.17", &[]);
    let deb = format!("amlfs-lustre-client-2.15.7-33-g79ddf99={JAMMY_KERNEL}");
    let rpm = "amlfs-lustre-client-2.15.7_33_g79ddf99-5.14.0.427.13.1.el9.4-1";
    let tdnf = "amlfs-lustre-client-2.17.0_19_gbb5310f-6.6.121.1.1.azl3-1";
    let install = |node: &Path, program: &str, package: &str| {
        shim(node, program, &["install", "-y", package])
    };
    let fault = |node: &Path, args: &[&str]| {
        let mut all = vec!["fault", node.to_str().unwrap()];
        all.extend(args);
        assert_eq!(sim(&all).code, 0, "{args:?}");
    };
    let heal = |node: &Path| assert_eq!(sim(&["heal", node.to_str().unwrap()]).code, 0);

    // (node, program, package, the fault, exit code, words the output must hold)
    let kernel_of = |node: &Path| -> &str {
        if node == ubuntu {
            JAMMY_KERNEL
        } else if node == alma {
            ALMA_KERNEL
        } else {
            AZL_KERNEL
        }
    };
    let cases: Vec<(&Path, &str, &str, &str, i32, &str)> = vec![
        (
            &ubuntu,
            "apt-get",
            &deb,
            "repo-unreachable",
            100,
            "E: Failed to fetch http://10.0.0.4:8080/amlfs/./amlfs-lustre-client-2.15.7-33-g79ddf99_5.15.0-1075-azure_amd64.deb  Could not connect to 10.0.0.4:8080 (10.0.0.4). - connect (111: Connection refused)",
        ),
        (
            &alma,
            "dnf",
            rpm,
            "repo-unreachable",
            1,
            "Error: Failed to download metadata for repo 'amlfs': Cannot download repomd.xml",
        ),
        (
            &azl,
            "tdnf",
            tdnf,
            "repo-unreachable",
            184,
            "Error(1208) : Couldn't connect to server\nError: Failed to synchronize cache for repo 'amlfs'",
        ),
        (
            &ubuntu,
            "apt-get",
            &deb,
            "repo-dependency-missing",
            100,
            "amlfs-lustre-client-2.15.7-33-g79ddf99 : Depends: kmod-lustre-client-5.15.0-1075-azure-2.15.7-33-g79ddf99 but it is not installable",
        ),
        (
            &alma,
            "dnf",
            rpm,
            "repo-dependency-missing",
            1,
            "nothing provides kmod-lustre-client-5.14.0.427.13.1.el9.4 needed by amlfs-lustre-client-2.15.7_33_g79ddf99-5.14.0.427.13.1.el9.4-1.x86_64",
        ),
        (
            &azl,
            "tdnf",
            tdnf,
            "repo-dependency-missing",
            21,
            "1. nothing provides kmod-lustre-client-6.6.121.1.1.azl3 needed by amlfs-lustre-client-2.17.0_19_gbb5310f-6.6.121.1.1.azl3-1.x86_64\nFound 1 problem(s) while resolving\nError(1301) : Solv general runtime error",
        ),
        (
            &ubuntu,
            "apt-get",
            &deb,
            "package-lock-held",
            100,
            "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (unattended-upgr)",
        ),
        (
            &azl,
            "tdnf",
            tdnf,
            "repo-missing",
            243,
            "package not found or not installed\nError(1011) : No matching packages",
        ),
    ];
    for (node, program, package, kind, code, words) in cases {
        let mut args = vec![kind];
        if kind.starts_with("repo-dependency") || kind == "repo-missing" {
            args.extend(["--kernel", kernel_of(node)]);
        }
        fault(node, &args);
        let out = install(node, program, package);
        let text = format!("{}{}", out.stdout, out.stderr);
        assert_eq!(out.code, code, "{program} {kind}: {text}");
        assert!(text.contains(words), "{program} {kind}: {text}");
        heal(node);
        assert!(
            !node
                .join(format!("lib/modules/{}/updates", kernel_of(node)))
                .exists()
                && !node
                    .join(format!("lib/modules/{}/extra", kernel_of(node)))
                    .exists(),
            "{program} {kind}: nothing installed"
        );
    }

    // dnf and tdnf wait for the lock without a limit, saying so first; they go on once it
    // is released.
    for (node, program, package, waiting) in [
        (
            &alma,
            "dnf",
            rpm,
            "Waiting for process with pid 4242 to finish.\n",
        ),
        (
            &azl,
            "tdnf",
            tdnf,
            "waiting for tdnf_instance lock on /var/run/.tdnf-instance-lockfile\n",
        ),
    ] {
        fault(node, &["package-lock-held"]);
        let mut child = Command::new(node.join("bin").join(program))
            .args(["install", "-y", package])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = vec![0u8; waiting.len()];
        std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
        assert_eq!(String::from_utf8_lossy(&first), waiting);
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(child.try_wait().unwrap().is_none(), "{program} must wait");
        heal(node);
        let status = child.wait().unwrap();
        assert!(status.success(), "{program} goes on after the lock is free");
    }

    // A slow DKMS build (dkms-slow) takes its time, then installs the module; purged after.
    fault(&ubuntu, &["dkms-slow", "--seconds", "2"]);
    let started = std::time::Instant::now();
    let dkms_install = [
        "install",
        "-y",
        &format!("linux-headers-{JAMMY_KERNEL}"),
        "amlfs-lustre-client-dkms-2.15.7-33-g79ddf99",
    ]
    .map(String::from);
    let args: Vec<&str> = dkms_install.iter().map(String::as_str).collect();
    let out = shim(&ubuntu, "apt-get", &args);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(started.elapsed() >= std::time::Duration::from_secs(2));
    assert!(
        ubuntu
            .join(format!("lib/modules/{JAMMY_KERNEL}/updates/dkms/lustre.ko"))
            .exists()
    );
    let purge = [
        "purge",
        "-y",
        "amlfs-lustre-client-dkms-2.15.7-33-g79ddf99",
        "lustre-client-modules-dkms-2.15.7-33-g79ddf99",
    ];
    assert_eq!(shim(&ubuntu, "apt-get", &purge).code, 0);
    heal(&ubuntu);

    // A DKMS build that fails: DKMS's words, dpkg's, and a half-configured package until it
    // is purged; with rpm a failed %post leaves the package installed with no module.
    fault(&ubuntu, &["dkms-build-fails"]);
    let out = shim(
        &ubuntu,
        "apt-get",
        &[
            "install",
            "-y",
            &format!("linux-headers-{JAMMY_KERNEL}"),
            "amlfs-lustre-client-dkms-2.15.7-33-g79ddf99",
        ],
    );
    assert_eq!(out.code, 100);
    assert!(out.stderr.contains(&format!("Error! Bad return status for module build on kernel: {JAMMY_KERNEL} (x86_64)\nConsult /var/lib/dkms/lustre-client-modules/2.15.7/build/make.log for more information.\n")), "{}", out.stderr);
    assert!(out.stderr.contains(" installed lustre-client-modules-dkms-2.15.7-33-g79ddf99 package post-installation script subprocess returned error exit status 10\n"), "{}", out.stderr);
    let status = |node: &Path, package: &str| {
        shim(node, "dpkg-query", &["-W", "-f=${Status}", package]).stdout
    };
    assert_eq!(
        status(&ubuntu, "lustre-client-modules-dkms-2.15.7-33-g79ddf99"),
        "install ok half-configured"
    );
    assert!(
        !ubuntu
            .join(format!("lib/modules/{JAMMY_KERNEL}/updates/dkms"))
            .exists()
    );
    assert_eq!(
        shim(
            &ubuntu,
            "apt-get",
            &[
                "purge",
                "-y",
                "amlfs-lustre-client-dkms-2.15.7-33-g79ddf99",
                "lustre-client-modules-dkms-2.15.7-33-g79ddf99"
            ]
        )
        .code,
        0
    );
    assert_eq!(
        status(&ubuntu, "lustre-client-modules-dkms-2.15.7-33-g79ddf99"),
        ""
    );
    fault(&azl, &["dkms-build-fails"]);
    let out = shim(
        &azl,
        "tdnf",
        &[
            "install",
            "-y",
            &format!("kernel-devel-{AZL_KERNEL}"),
            "lustre-client-dkms-2.17.0_19_gbb5310f",
        ],
    );
    assert_eq!(out.code, 0, "a failed %post does not fail the transaction");
    assert!(out.stdout.contains("warning: %post(lustre-client-dkms-2.17.0_19_gbb5310f-1.noarch) scriptlet failed, exit status 10"), "{}", out.stdout);
    assert!(
        shim(&azl, "dkms", &["status"])
            .stdout
            .contains("lustre-client/2.17.0: added")
    );

    // Secure Boot: mokutil reports it; a Confidential VM's firmware lacks AMLFS's signing
    // certificate, so the kernel refuses the prebuilt module.
    let cvm = create(
        &dir.path().join("cvm"),
        "ubuntu-22.04",
        JAMMY_KERNEL,
        "2.15",
        &["--secure-boot", "on", "--confidential-vm"],
    );
    assert_eq!(
        shim(&cvm, "mokutil", &["--sb-state"]).stdout,
        "SecureBoot enabled\n"
    );
    assert_eq!(
        shim(&ubuntu, "mokutil", &["--sb-state"]).stderr,
        "EFI variables are not supported on this system\n"
    );
    assert_eq!(install(&cvm, "apt-get", &deb).code, 0);
    let out = shim(&cvm, "modprobe", &["lustre"]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (
            1,
            "modprobe: ERROR: could not insert 'lustre': Key was rejected by service\n"
        )
    );
    assert_eq!(
        read(&cvm, "sys/kernel/security/lockdown"),
        "none [integrity] confidentiality\n"
    );
    assert_eq!(
        read(&azl, "sys/kernel/security/lockdown"),
        "none [integrity] confidentiality\n",
        "Azure Linux 3 boots with lockdown=integrity"
    );
}

#[test]
fn a_second_client_version_installs_beside_a_loaded_one_and_a_busy_mount_keeps_it_until_reboot() {
    let dir = tempfile::tempdir().unwrap();
    let node = create(
        dir.path(),
        "ubuntu-22.04",
        JAMMY_KERNEL,
        "2.15",
        &["--repo-versions", "2.16"],
    );
    let n = node.to_str().unwrap();
    let old = format!("amlfs-lustre-client-2.15.7-33-g79ddf99={JAMMY_KERNEL}");
    let new = format!("amlfs-lustre-client-2.16.1-12-g8e3f1a2={JAMMY_KERNEL}");
    assert_eq!(shim(&node, "apt-get", &["install", "-y", &old]).code, 0);
    assert_eq!(shim(&node, "modprobe", &["lustre"]).code, 0);
    assert_eq!(mount_lustre(&node).code, 0);
    let modinfo = || {
        shim(
            &node,
            "modinfo",
            &["-k", JAMMY_KERNEL, "-F", "version", "lustre"],
        )
    };
    assert_eq!(modinfo().stdout, "2.15.7\n");
    assert_eq!(read(&node, "sys/module/lustre/version"), "2.15.7\n");

    // Not published yet: apt cannot find the package, madison lists nothing for it.
    sim(&["fault", n, "repo-missing-version", "--version", "2.16"]);
    let out = shim(&node, "apt-get", &["install", "-y", &new]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (
            100,
            "E: Unable to locate package amlfs-lustre-client-2.16.1-12-g8e3f1a2\n"
        )
    );
    let madison = shim(
        &node,
        "apt-cache",
        &["madison", "amlfs-lustre-client-2.16.1-12-g8e3f1a2"],
    );
    assert_eq!(madison.stdout, "");
    assert_eq!(modinfo().stdout, "2.15.7\n", "nothing changed");

    // Published: the new client installs for the kernel, the loaded module stays the old one.
    sim(&["heal", n, "repo-missing-version"]);
    assert_eq!(shim(&node, "apt-get", &["install", "-y", &new]).code, 0);
    assert_eq!(modinfo().stdout, "2.16.1\n");
    assert_eq!(read(&node, "sys/module/lustre/version"), "2.15.7\n");
    let query = shim(
        &node,
        "dpkg-query",
        &["-W", "amlfs-lustre-client-2.16.1-12-g8e3f1a2"],
    );
    assert_eq!(
        query.stdout,
        format!("amlfs-lustre-client-2.16.1-12-g8e3f1a2\t{JAMMY_KERNEL}\n")
    );

    // A busy mount cannot be unmounted, so the module stays.
    sim(&["fault", n, "mount-busy"]);
    let out = shim(&node, "umount", &["/lustre"]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (32, "umount: /lustre: target is busy.\n")
    );
    assert_eq!(shim(&node, "lustre_rmmod", &[]).code, 1);
    assert_eq!(read(&node, "sys/module/lustre/version"), "2.15.7\n");

    // Without the busy process: unmount, unload, load the new one.
    sim(&["heal", n, "mount-busy"]);
    assert_eq!(shim(&node, "umount", &["/lustre"]).code, 0);
    assert_eq!(shim(&node, "lustre_rmmod", &[]).code, 0);
    assert!(!node.join("sys/module/lustre").exists());
    assert_eq!(shim(&node, "modprobe", &["lustre"]).code, 0);
    assert_eq!(read(&node, "sys/module/lustre/version"), "2.16.1\n");
    assert_eq!(read(&node, "sys/fs/lustre/version"), "2.16.1\n");

    // A reboot ends a busy mount's process and loads nothing by itself.
    assert_eq!(mount_lustre(&node).code, 0);
    sim(&["fault", n, "mount-busy"]);
    assert_eq!(sim(&["node", "reboot", n]).code, 0);
    assert!(!node.join("sys/module/lustre").exists());
    assert_eq!(
        read(&node, "proc/self/mountinfo")
            .matches(" lustre ")
            .count(),
        0
    );
    assert_eq!(shim(&node, "modprobe", &["lustre"]).code, 0);
    assert_eq!(read(&node, "sys/module/lustre/version"), "2.16.1\n");
    assert_eq!(mount_lustre(&node).code, 0);
    assert_eq!(
        shim(&node, "umount", &["/lustre"]).code,
        0,
        "not busy any more"
    );

    // A version the simulator does not publish at all, and bad arguments, change nothing.
    let out = sim(&["fault", n, "repo-missing-version", "--version", "3.0"]);
    assert_eq!(out.code, 2);
    let missing = shim(&node, "modinfo", &["-k", "6.0.0-1-azure", "lustre"]);
    assert_eq!(
        (missing.code, missing.stderr.as_str()),
        (1, "modinfo: ERROR: Module lustre not found.\n")
    );

    // dnf: the second version's package installs beside the first, rpm -q tells them apart.
    let alma = create(
        dir.path(),
        "alma-9",
        ALMA_KERNEL,
        "2.15",
        &["--repo-versions", "2.16"],
    );
    let old = "amlfs-lustre-client-2.15.7_33_g79ddf99-5.14.0.427.13.1.el9.4-1";
    let new = "amlfs-lustre-client-2.16.1_12_g8e3f1a2-5.14.0.427.13.1.el9.4-1";
    assert_eq!(shim(&alma, "dnf", &["install", "-y", old]).code, 0);
    assert_eq!(shim(&alma, "rpm", &["-q", new]).code, 1);
    assert_eq!(shim(&alma, "dnf", &["install", "-y", new]).code, 0);
    assert_eq!(shim(&alma, "rpm", &["-q", new]).code, 0);
    assert_eq!(
        shim(&alma, "modinfo", &["-F", "version", "lustre"]).stdout,
        "2.16.1\n"
    );
}
