//! Slurm through `scontrol`, run by the command runner (argv only, a deadline, typed errors):
//! read a node's state flags, reason, reason user and time, and whether jobs still run on it
//! (DRAINING) or it is empty (DRAINED); drain with a reason or change a drain's reason;
//! undrain; ask for a reboot when the node is idle (`reboot ASAP nextstate=RESUME`).
//! `SLURM_CONF` and the timeout are configurable. Errors are classified, so an unreachable
//! controller is a control-plane condition and never a node's fault. A slurmrestd backend
//! (Slurm 23.02+) can implement the same three calls later.

use std::sync::Arc;
use std::time::Duration;

use lfleet_host::{CommandRunner, CommandSpec};

/// What Slurm says about a node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SlurmNode {
    pub name: String,
    /// `IDLE+DRAIN` -> ["IDLE", "DRAIN"].
    pub state: Vec<String>,
    pub reason: String,
    pub reason_user: String,
    /// As Slurm prints it (`2026-11-22T15:02:09`).
    pub reason_time: String,
    /// CPUs allocated to jobs (`CPUAlloc`); `None` when the line does not say.
    pub cpus_allocated: Option<u32>,
    /// The state a pending reboot leaves the node in (`NextState=RESUME`), empty when none.
    pub next_state: String,
}

impl SlurmNode {
    pub fn has(&self, flag: &str) -> bool {
        self.state.iter().any(|s| s == flag)
    }

    /// Drained or draining, down or failed: someone took it out.
    pub fn is_out(&self) -> bool {
        ["DRAIN", "DRAINED", "DRAINING", "DOWN", "FAIL", "FAILING"]
            .iter()
            .any(|f| self.has(f))
    }

    /// Jobs run (or are completing) on it: ALLOCATED, MIXED or COMPLETING, or CPUs allocated.
    pub fn has_jobs(&self) -> bool {
        ["ALLOCATED", "MIXED", "COMPLETING"]
            .iter()
            .any(|f| self.has(f))
            || self.cpus_allocated.is_some_and(|cpus| cpus > 0)
    }

    /// Drained and empty (sinfo's `drain`): DRAIN with no job left. A draining node
    /// (`drng`: DRAIN with jobs still running) is not.
    pub fn is_drained(&self) -> bool {
        self.has("DRAIN") && !self.has_jobs()
    }

    /// A reboot is asked for or under way (REBOOT_REQUESTED, REBOOT_ISSUED).
    pub fn is_rebooting(&self) -> bool {
        ["REBOOT_REQUESTED", "REBOOT_ISSUED", "REBOOT"]
            .iter()
            .any(|f| self.has(f))
    }

    /// Powered down or on its way down or up (power saving, a deallocated cloud node): not
    /// expected to run an agent, mount, or report.
    pub fn is_powered_down(&self) -> bool {
        ["POWERED_DOWN", "POWERING_DOWN", "POWER_DOWN", "POWERING_UP"]
            .iter()
            .any(|f| self.has(f))
    }

    /// States lfleet never touches: power management, reboots, maintenance.
    pub fn is_managed_elsewhere(&self) -> bool {
        [
            "POWER_DOWN",
            "POWERED_DOWN",
            "POWERING_DOWN",
            "POWERING_UP",
            "POWER_UP",
            "REBOOT_REQUESTED",
            "REBOOT_ISSUED",
            "REBOOT",
            "MAINTENANCE",
            "MAINT",
            "RESERVED",
        ]
        .iter()
        .any(|f| self.has(f))
    }
}

/// Why a Slurm call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlurmError {
    #[error("slurmctld unreachable: {0}")]
    Unreachable(String),
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    #[error("invalid transition: {0}")]
    InvalidTransition(String),
    #[error("no such node: {0}")]
    NoSuchNode(String),
    #[error("{0}")]
    Other(String),
}

