//! `HostRoot`: every host path the agent touches, resolved under a configurable root.
//!
//! Paths are written the way they appear on a node (`/proc/self/mountinfo`, `etc/fstab`) and
//! are resolved under `--root` (default `/`). `proc/...` and `sys/...` can be redirected
//! separately (`--procfs`, `--sysfs`), as node_exporter's `--path.procfs` does. A path with a
//! `..` component is refused: nothing the agent reads or writes can leave the root by name.
//!
//! Entry points: [`HostRoot::new`], [`HostRoot::resolve`], the read helpers, and
//! [`HostRoot::write_atomic`] (temp file, fsync, rename, fsync of the directory). Files read
//! again and again (the telemetry's kernel counters) are resolved once into a
//! [`ResolvedPath`] and read with [`HostRoot::read_text`] into a buffer the caller reuses.

use std::borrow::Cow;
use std::ffi::OsString;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Largest file [`HostRoot::read_to_string`] reads; kernel text files are far smaller.
pub const DEFAULT_READ_LIMIT: u64 = 16 * 1024 * 1024;

/// An error from a host file operation, naming the operation and the resolved path.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The path given by the caller is not acceptable (it has `..`, or is empty).
    #[error("refusing host path {path:?}: {reason}")]
    BadPath { path: String, reason: &'static str },
    /// An I/O call failed.
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A file was larger than the caller allowed.
    #[error("{path} is larger than {limit} bytes")]
    TooLarge { path: PathBuf, limit: u64 },
}

impl HostError {
    /// The `io::ErrorKind` behind this error, if it came from an I/O call.
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            HostError::Io { source, .. } => Some(source.kind()),
            _ => None,
        }
    }

    /// True when the file or directory does not exist.
    pub fn is_not_found(&self) -> bool {
        self.io_kind() == Some(io::ErrorKind::NotFound)
    }
}

/// A file read into `buffer` as text: refused past [`DEFAULT_READ_LIMIT`]; invalid UTF-8
/// replaced (the validating check is far cheaper than the lossy walk, and kernel text is
/// valid).
fn limited_text<'b>(path: &Path, buffer: &'b [u8]) -> Result<Cow<'b, str>, HostError> {
    if buffer.len() as u64 > DEFAULT_READ_LIMIT {
        return Err(HostError::TooLarge {
            path: path.to_path_buf(),
            limit: DEFAULT_READ_LIMIT,
        });
    }
    match std::str::from_utf8(buffer) {
        Ok(text) => Ok(Cow::Borrowed(text)),
        Err(_) => Ok(String::from_utf8_lossy(buffer)),
    }
}

fn io_error<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> HostError + 'a {
    move |source| HostError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// A node path already resolved under a root, made only by [`HostRoot::resolve_path`] (so the
/// `..` refusal cannot be skipped): the joining and checking are done once for a file read
/// every cycle.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResolvedPath {
    real: PathBuf,
    node: String,
}

impl ResolvedPath {
    /// The real path under the root.
    pub fn as_path(&self) -> &Path {
        &self.real
    }

    /// The node path it was resolved from, as given (for messages).
    pub fn node_path(&self) -> &str {
        &self.node
    }
}

