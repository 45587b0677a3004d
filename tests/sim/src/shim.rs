//! The `bin/` shims: what mount, umount, mount.lustre, modprobe, lustre_rmmod, lnetctl, lctl,
//! lfs, ip, apt-get, apt-cache, dpkg-query, dnf, tdnf and rpm do to a simulated node, and what
//! they print.
//!
//! Messages and exit codes are the real tools' where the simulation needs them to be exact:
//! apt-get's `E:` lines and exit 100, dnf's "No match for argument" and exit 1 (both as seen
//! from the real tools in lfleet-aptrepo's tests and its dnf check), kmod's `modprobe: FATAL:
//! Module X not found in directory /lib/modules/K`, util-linux's `umount: X: not mounted.`
//! (exit 32), mount.lustre's `mount.lustre: mount SRC at DIR failed: <strerror>` with the
//! errno as exit code (lustre/utils/mount_lustre.c). Outputs marked "constructed" follow the
//! tool's format without a captured sample to copy from.

use std::collections::BTreeSet;
use std::path::Path;

use crate::SimError;
use crate::node::SimNode;
use crate::render::VF;
use crate::state::{LustreVersion, NodeState, SimMount};

/// What a shim printed and how it exited.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShimOutput {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl ShimOutput {
    pub fn ok(stdout: impl Into<String>) -> Self {
        ShimOutput {
            code: 0,
            stdout: stdout.into(),
            stderr: String::new(),
        }
    }

    pub fn fail(code: i32, stderr: impl Into<String>) -> Self {
        ShimOutput {
            code,
            stdout: String::new(),
            stderr: stderr.into(),
        }
    }
}

/// Runs shim `name` with `args` against `node`.
pub fn run(node: &SimNode, name: &str, args: &[String]) -> ShimOutput {
    let result = match name {
        "mount" => mount(node, args),
        "mount.lustre" => mount_lustre_cmd(node, args),
        "umount" => umount(node, args),
        "modprobe" => modprobe(node, args),
        "modinfo" => modinfo(node, args),
        "lustre_rmmod" => lustre_rmmod(node),
        "lnetctl" => lnetctl(node, args),
        "lctl" => lctl(node, args),
        "lfs" => lfs(node, args),
        "ip" => ip(node, args),
        "apt-get" => apt_get(node, args),
        "apt-cache" => apt_cache(node, args),
        "dpkg-query" => dpkg_query(node, args),
        "dnf" | "tdnf" => dnf(node, name, args),
        "rpm" => rpm(node, args),
        "mokutil" => mokutil(node, args),
        "dkms" => dkms(node, args),
        _ => Ok(ShimOutput::fail(
            127,
            format!("lfleet-sim: no shim named {name}\n"),
        )),
    };
    result.unwrap_or_else(|error| ShimOutput::fail(1, format!("lfleet-sim {name}: {error}\n")))
}

type Result<T> = std::result::Result<T, SimError>;

// === mount, umount ===

/// `mount` with no arguments lists mounts; `mount -t lustre [-o opts] SRC DIR` mounts.
fn mount(node: &SimNode, args: &[String]) -> Result<ShimOutput> {
    if args.is_empty() {
        let state = node.state()?;
        let mut text = String::new();
        for m in state.visible_mounts() {
            text.push_str(&format!(
                "{} on {} type lustre (rw,{})\n",
                m.source,
                m.mount_point,
                m.options.join(",")
            ));
        }
        return Ok(ShimOutput::ok(text));
    }
    let mut fstype = None;
    let mut options = Vec::new();
    let mut positional = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "-t" => fstype = iter.next().cloned(),
            "-o" => options.extend(
                iter.next()
                    .map(|o| o.split(',').map(str::to_owned).collect::<Vec<_>>())
                    .unwrap_or_default(),
            ),
            "-v" | "-n" => {}
            other => positional.push(other.to_owned()),
        }
    }
    if fstype.as_deref() != Some("lustre") {
        // The simulator only has Lustre; util-linux exits 32 for a failed mount.
        return Ok(ShimOutput::fail(
            32,
            "mount: lfleet-sim simulates only -t lustre mounts\n",
        ));
    }
    let [source, dir] = positional.as_slice() else {
        return Ok(ShimOutput::fail(
            1,
            "mount: bad usage\nTry 'mount --help' for more information.\n",
        ));
    };
    mount_lustre(node, source, dir, &options)
}

/// `mount.lustre [-o opts] SRC DIR`.
fn mount_lustre_cmd(node: &SimNode, args: &[String]) -> Result<ShimOutput> {
    let mut options = Vec::new();
    let mut positional = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "-o" => options.extend(
                iter.next()
                    .map(|o| o.split(',').map(str::to_owned).collect::<Vec<_>>())
                    .unwrap_or_default(),
            ),
            "-v" | "-n" => {}
            other => positional.push(other.to_owned()),
        }
    }
    let [source, dir] = positional.as_slice() else {
        return Ok(ShimOutput::fail(
            1,
            "usage: mount.lustre [-fhnrvV] [-o <mntopt>] <device> <mountpt>\n",
        ));
    };
    mount_lustre(node, source, dir, &options)
}

/// mount.lustre's failure line; the exit code is the errno (lustre/utils/mount_lustre.c).
fn mount_failed(source: &str, dir: &str, errno: i32, text: &str) -> ShimOutput {
    ShimOutput::fail(
        errno,
        format!("mount.lustre: mount {source} at {dir} failed: {text}\n"),
    )
}

