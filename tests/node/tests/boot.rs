//! Real nodes booted under systemd (systemd-nspawn, systemd as PID 1, Debian 12 from the
//! cached node image), with the built packages installed for real and only the Lustre kernel
//! client simulated: the agent reads a lfleet-sim tree for /proc and /sys (a test drop-in
//! points --procfs/--sysfs and PATH there), the simulator's `mount.lustre` is the node's
//! mount helper and makes a real tmpfs mount (so systemd's mount units really become
//! active), and Debian's slurmd runs with its own unit and lfleet's drop-in. Each assertion
//! is a named step that fails with systemd's own output. Needs root.
//!
//! - `a_cluster_joins_on_first_boot_and_survives_a_reboot`: a scheduler node runs the
//!   coordinator cluster-init script (apt-get installs the .deb, the coordinator restarts and
//!   publishes its CA, token and URL in the shared /sched), a compute node installs the
//!   agent .deb with plain `dpkg -i` (an inert start), runs the agent cluster-init script
//!   and ends enrolled and mounted; journal fields; the fstab generator's units; then a
//!   reboot with the coordinator stopped mounts from fstab before slurmd and starts the
//!   agent from its ledger, nothing rewritten; no secret in any log.
//! - `a_node_under_systemd_from_install_to_purge`: one node with a local configuration:
//!   READY through sd_notify, the watchdog restarting a SIGSTOP'd agent, slurmd held back
//!   while the mount fails and started once it mounts, the Slurm health hook following a
//!   fault, an upgrade keeping config, state and an administrator's disable, and a purge
//!   leaving no lfleet path and the node's own fstab bytes.
#![allow(
    clippy::disallowed_methods,
    reason = "the test builds packages, boots containers and inspects their roots"
)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use lfleet_node::{Container, NodeImage, Overlay, Step, paths_named, wait_for};

