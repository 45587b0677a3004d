//! Scratch roots: a directory plus an apt configuration file under it so that plain
//! `apt-get update` / `apt-get install` with `APT_CONFIG` set install into that directory
//! from an [`AptRepo`], never into the real system.
//!
//! # The configuration, option by option
//!
//! Found by experiment with apt 2.6 / dpkg 1.21 (Debian 12); each line is there because the
//! install misbehaved without it:
//!
//! - `Dir "<root>/"`: every apt path that has a relative default is resolved under `Dir`:
//!   `Dir::State` (lists, `extended_states`, and the lists lock), `Dir::Cache` (archives and
//!   their lock, `pkgcache.bin`), `Dir::Log` (`history.log`, `term.log`) and, derived from it,
//!   `Dir::State::status` = `<root>/var/lib/dpkg/status`, whose directory is also where apt
//!   takes the dpkg locks (`lock-frontend`, then `lock`). So `Dir` alone moves state, cache,
//!   logs and locking into the root; real locking is kept (no `Debug::NoLocking`).
//! - `Dir::Etc "etc/apt/lfleet-scratch/"`: apt's whole `etc` tree (`sources.list`,
//!   `sources.list.d`, `preferences`, `preferences.d`, `apt.conf.d`, `trusted.gpg*`) comes
//!   from a directory owned by this crate. Without it apt would read `<root>/etc/apt`, where a
//!   simulated node may hold the agent's own repo file for the AMLFS repository.
//!   Because `APT_CONFIG` is read before `Dir::Etc::parts`, the real `/etc/apt/apt.conf.d`
//!   (with hooks such as Docker's `DPkg::Post-Invoke` clean-up) is not read either.
//! - `DPkg::Options { "--root=<root>/"; "--log=<root>/var/log/dpkg.log"; }`: apt does NOT pass
//!   its `Dir` to dpkg; without `--root` dpkg unpacks into `/` and records the package in the
//!   real `/var/lib/dpkg`. `--root` also makes dpkg's admin directory `<root>/var/lib/dpkg`
//!   (so no `--admindir` is needed). dpkg's log is not moved by `--root`: the real
//!   `/etc/dpkg/dpkg.cfg` says `log /var/log/dpkg.log`, and without `--log` the scratch
//!   install is appended to the real log.
//! - `APT::Sandbox::User "root"`: apt downloads as user `_apt`, which cannot reach the scratch
//!   root's `lists/partial` and `archives/partial` (nor the repo) inside a 0700 directory
//!   such as `mktemp -d` makes; apt then falls back to root anyway but prints `W: Download is performed
//!   unsandboxed as root as file '...' couldn't be accessed by user '_apt'. - pkgAcquire::Run
//!   (13: Permission denied)` on every update and install, polluting the stderr tests compare.
//! - `APT::Architecture "amd64"; APT::Architectures { "amd64"; }`: the generated packages are
//!   amd64; pinning keeps any foreign architectures of the host out of the scratch resolver.
//!
//! Not needed, checked: `DPkg::Chroot-Directory` (must not be used: no shell in the root;
//! the generated packages have no maintainer scripts), `Dir::Bin::dpkg` and `DPkg::Path`
//! (host defaults are right), `--admindir` (implied by `--root`), `--force-not-root` (tests
//! run as root), `Debug::NoLocking`. `DPkg::Lock::Timeout` is left alone: `apt-get` does not
//! wait for the lock by default, it fails at once (but the `apt` binary has a built-in
//! `Binary::apt::DPkg::Lock::Timeout "120"`, so `apt install` would wait 2 minutes).
//!
//! `prepare` also creates the directories apt refuses to create itself:
//! `var/lib/apt/lists/partial`, `var/cache/apt/archives/partial`, `var/log/apt`,
//! `var/lib/dpkg` with an empty `status` (only if absent), and the `apt.conf.d` and
//! `preferences.d` directories in the scratch `etc` tree (apt prints a `W: Unable to read
//! ...` warning when either is missing; a missing `sources.list.d` is skipped silently).

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use nix::fcntl::{FcntlArg, fcntl};
use nix::libc;