fn new_instance(state: &mut NodeState) -> String {
    state.instance_counter += 1;
    // Kernel-pointer-like (page aligned), unique per node and per mount: FNV-1a over the
    // hostname and the mount counter.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in state
        .hostname
        .bytes()
        .chain(state.instance_counter.to_le_bytes())
    {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("ffff8881{:08x}", (hash as u32) & 0xffff_f000)
}

fn mount_lustre(node: &SimNode, source: &str, dir: &str, options: &[String]) -> Result<ShimOutput> {
    let Some((nids, fsname)) = source.rsplit_once(":/") else {
        return Ok(mount_failed(source, dir, 22, "Invalid argument"));
    };
    if nids.is_empty() || fsname.is_empty() || fsname.len() > 8 {
        return Ok(mount_failed(source, dir, 22, "Invalid argument"));
    }
    let real = node.state()?.real_mounts;
    // With real mounts the mount point is this machine's path; otherwise the node root's.
    let target_path = if real {
        std::path::PathBuf::from(dir)
    } else {
        node.root().join(dir.trim_start_matches('/'))
    };
    if !target_path.is_dir() {
        // Constructed from mount_lustre.c's check of the mount point.
        return Ok(ShimOutput::fail(
            2,
            format!("mount.lustre: mount point {dir} inaccessible: No such file or directory\n"),
        ));
    }
    let root = node.root().to_path_buf();
    node.change(|state| {
        if !state.loaded_modules.contains("lustre") {
            if state.real_mounts && module_file_exists(&root, &state.running_kernel, "lustre") {
                // A mount of type lustre makes the kernel load the installed module itself
                // (request_module("fs-lustre")), as it does at boot from fstab.
                state
                    .loaded_modules
                    .extend(with_dependencies("lustre").into_iter().map(str::to_owned));
            } else {
                // The kernel has no lustre filesystem type until the module loads.
                return Ok(ShimOutput::fail(19, format!(
                    "mount.lustre: mount {source} at {dir} failed: No such device\nAre the lustre modules loaded?\nCheck /etc/modprobe.conf and /proc/filesystems\n"
                )));
            }
        }
        if state.faults.mgs_unreachable {
            // mount_lustre.c adds the hint to an EIO from the kernel.
            return Ok(ShimOutput::fail(5, format!(
                "mount.lustre: mount {source} at {dir} failed: Input/output error\nIs the MGS running?\n"
            )));
        }
        if state.real_mounts {
            // A mount the machine no longer has (unmounted by the real umount) is gone.
            state.mounts.retain(|m| m.mount_point != dir || really_mounted(dir));
        }
        if state.visible_mounts().any(|m| m.mount_point == dir) {
            return Ok(mount_failed(source, dir, 16, "Device or resource busy"));
        }
        if state.real_mounts
            && let Err(failed) = real_mount(source, dir)
        {
            return Ok(failed);
        }
        if !state.lnet_configured {
            // Mounting brings LNet up with its default network, as the kernel does.
            state.lnet_configured = true;
            if state.lnet_nets.is_empty() {
                state.lnet_nets.push(("tcp".into(), "eth0".into()));
            }
        }
        // A lost mount mounted again is a new mount.
        state.mounts.retain(|m| m.mount_point != dir);
        state.faults.lost_mounts.remove(dir);
        state.faults.imports.retain(|key, _| !key.starts_with(&format!("{dir}|")));
        let instance = new_instance(state);
        let mount_id = state.next_mount_id;
        state.next_mount_id += 1;
        let osts = state.osts;
        state.mounts.push(SimMount {
            source: source.to_owned(),
            fsname: fsname.to_owned(),
            mount_point: dir.to_owned(),
            options: options.iter().filter(|o| !o.is_empty()).cloned().collect(),
            instance,
            mount_id,
            started_ns: state.clock_ns,
            osts,
            mdts: state.mdts,
            llite: Default::default(),
            osc: vec![Default::default(); osts as usize],
            mdc_wait: vec![Default::default(); state.mdts as usize],
        });
        Ok(ShimOutput::ok(""))
    })
}

fn umount(node: &SimNode, args: &[String]) -> Result<ShimOutput> {
    let targets: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let [target] = targets.as_slice() else {
        return Ok(ShimOutput::fail(
            1,
            "Usage:\n umount [-hV]\n umount -a [options]\n umount [options] <source> | <directory>\n",
        ));
    };
    let target = target.trim_end_matches('/');
    node.change(|state| {
        if state.faults.busy_mounts.contains(target)
            && state.visible_mounts().any(|m| m.mount_point == target)
        {
            // util-linux (libmount's EBUSY message) and its exit code for a failed umount.
            return Ok(ShimOutput::fail(
                32,
                format!("umount: {target}: target is busy.\n"),
            ));
        }
        if state.real_mounts
            && state.visible_mounts().any(|m| m.mount_point == target)
            && really_mounted(target)
            && let Err(failed) = real_umount(target)
        {
            return Ok(failed);
        }
        let position = state.mounts.iter().position(|m| {
            (m.mount_point == target || m.source == target)
                && !state.faults.lost_mounts.contains(&m.mount_point)
        });
        match position {
            Some(index) => {
                let gone = state.mounts.remove(index);
                state
                    .faults
                    .imports
                    .retain(|key, _| !key.starts_with(&format!("{}|", gone.mount_point)));
                Ok(ShimOutput::ok(""))
            }
            // util-linux umount: "not mounted." and exit 32.
            None => Ok(ShimOutput::fail(
                32,
                format!("umount: {target}: not mounted.\n"),
            )),
        }
    })
}

/// util-linux's mount on this machine, not the node's shim.
fn system_tool(name: &str) -> String {
    ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
        .iter()
        .map(|dir| format!("{dir}/{name}"))
        .find(|path| Path::new(path).is_file())
        .unwrap_or_else(|| name.to_owned())
}

/// Whether this machine has a mount at `dir` (its /proc/self/mountinfo).
fn really_mounted(dir: &str) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|text| text.lines().any(|line| line.split(' ').nth(4) == Some(dir)))
        .unwrap_or(false)
}

/// A real mount standing in for the Lustre one: a small tmpfs named after the source.
fn real_mount(source: &str, dir: &str) -> std::result::Result<(), ShimOutput> {
    let output = std::process::Command::new(system_tool("mount"))
        .args(["-t", "tmpfs", "-o", "size=16m,mode=0755", source, dir])
        .output()
        .map_err(|e| ShimOutput::fail(32, format!("mount: {e}\n")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(ShimOutput::fail(
            output.status.code().unwrap_or(32),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ))
    }
}

fn real_umount(dir: &str) -> std::result::Result<(), ShimOutput> {
    let output = std::process::Command::new(system_tool("umount"))
        .arg(dir)
        .output()
        .map_err(|e| ShimOutput::fail(32, format!("umount: {e}\n")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(ShimOutput::fail(
            output.status.code().unwrap_or(32),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ))
    }
}

// === modules ===

/// True when a `<module>.ko` exists for `kernel` (installed by a package, real or shimmed).
fn module_file_exists(root: &Path, kernel: &str, module: &str) -> bool {
    module_file(root, kernel, module).is_some()
}

/// The `<module>.ko` file for `kernel`, if one is installed.
fn module_file(root: &Path, kernel: &str, module: &str) -> Option<std::path::PathBuf> {
    let mut pending = vec![root.join("lib/modules").join(kernel)];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == format!("{module}.ko") || name.starts_with(&format!("{module}.ko.")) {
                return Some(path);
            }
            if path.is_dir() && !path.is_symlink() {
                pending.push(path);
            }
        }
    }
    None
}

/// Modules a module pulls in when loaded.
fn with_dependencies(module: &str) -> Vec<&'static str> {
    match module {
        "lustre" => vec![
            "libcfs", "lnet", "obdclass", "ptlrpc", "fld", "fid", "lov", "osc", "mdc", "lmv",
            "mgc", "lustre",
        ],
        "lnet" => vec!["libcfs", "lnet"],
        "ksocklnd" => vec!["libcfs", "lnet", "ksocklnd"],
        _ => vec![],
    }
}

fn modprobe(node: &SimNode, args: &[String]) -> Result<ShimOutput> {
    let remove = args.iter().any(|a| a == "-r" || a == "--remove");
    let names: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let Some(module) = names.first() else {
        return Ok(ShimOutput::fail(
            1,
            "modprobe: ERROR: missing parameters. See -h.\n",
        ));
    };
    let module = module.as_str();
    let root = node.root().to_path_buf();
    node.change(|state| {
        if remove {
            if module == "lustre" && state.visible_mounts().next().is_some() {
                return Ok(ShimOutput::fail(1, "modprobe: FATAL: Module lustre is in use.\n"));
            }
            for dep in with_dependencies(module) {
                state.loaded_modules.remove(dep);
            }
            if !state.loaded_modules.contains("lustre") {
                state.loaded = None;
            }
            return Ok(ShimOutput::ok(""));
        }
        let kernel = state.running_kernel.clone();
        let dependencies = with_dependencies(module);
        if dependencies.is_empty() || !module_file_exists(&root, &kernel, module) {
            // kmod's message (tools/modprobe.c).
            return Ok(ShimOutput::fail(1, format!("modprobe: FATAL: Module {module} not found in directory /lib/modules/{kernel}\n")));
        }
        if let Some(errno_text) = signature_refusal(state, &kernel) {
            // kmod tools/modprobe.c: ERR("could not insert '%s': %s\n", name, strerror(-err)),
            // ERR printing "modprobe: ERROR: "; the kernel's module_sig_check returns
            // -EKEYREJECTED when signatures are enforced and the key is unknown, and lockdown's
            // -EPERM otherwise.
            return Ok(ShimOutput::fail(1, format!("modprobe: ERROR: could not insert '{module}': {errno_text}\n")));
        }
        if module == "lustre" && !state.loaded_modules.contains("lustre") {
            // The kernel loads the module file installed for the running kernel now.
            state.loaded = Some(installed_module_version(&root, state, &kernel));
        }
        state.loaded_modules.extend(dependencies.into_iter().map(str::to_owned));
        Ok(ShimOutput::ok(""))
    })
}

/// The version of the lustre module installed for `kernel`: its file's `version=` line
/// (what modinfo reads from .modinfo), else the node's own version (a DKMS build, or a
/// placeholder from a real package, carries none).
fn installed_module_version(
    root: &Path,
    state: &NodeState,
    kernel: &str,
) -> crate::state::LustreVersion {
    module_file(root, kernel, "lustre")
        .and_then(|path| std::fs::read_to_string(path).ok())
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("version="))
                .and_then(|release| {
                    crate::state::LustreVersion::ALL
                        .into_iter()
                        .find(|v| v.release() == release.trim())
                })
        })
        .unwrap_or(state.lustre)
}