const SIM: &str = "/var/lib/lfleet-sim/node";
const KERNEL: &str = "5.15.0-1075-azure";
const SPEC: &str = "/opt/cycle/jetpack/system/bootstrap/lfleet";
const NODE_FSTAB: &str = "# /etc/fstab of this node: its own lines, which lfleet never touches\nproc\t/proc  proc defaults 0 0\n";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn bindir() -> PathBuf {
    lfleet_harness::agent_binary()
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The .debs, built from this tree (gzip: quick).
fn build_debs(out: &Path, version: Option<&str>) -> (PathBuf, PathBuf) {
    let mut command = Command::new("bash");
    command
        .arg(repo().join("packaging/deb/build.sh"))
        .arg(out)
        .arg(bindir())
        .env("DEB_COMPRESSION", "gzip");
    if let Some(version) = version {
        command.env("LFLEET_VERSION", version);
    }
    let output = command.output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let find = |prefix: &str| {
        fs::read_dir(out)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
            .unwrap()
    };
    (find("lfleet-agent_"), find("lfleet-coordinator_"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `jetpack config KEY [DEFAULT]` from /etc/jetpack.json, one `"key": "value"` a line.
const JETPACK: &str = r#"#!/bin/bash
[ "$1" = config ] || { echo "stand-in jetpack: only 'config'" >&2; exit 2; }
line=$(grep -F "\"$2\":" /etc/jetpack.json | head -1)
if [ -z "$line" ]; then
  if [ $# -ge 3 ]; then printf '%s\n' "$3"; exit 0; fi
  echo "jetpack: no value for $2" >&2
  exit 1
fi
value=${line#*: \"}
value=${value%\"*}
printf '%s\n' "$value"
"#;

fn jetpack_json(values: &[(&str, String)]) -> String {
    let lines: Vec<String> = values
        .iter()
        .map(|(key, value)| format!("\"{key}\": \"{value}\""))
        .collect();
    format!("{{\n{}\n}}\n", lines.join(",\n"))
}

/// A Slurm compute node's configuration: slurmd with its own port, a controller that is
/// not running (slurmd keeps trying to register, which is all this test needs of it).
fn slurm_conf(node: &str) -> String {
    format!(
        "ClusterName=lfleet\nSlurmctldHost=sched-1(127.0.0.1)\nSlurmctldPort={}\nSlurmdPort={}\n\
SlurmUser=root\nSlurmdUser=root\nAuthType=auth/munge\nCredType=cred/munge\n\
SlurmdSpoolDir=/var/spool/slurmd\nSlurmdLogFile=/var/log/slurmd.log\n\
ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\nJobAcctGatherType=jobacct_gather/none\n\
AccountingStorageType=accounting_storage/none\nSchedulerType=sched/builtin\nSelectType=select/linear\n\
MpiDefault=none\nReturnToService=2\nMessageTimeout=2\n\
NodeName={node} NodeAddr=127.0.0.1 CPUs=1 State=UNKNOWN\nPartitionName=all Nodes=ALL Default=YES State=UP\n",
        free_port(),
        free_port()
    )
}

/// A compute node's root: the simulated Lustre client at /var/lib/lfleet-sim/node (its
/// os-release, kernel tree and mount helper linked into the node), the test's drop-ins that
/// point the agent at the simulated /proc and /sys, a oneshot that gives the simulated
/// kernel a fresh boot whenever the node boots, Slurm's configuration and the node's fstab.
fn prepare_compute(node: &Overlay, name: &str, check_interval: &str) {
    node.copy_in(
        &bindir().join("lfleet-sim"),
        "/usr/local/bin/lfleet-sim",
        0o755,
    );
    node.chroot(&[
        "/usr/local/bin/lfleet-sim",
        "node",
        "create",
        SIM,
        "--distro",
        "ubuntu-22.04",
        "--kernel",
        KERNEL,
        "--lustre",
        "2.15",
        "--hostname",
        name,
        "--real-mounts",
    ]);
    // AMLFS publishes no Debian client: the node presents itself as the simulated client's
    // distribution, and its kernel tree and mount helper are the simulator's.
    let sim = |path: &str| format!("{SIM}/{path}");
    for (link, target) in [
        ("etc/os-release".to_owned(), sim("etc/os-release")),
        (
            format!("lib/modules/{KERNEL}"),
            sim(&format!("lib/modules/{KERNEL}")),
        ),
        (
            format!("boot/vmlinuz-{KERNEL}"),
            sim(&format!("boot/vmlinuz-{KERNEL}")),
        ),
        ("usr/sbin/mount.lustre".to_owned(), sim("bin/mount.lustre")),
    ] {
        let path = node.path(&link);
        let _ = fs::remove_file(&path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&target, &path).unwrap();
    }
    fs::create_dir_all(node.path(&sim(&format!("lib/modules/{KERNEL}")))).unwrap();
    let path_line = format!(
        "Environment=PATH={SIM}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    );
    let redirect = format!("--procfs {SIM}/proc --sysfs {SIM}/sys");
    node.write(
        "/etc/systemd/system/lfleet-agent.service.d/50-test-sim.conf",
        format!(
            "# The test's: the agent reads the simulated /proc and /sys; a short watchdog.\n[Service]\n{path_line}\nExecStart=\nExecStart=/usr/bin/lfleet-agent run --config /etc/lfleet/agent.toml {redirect} --check-interval {check_interval}\nWatchdogSec=3s\nTimeoutAbortSec=2s\nRestartSec=1\n"
        ),
        0o644,
    );
    node.write(
        "/etc/systemd/system/lfleet-lnet.service.d/50-test-sim.conf",
        format!(
            "[Service]\n{path_line}\nExecStart=\nExecStart=/usr/bin/lfleet-agent lnet-up {redirect}\n"
        ),
        0o644,
    );
    node.write(
        "/etc/systemd/system/lfleet-sim-boot.service",
        format!(
            "# The test's: the simulated kernel boots with the node (no modules, mounts or LNet).\n[Unit]\nDescription=lfleet-sim: the simulated Lustre client boots\nDefaultDependencies=no\nAfter=local-fs.target\nBefore=sysinit.target remote-fs-pre.target lfleet-lnet.service\n\n[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/usr/local/bin/lfleet-sim node reboot {SIM}\n\n[Install]\nWantedBy=sysinit.target\n"
        ),
        0o644,
    );
    let wants = node.path("/etc/systemd/system/sysinit.target.wants/lfleet-sim-boot.service");
    fs::create_dir_all(wants.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink("/etc/systemd/system/lfleet-sim-boot.service", wants).unwrap();
    node.write("/etc/slurm/slurm.conf", slurm_conf(name), 0o644);
    // As cyclecloud-slurm starts slurmd: with the node's name.
    node.write(
        "/etc/default/slurmd",
        format!("SLURMD_OPTIONS=\"-N {name}\"\n"),
        0o644,
    );
    node.write("/etc/fstab", NODE_FSTAB, 0o644);
    node.write("/etc/hostname", format!("{name}\n"), 0o644);
}

fn console(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.console"))
}

fn active(node: &Container, unit: &str) -> Result<(), String> {
    let state = node.unit_property(unit, "ActiveState");
    if state == "active" {
        Ok(())
    } else {
        Err(format!("{unit} is {state}"))
    }
}

fn monotonic(node: &Container, unit: &str, property: &str) -> u64 {
    node.unit_property(unit, property).parse().unwrap_or(0)
}

/// The agent's last verdict through the Slurm hook, as slurmd would run it.
fn hook(node: &Container) -> (i32, String) {
    let output = node.exec(&["/usr/lib/lfleet/lfleet-health-check"]);
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

fn sim(node: &Container, args: &[&str]) -> Result<String, String> {
    let mut argv = vec!["/usr/local/bin/lfleet-sim"];
    argv.extend_from_slice(args);
    node.ok(&argv)
}

#[test]
fn a_cluster_joins_on_first_boot_and_survives_a_reboot() {
    let work = tempfile::tempdir().unwrap();
    let (agent_deb, coordinator_deb) = build_debs(&work.path().join("debs"), None);
    let image = NodeImage::get();
    let sched_dir = work.path().join("sched");
    fs::create_dir_all(&sched_dir).unwrap();
    let port = free_port();
    let scripts = repo().join("packaging/cyclecloud/specs");

    // --- the scheduler
    let scheduler_root = Overlay::new(&image);
    scheduler_root.copy_in(
        &scripts.join("coordinator/cluster-init/scripts/10-lfleet-coordinator.sh"),
        &format!("{SPEC}/coordinator/scripts/10-lfleet-coordinator.sh"),
        0o755,
    );
    scheduler_root.copy_in(
        &coordinator_deb,
        &format!(
            "{SPEC}/coordinator/files/{}",
            coordinator_deb.file_name().unwrap().to_string_lossy()
        ),
        0o644,
    );
    scheduler_root.write("/usr/local/bin/jetpack", JETPACK, 0o755);
    scheduler_root.write(
        "/etc/jetpack.json",
        jetpack_json(&[
            ("cyclecloud.cluster.name", "Test Cluster".into()),
            ("cyclecloud.node.name", "sched-1".into()),
            ("slurm.role", "scheduler".into()),
            ("hostname", "sched-1".into()),
            ("ipaddress", "127.0.0.1".into()),
            ("lfleet.mgs_nids", "10.0.1.4@tcp".into()),
            ("lfleet.port", port.to_string()),
        ]),
        0o644,
    );
    let scheduler = Container::boot(
        scheduler_root.root(),
        "sched-1",
        &[(&sched_dir, "/sched")],
        &console(work.path(), "sched-1"),
    );
    let scheduler_log = Step::run(
        "the scheduler's cluster-init installs, restarts and publishes the coordinator",
        &scheduler,
        &["lfleet-coordinator.service"],
        || {
            let output = scheduler
                .command(&[
                    "bash",
                    &format!("{SPEC}/coordinator/scripts/10-lfleet-coordinator.sh"),
                ])
                .env("CYCLECLOUD_SPEC_PATH", format!("{SPEC}/coordinator"))
                .output()
                .unwrap();
            let log = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            if !output.status.success() {
                return Err(format!("the script failed: {log}"));
            }
            active(&scheduler, "lfleet-coordinator.service")?;
            let shared = sched_dir.join("test-cluster/lfleet");
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(shared.join("join-token"))
                .map_err(|e| format!("no published token: {e}"))?
                .permissions()
                .mode();
            if mode & 0o777 != 0o600 {
                return Err(format!("the published token has mode {mode:o}"));
            }
            let url = fs::read_to_string(shared.join("coordinator-url")).unwrap_or_default();
            if url.trim() != format!("https://127.0.0.1:{port}") {
                return Err(format!("published URL {url:?}"));
            }
            Ok(log)
        },
    );
    Step::run(
        "the coordinator's certificate names the scheduler's hostname and address",
        &scheduler,
        &["lfleet-coordinator.service"],
        || {
            let shown = Command::new("bash")
                .arg("-c")
                .arg(format!(
                    "openssl s_client -connect 127.0.0.1:{port} </dev/null 2>/dev/null | openssl x509 -noout -ext subjectAltName"
                ))
                .output()
                .unwrap();
            let names = String::from_utf8_lossy(&shown.stdout).into_owned();
            if names.contains("DNS:sched-1") && names.contains("IP Address:127.0.0.1") {
                Ok(())
            } else {
                Err(format!("subjectAltName: {names:?}"))
            }
        },
    );

    // --- a compute node
    let node_root = Overlay::new(&image);
    prepare_compute(&node_root, "hpc-1", "1s");
    node_root.copy_in(&agent_deb, "/root/lfleet-agent.deb", 0o644);
    node_root.copy_in(
        &scripts.join("default/cluster-init/scripts/10-lfleet-agent.sh"),
        &format!("{SPEC}/default/scripts/10-lfleet-agent.sh"),
        0o755,
    );
    node_root.copy_in(
        &agent_deb,
        &format!(
            "{SPEC}/default/files/{}",
            agent_deb.file_name().unwrap().to_string_lossy()
        ),
        0o644,
    );
    node_root.write("/usr/local/bin/jetpack", JETPACK, 0o755);
    node_root.write(
        "/etc/jetpack.json",
        jetpack_json(&[
            ("cyclecloud.cluster.name", "Test Cluster".into()),
            ("cyclecloud.node.name", "hpc-1".into()),
            ("cyclecloud.node.template", "hpc".into()),
            ("slurm.role", "execute".into()),
            ("lfleet.wait_seconds", "60".into()),
        ]),
        0o644,
    );
    let mut node = Container::boot(
        node_root.root(),
        "hpc-1",
        &[(&sched_dir, "/sched")],
        &console(work.path(), "hpc-1"),
    );
    let units = [
        "lfleet-agent.service",
        "lfleet-lnet.service",
        "lustre.mount",
        "slurmd.service",
    ];
    Step::run(
        "plain dpkg -i: the agent starts on the inert shipped configuration",
        &node,
        &units,
        || {
            node.ok(&["dpkg", "-i", "/root/lfleet-agent.deb"])?;
            wait_for(Duration::from_secs(30), || {
                active(&node, "lfleet-agent.service")
            })?;
            let fstab = fs::read_to_string(node_root.path("/etc/fstab")).unwrap();
            if fstab != NODE_FSTAB {
                return Err(format!("the inert start changed fstab:\n{fstab}"));
            }
            Ok(())
        },
    );
    let inert_pid = node.unit_property("lfleet-agent.service", "MainPID");
    let agent_log = Step::run(
        "the node's cluster-init leaves the agent running its config, enrolled and mounted",
        &node,
        &units,
        || {
            let output = node
                .command(&[
                    "bash",
                    &format!("{SPEC}/default/scripts/10-lfleet-agent.sh"),
                ])
                .env("CYCLECLOUD_SPEC_PATH", format!("{SPEC}/default"))
                .output()
                .unwrap();
            let log = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            if !output.status.success() {
                return Err(format!("the script failed: {log}"));
            }
            let config = fs::read_to_string(node_root.path("/etc/lfleet/agent.toml")).unwrap();
            if !config.contains(&format!("url = \"https://127.0.0.1:{port}\""))
                || !config.contains("role = \"compute\"")
            {
                return Err(format!("agent.toml:\n{config}"));
            }
            wait_for(Duration::from_secs(30), || {
                active(&node, "lfleet-agent.service")
            })?;
            if node.unit_property("lfleet-agent.service", "MainPID") == inert_pid {
                return Err("the agent was not restarted onto the cluster-init config".into());
            }
            wait_for(Duration::from_secs(60), || {
                let listed = scheduler.exec(&["lfleet", "nodes", "--json"]);
                let nodes = String::from_utf8_lossy(&listed.stdout).into_owned();
                if !listed.status.success() {
                    return Err(format!(
                        "lfleet nodes: {}",
                        String::from_utf8_lossy(&listed.stderr)
                    ));
                }
                let parsed: serde_json::Value =
                    serde_json::from_str(&nodes).map_err(|e| format!("{e}: {nodes}"))?;
                let mounted = parsed.as_array().into_iter().flatten().any(|n| {
                    n["name"] == "hpc-1"
                        && n["mounts"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|m| m["mount_point"] == "/lustre" && m["mounted"] == true)
                });
                if mounted {
                    Ok(())
                } else {
                    Err(format!("the coordinator sees {nodes}"))
                }
            })?;
            wait_for(Duration::from_secs(10), || active(&node, "lustre.mount"))?;
            let source = node.ok(&["findmnt", "-n", "-o", "SOURCE", "/lustre"])?;
            if source.trim() != "10.0.1.4@tcp:/lustrefs" {
                return Err(format!("/lustre is mounted from {source:?}"));
            }
            Ok(log)
        },
    );
    Step::run(
        "the agent is active through sd_notify READY (Type=notify)",
        &node,
        &units,
        || {
            let kind = node.unit_property("lfleet-agent.service", "Type");
            let state = node.unit_property("lfleet-agent.service", "SubState");
            if kind == "notify" && state == "running" {
                Ok(())
            } else {
                Err(format!("Type={kind} SubState={state}"))
            }
        },
    );
    Step::run(
        "journalctl -u lfleet-agent -o json holds the structured fields",
        &node,
        &units,
        || {
            let json = node.ok(&[
                "journalctl",
                "-u",
                "lfleet-agent",
                "-o",
                "json",
                "--no-pager",
            ])?;
            let started = json
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .find(|entry| {
                    entry["MESSAGE"]
                        .as_str()
                        .is_some_and(|m| m.contains("lfleet-agent run starting"))
                        && entry["F_COORDINATOR"].is_string()
                })
                .ok_or("no start entry with an F_COORDINATOR field")?;
            // tracing-journald's fields carry its F_ prefix; the identifier is journald's.
            for field in ["F_GENERATION", "F_VERSION", "F_ROOT", "SYSLOG_IDENTIFIER"] {
                if !started[field].is_string() {
                    return Err(format!("no {field} field in {started}"));
                }
            }
            Ok(())
        },
    );
    Step::run(
        "systemd-fstab-generator's lustre.mount requires and follows lfleet-lnet.service",
        &node,
        &units,
        || {
            let requires = node.unit_property("lustre.mount", "Requires");
            let after = node.unit_property("lustre.mount", "After");
            let source = node.unit_property("lustre.mount", "SourcePath");
            if requires.contains("lfleet-lnet.service")
                && after.contains("lfleet-lnet.service")
                && source == "/etc/fstab"
            {
                Ok(())
            } else {
                Err(format!(
                    "Requires={requires}\nAfter={after}\nSourcePath={source}"
                ))
            }
        },
    );
    Step::run(
        "slurmd requires the mount through lfleet's drop-in",
        &node,
        &units,
        || {
            let mounts = node.unit_property("slurmd.service", "RequiresMountsFor");
            if mounts.split_whitespace().any(|m| m == "/lustre") {
                Ok(())
            } else {
                Err(format!("RequiresMountsFor={mounts}"))
            }
        },
    );

    // --- reboot with the coordinator stopped
    let fstab_before = fs::read(node_root.path("/etc/fstab")).unwrap();
    let ledger_before = fs::read(node_root.path("/var/lib/lfleet/desired.json")).unwrap();
    let config_before = fs::read(node_root.path("/etc/lfleet/agent.toml")).unwrap();
    // The scheduler's coordinator goes away at once, as when its VM dies (a graceful stop
    // with agents connected takes over a minute: reported, not this test's subject).
    scheduler
        .ok(&[
            "systemctl",
            "kill",
            "--kill-whom=main",
            "--signal=SIGKILL",
            "lfleet-coordinator.service",
        ])
        .unwrap();
    scheduler
        .ok(&["systemctl", "stop", "lfleet-coordinator.service"])
        .unwrap();
    node.poweroff();
    node = Container::boot(
        node_root.root(),
        "hpc-1",
        &[(&sched_dir, "/sched")],
        &console(work.path(), "hpc-1-reboot"),
    );
    Step::run(
        "after a reboot with no coordinator, fstab mounts before slurmd and the agent runs from its ledger, nothing rewritten",
        &node,
        &units,
        || {
            wait_for(Duration::from_secs(30), || active(&node, "lustre.mount"))?;
            wait_for(Duration::from_secs(30), || active(&node, "slurmd.service"))?;
            wait_for(Duration::from_secs(30), || {
                active(&node, "lfleet-agent.service")
            })?;
            let mounted = monotonic(&node, "lustre.mount", "ActiveEnterTimestampMonotonic");
            let slurmd = monotonic(&node, "slurmd.service", "ExecMainStartTimestampMonotonic");
            if mounted == 0 || slurmd <= mounted {
                return Err(format!(
                    "lustre.mount active at {mounted}, slurmd started at {slurmd}"
                ));
            }
            for (file, before) in [
                ("/etc/fstab", &fstab_before),
                ("/var/lib/lfleet/desired.json", &ledger_before),
                ("/etc/lfleet/agent.toml", &config_before),
            ] {
                if &fs::read(node_root.path(file)).unwrap() != before {
                    return Err(format!("{file} was rewritten by the reboot"));
                }
            }
            Ok(())
        },
    );
    Step::run("no secret in any log", &node, &units, || {
        let token = fs::read_to_string(sched_dir.join("test-cluster/lfleet/join-token")).unwrap();
        let token = token.trim();
        let mut logs = vec![
            ("the scheduler's cluster-init output", scheduler_log.clone()),
            ("the node's cluster-init output", agent_log.clone()),
            (
                "the scheduler's journal",
                scheduler.ok(&["journalctl", "--no-pager", "-o", "verbose"])?,
            ),
            (
                "the node's journal",
                node.ok(&["journalctl", "--no-pager", "-o", "verbose"])?,
            ),
        ];
        for root in [scheduler_root.root(), node_root.root()] {
            for name in [
                "var/log/dpkg.log",
                "var/log/apt/term.log",
                "var/log/slurmd.log",
            ] {
                if let Ok(text) = fs::read_to_string(root.join(name)) {
                    logs.push(("a log file", text));
                }
            }
        }
        for (what, text) in &logs {
            if text.contains(token) {
                return Err(format!("the join token is in {what}"));
            }
            if text.contains("PRIVATE KEY") {
                return Err(format!("a private key is in {what}"));
            }
        }
        Ok(())
    });
    node.poweroff();
    scheduler.poweroff();
}

#[test]
fn a_node_under_systemd_from_install_to_purge() {
    let work = tempfile::tempdir().unwrap();
    let (agent_deb, _) = build_debs(&work.path().join("debs"), None);
    let (next_deb, _) = build_debs(&work.path().join("next"), Some("0.1.0+1"));
    let image = NodeImage::get();
    let root = Overlay::new(&image);
    prepare_compute(&root, "hpc-2", "500ms");
    root.copy_in(&agent_deb, "/root/lfleet-agent.deb", 0o644);
    root.copy_in(&next_deb, "/root/lfleet-agent-next.deb", 0o644);
    let node = Container::boot(root.root(), "hpc-2", &[], &console(work.path(), "hpc-2"));
    let units = [
        "lfleet-agent.service",
        "lfleet-lnet.service",
        "lustre.mount",
        "slurmd.service",
    ];
    Step::run(
        "dpkg -i and a local configuration: the agent mounts and reports READY",
        &node,
        &units,
        || {
            node.ok(&["dpkg", "-i", "/root/lfleet-agent.deb"])?;
            // As an administrator gives the inert file work: mounts, and a higher generation
            // than the one the agent accepted from the shipped file.
            let example = fs::read_to_string(repo().join("packaging/examples/agent.toml"))
                .unwrap()
                .replace("\ngeneration = 1\n", "\ngeneration = 2\n");
            root.write("/etc/lfleet/agent.toml", example, 0o644);
            node.ok(&["systemctl", "restart", "lfleet-agent.service"])?;
            active(&node, "lfleet-agent.service")?;
            wait_for(Duration::from_secs(30), || active(&node, "lustre.mount"))?;
            let kind = node.unit_property("lfleet-agent.service", "Type");
            if kind != "notify" {
                return Err(format!("Type={kind}"));
            }
            Ok(())
        },
    );
    Step::run(
        "the Slurm health hook's exit code follows an injected fault",
        &node,
        &units,
        || {
            wait_for(Duration::from_secs(20), || match hook(&node) {
                (0, _) => Ok(()),
                other => Err(format!("{other:?}")),
            })?;
            sim(
                &node,
                &[
                    "fault", SIM, "import", "--target", "OST0001", "--state", "EVICTED",
                ],
            )?;
            let sick = wait_for(Duration::from_secs(20), || match hook(&node) {
                (1, text) => Ok(text),
                other => Err(format!("{other:?}")),
            })?;
            if !sick.contains("lustre.imports") {
                return Err(format!("the hook said {sick:?}"));
            }
            sim(&node, &["heal", SIM])?;
            wait_for(Duration::from_secs(20), || match hook(&node) {
                (0, _) => Ok(()),
                other => Err(format!("{other:?}")),
            })
        },
    );
    Step::run(
        "the watchdog restarts a SIGSTOP'd agent",
        &node,
        &units,
        || {
            let pid = node.unit_property("lfleet-agent.service", "MainPID");
            node.ok(&["kill", "-STOP", &pid])?;
            wait_for(Duration::from_secs(30), || {
                let now = node.unit_property("lfleet-agent.service", "MainPID");
                let restarts = node.unit_property("lfleet-agent.service", "NRestarts");
                if now != pid && now != "0" && restarts != "0" {
                    active(&node, "lfleet-agent.service")
                } else {
                    Err(format!("MainPID={now} NRestarts={restarts}"))
                }
            })?;
            let journal = node.ok(&["journalctl", "-u", "lfleet-agent", "--no-pager"])?;
            if journal.contains("Watchdog timeout") {
                Ok(())
            } else {
                Err("no watchdog timeout in the journal".into())
            }
        },
    );
    Step::run(
        "slurmd does not start while the managed mount fails, and starts once it mounts",
        &node,
        &units,
        || {
            node.ok(&["systemctl", "stop", "slurmd.service", "lustre.mount"])?;
            sim(&node, &["fault", SIM, "mgs-unreachable"])?;
            let start = node.exec(&["systemctl", "start", "slurmd.service"]);
            if start.status.success() || active(&node, "slurmd.service").is_ok() {
                return Err("slurmd started without its mount".into());
            }
            let mount_state = node.unit_property("lustre.mount", "ActiveState");
            if mount_state != "failed" {
                return Err(format!("lustre.mount is {mount_state}, not failed"));
            }
            let journal = node.ok(&["journalctl", "-u", "lustre.mount", "--no-pager"])?;
            if !journal.contains("Is the MGS running?") {
                return Err("the helper's own message is not in lustre.mount's journal".into());
            }
            sim(&node, &["heal", SIM, "mgs-unreachable"])?;
            node.ok(&["systemctl", "reset-failed", "lustre.mount"])?;
            node.ok(&["systemctl", "start", "slurmd.service"])?;
            active(&node, "lustre.mount")?;
            wait_for(Duration::from_secs(10), || active(&node, "slurmd.service"))
        },
    );
    Step::run(
        "an upgrade keeps the configuration, the state and an administrator's disable",
        &node,
        &units,
        || {
            let config = fs::read(root.path("/etc/lfleet/agent.toml")).unwrap();
            let ledger = fs::read(root.path("/var/lib/lfleet/desired.json")).unwrap();
            node.ok(&["systemctl", "disable", "--now", "lfleet-agent.service"])?;
            node.ok(&["dpkg", "-i", "/root/lfleet-agent-next.deb"])?;
            let version = node.ok(&["dpkg-query", "-W", "-f", "${Version}", "lfleet-agent"])?;
            if version != "0.1.0+1" {
                return Err(format!("installed version {version}"));
            }
            let enabled = node.text(&["systemctl", "is-enabled", "lfleet-agent.service"]);
            if !enabled.contains("disabled") {
                return Err(format!("after the upgrade: {enabled}"));
            }
            let state = node.unit_property("lfleet-agent.service", "ActiveState");
            if state != "inactive" {
                return Err(format!("the disabled agent is {state} after the upgrade"));
            }
            if fs::read(root.path("/etc/lfleet/agent.toml")).unwrap() != config
                || fs::read(root.path("/var/lib/lfleet/desired.json")).unwrap() != ledger
            {
                return Err("the upgrade changed the configuration or the ledger".into());
            }
            Ok(())
        },
    );
    Step::run(
        "apt-get purge leaves no lfleet path and the node's own fstab bytes",
        &node,
        &units,
        || {
            // The test's own drop-ins go first; the simulator's files are the test's.
            for dir in ["lfleet-agent.service.d", "lfleet-lnet.service.d"] {
                fs::remove_dir_all(root.path(&format!("/etc/systemd/system/{dir}"))).unwrap();
            }
            node.ok(&["apt-get", "purge", "-y", "lfleet-agent"])?;
            let left: Vec<String> = paths_named(
                root.root(),
                "lfleet",
                &[
                    "proc",
                    "sys",
                    "dev",
                    "run/systemd",
                    "var/lib/dpkg",
                    "var/log",
                    "tmp",
                    "root",
                ],
            )
            .into_iter()
            .filter(|p| !p.contains("lfleet-sim"))
            .collect();
            if !left.is_empty() {
                return Err(format!("left after purge: {left:#?}"));
            }
            let fstab = fs::read_to_string(root.path("/etc/fstab")).unwrap();
            if fstab != NODE_FSTAB {
                return Err(format!("the node's fstab after purge:\n{fstab}"));
            }
            Ok(())
        },
    );
    node.poweroff();
}
