//! Applying mount steps to a node: umount, the fstab write (with a backup), mkdir and mount,
//! each mount verified in mountinfo afterwards; and the slurmd drop-in that keeps slurmd from
//! taking jobs without the managed mounts.
//!
//! Programs get node paths (`/lustre`); files are reached through the [`HostRoot`]. On a real
//! node the two are the same; on an lfleet-sim node the shims map node paths into the root,
//! as the host root does.
//!
//! Entry points: [`MountExecutor::apply`], [`slurmd_drop_in`].

use std::time::Duration;

use lfleet_host::{CommandError, CommandRunner, CommandSpec, HostError, HostRoot};
use lfleet_mount::{Step, parse_mountinfo};

/// The fstab the agent owns lines in.
pub const FSTAB_PATH: &str = "etc/fstab";
/// The copy of the previous fstab kept at every write.
pub const FSTAB_BACKUP_PATH: &str = "etc/fstab.lfleet-backup";
/// The drop-in that orders slurmd after the managed mounts.
pub const SLURMD_DROP_IN_PATH: &str = "etc/systemd/system/slurmd.service.d/lfleet-mounts.conf";

/// Why a step failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("running a mount command for {mount_point}")]
    Command {
        mount_point: String,
        #[source]
        source: CommandError,
    },
    #[error("{what}")]
    Host {
        what: String,
        #[source]
        source: HostError,
    },
    #[error("mount of {mount_point} succeeded but it is not in mountinfo afterwards")]
    NotVisible { mount_point: String },
}

/// Runs mount steps on one node. Steps run one at a time (Lustre mounts and unmounts must
/// be serialized per node: concurrent ones crash kernels and fail with EEXIST).
#[derive(Debug)]
pub struct MountExecutor<'a> {
    pub host: &'a HostRoot,
    pub runner: &'a dyn CommandRunner,
    /// Deadline for one mount or umount.
    pub timeout: Duration,
}

// === impl MountExecutor ===

impl MountExecutor<'_> {
    /// Applies one step.
    pub async fn apply(&self, step: &Step) -> Result<(), ApplyError> {
        match step {
            Step::Unmount { mount_point, why } => {
                tracing::info!(%mount_point, %why, "unmounting");
                // Plain umount: never -f or -l, which hide a busy or hung mount.
                let spec = CommandSpec::new("umount", self.timeout).arg(mount_point);
                self.run(mount_point, &spec).await
            }
            Step::WriteFstab { text } => self.write_fstab(text),
            Step::Mount {
                source,
                mount_point,
                options,
            } => {
                tracing::info!(%source, %mount_point, "mounting");
                self.host
                    .create_dir_all(mount_point, 0o755)
                    .map_err(|source| ApplyError::Host {
                        what: format!("creating mount point {mount_point}"),
                        source,
                    })?;
                let mut spec = CommandSpec::new("mount", self.timeout).args(["-t", "lustre"]);
                if !options.is_empty() {
                    spec = spec.arg("-o").arg(options.join(","));
                }
                let spec = spec.arg(source).arg(mount_point);
                self.run(mount_point, &spec).await?;
                self.verify_mounted(mount_point)
            }
        }
    }

    async fn run(&self, mount_point: &str, spec: &CommandSpec) -> Result<(), ApplyError> {
        self.runner
            .run(spec)
            .await
            .map(|_| ())
            .map_err(|source| ApplyError::Command {
                mount_point: mount_point.to_owned(),
                source,
            })
    }

    fn write_fstab(&self, text: &str) -> Result<(), ApplyError> {
        let host_error = |what: &str| {
            let what = what.to_owned();
            move |source| ApplyError::Host { what, source }
        };
        let previous = self
            .host
            .read_optional(FSTAB_PATH)
            .map_err(host_error("reading /etc/fstab"))?;
        if previous.as_deref() == Some(text) {
            return Ok(());
        }
        if let Some(previous) = previous {
            self.host
                .write_atomic(FSTAB_BACKUP_PATH, previous.as_bytes(), 0o644)
                .map_err(host_error("writing the fstab backup"))?;
        }
        tracing::info!(path = FSTAB_PATH, "writing fstab");
        self.host
            .write_atomic(FSTAB_PATH, text.as_bytes(), 0o644)
            .map_err(host_error("writing /etc/fstab"))
    }

    fn verify_mounted(&self, mount_point: &str) -> Result<(), ApplyError> {
        let text = self
            .host
            .read_to_string("proc/self/mountinfo")
            .map_err(|source| ApplyError::Host {
                what: "reading mountinfo to verify a mount".into(),
                source,
            })?;
        let visible = parse_mountinfo(&text)
            .map(|mounts| {
                mounts
                    .iter()
                    .any(|m| m.mount_point == mount_point && m.fstype == "lustre")
            })
            .unwrap_or(false);
        if visible {
            Ok(())
        } else {
            Err(ApplyError::NotVisible {
                mount_point: mount_point.to_owned(),
            })
        }
    }
}

