//! Finding Lustre parameter files where `lctl` finds them (libcfs/libcfs/util/param.c): the
//! roots `/sys/fs/<m>`, `/sys/kernel/debug/<m>`, `/proc/fs/<m>`, `/proc/sys/<m>`, in that
//! order, for `<m>` lnet or lustre. The first root that has a device's file wins, so the
//! 2.10 layout (all /proc), 2.12+ (stats in debugfs, imports in /proc, kbytes in sysfs) and
//! 2.17 (imports in debugfs too) are all found without knowing the version.
//!
//! The fast cycle does not search every time: a [`DeviceIndex`] keeps, per mount instance,
//! the resolved path of every file it reads and the subject of every device, and searches
//! again only when the device set changes (a `<root>/<kind>` directory lists other names),
//! the mounts change (mountinfo, a new instance), or a cached path was found missing or a
//! device of a mount lacked a file (a device still being set up). Paths are cached, never open
//! files, and each names its device's instance, so a remount (a new instance) can never be
//! read through an old path: the new instance's devices are other names, and the index is
//! rebuilt for them. [`ParamFiles`] pairs the index with the one read buffer every file of
//! the cycle is read into.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::ffi::OsString;

use lfleet_host::{HostRoot, ResolvedPath};

use super::MountInstance;

/// The client device kinds the fast cycle reads, and the files it reads of each.
pub const CLIENT_FILES: [(&str, &[&str]); 2] = [
    ("osc", &["stats", "import"]),
    ("mdc", &["md_stats", "import", "stats"]),
];

/// Files of [`CLIENT_FILES`] a device may lack for good: mdc `stats` is in debugfs from 2.12
/// only, so a device without it is complete and the index does not search again for it.
const OPTIONAL_FILES: [(&str, &str); 1] = [("mdc", "stats")];

/// The llite file the fast cycle reads per mount.
pub const LLITE_FILE: &str = "stats";

/// A client osc or mdc device of a mount, with the files of [`CLIENT_FILES`] it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientDevice {
    /// The device name, `<fsname>-<TARGET>-<kind>-<instance>`.
    pub name: String,
    /// The instance of its mount.
    pub instance: String,
    /// `OST0001`, `MDT0000`.
    pub target: String,
    /// `<mount point> <target>`.
    pub subject: String,
    /// By the kind's file list; `None`: not in lctl's search path.
    files: Vec<Option<ResolvedPath>>,
}

/// Where `file` is in the list of `kind`'s files ([`CLIENT_FILES`]).
fn file_index(kind: &str, file: &str) -> Option<usize> {
    let wanted = CLIENT_FILES.iter().find(|(k, _)| *k == kind)?.1;
    wanted.iter().position(|f| *f == file)
}

impl ClientDevice {
    /// The resolved path of one of its kind's files, when the device has it.
    pub fn file(&self, kind: &str, file: &str) -> Option<&ResolvedPath> {
        self.files.get(file_index(kind, file)?)?.as_ref()
    }
}

/// A mount as the index knows it: its llite device and that device's stats file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountDevices {
    pub mount: MountInstance,
    /// `<fsname>-<instance>`.
    pub llite: String,
    /// `None`: no `llite.<device>.stats` in lctl's search path.
    pub llite_stats: Option<ResolvedPath>,
}

/// Where every file of the fast cycle is, per mount instance, kept between cycles.
#[derive(Debug, Default)]
pub struct DeviceIndex {
    /// What each `<root>/<kind>` directory listed at the last look (`None`: absent), in
    /// [`DeviceIndex::listed_dirs`] order.
    listings: Vec<Option<Vec<OsString>>>,
    /// Each of those directories' link count then (`None`: absent): 2 plus its
    /// subdirectories on procfs, debugfs and sysfs alike, so a device added or removed
    /// changes it, and a stat per cycle stands in for a listing.
    links: Vec<Option<u64>>,
    mounts: Vec<MountDevices>,
    /// By kind, in device-name order (lctl's).
    clients: BTreeMap<&'static str, Vec<ClientDevice>>,
    /// Search again at the next refresh: a cached path was missing, a device of a mount
    /// lacked a file, or the mounts' table changed.
    stale: Cell<bool>,
    builds: u64,
}

