//! `mount.present`: each managed mount is in mountinfo, as Lustre, from the desired source.
//! Reads /proc/self/mountinfo only, so it never blocks. While the running agent's first pass
//! for a newer configuration is still going, a mount not there yet is unknown (being made),
//! so a configuration push does not read as a fleet of failing nodes.

use lfleet_mount::parse_mountinfo;
use lfleet_mount::plan::normalize_source;

use lfleet_types::KnownCheck;

use super::{CheckContext, CheckResult, Verdict, fail, result, unknown};

pub const NAME: KnownCheck = KnownCheck::MountPresent;

pub fn run(context: CheckContext<'_>) -> Vec<CheckResult> {
    let mounts = match context
        .host
        .read_to_string("proc/self/mountinfo")
        .map_err(|e| lfleet_types::error_chain(&e))
        .and_then(|t| parse_mountinfo(&t).map_err(|e| lfleet_types::error_chain(&e)))
    {
        Ok(mounts) => mounts,
        Err(error) => return vec![result(context, NAME, "", unknown(error))],
    };
    context
        .config
        .desired_mounts()
        .iter()
        .map(|want| {
            let found = mounts
                .iter()
                .rev()
                .find(|m| m.mount_point == want.mount_point);
            let outcome = match found {
                None if context.converging => unknown(format!(
                    "{} is not mounted yet: the reconcile pass for generation {} is running",
                    want.mount_point, context.config.generation
                )),
                None => fail(
                    "not-mounted",
                    format!("{} is not mounted", want.mount_point),
                ),
                Some(m) if m.fstype != "lustre" => fail(
                    "not-lustre",
                    format!(
                        "{} is a {} mount of {}",
                        want.mount_point, m.fstype, m.source
                    ),
                ),
                Some(m) if normalize_source(&m.source) != normalize_source(&want.source) => fail(
                    "wrong-source",
                    format!(
                        "{} is mounted from {}, not {}",
                        want.mount_point, m.source, want.source
                    ),
                ),
                Some(_) => Verdict::Pass,
            };
            result(context, NAME, &want.mount_point, outcome)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::{CheckMemory, Prober};
    use crate::config::NodeConfig;
    use lfleet_host::{BoundedWorker, FakeClock, FakeCommandRunner, HostRoot};
    use lfleet_types::Outcome;
    use std::sync::Mutex;
    use std::time::Duration;

    #[test]
    fn a_mount_being_made_by_a_running_pass_is_unknown_and_otherwise_failed() {
        let dir = tempfile::tempdir().unwrap();
        let host = HostRoot::new(dir.path());
        host.create_dir_all("proc/self", 0o755).unwrap();
        host.write_atomic(
            "proc/self/mountinfo",
            b"22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n",
            0o644,
        )
        .unwrap();
        let config =
            NodeConfig::from_toml(include_str!("../../../packaging/examples/agent.toml")).unwrap();
        let runner = FakeCommandRunner::new();
        let clock = FakeClock::at_unix(1_700_000_000);
        let worker = BoundedWorker::new();
        let memory = Mutex::new(CheckMemory::default());
        let verdict = |converging: bool| {
            let context = CheckContext {
                host: &host,
                runner: &runner,
                clock: &clock,
                config: &config,
                prober: Prober::Thread(&worker),
                syscall_deadline: Duration::from_secs(1),
                memory: &memory,
                converging,
                readings: None,
                repeat_steady_for: None,
            };
            let results = run(context);
            assert_eq!(results.len(), 1);
            (results[0].outcome, results[0].code.clone())
        };
        assert_eq!(verdict(true), (Outcome::Unknown, String::new()));
        assert_eq!(verdict(false), (Outcome::Fail, "not-mounted".to_owned()));
    }
}