impl SlurmError {
    pub fn class(&self) -> &'static str {
        match self {
            SlurmError::Unreachable(_) => "controller-unreachable",
            SlurmError::PermissionDenied(_) => "permission-denied",
            SlurmError::InvalidTransition(_) => "invalid-transition",
            SlurmError::NoSuchNode(_) => "no-such-node",
            SlurmError::Other(_) => "other",
        }
    }
}

/// Sorts scontrol's message into a class.
pub fn classify(text: &str) -> SlurmError {
    let lower = text.to_lowercase();
    let message = text.trim().to_owned();
    if lower.contains("unable to contact slurm controller")
        || lower.contains("connection refused")
        || lower.contains("socket timed out")
        || lower.contains("communication connection failure")
        || lower.contains("timed out")
        || lower.contains("zero bytes were transmitted")
    {
        SlurmError::Unreachable(message)
    } else if lower.contains("access/permission denied")
        || lower.contains("permission denied")
        || lower.contains("user not authorized")
    {
        SlurmError::PermissionDenied(message)
    } else if lower.contains("invalid node state transition") {
        SlurmError::InvalidTransition(message)
    } else if lower.contains("invalid node name") || lower.contains("not found") {
        SlurmError::NoSuchNode(message)
    } else {
        SlurmError::Other(message)
    }
}

/// Parses `scontrol -o show node NAME` (one line per node).
pub fn parse_show_node(text: &str) -> Vec<SlurmNode> {
    text.lines()
        .filter(|l| l.starts_with("NodeName="))
        .map(|line| {
            // Reason is last on the line and may hold spaces; everything else is key=value.
            let (head, reason) = match line.find(" Reason=") {
                Some(at) => (&line[..at], Some(&line[at + " Reason=".len()..])),
                None => (line, None),
            };
            let mut node = SlurmNode::default();
            for field in head.split_whitespace() {
                if let Some(name) = field.strip_prefix("NodeName=") {
                    node.name = name.to_owned();
                } else if let Some(state) = field.strip_prefix("State=") {
                    node.state = state
                        .split('+')
                        .map(|s| s.trim_end_matches('*').to_owned())
                        .collect();
                } else if let Some(cpus) = field.strip_prefix("CPUAlloc=") {
                    node.cpus_allocated = cpus.parse().ok();
                } else if let Some(next) = field.strip_prefix("NextState=") {
                    node.next_state = next.to_owned();
                }
            }
            if let Some(reason) = reason {
                let reason = reason.trim_end();
                // `<text> [<user>@<time>]`
                match reason.rsplit_once(" [") {
                    Some((text, tail)) if tail.ends_with(']') && tail.contains('@') => {
                        let (user, time) = tail
                            .trim_end_matches(']')
                            .split_once('@')
                            .unwrap_or(("", ""));
                        node.reason = text.to_owned();
                        node.reason_user = user.to_owned();
                        node.reason_time = time.to_owned();
                    }
                    _ => node.reason = reason.to_owned(),
                }
            }
            node
        })
        .collect()
}

/// The scontrol backend, with the command runner it runs through.
#[derive(Debug, Clone)]
pub struct Scontrol {
    pub program: String,
    pub slurm_conf: Option<String>,
    pub timeout: Duration,
    pub runner: Arc<dyn CommandRunner>,
}

impl Scontrol {
    fn spec(&self) -> CommandSpec {
        let mut spec = CommandSpec::new(self.program.clone(), self.timeout);
        if let Some(conf) = &self.slurm_conf {
            spec = spec.env("SLURM_CONF", conf.clone());
        }
        spec
    }

    async fn call(&self, args: &[&str]) -> Result<String, SlurmError> {
        let spec = self.spec().args(args.iter().copied());
        match self.runner.run(&spec).await {
            Ok(output) => Ok(output.stdout),
            Err(error) if error.is_timeout() => Err(SlurmError::Unreachable(format!(
                "scontrol did not answer within {:?}",
                self.timeout
            ))),
            Err(error) => Err(classify(&format!("{} {}", error.stderr(), error.stdout()))),
        }
    }