/// `modinfo [-k KVER] [-F FIELD] MODULE`: kmod's modinfo for the node's modules, read from
/// the module file (kmod tools/modinfo.c: `-F` prints the field's value alone; a module it
/// cannot find is "modinfo: ERROR: Module X not found." and exit 1). The fields besides
/// `version` are constructed from what Lustre's module declares (MODULE_DESCRIPTION,
/// MODULE_LICENSE).
fn modinfo(node: &SimNode, args: &[String]) -> Result<ShimOutput> {
    let state = node.state()?;
    let mut kernel = state.running_kernel.clone();
    let mut field = None;
    let mut names = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "-k" | "--set-version" => kernel = iter.next().cloned().unwrap_or_default(),
            "-F" | "--field" => field = iter.next().cloned(),
            other if !other.starts_with('-') => names.push(other.to_owned()),
            _ => {}
        }
    }
    let [module] = names.as_slice() else {
        return Ok(ShimOutput::fail(
            1,
            "modinfo: ERROR: missing module or filename.\n",
        ));
    };
    let Some(path) = module_file(node.root(), &kernel, module) else {
        return Ok(ShimOutput::fail(
            1,
            format!("modinfo: ERROR: Module {module} not found.\n"),
        ));
    };
    let version = installed_module_version(node.root(), &state, &kernel).release();
    let shown = format!(
        "/{}",
        path.strip_prefix(node.root()).unwrap_or(&path).display()
    );
    let fields = [
        ("filename", shown.as_str()),
        ("version", version),
        ("license", "GPL"),
        ("description", "Lustre Client File System"),
        ("name", module.as_str()),
    ];
    Ok(ShimOutput::ok(match field {
        Some(wanted) => fields
            .iter()
            .filter(|(name, _)| *name == wanted)
            .map(|(_, value)| format!("{value}\n"))
            .collect::<String>(),
        None => fields
            .iter()
            .map(|(name, value)| format!("{:<16}{value}\n", format!("{name}:")))
            .collect(),
    }))
}

/// Why the kernel would refuse the client's modules for `kernel`, as strerror says it: AMLFS's
/// prebuilt modules are signed with the Azure Services Linux Kmod PCA certificate (trusted by
/// Trusted Launch firmware, not by a Confidential VM's); DKMS-built ones are unsigned.
fn signature_refusal(state: &NodeState, kernel: &str) -> Option<&'static str> {
    let prebuilt = state.clients.contains(kernel) || state.real_packages;
    let signed_and_trusted = prebuilt && state.kmod_cert_trusted;
    if state.secure_boot == Some(true) && !signed_and_trusted {
        return Some("Key was rejected by service");
    }
    if state.lockdown && !prebuilt {
        return Some("Operation not permitted");
    }
    None
}

fn lustre_rmmod(node: &SimNode) -> Result<ShimOutput> {
    node.change(|state| {
        if state.visible_mounts().next().is_some() {
            return Ok(ShimOutput::fail(
                1,
                "rmmod: ERROR: Module lustre is in use\n",
            ));
        }
        state.loaded_modules.clear();
        state.loaded = None;
        state.lnet_configured = false;
        state.lnet_nets.clear();
        Ok(ShimOutput::ok(""))
    })
}

// === LNet ===

fn interface_exists(state: &NodeState, name: &str) -> bool {
    (name == "eth0")
        || (name == VF && state.vf_present())
        || name
            .strip_prefix("ib")
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| n < state.ib_hcas)
}

fn interface_address(name: &str) -> String {
    match name {
        "eth0" | VF => "10.0.0.5".into(),
        ib => format!(
            "172.16.1.{}",
            10 + ib.trim_start_matches("ib").parse::<u32>().unwrap_or(0)
        ),
    }
}

/// lnetctl's YAML error block (constructed from lnetctl's output format).
fn lnetctl_error(command: &str, what: &str, errno: i32, descr: &str) -> ShimOutput {
    ShimOutput::fail(
        1,
        format!(
            "{command}:\n    - {what}:\n          errno: {errno}\n          descr: \"{descr}\"\n"
        ),
    )
}

fn net_show(state: &NodeState, verbose: bool) -> String {
    // The layout of `lnetctl net show -v 3` (tests/fixtures/lnetctl_net_show_v3_tcp_client.yaml).
    let mut text = String::from(
        "net:\n-     net type: lo\n      local NI(s):\n      -     nid: 0@lo\n            status: up\n",
    );
    if verbose {
        text.push_str("            health stats:\n                  health value: 1000\n");
    }
    for (net, iface) in &state.lnet_nets {
        let up = interface_exists(state, iface);
        text.push_str(&format!(
            "-     net type: {net}\n      local NI(s):\n      -     nid: {}@{net}\n            status: {}\n            interfaces:\n                  0: {iface}\n",
            interface_address(iface),
            if up { "up" } else { "down" }
        ));
        if verbose {
            let health = state.lnet_health_at(crate::fault::wall_ms());
            text.push_str(&format!(
                "            statistics:\n                  send_count: {}\n                  recv_count: {}\n                  drop_count: 0\n            health stats:\n                  fatal_error: 0\n                  health value: {health}\n                  interrupts: 0\n                  dropped: 0\n                  aborted: 0\n                  no route: 0\n                  timeouts: 0\n                  error: 0\n",
                state.lnet_send_count % (1 << 32),
                state.lnet_recv_count % (1 << 32)
            ));
        }
    }
    text
}

fn lnetctl(node: &SimNode, args: &[String]) -> Result<ShimOutput> {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let option = |name: &str| {
        words
            .windows(2)
            .find(|w| w[0] == name)
            .map(|w| w[1].to_owned())
    };
    match words.as_slice() {
        ["lnet", "configure", ..] => node.change(|state| {
            state
                .loaded_modules
                .extend(["libcfs", "lnet"].map(str::to_owned));
            state.lnet_configured = true;
            if words.contains(&"--all") && state.lnet_nets.is_empty() {
                state.lnet_nets.push(("tcp".into(), "eth0".into()));
            }
            Ok(ShimOutput::ok(""))
        }),
        ["lnet", "unconfigure", ..] => node.change(|state| {
            if state.visible_mounts().next().is_some() {
                return Ok(lnetctl_error(
                    "unconfigure",
                    "lnet",
                    -16,
                    "LNet unconfigure error: Device or resource busy",
                ));
            }
            state.lnet_configured = false;
            state.lnet_nets.clear();
            Ok(ShimOutput::ok(""))
        }),
        ["net", "add", ..] => {
            let (Some(net), Some(iface)) = (option("--net"), option("--if")) else {
                return Ok(ShimOutput::fail(
                    1,
                    "add:\n    - net:\n          errno: -22\n          descr: \"cannot add network: missing mandatory parameters\"\n",
                ));
            };
            node.change(|state| {
                if !state.lnet_configured {
                    return Ok(lnetctl_error(
                        "add",
                        "net",
                        -100,
                        "cannot add network: Network is down",
                    ));
                }
                if !interface_exists(state, &iface) {
                    return Ok(lnetctl_error(
                        "add",
                        "net",
                        -22,
                        &format!("cannot add network: interface {iface} not found"),
                    ));
                }
                if state
                    .lnet_nets
                    .iter()
                    .any(|(n, i)| *n == net && *i == iface)
                {
                    return Ok(lnetctl_error(
                        "add",
                        "net",
                        -17,
                        "cannot add network: File exists",
                    ));
                }
                state.lnet_nets.push((net, iface));
                Ok(ShimOutput::ok(""))
            })
        }
        ["net", "del", ..] => {
            let Some(net) = option("--net") else {
                return Ok(lnetctl_error(
                    "del",
                    "net",
                    -22,
                    "cannot delete network: missing mandatory parameter",
                ));
            };
            node.change(|state| {
                let before = state.lnet_nets.len();
                state.lnet_nets.retain(|(n, _)| *n != net);
                if before == state.lnet_nets.len() {
                    return Ok(lnetctl_error(
                        "del",
                        "net",
                        -2,
                        "cannot delete network: No such file or directory",
                    ));
                }
                Ok(ShimOutput::ok(""))
            })
        }
        ["net", "show", ..] => {
            let state = node.state()?;
            if !state.lnet_configured {
                return Ok(lnetctl_error(
                    "show",
                    "net",
                    -100,
                    "cannot get networks: Network is down",
                ));
            }
            Ok(ShimOutput::ok(net_show(
                &state,
                words.contains(&"-v") || words.contains(&"--verbose"),
            )))
        }
        ["stats", "show", ..] => {
            let state = node.state()?;
            if !state.lnet_configured {
                return Ok(lnetctl_error(
                    "show",
                    "statistics",
                    -100,
                    "cannot get stats: Network is down",
                ));
            }
            Ok(ShimOutput::ok(format!(
                "statistics:\n    msgs_alloc: 0\n    msgs_max: 28\n    errors: 0\n    send_count: {}\n    recv_count: {}\n    route_count: 0\n    drop_count: 0\n    send_length: {}\n    recv_length: {}\n    route_length: 0\n    drop_length: 0\n",
                state.lnet_send_count % (1 << 32),
                state.lnet_recv_count % (1 << 32),
                state.lnet_send_length,
                state.lnet_recv_length
            )))
        }
        ["ping", nid, ..] => {
            let state = node.state()?;
            if !state.lnet_configured {
                return Ok(lnetctl_error(
                    "ping",
                    "ping",
                    -100,
                    "failed to ping: Network is down",
                ));
            }
            Ok(ShimOutput::ok(format!(
                "ping:\n    - primary nid: {nid}\n      Multi-Rail: False\n      peer ni:\n        - nid: {nid}\n"
            )))
        }
        _ => Ok(ShimOutput::fail(
            1,
            format!(
                "lnetctl: unknown or unsimulated command: {}\n",
                words.join(" ")
            ),
        )),
    }
}

