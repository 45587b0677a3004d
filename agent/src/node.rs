//! The node the agent works on, built in one place from the arguments every subcommand
//! takes: where its files are (`--root`, with `--procfs` and `--sysfs` redirects), how
//! programs run (the system's runner on `PATH`, each command line appended to `--command-log`
//! when one is given), and what time it is.
//!
//! Entry points: [`NodeOptions`], [`Node::build`], [`NodeHandle`] (what the reconcile, install
//! and DKMS code borrow).

use std::path::PathBuf;

use lfleet_host::{
    Clock, CommandRunner, HostRoot, RecordingRunner, SystemClock, SystemCommandRunner,
};

/// Where the node is and what to record: the arguments every subcommand shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeOptions {
    /// The node's root directory; every node path is resolved under it.
    pub root: PathBuf,
    /// Where `/proc` is, when not under the root.
    pub procfs: Option<PathBuf>,
    /// Where `/sys` is, when not under the root.
    pub sysfs: Option<PathBuf>,
    /// A file every command the agent runs is appended to.
    pub command_log: Option<PathBuf>,
}

impl Default for NodeOptions {
    fn default() -> Self {
        NodeOptions {
            root: PathBuf::from("/"),
            procfs: None,
            sysfs: None,
            command_log: None,
        }
    }
}

/// The node's facilities, owned.
#[derive(Debug)]
pub struct Node {
    pub host: HostRoot,
    runner: Box<dyn CommandRunner>,
    clock: Box<dyn Clock>,
}

// === impl Node ===

impl Node {
    /// The real node the options describe: the system runner (on this process's `PATH`),
    /// recorded when a command log is given, and the system clock.
    pub fn build(options: &NodeOptions) -> Node {
        let mut host = HostRoot::new(&options.root);
        if let Some(procfs) = &options.procfs {
            host = host.with_procfs(procfs);
        }
        if let Some(sysfs) = &options.sysfs {
            host = host.with_sysfs(sysfs);
        }
        let system = SystemCommandRunner::from_env();
        let runner: Box<dyn CommandRunner> = match &options.command_log {
            Some(path) => Box::new(RecordingRunner::new(system, path.clone())),
            None => Box::new(system),
        };
        Node {
            host,
            runner,
            clock: Box::new(SystemClock),
        }
    }

    /// A node from parts (tests: a temporary root, a fake runner, a fake clock).
    pub fn from_parts(
        host: HostRoot,
        runner: Box<dyn CommandRunner>,
        clock: Box<dyn Clock>,
    ) -> Node {
        Node {
            host,
            runner,
            clock,
        }
    }

    pub fn runner(&self) -> &dyn CommandRunner {
        self.runner.as_ref()
    }

    pub fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    /// The borrowed view the reconcile code takes.
    pub fn handle(&self) -> NodeHandle<'_> {
        NodeHandle {
            host: &self.host,
            runner: self.runner.as_ref(),
            clock: self.clock.as_ref(),
        }
    }
}

/// The node's facilities, borrowed: where files are, how programs run, what time it is.
#[derive(Debug, Clone, Copy)]
pub struct NodeHandle<'a> {
    pub host: &'a HostRoot,
    pub runner: &'a dyn CommandRunner,
    pub clock: &'a dyn Clock,
}

#[cfg(test)]
mod tests {
    use super::*;
    use lfleet_host::CommandSpec;
    use std::time::Duration;

    #[test]
    fn proc_and_sys_follow_their_redirects_and_everything_else_the_root() {
        let node = Node::build(&NodeOptions {
            root: "/node".into(),
            procfs: Some("/elsewhere/proc".into()),
            sysfs: Some("/elsewhere/sys".into()),
            command_log: None,
        });
        assert_eq!(
            node.host.resolve("/proc/self/mountinfo").unwrap(),
            PathBuf::from("/elsewhere/proc/self/mountinfo")
        );
        assert_eq!(
            node.host.resolve("sys/fs/lustre/health_check").unwrap(),
            PathBuf::from("/elsewhere/sys/fs/lustre/health_check")
        );
        assert_eq!(
            node.host.resolve("etc/fstab").unwrap(),
            PathBuf::from("/node/etc/fstab")
        );
    }

    #[tokio::test]
    async fn a_command_log_records_every_run_even_a_failed_one() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("commands.log");
        let node = Node::build(&NodeOptions {
            root: dir.path().into(),
            command_log: Some(log.clone()),
            ..NodeOptions::default()
        });
        let spec = CommandSpec::new("lfleet-no-such-program", Duration::from_secs(1))
            .args(["getname", "/lustre"]);
        assert!(node.runner().run(&spec).await.is_err());
        let logged = HostRoot::new("/").read_to_string(&log).unwrap();
        assert_eq!(logged, "lfleet-no-such-program getname /lustre\n");
    }
}