impl DeviceIndex {
    /// The directories whose names are the device set: every kind under every root.
    fn listed_dirs() -> impl Iterator<Item = String> {
        ["llite", "osc", "mdc"].into_iter().flat_map(|kind| {
            LUSTRE_ROOTS
                .into_iter()
                .map(move |root| format!("{root}/{kind}"))
        })
    }

    /// Brings the index up to date for `mounts`: stats the device directories (a handful of
    /// stats) and, only when a link count, the mounts or a kept file changed, lists them and
    /// searches lctl's roots again. A device swapped for another within one cycle keeps the
    /// count, but the one gone fails its read, which marks the index stale. True when it
    /// searched.
    pub fn refresh(&mut self, host: &HostRoot, mounts: &[MountInstance]) -> bool {
        let links: Vec<Option<u64>> = Self::listed_dirs()
            .map(|dir| host.dir_links(&dir).ok().flatten())
            .collect();
        let changed = self.stale.replace(false)
            || self.builds == 0
            || self.mounts.len() != mounts.len()
            || self.mounts.iter().zip(mounts).any(|(d, m)| d.mount != *m)
            || links != self.links;
        if changed {
            self.links = links;
            self.listings = Self::listed_dirs()
                .map(|dir| host.list_dir(&dir).ok())
                .collect();
            self.build(host, mounts);
        }
        changed
    }

    /// Searches lctl's roots for every file of every device of `mounts`.
    fn build(&mut self, host: &HostRoot, mounts: &[MountInstance]) {
        self.builds += 1;
        let mut incomplete = false;
        // Which roots list each name, per kind, from the listings just taken.
        let listed = |kind: &str| -> BTreeMap<String, Vec<&'static str>> {
            let mut names: BTreeMap<String, Vec<&'static str>> = BTreeMap::new();
            for ((dir, listing), root) in Self::listed_dirs()
                .zip(&self.listings)
                .zip(LUSTRE_ROOTS.iter().cycle())
            {
                if !dir.ends_with(&format!("/{kind}")) {
                    continue;
                }
                for name in listing.iter().flatten() {
                    names
                        .entry(name.to_string_lossy().into_owned())
                        .or_default()
                        .push(root);
                }
            }
            names
        };
        // The first root (in lctl's order) listing the device that has the file.
        let find = |roots: &[&str], kind: &str, name: &str, file: &str| {
            roots
                .iter()
                .map(|root| format!("{root}/{kind}/{name}/{file}"))
                .find(|path| host.exists(path).unwrap_or(false))
                .and_then(|path| host.resolve_path(path).ok())
        };
        let llite = listed("llite");
        self.mounts = mounts
            .iter()
            .map(|mount| {
                let name = format!("{}-{}", mount.fsname, mount.instance);
                let stats = llite
                    .get(&name)
                    .and_then(|roots| find(roots, "llite", &name, LLITE_FILE));
                incomplete |= stats.is_none();
                MountDevices {
                    mount: mount.clone(),
                    llite: name,
                    llite_stats: stats,
                }
            })
            .collect();
        self.clients.clear();
        for (kind, files) in CLIENT_FILES {
            let mut devices = Vec::new();
            for (name, roots) in listed(kind) {
                let Some((fsname, target, instance)) = split_device(&name, kind) else {
                    continue;
                };
                let Some(mount) = mounts
                    .iter()
                    .find(|m| m.instance == instance && m.fsname == fsname)
                else {
                    continue;
                };
                let found: Vec<Option<ResolvedPath>> = files
                    .iter()
                    .map(|file| find(&roots, kind, &name, file))
                    .collect();
                incomplete |= files
                    .iter()
                    .zip(&found)
                    .any(|(file, path)| path.is_none() && !OPTIONAL_FILES.contains(&(kind, *file)));
                devices.push(ClientDevice {
                    // Split again by `super::split_target_subject`.
                    subject: format!("{} {target}", mount.mount_point),
                    name,
                    instance,
                    target,
                    files: found,
                });
            }
            self.clients.insert(kind, devices);
        }
        // A device still being set up may not have all its files yet: look again next time.
        self.stale.set(incomplete);
    }

    /// Asks for a search at the next refresh (a cached path turned out missing, or the
    /// mounts' table changed).
    pub fn mark_stale(&self) {
        self.stale.set(true);
    }

    /// The mounts the index was built for, with their llite devices.
    pub fn mounts(&self) -> &[MountDevices] {
        &self.mounts
    }

    /// The `kind` devices of the mounts that have `file`, in lctl's (name) order.
    pub fn clients<'a>(
        &'a self,
        kind: &str,
        file: &str,
    ) -> impl Iterator<Item = (&'a ClientDevice, &'a ResolvedPath)> + use<'a> {
        let at = file_index(kind, file);
        let devices = match at {
            Some(_) => self.clients.get(kind).map_or(&[][..], Vec::as_slice),
            None => &[],
        };
        devices
            .iter()
            .filter_map(move |device| Some((device, device.files.get(at?)?.as_ref()?)))
    }

    /// How many times the roots were searched since the start.
    pub fn builds(&self) -> u64 {
        self.builds
    }
}