/// The roots lctl searches, in its order (libcfs/libcfs/util/param.c).
const LCTL_ROOTS: [&str; 6] = [
    "sys/fs/lustre",
    "sys/kernel/debug/lustre",
    "proc/fs/lustre",
    "sys/fs/lnet",
    "sys/kernel/debug/lnet",
    "proc/sys/lnet",
];

fn glob_match(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((prefix, rest)) => {
            name.starts_with(prefix)
                && (0..=name.len() - prefix.len())
                    .any(|i| glob_match(rest, &name[prefix.len() + i..]))
        }
    }
}

fn lctl_find(root: &Path, parameter: &str) -> Vec<(String, String)> {
    let components: Vec<&str> = parameter.split('.').collect();
    let mut found = Vec::new();
    let mut seen = BTreeSet::new();
    for base in LCTL_ROOTS {
        let mut paths = vec![(root.join(base), Vec::<String>::new())];
        for component in &components {
            let mut next = Vec::new();
            for (dir, names) in paths {
                let Ok(entries) = std::fs::read_dir(&dir) else {
                    continue;
                };
                let mut entries: Vec<_> = entries.flatten().collect();
                entries.sort_by_key(|e| e.file_name());
                for entry in entries {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if glob_match(component, &name) {
                        let mut names = names.clone();
                        names.push(name);
                        next.push((entry.path(), names));
                    }
                }
            }
            paths = next;
        }
        for (path, names) in paths {
            let parameter_name = names.join(".");
            if path.is_file() && seen.insert(parameter_name.clone()) {
                found.push((
                    parameter_name,
                    std::fs::read_to_string(&path).unwrap_or_default(),
                ));
            }
        }
    }
    found
}

fn lctl(node: &SimNode, args: &[String]) -> Result<ShimOutput> {
    let state = node.state()?;
    match args.first().map(String::as_str) {
        Some("list_nids") => {
            if !state.lnet_configured {
                return Ok(ShimOutput::fail(
                    1,
                    "IOC_LIBCFS_GET_NI error 100: Network is down\n",
                ));
            }
            let nids: String = state
                .lnet_nets
                .iter()
                .map(|(net, iface)| format!("{}@{net}\n", interface_address(iface)))
                .collect();
            Ok(ShimOutput::ok(nids))
        }
        Some("get_param") => {
            let no_name = args.iter().any(|a| a == "-n");
            let mut stdout = String::new();
            let mut stderr = String::new();
            for parameter in args[1..].iter().filter(|a| !a.starts_with('-')) {
                let found = lctl_find(node.root(), parameter);
                if found.is_empty() {
                    stderr.push_str(&format!(
                        "error: get_param: param_path '{}': No such file or directory\n",
                        parameter.replace('.', "/")
                    ));
                }
                for (name, value) in found {
                    let single_line = value.trim_end().lines().count() <= 1;
                    if no_name {
                        stdout.push_str(&value);
                    } else if single_line {
                        stdout.push_str(&format!("{name}={value}"));
                    } else {
                        stdout.push_str(&format!("{name}=\n{value}"));
                    }
                }
            }
            let code = if stderr.is_empty() { 0 } else { 2 };
            Ok(ShimOutput {
                code,
                stdout,
                stderr,
            })
        }
        Some("dl") => {
            let mut lines = String::new();
            let mut index = 0;
            for mount in state.visible_mounts() {
                let nid = mount.source.split([':', ',']).next().unwrap_or("");
                lines.push_str(&format!(
                    "{index:>3} UP mgc MGC{nid} {}-mgc 5\n",
                    mount.fsname
                ));
                index += 1;
                lines.push_str(&format!(
                    "{index:>3} UP lov {}-clilov-{} {}-lov 4\n",
                    mount.fsname, mount.instance, mount.fsname
                ));
                index += 1;
                for mdt in 0..mount.mdts {
                    lines.push_str(&format!(
                        "{index:>3} UP mdc {}-MDT{mdt:04x}-mdc-{} {}-mdc 4\n",
                        mount.fsname, mount.instance, mount.fsname
                    ));
                    index += 1;
                }
                for ost in 0..mount.osts {
                    lines.push_str(&format!(
                        "{index:>3} UP osc {}-OST{ost:04x}-osc-{} {}-osc 4\n",
                        mount.fsname, mount.instance, mount.fsname
                    ));
                    index += 1;
                }
            }
            Ok(ShimOutput::ok(lines))
        }
        _ => Ok(ShimOutput::fail(
            1,
            format!("lctl: unknown or unsimulated command: {}\n", args.join(" ")),
        )),
    }
}

fn lfs(node: &SimNode, args: &[String]) -> Result<ShimOutput> {
    let state = node.state()?;
    match args.first().map(String::as_str) {
        Some("getname") => {
            let wanted = args.get(1);
            // llapi_getname opens the path for its ioctl (llapi_file_get_lov_uuid), so on a
            // hung mount `lfs getname` hangs: the open is made here too, on the node's
            // directory (a frozen FUSE mount there blocks it as a hung Lustre mount would).
            if let Some(path) = wanted {
                let _ = std::fs::File::open(node.root().join(path.trim_start_matches('/')));
            }
            let mut text = String::new();
            for mount in state.visible_mounts() {
                if wanted.is_none_or(|w| w.trim_end_matches('/') == mount.mount_point) {
                    text.push_str(&format!(
                        "{}-{} {}\n",
                        mount.fsname, mount.instance, mount.mount_point
                    ));
                }
            }
            if text.is_empty() {
                let what = wanted.map(String::as_str).unwrap_or("");
                return Ok(ShimOutput::fail(
                    19,
                    format!("lfs getname: {what} is not a Lustre filesystem: No such device\n"),
                ));
            }
            Ok(ShimOutput::ok(text))
        }
        _ => Ok(ShimOutput::fail(
            1,
            format!("lfs: unknown or unsimulated command: {}\n", args.join(" ")),
        )),
    }
}

// === ip ===