/// The root directory every host path is resolved under.
#[derive(Debug, Clone)]
pub struct HostRoot {
    root: PathBuf,
    procfs: Option<PathBuf>,
    sysfs: Option<PathBuf>,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

// === impl HostRoot ===

impl HostRoot {
    /// A root at `root` (use `/` on a real node). `proc` and `sys` live under it.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        HostRoot {
            root: root.into(),
            procfs: None,
            sysfs: None,
        }
    }

    /// Redirects `proc/...` paths to `procfs` (like `--procfs`).
    pub fn with_procfs(mut self, procfs: impl Into<PathBuf>) -> Self {
        self.procfs = Some(procfs.into());
        self
    }

    /// Redirects `sys/...` paths to `sysfs` (like `--sysfs`).
    pub fn with_sysfs(mut self, sysfs: impl Into<PathBuf>) -> Self {
        self.sysfs = Some(sysfs.into());
        self
    }

    /// The root directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Resolves a node path (`/etc/fstab` or `etc/fstab`) to the real path under the root.
    ///
    /// Refuses `..` components and empty paths; `.` components are dropped.
    pub fn resolve(&self, node_path: impl AsRef<Path>) -> Result<PathBuf, HostError> {
        let node_path = node_path.as_ref();
        let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
        for component in node_path.components() {
            match component {
                Component::RootDir | Component::CurDir => {}
                Component::Normal(part) => parts.push(part),
                Component::ParentDir => {
                    return Err(HostError::BadPath {
                        path: node_path.display().to_string(),
                        reason: "a '..' component could leave the host root",
                    });
                }
                Component::Prefix(_) => {
                    return Err(HostError::BadPath {
                        path: node_path.display().to_string(),
                        reason: "path prefixes are not supported",
                    });
                }
            }
        }
        let Some((first, rest)) = parts.split_first() else {
            return Err(HostError::BadPath {
                path: node_path.display().to_string(),
                reason: "empty path",
            });
        };
        let (base, rest) = match (*first, &self.procfs, &self.sysfs) {
            (first, Some(procfs), _) if first == "proc" => (procfs.clone(), rest),
            (first, _, Some(sysfs)) if first == "sys" => (sysfs.clone(), rest),
            _ => (self.root.clone(), &parts[..]),
        };
        let mut resolved = base;
        for part in rest {
            resolved.push(part);
        }
        Ok(resolved)
    }

    /// Reads a whole text file, up to [`DEFAULT_READ_LIMIT`] bytes. Invalid UTF-8 is replaced.
    pub fn read_to_string(&self, node_path: impl AsRef<Path>) -> Result<String, HostError> {
        let bytes = self.read_limited(node_path, DEFAULT_READ_LIMIT)?;
        Ok(match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(err) => String::from_utf8_lossy(err.as_bytes()).into_owned(),
        })
    }

    /// Resolves a node path once, for files read again and again with [`HostRoot::read_text`].
    pub fn resolve_path(&self, node_path: impl AsRef<Path>) -> Result<ResolvedPath, HostError> {
        let node_path = node_path.as_ref();
        Ok(ResolvedPath {
            real: self.resolve(node_path)?,
            node: node_path.to_string_lossy().into_owned(),
        })
    }

    /// Reads a whole text file (up to [`DEFAULT_READ_LIMIT`] bytes) into `buffer`, which is
    /// cleared first and keeps its allocation for the next read; invalid UTF-8 is replaced.
    ///
    /// With a buffer that already has room, a kernel file costs open, one read, the read
    /// that sees its end, and close: no size probe (statx, lseek) and no growing reads.
    pub fn read_text<'b>(
        &self,
        path: &ResolvedPath,
        buffer: &'b mut Vec<u8>,
    ) -> Result<Cow<'b, str>, HostError> {
        let path = &path.real;
        buffer.clear();
        let file = fs::File::open(path).map_err(io_error("open", path))?;
        file.take(DEFAULT_READ_LIMIT + 1)
            .read_to_end(buffer)
            .map_err(io_error("read", path))?;
        limited_text(path, buffer)
    }

    /// Reads a sysfs attribute (one value, at most a page: the kernel formats it in a single
    /// `show` call) into `buffer` with one read: a read that returns less than the page asked
    /// for has the whole attribute, so the read that would see the end is skipped. A file
    /// that fills the page is read on to its end as [`HostRoot::read_text`] does.
    pub fn read_attribute<'b>(
        &self,
        path: &ResolvedPath,
        buffer: &'b mut Vec<u8>,
    ) -> Result<Cow<'b, str>, HostError> {
        const PAGE: usize = 4096;
        let path = &path.real;
        buffer.clear();
        buffer.resize(PAGE, 0);
        let mut file = fs::File::open(path).map_err(io_error("open", path))?;
        let read = loop {
            match file.read(buffer) {
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                other => break other.map_err(io_error("read", path))?,
            }
        };
        buffer.truncate(read);
        if read == PAGE {
            (&mut file)
                .take(DEFAULT_READ_LIMIT + 1 - PAGE as u64)
                .read_to_end(buffer)
                .map_err(io_error("read", path))?;
        }
        limited_text(path, buffer)
    }

    /// Reads a whole file, failing with [`HostError::TooLarge`] beyond `limit` bytes.
    pub fn read_limited(
        &self,
        node_path: impl AsRef<Path>,
        limit: u64,
    ) -> Result<Vec<u8>, HostError> {
        let path = self.resolve(node_path)?;
        let file = fs::File::open(&path).map_err(io_error("open", &path))?;
        let mut bytes = Vec::new();
        file.take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(io_error("read", &path))?;
        if bytes.len() as u64 > limit {
            return Err(HostError::TooLarge { path, limit });
        }
        Ok(bytes)
    }

    /// Reads a file if it exists: `Ok(None)` when it does not.
    pub fn read_optional(&self, node_path: impl AsRef<Path>) -> Result<Option<String>, HostError> {
        match self.read_to_string(node_path) {
            Ok(text) => Ok(Some(text)),
            Err(err) if err.is_not_found() => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Opens a file for reading with O_NONBLOCK (a character device such as /dev/kmsg then
    /// returns EAGAIN at its end instead of waiting): `Ok(None)` when it does not exist.
    pub fn open_nonblocking(
        &self,
        node_path: impl AsRef<Path>,
    ) -> Result<Option<fs::File>, HostError> {
        let path = self.resolve(node_path)?;
        match fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(&path)
        {
            Ok(file) => Ok(Some(file)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(io_error("open", &path)(error)),
        }
    }

    /// True if the path exists (following symlinks). An unreadable parent counts as absent.
    pub fn exists(&self, node_path: impl AsRef<Path>) -> Result<bool, HostError> {
        let path = self.resolve(node_path)?;
        Ok(path.exists())
    }

    /// Sets a file's modification (and access) time to `unix_ms`: one utimensat(2), no
    /// open.
    pub fn touch(&self, node_path: impl AsRef<Path>, unix_ms: u64) -> Result<(), HostError> {
        let path = self.resolve(node_path)?;
        let at = nix::sys::time::TimeSpec::new(
            (unix_ms / 1000) as i64,
            ((unix_ms % 1000) * 1_000_000) as i64,
        );
        nix::sys::stat::utimensat(
            nix::fcntl::AT_FDCWD,
            &path,
            &at,
            &at,
            nix::sys::stat::UtimensatFlags::FollowSymlink,
        )
        .map_err(|errno| io_error("set the times of", &path)(io::Error::from(errno)))
    }

    /// A directory's link count (2 plus its subdirectories on most filesystems, procfs,
    /// debugfs and sysfs included); `None` when it does not exist.
    pub fn dir_links(&self, node_path: impl AsRef<Path>) -> Result<Option<u64>, HostError> {
        let path = self.resolve(node_path)?;
        match fs::metadata(&path) {
            Ok(meta) => Ok(Some(std::os::unix::fs::MetadataExt::nlink(&meta))),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(io_error("stat", &path)(err)),
        }
    }

    /// A file's modification time in unix ms; `None` when it does not exist.
    pub fn modified_unix_ms(&self, node_path: impl AsRef<Path>) -> Result<Option<u64>, HostError> {
        let path = self.resolve(node_path)?;
        match fs::metadata(&path).and_then(|m| m.modified()) {
            Ok(at) => Ok(Some(
                at.duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0),
            )),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(io_error("stat", &path)(err)),
        }
    }

    /// The first component of `node_path` (from the root down) that is a symbolic link, as a
    /// node path; `None` when no existing component is one. Components that do not exist
    /// end the walk: they will be made as directories.
    pub fn first_symlink(&self, node_path: impl AsRef<Path>) -> Result<Option<String>, HostError> {
        let node_path = node_path.as_ref();
        let mut walked = PathBuf::new();
        for component in node_path.components() {
            match component {
                std::path::Component::RootDir | std::path::Component::CurDir => continue,
                other => walked.push(other),
            }
            let path = self.resolve(&walked)?;
            match std::fs::symlink_metadata(&path) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Ok(Some(format!("/{}", walked.display())));
                }
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(error) => return Err(io_error("stat", &path)(error)),
            }
        }
        Ok(None)
    }

    /// The permission bits of a path (not following a final symlink).
    pub fn mode(&self, node_path: impl AsRef<Path>) -> Result<u32, HostError> {
        use std::os::unix::fs::PermissionsExt;
        let path = self.resolve(node_path)?;
        std::fs::symlink_metadata(&path)
            .map(|m| m.permissions().mode() & 0o7777)
            .map_err(io_error("stat", &path))
    }

    /// True if the path is a directory (following symlinks). An unreadable parent counts as
    /// absent.
    pub fn is_dir(&self, node_path: impl AsRef<Path>) -> Result<bool, HostError> {
        let path = self.resolve(node_path)?;
        Ok(path.is_dir())
    }

    /// The names in a directory, sorted, so callers see a stable order.
    pub fn list_dir(&self, node_path: impl AsRef<Path>) -> Result<Vec<OsString>, HostError> {
        let path = self.resolve(node_path)?;
        let mut names = Vec::new();
        for entry in fs::read_dir(&path).map_err(io_error("list", &path))? {
            names.push(entry.map_err(io_error("list", &path))?.file_name());
        }
        names.sort();
        Ok(names)
    }

    /// The target of a symbolic link, as stored (not resolved under the root).
    pub fn read_link(&self, node_path: impl AsRef<Path>) -> Result<PathBuf, HostError> {
        let path = self.resolve(node_path)?;
        fs::read_link(&path).map_err(io_error("read link", &path))
    }

    /// Creates a directory and its parents with mode `mode` for the ones it creates.
    pub fn create_dir_all(&self, node_path: impl AsRef<Path>, mode: u32) -> Result<(), HostError> {
        let path = self.resolve(node_path)?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(&path)
            .map_err(io_error("create directory", &path))
    }

    /// Removes a file; a file that is already gone is not an error.
    pub fn remove_file(&self, node_path: impl AsRef<Path>) -> Result<(), HostError> {
        let path = self.resolve(node_path)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(io_error("remove", &path)(err)),
        }
    }

    /// Replaces a file atomically: a reader (or a crash) sees the old or the new content,
    /// never a mix.
    ///
    /// Writes a temporary file in the same directory, fsyncs it, renames it over the
    /// target and fsyncs the directory. The new file gets `mode`.
    pub fn write_atomic(
        &self,
        node_path: impl AsRef<Path>,
        contents: &[u8],
        mode: u32,
    ) -> Result<(), HostError> {
        self.write_atomic_with(node_path, contents, mode, |_| Ok(()))
    }

    /// Replaces a file atomically for its readers (the old content or the new, never a
    /// mix), without forcing it to disk: no fsync of the file or the directory. For files that
    /// live in /run (gone at a power loss anyway) or that the next round writes again, where
    /// two fsyncs every few seconds would cost more than the file is worth.
    pub fn replace_volatile(
        &self,
        node_path: impl AsRef<Path>,
        contents: &[u8],
        mode: u32,
    ) -> Result<(), HostError> {
        self.replace(node_path.as_ref(), contents, mode, false, |_| Ok(()))
    }

    /// [`HostRoot::write_atomic`] with a hook called between the fsync of the temporary file
    /// and the rename. Tests use it to inject a crash at the one point where one matters.
    pub fn write_atomic_with(
        &self,
        node_path: impl AsRef<Path>,
        contents: &[u8],
        mode: u32,
        before_rename: impl FnOnce(&Path) -> io::Result<()>,
    ) -> Result<(), HostError> {
        self.replace(node_path.as_ref(), contents, mode, true, before_rename)
    }

    /// A temporary file beside the target, renamed over it; with `durable`, the file is
    /// fsynced before the rename and the directory after it.
    fn replace(
        &self,
        node_path: &Path,
        contents: &[u8],
        mode: u32,
        durable: bool,
        before_rename: impl FnOnce(&Path) -> io::Result<()>,
    ) -> Result<(), HostError> {
        let path = self.resolve(node_path)?;
        let dir = path.parent().ok_or_else(|| HostError::BadPath {
            path: path.display().to_string(),
            reason: "no parent directory",
        })?;
        let file_name = path.file_name().unwrap_or_default().to_string_lossy();
        let temp_path = dir.join(format!(
            ".{file_name}.lfleet-tmp-{}-{}",
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let result = (|| {
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(&temp_path)
                .map_err(io_error("create temporary file", &temp_path))?;
            file.write_all(contents)
                .map_err(io_error("write temporary file", &temp_path))?;
            // The umask may have narrowed the mode given to open(2).
            file.set_permissions(fs::Permissions::from_mode(mode))
                .map_err(io_error("set mode of", &temp_path))?;
            if durable {
                file.sync_all()
                    .map_err(io_error("fsync temporary file", &temp_path))?;
            }
            drop(file);
            before_rename(&temp_path).map_err(io_error("prepare rename of", &temp_path))?;
            fs::rename(&temp_path, &path).map_err(io_error("rename into place", &path))?;
            if durable {
                let dir_handle = fs::File::open(dir).map_err(io_error("open directory", dir))?;
                dir_handle
                    .sync_all()
                    .map_err(io_error("fsync directory", dir))?;
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = fs::remove_file(&temp_path);
        }
        result
    }
}

/// An exclusive lock on a file under the root, held until dropped (flock(2)).
#[derive(Debug)]
pub struct LockGuard {
    _lock: nix::fcntl::Flock<fs::File>,
    path: PathBuf,
}

impl LockGuard {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl HostRoot {
    /// Tries to take an exclusive lock on `node_path` (created if missing) without waiting:
    /// `Ok(None)` when another process holds it.
    pub fn try_lock(&self, node_path: impl AsRef<Path>) -> Result<Option<LockGuard>, HostError> {
        let path = self.resolve(node_path)?;
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(io_error("create directory", dir))?;
        }
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_error("open lock file", &path))?;
        match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(Some(LockGuard { _lock: lock, path })),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, errno)) => Err(io_error("lock", &path)(errno.into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_is_exclusive_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let host = HostRoot::new(dir.path());
        let first = host
            .try_lock("run/lfleet/agent.lock")
            .unwrap()
            .expect("free");
        assert!(
            host.try_lock("run/lfleet/agent.lock").unwrap().is_none(),
            "held"
        );
        drop(first);
        assert!(
            host.try_lock("run/lfleet/agent.lock").unwrap().is_some(),
            "released"
        );
    }

    #[test]
    fn resolves_absolute_and_relative_node_paths_under_the_root() {
        let host = HostRoot::new("/srv/node1");
        assert_eq!(
            host.resolve("/etc/fstab").unwrap(),
            PathBuf::from("/srv/node1/etc/fstab")
        );
        assert_eq!(
            host.resolve("etc/./fstab").unwrap(),
            PathBuf::from("/srv/node1/etc/fstab")
        );
    }

    #[test]
    fn refuses_parent_components_and_empty_paths() {
        let host = HostRoot::new("/srv/node1");
        for bad in ["../etc/passwd", "/etc/../../x", "", "/", "."] {
            let err = host.resolve(bad).unwrap_err();
            assert!(matches!(err, HostError::BadPath { .. }), "{bad:?}: {err}");
        }
    }

    #[test]
    fn procfs_and_sysfs_can_be_redirected() {
        let host = HostRoot::new("/srv/node1")
            .with_procfs("/alt/proc")
            .with_sysfs("/alt/sys");
        assert_eq!(
            host.resolve("/proc/self/mountinfo").unwrap(),
            PathBuf::from("/alt/proc/self/mountinfo")
        );
        assert_eq!(
            host.resolve("sys/fs/lustre/version").unwrap(),
            PathBuf::from("/alt/sys/fs/lustre/version")
        );
        // Only the first component selects the redirect.
        assert_eq!(
            host.resolve("etc/proc/x").unwrap(),
            PathBuf::from("/srv/node1/etc/proc/x")
        );
        assert_eq!(
            host.resolve("procfoo").unwrap(),
            PathBuf::from("/srv/node1/procfoo")
        );
    }

    #[test]
    fn write_atomic_replaces_content_and_sets_mode() {
        let dir = tempfile::tempdir().unwrap();
        let host = HostRoot::new(dir.path());
        host.create_dir_all("etc", 0o755).unwrap();
        host.write_atomic("/etc/fstab", b"old\n", 0o644).unwrap();
        host.write_atomic("/etc/fstab", b"new\n", 0o600).unwrap();
        assert_eq!(host.read_to_string("etc/fstab").unwrap(), "new\n");
        let mode = fs::metadata(dir.path().join("etc/fstab"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // No temporary file is left behind.
        assert_eq!(host.list_dir("etc").unwrap(), vec![OsString::from("fstab")]);
        // A touch sets the time a reader sees, to the millisecond.
        host.touch("etc/fstab", 1_700_000_000_123).unwrap();
        assert_eq!(
            host.modified_unix_ms("etc/fstab").unwrap(),
            Some(1_700_000_000_123)
        );
        assert_eq!(host.modified_unix_ms("etc/none").unwrap(), None);
        assert!(host.touch("etc/none", 1).unwrap_err().is_not_found());
        // The volatile replace (no fsync) replaces the same way.
        host.replace_volatile("etc/fstab", b"newer\n", 0o640)
            .unwrap();
        assert_eq!(host.read_to_string("etc/fstab").unwrap(), "newer\n");
        let mode = fs::metadata(dir.path().join("etc/fstab"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o640);
        assert_eq!(host.list_dir("etc").unwrap(), vec![OsString::from("fstab")]);
    }

    #[test]
    fn a_crash_before_rename_leaves_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let host = HostRoot::new(dir.path());
        host.create_dir_all("etc", 0o755).unwrap();
        host.write_atomic("etc/fstab", b"old\n", 0o644).unwrap();
        let err = host
            .write_atomic_with("etc/fstab", b"new\n", 0o644, |_| {
                Err(io::Error::other("injected crash"))
            })
            .unwrap_err();
        assert!(err.to_string().contains("prepare rename"), "{err}");
        assert_eq!(host.read_to_string("etc/fstab").unwrap(), "old\n");
        assert_eq!(host.list_dir("etc").unwrap(), vec![OsString::from("fstab")]);
    }

    #[test]
    fn an_attribute_is_read_whole_in_one_read_or_on_to_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let host = HostRoot::new(dir.path());
        host.write_atomic("small", b"4: ACTIVE\n", 0o644).unwrap();
        let big: Vec<u8> = (0..10_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        host.write_atomic("big", &big, 0o644).unwrap();
        let mut buffer = Vec::new();
        let small = host.resolve_path("small").unwrap();
        assert_eq!(
            host.read_attribute(&small, &mut buffer).unwrap(),
            "4: ACTIVE\n"
        );
        let whole = host.resolve_path("big").unwrap();
        assert_eq!(
            host.read_attribute(&whole, &mut buffer).unwrap().as_bytes(),
            &big[..]
        );
        let gone = host.resolve_path("gone").unwrap();
        assert!(
            host.read_attribute(&gone, &mut buffer)
                .unwrap_err()
                .is_not_found()
        );
    }

    #[test]
    fn read_limited_refuses_oversized_files() {
        let dir = tempfile::tempdir().unwrap();
        let host = HostRoot::new(dir.path());
        host.write_atomic("big", &[b'x'; 100], 0o644).unwrap();
        assert!(matches!(
            host.read_limited("big", 99),
            Err(HostError::TooLarge { limit: 99, .. })
        ));
        assert_eq!(host.read_limited("big", 100).unwrap().len(), 100);
    }

    #[test]
    fn read_text_reuses_the_buffer_and_reads_each_file_whole() {
        let dir = tempfile::tempdir().unwrap();
        let host = HostRoot::new(dir.path()).with_procfs(dir.path().join("alt"));
        host.create_dir_all("alt/x", 0o755).unwrap();
        host.write_atomic("alt/x/stats", b"first file, longer\n", 0o644)
            .unwrap();
        host.write_atomic("alt/x/short", b"second\n", 0o644)
            .unwrap();
        host.write_atomic("alt/x/bad", b"caf\xe9\n", 0o644).unwrap();
        let stats = host.resolve_path("/proc/x/stats").unwrap();
        assert_eq!(stats.node_path(), "/proc/x/stats");
        assert_eq!(stats.as_path(), dir.path().join("alt/x/stats"));
        let mut buffer = Vec::new();
        assert_eq!(
            host.read_text(&stats, &mut buffer).unwrap(),
            "first file, longer\n"
        );
        let capacity = buffer.capacity();
        let short = host.resolve_path("proc/x/short").unwrap();
        assert_eq!(host.read_text(&short, &mut buffer).unwrap(), "second\n");
        assert_eq!(buffer.capacity(), capacity, "the buffer was reused");
        // Invalid UTF-8 is replaced, as read_to_string does.
        let bad = host.resolve_path("proc/x/bad").unwrap();
        assert_eq!(host.read_text(&bad, &mut buffer).unwrap(), "caf\u{fffd}\n");
        // A file that is gone is NotFound, naming the real path.
        let gone = host.resolve_path("proc/x/gone").unwrap();
        let error = host.read_text(&gone, &mut buffer).unwrap_err();
        assert!(error.is_not_found());
        assert!(error.to_string().contains("alt/x/gone"), "{error}");
        assert!(matches!(
            host.resolve_path("proc/../etc/passwd"),
            Err(HostError::BadPath { .. })
        ));
    }

    #[test]
    fn missing_files_are_reported_as_not_found_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let host = HostRoot::new(dir.path());
        let err = host.read_to_string("etc/missing").unwrap_err();
        assert!(err.is_not_found());
        assert!(err.to_string().contains("etc/missing"), "{err}");
        assert_eq!(host.read_optional("etc/missing").unwrap(), None);
    }
}