    pub async fn node(&self, name: &str) -> Result<SlurmNode, SlurmError> {
        let text = self.call(&["-o", "show", "node", name]).await?;
        parse_show_node(&text)
            .into_iter()
            .find(|n| n.name == name)
            .ok_or_else(|| SlurmError::NoSuchNode(name.to_owned()))
    }

    pub async fn nodes(&self) -> Result<Vec<SlurmNode>, SlurmError> {
        Ok(parse_show_node(&self.call(&["-o", "show", "node"]).await?))
    }

    pub async fn drain(&self, name: &str, reason: &str) -> Result<(), SlurmError> {
        let node = format!("NodeName={name}");
        let reason = format!("Reason={reason}");
        self.call(&["update", &node, "State=DRAIN", &reason])
            .await
            .map(|_| ())
    }

    /// Asks Slurm to reboot `name` once it is idle (ASAP drains it meanwhile) and to return
    /// it to service when it is back (`nextstate=RESUME`); `reason` replaces the node's.
    /// Slurm runs its RebootProgram on the node and marks it DOWN if it is not back within
    /// ResumeTimeout.
    pub async fn reboot(&self, name: &str, reason: &str) -> Result<(), SlurmError> {
        let reason = format!("reason={reason}");
        self.call(&["reboot", "ASAP", "nextstate=RESUME", &reason, name])
            .await
            .map(|_| ())
    }

