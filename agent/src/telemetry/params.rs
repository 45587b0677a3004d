//! Finding Lustre parameter files where `lctl` finds them (libcfs/libcfs/util/param.c): the
//! roots `/sys/fs/<m>`, `/sys/kernel/debug/<m>`, `/proc/fs/<m>`, `/proc/sys/<m>`, in that
//! order, for `<m>` lnet or lustre. The first root that has a device's file wins, so the
//! 2.10 layout (all /proc), 2.12+ (stats in debugfs, imports in /proc, kbytes in sysfs) and
//! 2.17 (imports in debugfs too) are all found without knowing the version.

use std::collections::BTreeMap;

use lfleet_host::HostRoot;

use super::MountInstance;

/// A client osc or mdc device of a mount, with the node path of one of its files.
#[derive(Debug)]
pub struct ClientDevice<'a> {
    pub mount: &'a MountInstance,
    /// `OST0001`, `MDT0000`.
    pub target: String,
    /// `<mount point> <target>`.
    pub subject: String,
    pub path: String,
}

/// The `<kind>` (osc or mdc) devices of the given mounts that have `file`, in lctl's order.
pub fn client_devices<'a>(
    host: &HostRoot,
    mounts: &'a [MountInstance],
    kind: &str,
    file: &str,
) -> Vec<ClientDevice<'a>> {
    find_devices(host, kind, file)
        .into_iter()
        .filter_map(|(device, path)| {
            let (fsname, target, instance) = split_device(&device, kind)?;
            let mount = mounts
                .iter()
                .find(|m| m.instance == instance && m.fsname == fsname)?;
            Some(ClientDevice {
                subject: format!("{} {target}", mount.mount_point),
                mount,
                target,
                path,
            })
        })
        .collect()
}

/// Reads a file and parses it; the error names the file.
pub fn read_parsed<T, E: std::fmt::Display>(
    host: &HostRoot,
    path: &str,
    parse: impl Fn(&str) -> Result<T, E>,
) -> Result<T, String> {
    let text = host
        .read_to_string(path)
        .map_err(|e| lfleet_types::error_chain(&e))?;
    parse(&text).map_err(|e| format!("{path}: {e}"))
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
}