use crate::cmd;
use crate::error::{Error, Result};
use crate::repo::{AptRepo, write_file};

/// The apt configuration file, relative to the scratch root.
pub const APT_CONFIG_RELATIVE: &str = "etc/apt/lfleet-scratch.conf";

/// The `etc` tree apt uses inside the scratch root (`Dir::Etc`), relative to the root.
pub const SCRATCH_ETC_RELATIVE: &str = "etc/apt/lfleet-scratch";

/// Directories apt or dpkg need and do not create themselves, relative to the root.
const REQUIRED_DIRS: &[&str] = &[
    "var/lib/apt/lists/partial",
    "var/cache/apt/archives/partial",
    "var/log/apt",
    "var/lib/dpkg",
    "etc/apt/lfleet-scratch/apt.conf.d",
    "etc/apt/lfleet-scratch/preferences.d",
];

/// A root directory prepared for apt-get/dpkg with an `APT_CONFIG` file.
#[derive(Debug, Clone)]
pub struct ScratchRoot {
    root: PathBuf,
}

impl ScratchRoot {
    /// Prepares `root` (created if missing; nothing already in it is deleted or truncated,
    /// only this crate's own config and `sources.list` are rewritten) to install from `repo`.
    pub fn prepare(root: &Path, repo: &AptRepo) -> Result<ScratchRoot> {
        fs::create_dir_all(root).map_err(|e| Error::io("create directory", root, e))?;
        let root = fs::canonicalize(root).map_err(|e| Error::io("canonicalize", root, e))?;
        check_quotable(&root)?;
        check_quotable(repo.dir())?;
        for rel in REQUIRED_DIRS {
            let dir = root.join(rel);
            fs::create_dir_all(&dir).map_err(|e| Error::io("create directory", dir, e))?;
        }
        let scratch = ScratchRoot { root };

        // An existing status file (a simulated node's dpkg database) is kept as is.
        let status = scratch.status_path();
        OpenOptions::new()
            .append(true)
            .create(true)
            .open(&status)
            .map_err(|e| Error::io("create", &status, e))?;

        let etc = scratch.root.join(SCRATCH_ETC_RELATIVE);
        write_file(
            &etc.join("sources.list"),
            format!(
                "# Written by lfleet-aptrepo: the local repository of generated packages.\n{}\n",
                repo.source_line()
            )
            .as_bytes(),
        )?;
        write_file(&scratch.apt_config_path(), scratch.apt_config().as_bytes())?;
        Ok(scratch)
    }

    /// The scratch root (absolute).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file `APT_CONFIG` must name.
    pub fn apt_config_path(&self) -> PathBuf {
        self.root.join(APT_CONFIG_RELATIVE)
    }