/// The cycle's view of the parameter files: the index and the one buffer every file is read
/// into.
#[derive(Debug, Default)]
pub struct ParamFiles {
    pub devices: DeviceIndex,
    pub buffer: Vec<u8>,
}

impl ParamFiles {
    /// Each mount (in the index's order) with its llite stats file read and parsed: `None`
    /// when the mount has no such file in lctl's search path.
    pub fn read_mounts<T, E: std::fmt::Display>(
        &mut self,
        host: &HostRoot,
        parse: impl Fn(&str) -> Result<T, E>,
    ) -> Vec<(&MountDevices, Option<Result<T, String>>)> {
        let ParamFiles { devices, buffer } = self;
        devices
            .mounts
            .iter()
            .map(|known| {
                let read = known
                    .llite_stats
                    .as_ref()
                    .map(|path| read_parsed(host, path, buffer, devices, &parse));
                (known, read)
            })
            .collect()
    }

    /// Each `kind` device that has `file` (in lctl's order) with the file read and parsed, or
    /// why it could not be.
    pub fn read_clients<T, E: std::fmt::Display>(
        &mut self,
        host: &HostRoot,
        kind: &str,
        file: &str,
        parse: impl Fn(&str) -> Result<T, E>,
    ) -> Vec<(&ClientDevice, Result<T, String>)> {
        let ParamFiles { devices, buffer } = self;
        devices
            .clients(kind, file)
            .map(|(device, path)| (device, read_parsed(host, path, buffer, devices, &parse)))
            .collect()
    }
}

/// Reads a cached file into the reused buffer and parses it; the error names the file. A
/// file that is gone makes the index search again at the next refresh.
fn read_parsed<T, E: std::fmt::Display>(
    host: &HostRoot,
    path: &ResolvedPath,
    buffer: &mut Vec<u8>,
    devices: &DeviceIndex,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Result<T, String> {
    let text = host.read_text(path, buffer).map_err(|error| {
        if error.is_not_found() {
            devices.mark_stale();
        }
        lfleet_types::error_chain(&error)
    })?;
    parse(&text).map_err(|e| format!("{}: {e}", path.node_path()))
}

/// lctl's search roots for Lustre parameters, in order.
pub const LUSTRE_ROOTS: [&str; 4] = [
    "sys/fs/lustre",
    "sys/kernel/debug/lustre",
    "proc/fs/lustre",
    "proc/sys/lustre",
];

/// lctl's search roots for LNet parameters, in order.
pub const LNET_ROOTS: [&str; 4] = [
    "sys/fs/lnet",
    "sys/kernel/debug/lnet",
    "proc/fs/lnet",
    "proc/sys/lnet",
];

/// `<kind>.*.<file>` (`llite.*.stats`): device name -> the node path of its file.
pub fn find_devices(host: &HostRoot, kind: &str, file: &str) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    for root in LUSTRE_ROOTS {
        let dir = format!("{root}/{kind}");
        let Ok(names) = host.list_dir(&dir) else {
            continue;
        };
        for name in names {
            let name = name.to_string_lossy().into_owned();
            if found.contains_key(&name) {
                continue;
            }
            let path = format!("{dir}/{name}/{file}");
            if host.exists(&path).unwrap_or(false) {
                found.insert(name, path);
            }
        }
    }
    found
}