/// The slurmd drop-in for `mount_points`, or `None` when there are none (the drop-in is then
/// removed).
pub fn slurmd_drop_in(mount_points: &[&str]) -> Option<String> {
    if mount_points.is_empty() {
        return None;
    }
    Some(format!(
        "# Written by lfleet-agent. slurmd starts, and stays up, only with these Lustre mounts.\n\
         [Unit]\n\
         RequiresMountsFor={}\n",
        mount_points.join(" ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lfleet_host::{FakeCommandRunner, FakeResponse};

    #[tokio::test]
    async fn mount_creates_the_directory_runs_mount_and_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let host = HostRoot::new(dir.path());
        host.create_dir_all("proc/self", 0o755).unwrap();
        host.write_atomic("proc/self/mountinfo", b"", 0o644)
            .unwrap();
        let runner = FakeCommandRunner::new();
        let mountinfo_host = host.clone();
        // A stateful fake mount: it adds the line, as the kernel would.
        runner.on("mount", move |args| {
            let line = format!(
                "90 22 0:90 / {} rw,noatime shared:90 - lustre {} rw,flock\n",
                args[args.len() - 1],
                args[args.len() - 2]
            );
            mountinfo_host
                .write_atomic("proc/self/mountinfo", line.as_bytes(), 0o644)
                .unwrap();
            FakeResponse::ok("")
        });
        let executor = MountExecutor {
            host: &host,
            runner: &runner,
            timeout: Duration::from_secs(5),
        };
        executor
            .apply(&Step::Mount {
                source: "10.0.1.4@tcp:/lustrefs".into(),
                mount_point: "/lustre".into(),
                options: vec!["noatime".into(), "flock".into()],
            })
            .await
            .unwrap();
        assert!(host.exists("lustre").unwrap());
        assert_eq!(
            runner.log_lines(),
            vec!["mount -t lustre -o noatime,flock 10.0.1.4@tcp:/lustrefs /lustre"]
        );
    }

    #[tokio::test]
    async fn a_mount_that_does_not_show_up_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let host = HostRoot::new(dir.path());
        host.create_dir_all("proc/self", 0o755).unwrap();
        host.write_atomic("proc/self/mountinfo", b"", 0o644)
            .unwrap();
        let runner = FakeCommandRunner::new();
        runner.respond("mount", FakeResponse::ok(""));
        let executor = MountExecutor {
            host: &host,
            runner: &runner,
            timeout: Duration::from_secs(5),
        };
        let err = executor
            .apply(&Step::Mount {
                source: "10.0.1.4@tcp:/lustrefs".into(),
                mount_point: "/lustre".into(),
                options: vec![],
            })
            .await
            .unwrap_err();
        assert!(matches!(err, ApplyError::NotVisible { .. }), "{err}");
    }

    #[tokio::test]
    async fn the_fstab_write_keeps_a_backup_and_skips_identical_content() {
        let dir = tempfile::tempdir().unwrap();
        let host = HostRoot::new(dir.path());
        host.create_dir_all("etc", 0o755).unwrap();
        host.write_atomic(FSTAB_PATH, b"old\n", 0o644).unwrap();
        let runner = FakeCommandRunner::new();
        let executor = MountExecutor {
            host: &host,
            runner: &runner,
            timeout: Duration::from_secs(5),
        };
        executor
            .apply(&Step::WriteFstab {
                text: "new\n".into(),
            })
            .await
            .unwrap();
        assert_eq!(host.read_to_string(FSTAB_PATH).unwrap(), "new\n");
        assert_eq!(host.read_to_string(FSTAB_BACKUP_PATH).unwrap(), "old\n");
        executor
            .apply(&Step::WriteFstab {
                text: "new\n".into(),
            })
            .await
            .unwrap();
        // No second backup rotation: the backup still holds the real previous file.
        assert_eq!(host.read_to_string(FSTAB_BACKUP_PATH).unwrap(), "old\n");
    }

    #[tokio::test]
    async fn unmount_is_plain_umount_and_failures_carry_the_command() {
        let dir = tempfile::tempdir().unwrap();
        let host = HostRoot::new(dir.path());
        let runner = FakeCommandRunner::new();
        runner.respond(
            "umount",
            FakeResponse::fail(32, "umount: /lustre: target is busy.\n"),
        );
        let executor = MountExecutor {
            host: &host,
            runner: &runner,
            timeout: Duration::from_secs(5),
        };
        let err = executor
            .apply(&Step::Unmount {
                mount_point: "/lustre".into(),
                why: "removed".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(runner.log_lines(), vec!["umount /lustre"]);
        let ApplyError::Command { source, .. } = &err else {
            panic!("{err:?}")
        };
        assert!(source.to_string().contains("target is busy"), "{source}");
    }

    #[test]
    fn the_drop_in_lists_every_managed_mount() {
        assert_eq!(slurmd_drop_in(&[]), None);
        let text = slurmd_drop_in(&["/lustre", "/scratch"]).unwrap();
        assert!(text.contains("[Unit]\nRequiresMountsFor=/lustre /scratch\n"));
    }
}