fn ip(node: &SimNode, args: &[String]) -> Result<ShimOutput> {
    let state = node.state()?;
    let words: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|w| !["-o", "-4", "-d"].contains(w))
        .collect();
    let oneline = args.iter().any(|a| a == "-o");
    match words.as_slice() {
        ["route", "get", address, ..] => {
            let Ok(parsed) = address.parse::<std::net::Ipv4Addr>() else {
                return Ok(ShimOutput::fail(
                    1,
                    format!("Error: any valid prefix is expected rather than \"{address}\".\n"),
                ));
            };
            let octets = parsed.octets();
            // Traffic to the VNet leaves through the synthetic NIC, unless a misconfiguration
            // (mgs-via-vf) routes it onto the VF itself.
            let dev = if state.faults.mgs_via_vf && state.vf_present() {
                VF
            } else {
                "eth0"
            };
            let line = if octets[0..3] == [10, 0, 0] {
                format!("{address} dev {dev} src 10.0.0.5 uid 0 \n    cache \n")
            } else {
                format!("{address} via 10.0.0.1 dev {dev} src 10.0.0.5 uid 0 \n    cache \n")
            };
            Ok(ShimOutput::ok(line))
        }
        ["link", "show", ..] | ["link"] => {
            let separator = if oneline { "\\" } else { "\n" };
            let mut text = format!(
                "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN mode DEFAULT group default qlen 1000{separator}    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00\n"
            );
            text.push_str(&format!("2: eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc mq state UP mode DEFAULT group default qlen 1000{separator}    link/ether 00:0d:3a:9b:1c:2e brd ff:ff:ff:ff:ff:ff\n"));
            if state.vf_present() {
                let (flags, link_state) = if state.faults.vf_down {
                    ("BROADCAST,MULTICAST,SLAVE", "DOWN")
                } else {
                    ("BROADCAST,MULTICAST,SLAVE,UP,LOWER_UP", "UP")
                };
                text.push_str(&format!("3: {VF}: <{flags}> mtu 1500 qdisc mq master eth0 state {link_state} mode DEFAULT group default qlen 1000{separator}    link/ether 00:0d:3a:9b:1c:2e brd ff:ff:ff:ff:ff:ff\n"));
            }
            for index in 0..state.ib_hcas {
                let up = !state.faults.ib_down.contains(&format!("mlx5_{index}"));
                text.push_str(&format!(
                    "{}: ib{index}: <BROADCAST,MULTICAST{}> mtu 2044 qdisc mq state {} mode DEFAULT group default qlen 256{separator}    link/infiniband 00:00:01:48:fe:80:00:00:00:00:00:00:00:15:5d:ff:fd:33:ff:{:02x} brd 00:ff:ff:ff:ff:12:40:1b:80:01:00:00:00:00:00:00:ff:ff:ff:ff\n",
                    10 + index,
                    if up { ",UP,LOWER_UP" } else { "" },
                    if up { "UP" } else { "DOWN" },
                    0x7f - index
                ));
            }
            Ok(ShimOutput::ok(text))
        }
        ["addr", "show", ..] | ["address", "show", ..] | ["addr"] => {
            let mut text = String::from(
                "2: eth0    inet 10.0.0.5/24 brd 10.0.0.255 scope global eth0\\       valid_lft forever preferred_lft forever\n",
            );
            for index in 0..state.ib_hcas {
                text.push_str(&format!("{}: ib{index}    inet {}/16 brd 172.16.255.255 scope global ib{index}\\       valid_lft forever preferred_lft forever\n", 10 + index, interface_address(&format!("ib{index}"))));
            }
            Ok(ShimOutput::ok(text))
        }
        _ => Ok(ShimOutput::fail(
            1,
            format!("ip: unsimulated command: {}\n", args.join(" ")),
        )),
    }
}

// === Secure Boot and DKMS ===

/// `mokutil --sb-state` (mokutil src/mokutil.c: sb_state_internal's lines; without EFI
/// variables it says so and exits 1).
fn mokutil(node: &SimNode, args: &[String]) -> Result<ShimOutput> {
    let state = node.state()?;
    if !args.iter().any(|a| a == "--sb-state") {
        return Ok(ShimOutput::fail(
            1,
            format!("mokutil: unsimulated command {}\n", args.join(" ")),
        ));
    }
    Ok(match state.secure_boot {
        None => ShimOutput::fail(1, "EFI variables are not supported on this system\n"),
        Some(true) => ShimOutput::ok("SecureBoot enabled\n"),
        Some(false) => ShimOutput::ok("SecureBoot disabled\n"),
    })
}

/// DKMS's module name and version for this node's client (the deb packaging calls the
/// module `lustre-client-modules`, the RPM one `lustre-client`).
fn dkms_module(state: &NodeState) -> (&'static str, &'static str) {
    let name = match crate::state::family(&state.distro) {
        crate::state::Family::Deb => "lustre-client-modules",
        _ => "lustre-client",
    };
    (name, state.lustre.release())
}

/// What `dkms build` prints for `kernel` and whether it succeeded: dkms.in's
/// `invoke_command` ("Building module(s)...", then "(bad exit status: N)" and "Failed
/// command:") and `report_build_problem 10` ("Error! Bad return status for module build on
/// kernel: K (arch)" and "Consult .../make.log for more information.", on stderr).
fn dkms_build(state: &NodeState, kernel: &str) -> (bool, String, String) {
    let (name, version) = dkms_module(state);
    // The compile itself (the dkms-slow fault); the caller holds the node's lock meanwhile,
    // as dpkg holds its own through the module package's postinst.
    std::thread::sleep(std::time::Duration::from_secs(
        state.faults.dkms_build_seconds,
    ));
    let mut stdout = format!("Building initial module {name}/{version} for {kernel}\n");
    if state.faults.dkms_build_fails {
        stdout.push_str(&format!(
            "Building module(s)....(bad exit status: 2)\nFailed command:\nmake -j2 KERNELRELEASE={kernel}\n"
        ));
        let stderr = format!(
            "\nError! Bad return status for module build on kernel: {kernel} (x86_64)\nConsult /var/lib/dkms/{name}/{version}/build/make.log for more information.\n"
        );
        (false, stdout, stderr)
    } else {
        stdout.push_str("Building module(s)..... done.\nInstalling /lib/modules/");
        stdout.push_str(&format!("{kernel}/updates/dkms/lustre.ko\n"));
        (true, stdout, String::new())
    }
}

/// `dkms status`: one line per kernel the module is installed for (dkms 3's format).
fn dkms(node: &SimNode, args: &[String]) -> Result<ShimOutput> {
    let state = node.state()?;
    match args.first().map(String::as_str) {
        Some("status") => {
            let (name, version) = dkms_module(&state);
            let mut stdout = String::new();
            if state.dkms {
                for kernel in state.headers.intersection(&state.all_kernels()) {
                    stdout.push_str(&format!("{name}/{version}, {kernel}, x86_64: installed\n"));
                }
            } else if state.faults.dkms_build_fails && state.dkms_half_installed {
                stdout.push_str(&format!("{name}/{version}: added\n"));
            }
            Ok(ShimOutput::ok(stdout))
        }
        _ => Ok(ShimOutput::fail(
            1,
            format!("dkms: unsimulated command {}\n", args.join(" ")),
        )),
    }
}

// === package managers ===

/// The simulated AMLFS repository: a mirror inside the VNet. Messages name it as the real
/// tools would name any repository.
const REPO_URL: &str = "http://10.0.0.4:8080/amlfs";
const REPO_LINE: &str = "http://10.0.0.4:8080/amlfs ./ Packages";
/// apt's words for a refused connection to it (methods/connect.cc).
const APT_REFUSED: &str =
    "Could not connect to 10.0.0.4:8080 (10.0.0.4). - connect (111: Connection refused)";
/// The process that holds the package lock in the package-lock-held fault.
const LOCK_HOLDER: &str = "4242 (unattended-upgr)";

fn meta_name(version: LustreVersion) -> String {
    format!("amlfs-lustre-client-{}", version.amlfs_version())
}

/// The client version a deb metapackage name is for, among the versions the simulator knows.
fn meta_version(name: &str) -> Option<LustreVersion> {
    LustreVersion::ALL
        .into_iter()
        .find(|v| meta_name(*v) == name)
}

/// AMLFS's kmod package for a kernel (deb: `kmod-lustre-client-<K>-<L>`; rpm:
/// `kmod-lustre-client-<K transformed>`).
fn kmod_name(state: &NodeState, version: LustreVersion, kernel: &str) -> String {
    match crate::state::family(&state.distro) {
        crate::state::Family::Deb => {
            format!("kmod-lustre-client-{kernel}-{}", version.amlfs_version())
        }
        _ => format!("kmod-lustre-client-{}", rpm_kernel_part(kernel)),
    }
}