/// The Lustre mounts in mountinfo's text, as (mount point, fsname).
pub fn lustre_mounts(mountinfo: &str) -> Result<Vec<(String, String)>, String> {
    Ok(lfleet_mount::parse_mountinfo(mountinfo)
        .map_err(|e| lfleet_types::error_chain(&e))?
        .into_iter()
        .filter(|m| m.fstype == "lustre")
        .filter_map(|m| {
            let fsname = m.source.rsplit_once(":/")?.1.to_owned();
            Some((m.mount_point, fsname))
        })
        .collect())
}

/// The instance of `fsname`'s llite device (`<fsname>-<instance>`; an instance has no `-`)
/// when it has exactly one: a filesystem mounted once is that mount's, with no `lfs getname`
/// (which opens the mount point, and hangs on a hung mount).
pub fn sole_instance<'a>(
    llite: impl IntoIterator<Item = &'a String>,
    fsname: &str,
) -> Option<&'a str> {
    let mut found = llite.into_iter().filter_map(|device| {
        device
            .strip_prefix(fsname)?
            .strip_prefix('-')
            .filter(|instance| !instance.contains('-'))
    });
    let first = found.next()?;
    found.next().is_none().then_some(first)
}

/// A single LNet parameter (`stats`): the first root that has it.
pub fn find_lnet(host: &HostRoot, file: &str) -> Option<String> {
    LNET_ROOTS
        .iter()
        .map(|root| format!("{root}/{file}"))
        .find(|path| host.exists(path).unwrap_or(false))
}

/// Splits an osc or mdc device name `<fsname>-<TARGET>-<kind>-<instance>` from the right
/// (fsname may contain `-`). Server-side OSP devices (`-osc-MDT0000`) are not client devices.
pub fn split_device(name: &str, kind: &str) -> Option<(String, String, String)> {
    let marker = format!("-{kind}-");
    let at = name.rfind(&marker)?;
    let instance = &name[at + marker.len()..];
    if instance.starts_with("MDT") || instance.starts_with("OST") || instance.is_empty() {
        return None;
    }
    let (fsname, target) = name[..at].rsplit_once('-')?;
    Some((fsname.to_owned(), target.to_owned(), instance.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_split_from_the_right() {
        assert_eq!(
            split_device("lustrefs-OST0000-osc-ffff88105db50000", "osc"),
            Some((
                "lustrefs".into(),
                "OST0000".into(),
                "ffff88105db50000".into()
            ))
        );
        assert_eq!(
            split_device("my-fs-MDT0001-mdc-ffff9c4f3a1b2000", "mdc"),
            Some(("my-fs".into(), "MDT0001".into(), "ffff9c4f3a1b2000".into()))
        );
        // A server's OSP device is not a client OSC.
        assert_eq!(split_device("lustrefs-OST0000-osc-MDT0000", "osc"), None);
        assert_eq!(split_device("garbage", "osc"), None);
    }

    #[test]
    fn a_filesystems_instance_is_known_only_when_it_has_one_llite_device() {
        let llite: Vec<String> = [
            "lustrefs-ffff8881",
            "lustrefs-x-ffff8882",
            "scratch-ffff8883",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(sole_instance(&llite, "lustrefs"), Some("ffff8881"));
        assert_eq!(sole_instance(&llite, "lustrefs-x"), Some("ffff8882"));
        assert_eq!(sole_instance(&llite, "scratch"), Some("ffff8883"));
        assert_eq!(sole_instance(&llite, "other"), None);
        let twice: Vec<String> = ["scratch-ffff8883", "scratch-ffff8884"]
            .map(String::from)
            .to_vec();
        assert_eq!(sole_instance(&twice, "scratch"), None);
    }
}