    /// UNDRAIN, not RESUME: a DOWN that Slurm set stays.
    pub async fn undrain(&self, name: &str) -> Result<(), SlurmError> {
        let node = format!("NodeName={name}");
        self.call(&["update", &node, "State=UNDRAIN"])
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_node_lines_with_and_without_reasons() {
        // The shape of Slurm 22.05's one-line output (abridged; fields as printed).
        let text = "NodeName=n1 Arch=x86_64 CoresPerSocket=1 CPUAlloc=0 NodeAddr=127.0.0.1 State=IDLE+DRAIN ThreadsPerCore=1 Partitions=all Reason=lfleet: hung /lustre statfs stuck id=d1 [root@2026-11-22T15:02:09]\n\
                    NodeName=n2 Arch=x86_64 State=IDLE* Partitions=all\n\
                    NodeName=n3 State=DOWN+DRAIN Reason=disk swap [alice@2026-11-21T09:00:00]\n";
        let nodes = parse_show_node(text);
        assert_eq!(nodes.len(), 3);
        assert_eq!(nodes[0].state, vec!["IDLE", "DRAIN"]);
        assert_eq!(nodes[0].reason, "lfleet: hung /lustre statfs stuck id=d1");
        assert_eq!(
            (nodes[0].reason_user.as_str(), nodes[0].reason_time.as_str()),
            ("root", "2026-11-22T15:02:09")
        );
        assert!(nodes[0].is_out() && !nodes[1].is_out());
        assert_eq!(nodes[1].state, vec!["IDLE"]);
        assert_eq!(nodes[2].reason, "disk swap");
        assert_eq!(nodes[2].reason_user, "alice");
    }

    #[test]
    fn draining_drained_and_rebooting_as_slurm_2205_prints_them() {
        // Captured from slurmctld 22.05.8 with `slurmd -N n1` on one host (fields between
        // Partitions and Reason abridged): a job running on a drained node, the node once
        // the job ended, then `scontrol reboot ASAP nextstate=RESUME reason=...` requested
        // and issued.
        let draining = "NodeName=n1 Arch=x86_64 CoresPerSocket=1  CPUAlloc=1 CPUEfctv=1 CPUTot=1 CPULoad=10.04 AvailableFeatures=(null) ActiveFeatures=(null) Gres=(null) NodeAddr=127.0.0.1 NodeHostName=localhost Port=16818 Version=22.05.8 OS=Linux 6.18.44-fc-v657 #1 SMP PREEMPT_DYNAMIC @0  RealMemory=1 AllocMem=0 FreeMem=2519 Sockets=1 Boards=1 State=ALLOCATED+DRAIN ThreadsPerCore=1 TmpDisk=0 Weight=1 Owner=N/A MCS_label=N/A Partitions=all  BootTime=2026-11-26T21:35:31 SlurmdStartTime=2026-11-27T00:25:05 LastBusyTime=2026-11-27T00:25:05 CfgTRES=cpu=1,mem=1M,billing=1 AllocTRES=cpu=1,mem=1M,billing=1 CapWatts=n/a CurrentWatts=0 AveWatts=0 ExtSensorsJoules=n/s ExtSensorsWatts=0 ExtSensorsTemp=n/s Reason=lfleet: upgrade u1 id=abc [root@2026-11-27T00:25:12]";
        let drained = "NodeName=n1 Arch=x86_64 CoresPerSocket=1  CPUAlloc=0 CPUEfctv=1 CPUTot=1 State=IDLE+DRAIN ThreadsPerCore=1 TmpDisk=0 Weight=1 Owner=N/A MCS_label=N/A Partitions=all  BootTime=2026-11-26T21:35:31 AllocTRES= Reason=lfleet: upgrade u1 id=abc [root@2026-11-27T00:25:12]";
        let requested = "NodeName=n1 Arch=x86_64 CoresPerSocket=1  CPUAlloc=0 CPUEfctv=1 CPUTot=1 State=IDLE+DRAIN+REBOOT_REQUESTED ThreadsPerCore=1 TmpDisk=0 Weight=1 Owner=N/A MCS_label=N/A NextState=RESUME Partitions=all  BootTime=2026-11-26T21:35:31 Reason=lfleet: upgrade u1 reboot id=abc [root@2026-11-27T00:25:18]";
        let issued = "NodeName=n1 Arch=x86_64 CoresPerSocket=1  CPUAlloc=0 CPUEfctv=1 CPUTot=1 State=DOWN+DRAIN+REBOOT_ISSUED ThreadsPerCore=1 TmpDisk=0 Weight=1 Owner=N/A MCS_label=N/A NextState=RESUME Partitions=all  BootTime=2026-11-26T21:35:31 Reason=lfleet: upgrade u1 reboot id=abc : reboot issued [root@2026-11-27T00:25:18]";
        let one = |line: &str| parse_show_node(line).remove(0);
        let draining = one(draining);
        assert_eq!(draining.cpus_allocated, Some(1));
        assert!(draining.is_out() && draining.has_jobs() && !draining.is_drained());
        let drained = one(drained);
        assert!(drained.is_drained() && !drained.is_rebooting());
        assert_eq!(drained.reason, "lfleet: upgrade u1 id=abc");
        let requested = one(requested);
        assert!(requested.is_rebooting() && requested.is_drained());
        assert_eq!(requested.next_state, "RESUME");
        let issued = one(issued);
        assert!(issued.is_rebooting() && issued.is_managed_elsewhere());
        assert_eq!(
            issued.reason,
            "lfleet: upgrade u1 reboot id=abc : reboot issued"
        );
        assert_eq!(issued.reason_user, "root");
        // A job still completing keeps a node draining, whatever CPUAlloc says.
        let completing = one("NodeName=n2 State=IDLE+COMPLETING+DRAIN Reason=x [root@t]");
        assert!(!completing.is_drained());
    }

    #[test]
    fn errors_are_classified() {
        assert_eq!(
            classify("slurm_update error: Unable to contact slurm controller (connect failure)")
                .class(),
            "controller-unreachable"
        );
        assert_eq!(
            classify("slurm_update error: Invalid node name specified").class(),
            "no-such-node"
        );
        assert_eq!(
            classify("slurm_update error: Access/permission denied").class(),
            "permission-denied"
        );
        assert_eq!(
            classify("slurm_update error: Invalid node state transition requested").class(),
            "invalid-transition"
        );
    }
}