/// The DKMS packages a node's distribution installs: the one asked for, and (deb) the
/// module package it pulls in, whose postinst runs the build.
fn dkms_names(state: &NodeState) -> (String, Option<String>) {
    let version = state.lustre.amlfs_version();
    match crate::state::family(&state.distro) {
        crate::state::Family::Deb => (
            format!("amlfs-lustre-client-dkms-{version}"),
            Some(format!("lustre-client-modules-dkms-{version}")),
        ),
        _ => (
            format!("lustre-client-dkms-{}", version.replace('-', "_")),
            None,
        ),
    }
}

fn apt_packages(args: &[String]) -> Vec<&str> {
    let mut packages = Vec::new();
    let mut iter = args.iter().skip(1);
    while let Some(arg) = iter.next() {
        if arg == "-o" || arg == "-c" || arg == "-t" {
            iter.next();
        } else if !arg.starts_with('-') {
            packages.push(arg.as_str());
        }
    }
    packages
}

/// A package the apt and dnf shims know.
enum Pkg {
    /// A kernel's metapackage of a client version.
    Meta(String, LustreVersion),
    Headers(String),
    Dkms,
}

/// apt-get's answer while another process holds the dpkg frontend lock. With
/// `-o DPkg::Lock::Timeout=N` the real apt-get waits N seconds first; the simulation does not
/// sleep that wait. Words: apt-pkg/contrib/fileutl.cc (GetLock) and apt-pkg/deb/debsystem.cc.
fn apt_lock_error(lock: &str) -> ShimOutput {
    let mut stderr = format!("E: Could not get lock {lock}. It is held by process {LOCK_HOLDER}\n");
    if lock.ends_with("lock-frontend") {
        stderr.push_str(&format!(
            "E: Unable to acquire the dpkg frontend lock ({lock}), is another process using it?\n"
        ));
    }
    ShimOutput {
        code: 100,
        stdout: String::new(),
        stderr,
    }
}

/// Builds the client with DKMS for every present kernel with headers, as the DKMS package's
/// postinst does; returns (ok, stdout, stderr).
fn run_dkms_postinst(state: &mut NodeState) -> (bool, String, String) {
    let mut stdout = String::new();
    let mut stderr = String::new();
    let kernels: Vec<String> = state
        .headers
        .intersection(&state.all_kernels())
        .cloned()
        .collect();
    for kernel in kernels {
        let (ok, out, err) = dkms_build(state, &kernel);
        stdout.push_str(&out);
        stderr.push_str(&err);
        if !ok {
            state.dkms = false;
            state.dkms_half_installed = true;
            return (false, stdout, stderr);
        }
    }
    state.dkms = true;
    state.dkms_half_installed = false;
    (true, stdout, stderr)
}

fn apt_get(node: &SimNode, args: &[String]) -> Result<ShimOutput> {
    let header =
        "Reading package lists...\nBuilding dependency tree...\nReading state information...\n";
    let operation = args
        .iter()
        .find(|a| !a.starts_with('-') && !a.contains('=') && !a.contains("::"))
        .map(String::as_str);
    let state = node.state()?;
    match operation {
        Some("update") => {
            if state.faults.package_lock {
                return Ok(apt_lock_error("/var/lib/apt/lists/lock"));
            }
            if state.faults.repo_unreachable {
                // apt 2.6 reports an unreachable source as a warning and exits 0 (seen from
                // the real apt-get against a closed port).
                return Ok(ShimOutput {
                    code: 0,
                    stdout: format!(
                        "Err:1 {REPO_URL} ./ InRelease\n  {APT_REFUSED}\nReading package lists...\n"
                    ),
                    stderr: format!(
                        "W: Failed to fetch {REPO_URL}/./InRelease  {APT_REFUSED}\nW: Some index files failed to download. They have been ignored, or old ones used instead.\n"
                    ),
                });
            }
            Ok(ShimOutput::ok("Reading package lists... Done\n"))
        }
        Some("install") => {
            if state.faults.package_lock {
                return Ok(apt_lock_error("/var/lib/dpkg/lock-frontend"));
            }
            let position = args.iter().position(|a| a == "install").unwrap_or(0);
            let packages = apt_packages(&args[position..]);
            node.change(|state| {
                let (dkms_name, _) = dkms_names(state);
                // Everything is checked before anything is installed, as apt resolves first.
                let mut to_install = Vec::new();
                for package in &packages {
                    let (name, version) = package.split_once('=').unwrap_or((package, ""));
                    if let Some(kernel) = name.strip_prefix("linux-headers-") {
                        if !state.all_kernels().contains(kernel) {
                            return Ok(ShimOutput { code: 100, stdout: header.into(), stderr: format!("E: Unable to locate package {name}\n") });
                        }
                        to_install.push(Pkg::Headers(kernel.to_owned()));
                        continue;
                    }
                    if name == dkms_name {
                        to_install.push(Pkg::Dkms);
                        continue;
                    }
                    let Some(client) = meta_version(name).filter(|v| state.published_versions().contains(v)) else {
                        // apt-private/private-cacheset.cc.
                        return Ok(ShimOutput { code: 100, stdout: header.into(), stderr: format!("E: Unable to locate package {name}\n") });
                    };
                    let published = state.published();
                    let kernel = if version.is_empty() { published.iter().max().cloned().unwrap_or_default() } else { version.to_owned() };
                    if !published.contains(&kernel) {
                        return Ok(ShimOutput {
                            code: 100,
                            stdout: format!("{header}Package {name} is not available, but is referred to by another package.\n"),
                            stderr: format!("E: Version '{kernel}' for '{name}' was not found\n"),
                        });
                    }
                    if state.faults.repo_dependency_missing.contains(&kernel) {
                        // apt-private/private-output.cc (ShowBroken) and private-install.cc.
                        return Ok(ShimOutput {
                            code: 100,
                            stdout: format!("{header}Some packages could not be installed. This may mean that you have\nrequested an impossible situation or if you are using the unstable\ndistribution that some required packages have not yet been created\nor been moved out of Incoming.\nThe following information may help to resolve the situation:\n\nThe following packages have unmet dependencies:\n {name} : Depends: {} but it is not installable\n", kmod_name(state, client, &kernel)),
                            stderr: "E: Unable to correct problems, you have held broken packages.\n".into(),
                        });
                    }
                    to_install.push(Pkg::Meta(kernel, client));
                }
                if state.faults.repo_unreachable
                    && let Some(first) = to_install.iter().find_map(|p| match p {
                        Pkg::Meta(kernel, client) => Some(format!("{}_{kernel}_amd64.deb", meta_name(*client))),
                        Pkg::Dkms => Some(format!("{dkms_name}_1_amd64.deb")),
                        Pkg::Headers(_) => None,
                    })
                {
                    // apt-pkg/acquire-item.cc and apt-private/private-install.cc.
                    return Ok(ShimOutput {
                        code: 100,
                        stdout: format!("{header}Err:1 {REPO_URL} ./ {first}\n  {APT_REFUSED}\n"),
                        stderr: format!("E: Failed to fetch {REPO_URL}/./{first}  {APT_REFUSED}\nE: Unable to fetch some archives, maybe run apt-get update or try with --fix-missing?\n"),
                    });
                }
                let mut stdout = header.to_owned();
                let mut build_dkms = false;
                for package in to_install {
                    match package {
                        Pkg::Meta(kernel, client) => {
                            stdout.push_str(&format!("Setting up {} ({kernel}) ...\n", meta_name(client)));
                            // The new version's kmod replaces the old one's module files.
                            state.clients.insert(kernel.clone());
                            state.installed.insert(kernel.clone(), client);
                            state.deb_metas.insert(client, kernel);
                        }
                        Pkg::Headers(kernel) => {
                            stdout.push_str(&format!("Setting up linux-headers-{kernel} ({kernel}) ...\n"));
                            state.headers.insert(kernel);
                        }
                        Pkg::Dkms => build_dkms = true,
                    }
                }
                if build_dkms {
                    let (_, module_package) = dkms_names(state);
                    let module_package = module_package.unwrap_or_default();
                    stdout.push_str(&format!("Setting up {module_package} ({}-1) ...\n", state.lustre.amlfs_version()));
                    let (ok, out, err) = run_dkms_postinst(state);
                    stdout.push_str(&out);
                    if !ok {
                        // dpkg's words (src/main/script.c, lib/dpkg/subproc.c; dependency
                        // handling in src/main/configure.c) and apt's (apt-pkg/deb/dpkgpm.cc).
                        let stderr = format!("{err}dpkg: error processing package {module_package} (--configure):\n installed {module_package} package post-installation script subprocess returned error exit status 10\ndpkg: dependency problems prevent configuration of {dkms_name}:\n {dkms_name} depends on {module_package}; however:\n  Package {module_package} is not configured yet.\n\ndpkg: error processing package {dkms_name} (--configure):\n dependency problems - leaving unconfigured\nErrors were encountered while processing:\n {module_package}\n {dkms_name}\nE: Sub-process /usr/bin/dpkg returned an error code (1)\n");
                        return Ok(ShimOutput { code: 100, stdout, stderr });
                    }
                    stdout.push_str(&format!("Setting up {dkms_name} (1) ...\n"));
                }
                Ok(ShimOutput::ok(stdout))
            })
        }
        Some("purge") | Some("remove") => {
            if state.faults.package_lock {
                return Ok(apt_lock_error("/var/lib/dpkg/lock-frontend"));
            }
            let purge = operation == Some("purge");
            let position = args
                .iter()
                .position(|a| Some(a.as_str()) == operation)
                .unwrap_or(0);
            let packages = apt_packages(&args[position..]);
            node.change(|state| {
                let (dkms_name, module_package) = dkms_names(state);
                let present = state.dkms || state.dkms_half_installed;
                let mut stdout = header.to_owned();
                for package in &packages {
                    let is_dkms =
                        *package == dkms_name || Some(package.to_string()) == module_package;
                    if is_dkms && present {
                        stdout.push_str(&format!("Removing {package} ...\n"));
                        if purge {
                            stdout.push_str(&format!(
                                "Purging configuration files for {package} ...\n"
                            ));
                        }
                    } else {
                        // apt-private/private-install.cc.
                        stdout.push_str(&format!(
                            "Package '{package}' is not installed, so not removed\n"
                        ));
                    }
                }
                if present
                    && packages
                        .iter()
                        .any(|p| *p == dkms_name || Some(p.to_string()) == module_package)
                {
                    state.dkms = false;
                    state.dkms_half_installed = false;
                }
                Ok(ShimOutput::ok(stdout))
            })
        }
        _ => Ok(ShimOutput::fail(
            100,
            format!("E: Invalid operation {}\n", args.join(" ")),
        )),
    }
}

