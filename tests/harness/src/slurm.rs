//! A real Slurm for tests: munged with a scratch key, slurmctld and one `slurmd -N <name>`
//! per node, all from Debian's packages, in the foreground so each is this test's child,
//! with a scratch slurm.conf on loopback ports. `start` waits until every node is IDLE;
//! dropping it stops everything by PID.
//!
//! Reboots go through Slurm's own path: slurm.conf names a RebootProgram that records the
//! request (each slurmd runs with `LFLEET_SIM_NODE` naming its node, since several share
//! this host), [`Slurm::reboot_requests`] takes the recorded requests, and the test
//! power-cycles the node and starts its slurmd with `-b` ([`Slurm::boot_slurmd`]), which
//! makes it report a boot at its start, as a rebooted node's slurmd does.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::{Owned, free_port};

#[derive(Debug)]
pub struct Slurm {
    pub dir: PathBuf,
    pub conf: PathBuf,
    pub nodes: Vec<String>,
    munged: Option<Owned>,
    slurmctld: Option<Owned>,
    slurmds: Vec<Owned>,
}

fn log(dir: &Path, name: &str) -> Stdio {
    Stdio::from(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(name))
            .unwrap(),
    )
}

impl Slurm {
    pub fn start(dir: &Path, nodes: &[&str]) -> Slurm {
        Slurm::start_with(dir, nodes, "")
    }