    /// The environment apt-get needs to work on this root: just `APT_CONFIG`.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![(
            "APT_CONFIG".to_owned(),
            self.apt_config_path().to_string_lossy().into_owned(),
        )]
    }

    /// dpkg's database in the root: `<root>/var/lib/dpkg`.
    pub fn admindir(&self) -> PathBuf {
        self.root.join("var/lib/dpkg")
    }

    /// `<root>/var/lib/dpkg/status`, e.g. to check byte for byte that nothing was installed.
    pub fn status_path(&self) -> PathBuf {
        self.admindir().join("status")
    }

    /// The lock apt-get takes first (fcntl write lock) before touching dpkg's database.
    pub fn frontend_lock_path(&self) -> PathBuf {
        self.admindir().join("lock-frontend")
    }

    /// Arguments for `dpkg-query` (the program is not included) that print
    /// `<Status> <Version>` of `package` in this root, e.g.
    /// `install ok installed 5.15.0-1075-azure`. dpkg-query exits 1 for an unknown package.
    pub fn dpkg_query_args(&self, package: &str) -> Vec<String> {
        vec![
            format!("--admindir={}", self.admindir().display()),
            "-W".to_owned(),
            "-f=${Status} ${Version}\\n".to_owned(),
            package.to_owned(),
        ]
    }

    /// The installed version of `package` in this root, or `None` if dpkg does not know it
    /// or it is not fully installed.
    pub fn installed_version(&self, package: &str) -> Result<Option<String>> {
        let mut command = Command::new("dpkg-query");
        command.args(self.dpkg_query_args(package));
        let out = cmd::output(&mut command)?;
        if out.status.code() == Some(1) {
            return Ok(None);
        }
        if !out.status.success() {
            return Err(Error::CommandFailed {
                command: cmd::describe(&command),
                status: out.status,
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let line = text.lines().next().unwrap_or_default();
        let mut words = line.split(' ');
        let status: Vec<&str> = words.by_ref().take(3).collect();
        let version = words.next();
        match (status.as_slice(), version) {
            (["install", "ok", "installed"], Some(v)) => Ok(Some(v.to_owned())),
            ([_, _, _], _) => Ok(None),
            _ => Err(Error::UnexpectedOutput {
                command: cmd::describe(&command),
                output: text,
            }),
        }
    }

    /// Runs the real `apt-get ARGS` on this root: the environment is inherited plus
    /// [`ScratchRoot::env`] and `LC_ALL=C` (so messages are apt's untranslated ones); stdin
    /// is closed. Returns the output whatever the exit status.
    pub fn apt_get(&self, args: &[&str]) -> Result<Output> {
        let mut command = Command::new("apt-get");
        command.args(args).env("LC_ALL", "C").envs(self.env());
        cmd::output(&mut command)
    }

    /// Takes the fcntl write lock apt-get takes on `<root>/var/lib/dpkg/lock-frontend`, as
    /// another package manager would; held until the returned guard is dropped. Note that
    /// `flock(2)` locks do not conflict with apt's: this must be an fcntl (POSIX) lock.
    pub fn hold_frontend_lock(&self) -> Result<FrontendLock> {
        let path = self.frontend_lock_path();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io("open", &path, e))?;
        let lock = libc::flock {
            l_type: libc::F_WRLCK as libc::c_short,
            l_whence: libc::SEEK_SET as libc::c_short,
            l_start: 0,
            l_len: 0,
            l_pid: 0,
        };
        fcntl(&file, FcntlArg::F_SETLK(&lock)).map_err(|source| Error::Lock {
            path: path.clone(),
            source,
        })?;
        Ok(FrontendLock { _file: file, path })
    }

    fn apt_config(&self) -> String {
        let root = self.root.display();
        format!(
            r#"// Written by lfleet-aptrepo: apt-get with APT_CONFIG pointing here installs into
// the scratch root {root} from a local repository. See lfleet_aptrepo::scratch for why each
// option is here.
Dir "{root}/";
Dir::Etc "{etc}/";
DPkg::Options {{ "--root={root}/"; "--log={root}/var/log/dpkg.log"; }};
APT::Sandbox::User "root";
APT::Architecture "amd64";
APT::Architectures {{ "amd64"; }};
"#,
            etc = SCRATCH_ETC_RELATIVE,
        )
    }
}

/// Holds the scratch root's dpkg frontend lock; dropping it (closing the file) releases it.
#[derive(Debug)]
pub struct FrontendLock {
    _file: File,
    path: PathBuf,
}

impl FrontendLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Paths go into double-quoted apt.conf strings and an unencoded `file:` URI.
fn check_quotable(path: &Path) -> Result<()> {
    let Some(s) = path.to_str() else {
        return Err(Error::UnusablePath {
            path: path.to_owned(),
            reason: "not UTF-8",
        });
    };
    if s.chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '[' | ']' | '%'))
    {
        return Err(Error::UnusablePath {
            path: path.to_owned(),
            reason: "contains whitespace, a quote, brackets or %",
        });
    }
    Ok(())
}