fn apt_cache(node: &SimNode, args: &[String]) -> Result<ShimOutput> {
    let state = node.state()?;
    match args.first().map(String::as_str) {
        Some("madison") => {
            let mut stdout = String::new();
            for name in args[1..].iter().filter(|a| !a.starts_with('-')) {
                // A version the repository does not publish is not in its index at all.
                if !meta_version(name).is_some_and(|v| state.published_versions().contains(&v)) {
                    continue;
                }
                let mut kernels: Vec<String> = state.published().into_iter().collect();
                kernels.sort_by(|a, b| crate::node::version_cmp(b, a));
                for kernel in kernels {
                    stdout.push_str(&format!("{name} | {kernel} | {REPO_LINE}\n"));
                }
            }
            Ok(ShimOutput::ok(stdout))
        }
        _ => Ok(ShimOutput::fail(
            100,
            format!("E: unsimulated apt-cache command {}\n", args.join(" ")),
        )),
    }
}

fn dpkg_query(node: &SimNode, args: &[String]) -> Result<ShimOutput> {
    let state = node.state()?;
    let mut format = String::from("${Package}\t${Version}\n");
    let mut names = Vec::new();
    for arg in args {
        if let Some(f) = arg
            .strip_prefix("-f=")
            .or_else(|| arg.strip_prefix("--showformat="))
        {
            format = f.replace("\\n", "\n").replace("\\t", "\t");
        } else if !arg.starts_with('-') {
            names.push(arg.clone());
        }
    }
    let (dkms_name, module_package) = dkms_names(&state);
    let dkms_version = format!("{}-1", state.lustre.amlfs_version());
    let mut stdout = String::new();
    let mut stderr = String::new();
    for name in names {
        // (status, version) as dpkg's database holds it.
        let found = if let Some(client) = meta_version(&name) {
            state
                .deb_metas
                .get(&client)
                .cloned()
                .map(|v| ("install ok installed", v))
        } else if Some(&name) == module_package.as_ref() && state.dkms_half_installed {
            Some(("install ok half-configured", dkms_version.clone()))
        } else if name == dkms_name && state.dkms_half_installed {
            Some(("install ok unpacked", "1".to_owned()))
        } else if (Some(&name) == module_package.as_ref() || name == dkms_name) && state.dkms {
            Some(("install ok installed", dkms_version.clone()))
        } else {
            None
        };
        match found {
            Some((status, version)) => stdout.push_str(
                &format
                    .replace("${Package}", &name)
                    .replace("${Status}", status)
                    .replace("${Version}", &version),
            ),
            None => stderr.push_str(&format!("dpkg-query: no packages found matching {name}\n")),
        }
    }
    Ok(ShimOutput {
        code: i32::from(!stderr.is_empty()),
        stdout,
        stderr,
    })
}

/// The RPM metapackage name prefix of a client version (`amlfs-lustre-client-<L with _>-`).
fn rpm_prefix(version: LustreVersion) -> String {
    format!(
        "amlfs-lustre-client-{}-",
        version.amlfs_version().replace('-', "_")
    )
}

/// The kernel and client version a dnf package name was built for, among `kernels` and the
/// versions in `versions`.
fn rpm_kernel_for(
    name: &str,
    kernels: &BTreeSet<String>,
    versions: &BTreeSet<LustreVersion>,
) -> Option<(String, LustreVersion)> {
    versions.iter().find_map(|version| {
        let k_part = name
            .strip_prefix(&rpm_prefix(*version))?
            .strip_suffix("-1")?;
        kernels
            .iter()
            .find(|k| rpm_kernel_part(k) == k_part)
            .map(|k| (k.clone(), *version))
    })
}

fn rpm_kernel_part(kernel: &str) -> String {
    let trimmed = kernel
        .strip_suffix(".x86_64")
        .or_else(|| kernel.strip_suffix(".aarch64"))
        .unwrap_or(kernel);
    trimmed.replace(['-', '_'], ".")
}