    /// [`Slurm::start`] with `extra` lines in slurm.conf (power saving, a reboot program).
    pub fn start_with(dir: &Path, nodes: &[&str], extra: &str) -> Slurm {
        let dir = dir.join("slurm");
        for sub in ["state", "spool"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let key = dir.join("munge.key");
        let made = Command::new("mungekey")
            .arg("--create")
            .arg(format!("--keyfile={}", key.display()))
            .output()
            .unwrap();
        assert!(made.status.success(), "mungekey: {made:?}");
        let socket = dir.join("munge.sock");
        let munged = Owned(
            Command::new("munged")
                .arg("--foreground")
                .arg("--force")
                .arg(format!("--socket={}", socket.display()))
                .arg(format!("--key-file={}", key.display()))
                .arg(format!("--pid-file={}", dir.join("munged.pid").display()))
                .arg(format!("--log-file={}", dir.join("munged.log").display()))
                .arg(format!("--seed-file={}", dir.join("munge.seed").display()))
                .stdout(Stdio::null())
                .stderr(log(&dir, "munged.out"))
                .spawn()
                .expect("munged runs"),
        );
        for _ in 0..100 {
            if socket.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut conf = format!(
            "ClusterName=lfleet\nSlurmctldHost=localhost(127.0.0.1)\nSlurmctldPort={}\nSlurmUser=root\nSlurmdUser=root\n\
AuthType=auth/munge\nAuthInfo=socket={socket}\nCredType=cred/munge\nStateSaveLocation={d}/state\nSlurmdSpoolDir={d}/spool/%n\n\
SlurmctldPidFile={d}/slurmctld.pid\nSlurmdPidFile={d}/slurmd-%n.pid\nSlurmctldLogFile={d}/slurmctld.log\nSlurmdLogFile={d}/slurmd-%n.log\n\
ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\nJobAcctGatherType=jobacct_gather/none\nAccountingStorageType=accounting_storage/none\n\
SchedulerType=sched/builtin\nSelectType=select/linear\nReturnToService=2\nMpiDefault=none\nSlurmctldTimeout=10\nSlurmdTimeout=60\n",
            free_port(),
            socket = socket.display(),
            d = dir.display()
        );
        for node in nodes {
            conf.push_str(&format!(
                "NodeName={node} NodeHostname=localhost NodeAddr=127.0.0.1 Port={} CPUs=1 State=UNKNOWN\n",
                free_port()
            ));
        }
        conf.push_str("PartitionName=all Nodes=ALL Default=YES State=UP\n");
        // The RebootProgram: records which node asked, for the test to power-cycle it.
        let reboot = dir.join("reboot-program");
        std::fs::write(
            &reboot,
            format!(
                "#!/bin/sh\n# The test's RebootProgram: slurmd runs it; the test reboots the node.\nmkdir -p '{d}/reboots' && : > '{d}/reboots/'\"$LFLEET_SIM_NODE\"\n",
                d = dir.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&reboot, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        // ResumeTimeout stays Slurm's default (60 s): a node not back by then is DOWN.
        conf.push_str(&format!("RebootProgram={}\n", reboot.display()));
        conf.push_str(extra);
        let conf_path = dir.join("slurm.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let mut slurm = Slurm {
            dir: dir.clone(),
            conf: conf_path,
            nodes: nodes.iter().map(|n| n.to_string()).collect(),
            munged: Some(munged),
            slurmctld: None,
            slurmds: Vec::new(),
        };
        slurm.start_slurmctld();
        for node in nodes {
            let slurmd = slurm.spawn_slurmd(node, false);
            slurm.slurmds.push(slurmd);
        }
        // Bounded: 60 s. A slurmd that exited (its port, free when picked, taken meanwhile
        // by another test on this host) is started again.
        for _ in 0..300 {
            let states: Vec<String> = slurm.nodes.iter().map(|n| slurm.node(n).0).collect();
            if states.iter().all(|s| s == "IDLE") {
                return slurm;
            }
            for index in 0..slurm.nodes.len() {
                if let Ok(Some(_)) = slurm.slurmds[index].0.try_wait() {
                    let node = slurm.nodes[index].clone();
                    slurm.slurmds[index] = slurm.spawn_slurmd(&node, false);
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let slurmd_logs: Vec<String> = slurm
            .nodes
            .iter()
            .filter(|n| slurm.node(n).0 != "IDLE")
            .map(|n| {
                let log = std::fs::read_to_string(dir.join(format!("slurmd-{n}.log")))
                    .unwrap_or_default();
                format!("--- slurmd {n}:\n{log}")
            })
            .collect();
        panic!(
            "Slurm nodes did not become IDLE: {:?}\n{}\n{}",
            slurm
                .nodes
                .iter()
                .map(|n| slurm.node(n))
                .collect::<Vec<_>>(),
            std::fs::read_to_string(dir.join("slurmctld.log")).unwrap_or_default(),
            slurmd_logs.join("\n")
        );
    }

    /// `slurmd -D -N node`, with `-b` (report a boot at start) when `booted`.
    fn spawn_slurmd(&self, node: &str, booted: bool) -> Owned {
        let mut command = Command::new("slurmd");
        command.args(["-D", "-N", node]);
        if booted {
            command.arg("-b");
        }
        Owned(
            command
                .env("SLURM_CONF", &self.conf)
                .env("LFLEET_SIM_NODE", node)
                .stdout(Stdio::null())
                .stderr(log(&self.dir, &format!("slurmd-{node}.out")))
                .spawn()
                .expect("slurmd runs"),
        )
    }

    fn index(&self, node: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| n == node)
            .unwrap_or_else(|| panic!("no node {node}"))
    }

    /// Restarts `node`'s slurmd (the same boot: Slurm sees a daemon restart).
    pub fn restart_slurmd(&mut self, node: &str) {
        let index = self.index(node);
        self.slurmds[index].stop();
        self.slurmds[index] = self.spawn_slurmd(node, false);
    }

    /// Kills `node`'s slurmd (SIGKILL, as a power cut does); [`Slurm::boot_slurmd`] starts
    /// it again.
    pub fn kill_slurmd(&mut self, node: &str) {
        let index = self.index(node);
        self.slurmds[index].kill();
    }

    /// Starts `node`'s slurmd as a freshly booted node's: it reports a boot at its start, so
    /// slurmctld ends a pending reboot (and applies its next state).
    pub fn boot_slurmd(&mut self, node: &str) {
        let index = self.index(node);
        self.slurmds[index].stop();
        self.slurmds[index] = self.spawn_slurmd(node, true);
    }

    /// The nodes whose RebootProgram ran since the last call, in name order.
    pub fn reboot_requests(&self) -> Vec<String> {
        let dir = self.dir.join("reboots");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut nodes: Vec<String> = entries
            .flatten()
            .filter(|e| std::fs::remove_file(e.path()).is_ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        nodes.sort();
        nodes
    }

    pub fn start_slurmctld(&mut self) {
        self.slurmctld = Some(Owned(
            Command::new("slurmctld")
                .arg("-D")
                .env("SLURM_CONF", &self.conf)
                .stdout(Stdio::null())
                .stderr(log(&self.dir, "slurmctld.out"))
                .spawn()
                .expect("slurmctld runs"),
        ));
        // 30 s: on a loaded machine (several Slurm tests at once) slurmctld's start is slow.
        for _ in 0..300 {
            if self.scontrol(&["ping"]).status.success() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "slurmctld did not answer within 30 s
{}",
            std::fs::read_to_string(self.dir.join("slurmctld.log")).unwrap_or_default()
        );
    }

    pub fn stop_slurmctld(&mut self) {
        if let Some(mut ctld) = self.slurmctld.take() {
            ctld.stop();
        }
    }

    pub fn scontrol(&self, args: &[&str]) -> Output {
        Command::new("scontrol")
            .args(args)
            .env("SLURM_CONF", &self.conf)
            .output()
            .unwrap()
    }

    /// (State without the trailing `*`, Reason with its `[user@time]`).
    pub fn node(&self, name: &str) -> (String, String) {
        let output = self.scontrol(&["-o", "show", "node", name]);
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let state = text
            .split_whitespace()
            .find_map(|f| f.strip_prefix("State="))
            .unwrap_or("")
            .trim_end_matches('*')
            .to_owned();
        let reason = text
            .find(" Reason=")
            .map(|at| text[at + 8..].trim().to_owned())
            .unwrap_or_default();
        (state, reason)
    }
}

impl Drop for Slurm {
    fn drop(&mut self) {
        for mut slurmd in self.slurmds.drain(..) {
            slurmd.stop();
        }
        self.stop_slurmctld();
        if let Some(mut munged) = self.munged.take() {
            munged.stop();
        }
    }
}