/// dnf and tdnf wait for another holder of their lock without a limit of their own, after
/// saying so on stdout (dnf/lock.py: "Waiting for process with pid %d to finish."; tdnf
/// common/lock.c: "waiting for %s lock on %s"). Blocks until the fault is healed (or an hour
/// passes), so the caller's deadline is what ends it, as on a real node.
fn wait_for_package_lock(node: &SimNode, tdnf: bool) -> Result<()> {
    use std::io::Write;
    let line = if tdnf {
        "waiting for tdnf_instance lock on /var/run/.tdnf-instance-lockfile\n"
    } else {
        "Waiting for process with pid 4242 to finish.\n"
    };
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(line.as_bytes());
    let _ = out.flush();
    drop(out);
    for _ in 0..36_000 {
        if !node.state()?.faults.package_lock {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Ok(())
}

/// What dnf and tdnf say when the repository refuses connections. dnf 4: seen from the real
/// dnf against a closed port (with `skip_if_unavailable=False`, RHEL's default). tdnf:
/// client/repo.c prints `Error(%u) : %s` with curl_easy_strerror's words for curl error 7
/// (ERROR_TDNF_CURL_BASE 1201 + 7), then TDNFInitRepo "Error: Failed to synchronize cache for
/// repo '%s'", then the CLI's own `Error(%u) : %s`; the exit status is the code's low byte.
fn rpm_repo_unreachable(state: &NodeState, tdnf: bool) -> ShimOutput {
    let major = if state.distro == "alma-8" {
        "el8"
    } else if tdnf {
        "al3"
    } else {
        "el9"
    };
    if tdnf {
        ShimOutput {
            code: 1208 % 256,
            stdout: "Refreshing metadata for: 'amlfs'\n".into(),
            stderr: "Error(1208) : Couldn't connect to server\nError: Failed to synchronize cache for repo 'amlfs'\nError(1208) : Couldn't connect to server\n".into(),
        }
    } else {
        ShimOutput {
            code: 1,
            stdout:
                "amlfs                                            0.0  B/s |   0  B     00:00    \n"
                    .into(),
            stderr: format!(
                "Errors during downloading metadata for repository 'amlfs':\n  - Curl error (7): Couldn't connect to server for {REPO_URL}-{major}/repodata/repomd.xml [Failed to connect to 10.0.0.4 port 8080 after 0 ms: Couldn't connect to server]\nError: Failed to download metadata for repo 'amlfs': Cannot download repomd.xml: Cannot download repodata/repomd.xml: All mirrors were tried\n"
            ),
        }
    }
}

fn dnf(node: &SimNode, program: &str, args: &[String]) -> Result<ShimOutput> {
    let tdnf = program == "tdnf";
    let words: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let state = node.state()?;
    if matches!(words.first(), Some(&"install") | Some(&"remove")) && state.faults.package_lock {
        wait_for_package_lock(node, tdnf)?;
    }
    if matches!(
        words.first(),
        Some(&"install") | Some(&"makecache") | Some(&"list")
    ) && state.faults.repo_unreachable
    {
        return Ok(rpm_repo_unreachable(&state, tdnf));
    }
    match words.as_slice() {
        ["install", names @ ..] => node.change(|state| {
            let mut kernels = Vec::new();
            let (dkms_name, _) = dkms_names(state);
            let mut extras = Vec::new();
            let not_found = |name: &str| {
                if tdnf {
                    // tdnf client/resolve.c and the CLI's Error(1011) line; exit 1011 & 255.
                    ShimOutput::fail(1011 % 256, format!("{name} package not found or not installed\nError(1011) : No matching packages\n"))
                } else {
                    // dnf's words and exit code, as the real dnf prints them.
                    ShimOutput { code: 1, stdout: format!("No match for argument: {name}\n"), stderr: format!("Error: Unable to find a match: {name}\n") }
                }
            };
            for name in names {
                if let Some(devel) = name.strip_prefix("kernel-devel-") {
                    let kernel = state.all_kernels().into_iter().find(|k| k.strip_suffix(".x86_64").unwrap_or(k) == devel);
                    match kernel {
                        Some(kernel) => extras.push(Pkg::Headers(kernel)),
                        None => return Ok(not_found(name)),
                    }
                    continue;
                }
                if *name == dkms_name {
                    extras.push(Pkg::Dkms);
                    continue;
                }
                match rpm_kernel_for(name, &state.published(), &state.published_versions()) {
                    Some((kernel, client)) if state.faults.repo_dependency_missing.contains(&kernel) => {
                        let needed = kmod_name(state, client, &kernel);
                        // libsolv's problem text (src/problems.c); dnf 4's layout as the real
                        // dnf printed it, tdnf's from solv/tdnfpackage.c (SolvReportProblems).
                        return Ok(if tdnf {
                            ShimOutput::fail(1301 % 256, format!("1. nothing provides {needed} needed by {name}.x86_64\nFound 1 problem(s) while resolving\nError(1301) : Solv general runtime error\n"))
                        } else {
                            ShimOutput {
                                code: 1,
                                stdout: "(try to add '--skip-broken' to skip uninstallable packages)\n".into(),
                                stderr: format!("Error: \n Problem: conflicting requests\n  - nothing provides {needed} needed by {name}.x86_64\n"),
                            }
                        });
                    }
                    Some(found) => kernels.push(found),
                    None => return Ok(not_found(name)),
                }
            }
            let mut stdout = String::from("Installed:\n");
            let mut build_dkms = false;
            for extra in extras {
                match extra {
                    Pkg::Headers(kernel) => {
                        stdout.push_str(&format!("  kernel-devel-{kernel}\n"));
                        state.headers.insert(kernel);
                    }
                    Pkg::Dkms => build_dkms = true,
                    Pkg::Meta(..) => {}
                }
            }
            let names: Vec<&&str> = names.iter().filter(|n| !n.starts_with("kernel-devel-") && **n != dkms_name).collect();
            for ((kernel, client), name) in kernels.iter().zip(names) {
                state.clients.insert(kernel.clone());
                state.installed.insert(kernel.clone(), *client);
                stdout.push_str(&format!("  {name}.x86_64\n"));
            }
            if build_dkms {
                let (ok, out, err) = run_dkms_postinst(state);
                stdout.push_str(&format!("  Running scriptlet: {dkms_name}-1.noarch\n{out}{err}"));
                if !ok {
                    // rpm lib/rpmscript.c ("%s(%s) scriptlet failed, exit status %d") and
                    // dnf's transaction display; a %post failure leaves the package
                    // installed and the transaction complete.
                    stdout.push_str(&format!("warning: %post({dkms_name}-1.noarch) scriptlet failed, exit status 10\n\nError in POSTIN scriptlet in rpm package {dkms_name}\n"));
                }
                stdout.push_str(&format!("  {dkms_name}-1.noarch\n"));
            }
            stdout.push_str("\nComplete!\n");
            Ok(ShimOutput::ok(stdout))
        }),
        ["remove", names @ ..] => node.change(|state| {
            let (dkms_name, _) = dkms_names(state);
            let present = state.dkms || state.dkms_half_installed;
            if present && names.contains(&dkms_name.as_str()) {
                state.dkms = false;
                state.dkms_half_installed = false;
                return Ok(ShimOutput::ok(format!("Removed:\n  {dkms_name}-1.noarch\n\nComplete!\n")));
            }
            Ok(ShimOutput::ok(format!("No match for argument: {}\nNo packages marked for removal.\nDependencies resolved.\nNothing to do.\nComplete!\n", names.join(" "))))
        }),
        ["makecache", ..] => Ok(ShimOutput::ok("Metadata cache created.\n")),
        ["list", ..] => {
            let mut stdout = String::from("Available Packages\n");
            for version in state.published_versions() {
                let name = format!("amlfs-lustre-client-{}", version.amlfs_version().replace('-', "_"));
                for kernel in state.published() {
                    stdout.push_str(&format!("{name}.x86_64    {}-1    amlfs\n", rpm_kernel_part(&kernel)));
                }
            }
            Ok(ShimOutput::ok(stdout))
        }
        _ => Ok(ShimOutput::fail(1, format!("{program}: unsimulated command {}\n", args.join(" ")))),
    }
}

fn rpm(node: &SimNode, args: &[String]) -> Result<ShimOutput> {
    let state = node.state()?;
    let names: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let mut stdout = String::new();
    let mut missing = false;
    for name in names {
        let versions = LustreVersion::ALL.into_iter().collect();
        let installed = rpm_kernel_for(name, &state.clients, &versions)
            .is_some_and(|(kernel, client)| state.installed_version(&kernel) == Some(client));
        if installed {
            stdout.push_str(&format!("{name}.x86_64\n"));
        } else {
            // rpm -q prints this on stdout and exits 1.
            stdout.push_str(&format!("package {name} is not installed\n"));
            missing = true;
        }
    }
    Ok(ShimOutput {
        code: i32::from(missing),
        stdout,
        stderr: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globbing_matches_lctl_patterns() {
        assert!(glob_match("*", "lustrefs-ffff"));
        assert!(glob_match(
            "lustrefs-*-osc-*",
            "lustrefs-OST0001-osc-ffff8881"
        ));
        assert!(!glob_match(
            "lustrefs-*-mdc-*",
            "lustrefs-OST0001-osc-ffff8881"
        ));
        assert!(glob_match("stats", "stats"));
    }

    #[test]
    fn rpm_names_follow_the_amlfs_transform() {
        assert_eq!(
            rpm_kernel_part("5.14.0-611.5.1.el9_7.x86_64"),
            "5.14.0.611.5.1.el9.7"
        );
    }
}
