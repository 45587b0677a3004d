//! Rendering a node's files from its state, where and how each Lustre version writes them.
//!
//! Locations follow lctl's search order and the moves between versions (`llite/osc/mdc
//! stats` in /proc on 2.10, in debugfs from 2.12; `import`/`state` in /proc until 2.16 and in
//! debugfs on 2.17; `kbytes*` in /proc on 2.10 and sysfs after; LNet `stats` in
//! /proc/sys/lnet on 2.10 and debugfs after). Formats follow the real samples in
//! tests/fixtures: the `%-25s` name column (`%-35s` on 2.17), header lines per version,
//! count-zero lines left out, `[regs]` before 2.13 and `[usecs]` with min/max/sum/sumsq after.
//!
//! [`render`] computes every file the simulator owns and brings the tree to it: changed files
//! are replaced atomically, files it wrote before and no longer wants are removed (tracked in
//! `.sim/manifest.json`), and nothing it did not write is touched.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::SimError;
use crate::state::{Family, IoCounters, LustreVersion, NodeState, RpcWait, SimMount};
use crate::ttar;

/// One entry of the rendered tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    File(Vec<u8>),
    Symlink(String),
}

pub type Tree = BTreeMap<String, Entry>;

static TEMP: AtomicU64 = AtomicU64::new(0);

/// Replaces `path` atomically (temporary file in the same directory, then rename).
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), SimError> {
    let io = |what: &str, source| SimError::Io {
        what: what.into(),
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().expect("rendered paths have a parent");
    fs::create_dir_all(dir).map_err(|e| io("creating the directory of", e))?;
    let temp = dir.join(format!(
        ".sim-tmp-{}-{}",
        std::process::id(),
        TEMP.fetch_add(1, Ordering::Relaxed)
    ));
    let mut file = fs::File::create(&temp).map_err(|e| io("creating a temporary for", e))?;
    file.write_all(contents).map_err(|e| io("writing", e))?;
    drop(file);
    fs::rename(&temp, path).map_err(|e| io("renaming into place", e))
}

fn name_pad(version: LustreVersion) -> usize {
    if version == LustreVersion::V2_17 {
        35
    } else {
        25
    }
}

fn secs(ns: u64) -> String {
    format!("{}.{:09}", ns / 1_000_000_000, ns % 1_000_000_000)
}

/// A stats file header as the version prints it.
fn stats_header(version: LustreVersion, snapshot_ns: u64, start_ns: u64) -> String {
    let pad = name_pad(version);
    let mut text = format!(
        "{:<pad$} {} secs.nsecs\n",
        "snapshot_time",
        secs(snapshot_ns)
    );
    if version >= LustreVersion::V2_15 {
        text.push_str(&format!(
            "{:<pad$} {} secs.nsecs\n",
            "start_time",
            secs(start_ns)
        ));
        text.push_str(&format!(
            "{:<pad$} {} secs.nsecs\n",
            "elapsed_time",
            secs(snapshot_ns.saturating_sub(start_ns))
        ));
    }
    text
}

/// One counter line; `None` when the count is zero (the kernel leaves those out).
fn counter_line(
    version: LustreVersion,
    name: &str,
    count: u64,
    unit: &str,
    values: Option<(u64, u64, u64, Option<u64>)>,
) -> Option<String> {
    if count == 0 {
        return None;
    }
    let pad = name_pad(version);
    let mut line = format!("{name:<pad$} {count} samples [{unit}]");
    if let Some((min, max, sum, sumsq)) = values {
        line.push_str(&format!(" {min} {max} {sum}"));
        if let Some(sumsq) = sumsq {
            line.push_str(&format!(" {sumsq}"));
        }
    }
    line.push('\n');
    Some(line)
}

/// Latency lines (`[usecs] min max sum sumsq` from 2.15, `[regs]` before): each op takes
/// `usecs` microseconds in the simulation.
fn op_line(version: LustreVersion, name: &str, count: u64, usecs: u64) -> Option<String> {
    if version >= LustreVersion::V2_15 {
        counter_line(
            version,
            name,
            count,
            "usecs",
            Some((usecs, usecs, usecs * count, Some(usecs * usecs * count))),
        )
    } else {
        counter_line(version, name, count, "regs", None)
    }
}

/// A bytes counter line from (count, min, max, sum, sumsq).
fn bytes_line(
    version: LustreVersion,
    name: &str,
    (count, min, max, sum, sumsq): (u64, u64, u64, u64, u64),
    with_sumsq: bool,
) -> Option<String> {
    counter_line(
        version,
        name,
        count,
        "bytes",
        Some((min, max, sum, with_sumsq.then_some(sumsq))),
    )
}

fn reads(c: &IoCounters) -> (u64, u64, u64, u64, u64) {
    (
        c.read_count,
        c.read_min,
        c.read_max,
        c.read_sum,
        c.read_sumsq,
    )
}

fn writes(c: &IoCounters) -> (u64, u64, u64, u64, u64) {
    (
        c.write_count,
        c.write_min,
        c.write_max,
        c.write_sum,
        c.write_sumsq,
    )
}

fn llite_stats(state: &NodeState, mount: &SimMount) -> String {
    let v = state.running_lustre();
    let c = &mount.llite;
    // The 2.10 client registers llite byte counters without sum of squares.
    let sumsq = v >= LustreVersion::V2_15;
    let mut text = stats_header(v, state.clock_ns, mount.started_ns);
    let lines = [
        bytes_line(v, "read_bytes", reads(c), sumsq),
        bytes_line(v, "write_bytes", writes(c), sumsq),
        if v >= LustreVersion::V2_15 {
            op_line(v, "read", c.read_count, 120)
        } else {
            None
        },
        if v >= LustreVersion::V2_15 {
            op_line(v, "write", c.write_count, 150)
        } else {
            None
        },
        op_line(v, "open", c.opens, 3),
        op_line(v, "close", c.opens, 2),
        op_line(v, "getattr", c.opens, 1),
    ];
    text.extend(lines.into_iter().flatten());
    text
}

/// A latency line from the kernel's sums (`N samples [usecs] min max sum sumsq`).
fn wait_line(version: LustreVersion, name: &str, wait: &RpcWait) -> Option<String> {
    // RPC latency unit: `usec` until 2.15.7 renamed it (the 2.10.1 sample says usec).
    let unit = if version >= LustreVersion::V2_15 {
        "usecs"
    } else {
        "usec"
    };
    counter_line(
        version,
        name,
        wait.count,
        unit,
        Some((wait.min_us, wait.max_us, wait.sum_us, Some(wait.sumsq))),
    )
}

fn osc_stats(state: &NodeState, mount: &SimMount, c: &IoCounters) -> String {
    let v = state.running_lustre();
    // req_waittime counts every RPC of the device: here its reads and writes.
    let all = c.read_wait.combined(&c.write_wait);
    let rpcs = all.count;
    let mut text = stats_header(v, state.clock_ns, mount.started_ns);
    let lines = [
        wait_line(v, "req_waittime", &all),
        counter_line(
            v,
            "req_active",
            rpcs,
            "reqs",
            Some((1, 1, rpcs, Some(rpcs))),
        ),
        bytes_line(v, "read_bytes", reads(c), true),
        bytes_line(v, "write_bytes", writes(c), true),
        wait_line(v, "ost_read", &c.read_wait),
        wait_line(v, "ost_write", &c.write_wait),
    ];
    text.extend(lines.into_iter().flatten());
    text
}

fn mdc_stats(state: &NodeState, mount: &SimMount, index: usize) -> String {
    let v = state.running_lustre();
    let wait = mount.mdc_wait.get(index).cloned().unwrap_or_default();
    // Half of the requests are closes, with the same waits.
    let closes = RpcWait {
        count: wait.count / 2,
        sum_us: wait.sum_us / 2,
        sumsq: wait.sumsq / 2,
        ..wait.clone()
    };
    let mut text = stats_header(v, state.clock_ns, mount.started_ns);
    text.extend(
        [
            wait_line(v, "req_waittime", &wait),
            wait_line(v, "mds_close", &closes),
        ]
        .into_iter()
        .flatten(),
    );
    text
}

fn md_stats(state: &NodeState, mount: &SimMount) -> String {
    let v = state.running_lustre();
    let ops = mount.llite.opens;
    // md_stats counts requests only (`[reqs]`), in every version.
    let mut text = stats_header(v, state.clock_ns, mount.started_ns);
    for name in ["close", "getattr", "intent_lock"] {
        text.extend(counter_line(v, name, ops, "reqs", None));
    }
    text
}

/// The import file of one target, shaped as `lprocfs_import_seq_show` prints it: the 2.10
/// sample's layout, `idle:` from 2.12, quoted NIDs and a `nids_stats:` block from 2.16.
/// The 2.16+ form is constructed from the format rules (no real 2.16 sample is available).
fn import_file(
    state: &NodeState,
    name: &str,
    target: &str,
    import_state: &str,
    attempts: u32,
    generation: u32,
    nid: &str,
) -> String {
    let v = state.running_lustre();
    let quoted = if v >= LustreVersion::V2_16 {
        format!("\"{nid}\"")
    } else {
        nid.to_owned()
    };
    let mut text = format!(
        "import:\n    name: {name}\n    target: {target}\n    state: {import_state}\n    \
connect_flags: [ write_grant, server_lock, version, request_portal, truncate_lock, max_byte_per_rpc, early_lock_cancel, adaptive_timeouts, lru_resize, fid_is_enabled, version_recovery, full20, layout_lock, 64bithash, jobstats, einprogress, lvb_type, lfsck, bulk_mbits ]\n    \
connect_data:\n       flags: 0x20405af0e3440478\n       instance: 3\n       target_version: {release}.0\n       max_brw_size: 4194304\n    \
import_flags: [ replayable, pingable, connect_tried ]\n    \
connection:\n       failover_nids: [ {quoted} ]\n       current_connection: {quoted}\n       connection_attempts: {attempts}\n       generation: {generation}\n       in-progress_invalidations: 0\n",
        release = state.running_lustre().release()
    );
    if v >= LustreVersion::V2_12 {
        text.push_str("       idle: 0 sec\n");
    }
    if v >= LustreVersion::V2_16 {
        text.push_str(&format!(
            "    nids_stats:\n       \"{nid}\": {{ connects: {attempts}, replied: {attempts}, uptodate: true, sec_ago: 1 }}\n"
        ));
    }
    let usec = if v >= LustreVersion::V2_15 {
        "usecs"
    } else {
        "usec"
    };
    text.push_str(&format!(
        "    rpcs:\n       inflight: 0\n       unregistering: 0\n       timeouts: 0\n       avg_waittime: 900 {usec}\n    \
service_estimates:\n       services: 1 sec\n       network: 1 sec\n    \
transactions:\n       last_replay: 0\n       peer_committed: 0\n       last_checked: 0\n"
    ));
    text
}

fn state_file(mounted_s: u64, import_state: &str, fault_s: u64) -> String {
    let mut text = format!(
        "current_state: {import_state}\nstate_history:\n - [ {mounted_s}, CONNECTING ]\n - [ {mounted_s}, FULL ]\n"
    );
    if import_state != "FULL" {
        text.push_str(&format!(" - [ {fault_s}, {import_state} ]\n"));
    }
    text
}

fn put(tree: &mut Tree, path: impl Into<String>, text: impl Into<String>) {
    tree.insert(path.into(), Entry::File(text.into().into_bytes()));
}

fn put_bytes(tree: &mut Tree, path: impl Into<String>, bytes: Vec<u8>) {
    tree.insert(path.into(), Entry::File(bytes));
}

fn link(tree: &mut Tree, path: impl Into<String>, target: impl Into<String>) {
    tree.insert(path.into(), Entry::Symlink(target.into()));
}

/// Where a parameter file lives for this version: `proc`, `sysfs` or `debugfs`.
fn dir_for(version: LustreVersion, kind: &str) -> &'static str {
    use LustreVersion::*;
    match (kind, version) {
        ("stats", V2_10) => "proc/fs/lustre",
        ("stats", _) => "sys/kernel/debug/lustre",
        ("import", V2_17) => "sys/kernel/debug/lustre",
        ("import", _) => "proc/fs/lustre",
        ("kbytes", V2_10) => "proc/fs/lustre",
        ("kbytes", _) => "sys/fs/lustre",
        _ => "proc/fs/lustre",
    }
}

/// The MGS NID of a mount source (the first one).
fn first_nid(source: &str) -> String {
    source.split([':', ',']).next().unwrap_or("").to_owned()
}

/// The `import` and `state` files of one osc or mdc device (`kind`), with any fault overlay.
fn import_files(tree: &mut Tree, state: &NodeState, mount: &SimMount, kind: &str, target: &str) {
    let name = format!("{}-{target}-{kind}-{}", mount.fsname, mount.instance);
    let key = format!("{}|{target}", mount.mount_point);
    let import_state = state
        .faults
        .imports
        .get(&key)
        .map(String::as_str)
        .unwrap_or("FULL");
    // A reconnect attempt for any fault; a new connection generation for an eviction.
    let (attempts, generation) = match import_state {
        "FULL" => (1, 1),
        "EVICTED" => (2, 2),
        _ => (2, 1),
    };
    let idir = dir_for(state.running_lustre(), "import");
    let target_uuid = format!("{}-{target}_UUID", mount.fsname);
    let nid = first_nid(&mount.source);
    put(
        tree,
        format!("{idir}/{kind}/{name}/import"),
        import_file(
            state,
            &name,
            &target_uuid,
            import_state,
            attempts,
            generation,
            &nid,
        ),
    );
    put(
        tree,
        format!("{idir}/{kind}/{name}/state"),
        state_file(
            mount.started_ns / 1_000_000_000,
            import_state,
            state.clock_ns / 1_000_000_000,
        ),
    );
}

/// health_check as obdclass prints it: "LBUG" after an LBUG, else a "device %s reported
/// unhealthy" line per unhealthy device and "NOT HEALTHY", else "healthy".
fn health_check(state: &NodeState) -> String {
    if state.faults.lbug {
        return "LBUG\n".into();
    }
    let mut text = String::new();
    for mount in state.visible_mounts() {
        for key in &state.faults.unhealthy {
            if let Some(target) = key.strip_prefix(&format!("{}|", mount.mount_point)) {
                let kind = if target.starts_with("OST") {
                    "osc"
                } else {
                    "mdc"
                };
                text.push_str(&format!(
                    "device {}-{target}-{kind}-{} reported unhealthy\n",
                    mount.fsname, mount.instance
                ));
            }
        }
    }
    if text.is_empty() {
        "healthy\n".into()
    } else {
        text + "NOT HEALTHY\n"
    }
}

fn lustre_files(state: &NodeState, tree: &mut Tree) {
    let v = state.running_lustre();
    if !state.loaded_modules.contains("lustre") {
        return;
    }
    put(tree, "sys/fs/lustre/health_check", health_check(state));
    put(tree, "sys/fs/lustre/version", format!("{}\n", v.release()));
    let mut mgcs = BTreeSet::new();
    for mount in state.visible_mounts() {
        let inst = &mount.instance;
        let fs = &mount.fsname;
        let nid = first_nid(&mount.source);
        let mounted_s = mount.started_ns / 1_000_000_000;
        let llite = format!("{fs}-{inst}");
        put(
            tree,
            format!("{}/llite/{llite}/stats", dir_for(v, "stats")),
            llite_stats(state, mount),
        );
        let kdir = dir_for(v, "kbytes");
        let ost_kib: u64 = 4 * 1024 * 1024 * 1024; // 4 TiB per OST
        let used_kib: u64 = mount.osc.iter().map(|c| c.write_sum / 1024).sum::<u64>()
            / u64::from(mount.osts.max(1));
        put(
            tree,
            format!("{kdir}/llite/{llite}/kbytestotal"),
            format!("{}\n", ost_kib * u64::from(mount.osts)),
        );
        put(
            tree,
            format!("{kdir}/llite/{llite}/kbytesfree"),
            format!(
                "{}\n",
                (ost_kib - used_kib.min(ost_kib)) * u64::from(mount.osts)
            ),
        );
        put(
            tree,
            format!("{kdir}/llite/{llite}/kbytesavail"),
            format!(
                "{}\n",
                (ost_kib - used_kib.min(ost_kib)) * u64::from(mount.osts)
            ),
        );
        for (index, counters) in mount.osc.iter().enumerate() {
            let target = format!("OST{index:04x}");
            let name = format!("{fs}-{target}-osc-{inst}");
            put(
                tree,
                format!("{}/osc/{name}/stats", dir_for(v, "stats")),
                osc_stats(state, mount, counters),
            );
            import_files(tree, state, mount, "osc", &target);
            put(
                tree,
                format!("{kdir}/osc/{name}/kbytestotal"),
                format!("{ost_kib}\n"),
            );
            put(
                tree,
                format!("{kdir}/osc/{name}/kbytesfree"),
                format!("{}\n", ost_kib - used_kib.min(ost_kib)),
            );
            put(
                tree,
                format!("{kdir}/osc/{name}/kbytesavail"),
                format!("{}\n", ost_kib - used_kib.min(ost_kib)),
            );
            put(tree, format!("{kdir}/osc/{name}/active"), "1\n");
        }
        for index in 0..mount.mdts {
            let target = format!("MDT{index:04x}");
            let name = format!("{fs}-{target}-mdc-{inst}");
            put(
                tree,
                format!("{}/mdc/{name}/stats", dir_for(v, "stats")),
                mdc_stats(state, mount, index as usize),
            );
            put(
                tree,
                format!("proc/fs/lustre/mdc/{name}/md_stats"),
                md_stats(state, mount),
            );
            import_files(tree, state, mount, "mdc", &target);
        }
        mgcs.insert((nid, mounted_s));
    }
    for (nid, mounted_s) in mgcs {
        let name = format!("MGC{nid}");
        let idir = dir_for(v, "import");
        put(
            tree,
            format!("{idir}/mgc/{name}/import"),
            import_file(state, &name, "MGS", "FULL", 1, 1, &nid),
        );
        put(
            tree,
            format!("{idir}/mgc/{name}/state"),
            state_file(mounted_s, "FULL", 0),
        );
    }
}

fn lnet_files(state: &NodeState, tree: &mut Tree) {
    if !state.loaded_modules.contains("lnet") {
        return;
    }
    // 11 fields: msgs_alloc msgs_max errors send_count recv_count route_count drop_count
    // send_length recv_length route_length drop_length; the first seven are u32.
    let u32_of = |value: u64| value % (1 << 32);
    let line = format!(
        "0 28 0 {} {} 0 0 {} {} 0 0\n",
        u32_of(state.lnet_send_count),
        u32_of(state.lnet_recv_count),
        state.lnet_send_length,
        state.lnet_recv_length
    );
    let path = if state.running_lustre() == LustreVersion::V2_10 {
        "proc/sys/lnet/stats"
    } else {
        "sys/kernel/debug/lnet/stats"
    };
    put(tree, path, line);
}

fn module_files(state: &NodeState, tree: &mut Tree) {
    for module in &state.loaded_modules {
        put(tree, format!("sys/module/{module}/initstate"), "live\n");
    }
    if state.loaded_modules.contains("lustre") {
        put(
            tree,
            "sys/module/lustre/version",
            format!("{}\n", state.running_lustre().release()),
        );
    }
    if state.loaded_modules.contains("lnet") {
        let networks = state
            .lnet_nets
            .iter()
            .map(|(net, iface)| format!("{net}({iface})"))
            .collect::<Vec<_>>()
            .join(",");
        put(
            tree,
            "sys/module/lnet/parameters/networks",
            format!(
                "{}\n",
                if networks.is_empty() {
                    "(null)".into()
                } else {
                    networks
                }
            ),
        );
    }
    if !state.real_packages {
        for kernel in state.clients.intersection(&state.all_kernels()) {
            let version = state.installed_version(kernel).unwrap_or(state.lustre);
            let dir = match crate::state::family(&state.distro) {
                Family::Deb => format!("lib/modules/{kernel}/updates/fs/lustre"),
                Family::Rpm | Family::Tdnf => {
                    format!("lib/modules/{kernel}/extra/lustre-client/fs")
                }
            };
            for module in [
                "libcfs", "lnet", "ksocklnd", "obdclass", "ptlrpc", "fld", "fid", "lov", "osc",
                "mdc", "lmv", "mgc", "lustre",
            ] {
                // Placeholders: a simulated module is a name, not a kernel object; its
                // `version=` line stands for the .modinfo section modinfo reads.
                put(
                    tree,
                    format!("{dir}/{module}.ko"),
                    format!(
                        "simulated {module} module for {kernel}; not a kernel object\nversion={}\n",
                        version.release()
                    ),
                );
            }
        }
    }
}

/// DKMS builds for every kernel with headers, into updates/dkms (dkms's default).
fn dkms_files(state: &NodeState, tree: &mut Tree) {
    if !state.dkms {
        return;
    }
    for kernel in state.headers.intersection(&state.all_kernels()) {
        for module in ["lnet", "ksocklnd", "lustre"] {
            put(
                tree,
                format!("lib/modules/{kernel}/updates/dkms/{module}.ko"),
                format!("simulated DKMS-built {module} for {kernel}; not a kernel object\n"),
            );
        }
    }
}

/// The lockdown LSM's file (security/lockdown/lockdown.c: the active mode bracketed).
fn lockdown_files(state: &NodeState, tree: &mut Tree) {
    put(
        tree,
        "sys/kernel/security/lockdown",
        if state.lockdown {
            "none [integrity] confidentiality\n"
        } else {
            "[none] integrity confidentiality\n"
        },
    );
}

fn efi_files(state: &NodeState, tree: &mut Tree) {
    if let Some(on) = state.secure_boot {
        // The EFI variable: 4 attribute bytes, then the value (1 = Secure Boot enforced).
        put_bytes(
            tree,
            "sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c",
            vec![6, 0, 0, 0, u8::from(on)],
        );
    }
}

fn kernel_files(state: &NodeState, tree: &mut Tree) {
    for kernel in state.all_kernels() {
        put(
            tree,
            format!("boot/vmlinuz-{kernel}"),
            format!("simulated kernel image {kernel}\n"),
        );
        put(tree, format!("boot/config-{kernel}"), "CONFIG_MODULES=y\n");
        put(tree, format!("lib/modules/{kernel}/modules.dep"), "");
        put(tree, format!("lib/modules/{kernel}/kernel/.sim-kernel"), "");
    }
    put(
        tree,
        "proc/sys/kernel/osrelease",
        format!("{}\n", state.running_kernel),
    );
    put(
        tree,
        "proc/sys/kernel/hostname",
        format!("{}\n", state.hostname),
    );
}

/// The base mount table: root, boot, pseudo filesystems and CycleCloud's NFS /sched.
const BASE_MOUNTINFO: &str = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,discard,errors=remount-ro
23 22 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
24 22 0:22 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
25 22 0:5 / /dev rw,nosuid,relatime shared:2 - devtmpfs udev rw,size=8156020k,nr_inodes=2039005,mode=755
26 22 0:24 / /run rw,nosuid,nodev,noexec,relatime shared:5 - tmpfs tmpfs rw,size=1638980k,mode=755
27 22 8:15 / /boot/efi rw,relatime shared:28 - vfat /dev/sda15 rw,fmask=0077,dmask=0077
28 22 0:45 / /sched rw,relatime shared:30 - nfs 10.0.0.4:/sched rw,vers=3,hard,proto=tcp,timeo=600,retrans=2,sec=sys,mountaddr=10.0.0.4,mountvers=3,mountproto=tcp,local_lock=none,addr=10.0.0.4
";

fn mountinfo(state: &NodeState) -> String {
    let mut text = BASE_MOUNTINFO.to_owned();
    for mount in state.visible_mounts() {
        let mut per_mount = vec![if mount.options.iter().any(|o| o == "ro") {
            "ro"
        } else {
            "rw"
        }];
        per_mount.push(if mount.options.iter().any(|o| o == "noatime") {
            "noatime"
        } else {
            "relatime"
        });
        // Super options as the AMLFS sample shows them (rw,flock,lazystatfs,encrypt).
        let mut super_options = vec![per_mount[0]];
        for lock in ["flock", "localflock"] {
            if mount.options.iter().any(|o| o == lock) {
                super_options.push(lock);
            }
        }
        super_options.extend(["lazystatfs", "encrypt"]);
        text.push_str(&format!(
            "{id} 22 0:{dev} / {mp} {per} shared:{id} - lustre {source} {sup}\n",
            id = mount.mount_id,
            dev = mount.mount_id + 40,
            mp = mount.mount_point,
            per = per_mount.join(","),
            source = mount.source,
            sup = super_options.join(",")
        ));
    }
    text
}

fn filesystems(state: &NodeState) -> String {
    let mut text = String::from(
        "nodev\tsysfs\nnodev\ttmpfs\nnodev\tproc\nnodev\tdevtmpfs\nnodev\tnfs\n\text4\n\tvfat\n",
    );
    if state.loaded_modules.contains("lustre") {
        text.push_str("nodev\tlustre\n");
    }
    text
}

/// The IB counter widths in bits (Linux drivers/infiniband/core/sysfs.c).
pub fn ib_counter_width(counter: &str) -> u32 {
    match counter {
        "symbol_error"
        | "port_rcv_errors"
        | "port_rcv_remote_physical_errors"
        | "port_rcv_switch_relay_errors"
        | "port_xmit_discards"
        | "VL15_dropped" => 16,
        "link_error_recovery"
        | "link_downed"
        | "port_xmit_constraint_errors"
        | "port_rcv_constraint_errors" => 8,
        "local_link_integrity_errors" | "excessive_buffer_overrun_errors" => 4,
        _ => 32,
    }
}

/// The lanes of a port at full width: the sample's 25 Gb/s port is 1X, the others 4X.
pub fn ib_full_width(rate_gbps: u32) -> u32 {
    if rate_gbps == 25 { 1 } else { 4 }
}

/// The sysfs `rate` text of an HCA's port 1 (drivers/infiniband/core/sysfs.c, rate_show:
/// `"%d%s Gb/sec (%dX%s)\n"`), at its trained width.
fn ib_rate_text(state: &NodeState, hca: &str) -> String {
    let full = ib_full_width(state.ib_rate_gbps);
    let width = state.faults.ib_width.get(hca).copied().unwrap_or(full);
    let speed = match state.ib_rate_gbps {
        200 => "HDR",
        400 => "NDR",
        _ => "EDR",
    };
    format!(
        "{} Gb/sec ({width}X {speed})\n",
        state.ib_rate_gbps / full * width
    )
}

fn ib_files(state: &NodeState, tree: &mut Tree) {
    if state.ib_hcas == 0 {
        return;
    }
    let template = ttar::mlx5_template();
    for hca_index in 0..state.ib_hcas {
        let hca = format!("mlx5_{hca_index}");
        for (relative, content) in &template {
            let path = format!("sys/class/infiniband/{hca}/{relative}");
            let mut content = content.clone();
            if relative == "node_guid" {
                content = format!("0015:5dff:fd33:ff{:02x}", 0x7f - hca_index);
            }
            if let Some(counter) = relative.strip_prefix("ports/1/counters/") {
                let key = format!("{hca}/{counter}");
                let base: u64 = content.trim().parse().unwrap_or(0);
                let width = ib_counter_width(counter);
                let max = if width >= 64 {
                    u64::MAX
                } else {
                    (1u64 << width) - 1
                };
                let value = if state.faults.ib_saturated.contains(&key) {
                    max
                } else {
                    (base + state.faults.ib_errors.get(&key).copied().unwrap_or(0)).min(max)
                };
                content = format!("{value}\n");
            }
            if relative == "ports/1/rate" {
                content = ib_rate_text(state, &hca);
            }
            if relative == "ports/1/phys_state" {
                // The mlx5 sample's phys_state reads "4: ACTIVE", a quirk of that test data;
                // a live port, like the sample's hfi1 and mlx4 ones, reads "5: LinkUp".
                content = "5: LinkUp\n".into();
            }
            if state.faults.ib_down.contains(&hca) {
                if relative == "ports/1/state" {
                    content = "1: DOWN\n".into();
                } else if relative == "ports/1/phys_state" {
                    content = "3: Disabled\n".into();
                }
            }
            put(tree, path, content);
        }
        let ib = format!("ib{hca_index}");
        put(
            tree,
            format!("sys/class/net/{ib}/operstate"),
            if state.faults.ib_down.contains(&hca) {
                "down\n"
            } else {
                "up\n"
            },
        );
        put(tree, format!("sys/class/net/{ib}/type"), "32\n");
        put(
            tree,
            format!("sys/class/net/{ib}/device/uevent"),
            "DRIVER=mlx5_core\n",
        );
    }
}

pub const VF: &str = "enP30832s1";

fn net_files(state: &NodeState, tree: &mut Tree) {
    let eth = "sys/class/net/eth0";
    put(tree, format!("{eth}/operstate"), "up\n");
    put(tree, format!("{eth}/address"), "00:0d:3a:9b:1c:2e\n");
    put(tree, format!("{eth}/mtu"), "1500\n");
    put(tree, format!("{eth}/type"), "1\n");
    put(tree, format!("{eth}/device/uevent"), "DRIVER=hv_netvsc\n");
    let (rx, tx) = (state.eth0_rx_bytes, state.eth0_tx_bytes);
    for (name, value) in [
        ("rx_bytes", rx),
        ("tx_bytes", tx),
        ("rx_packets", rx / 1500),
        ("tx_packets", tx / 1500),
    ] {
        put(
            tree,
            format!("{eth}/statistics/{name}"),
            format!("{value}\n"),
        );
    }
    put(tree, "sys/class/net/lo/operstate", "unknown\n");
    put(tree, "sys/class/net/lo/type", "772\n");
    let vf_present = state.vf_present();
    // With accelerated networking the traffic flows through the VF, unless it is idle.
    let (vf_rx, vf_tx) = state.faults.vf_idle.unwrap_or((rx, tx));
    if vf_present {
        let vf = format!("sys/class/net/{VF}");
        put(
            tree,
            format!("{vf}/operstate"),
            if state.faults.vf_down {
                "down\n"
            } else {
                "up\n"
            },
        );
        put(tree, format!("{vf}/address"), "00:0d:3a:9b:1c:2e\n");
        put(tree, format!("{vf}/type"), "1\n");
        put(
            tree,
            format!("{vf}/device/uevent"),
            format!("DRIVER={}\n", state.vf_driver),
        );
        for (name, value) in [
            ("rx_bytes", vf_rx),
            ("tx_bytes", vf_tx),
            ("rx_packets", vf_rx / 1500),
            ("tx_packets", vf_tx / 1500),
        ] {
            put(
                tree,
                format!("{vf}/statistics/{name}"),
                format!("{value}\n"),
            );
        }
        link(tree, format!("{vf}/master"), "../eth0");
        link(tree, format!("{vf}/upper_eth0"), "../eth0");
        link(tree, format!("{eth}/lower_{VF}"), format!("../{VF}"));
    }
    // /proc/net/dev in the kernel's format (see tests/fixtures/proc_net_dev.ttar).
    let mut dev = String::from(
        "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n",
    );
    let row = |name: &str, rx: u64, tx: u64| {
        format!(
            "{name:>6}: {rx:>8} {:>7}    0    0    0     0          0         0 {tx:>8} {:>7}    0    0    0     0       0          0\n",
            rx / 1500,
            tx / 1500
        )
    };
    dev.push_str(&row("lo", 1_664_039_048, 1_664_039_048));
    dev.push_str(&row("eth0", rx, tx));
    if vf_present {
        dev.push_str(&row(VF, vf_rx, vf_tx));
    }
    for index in 0..state.ib_hcas {
        dev.push_str(&row(&format!("ib{index}"), 0, 0));
    }
    put(tree, "proc/net/dev", dev);
}

fn os_files(state: &NodeState, tree: &mut Tree) {
    put(tree, "etc/os-release", os_release(&state.distro));
    put(tree, "etc/hostname", format!("{}\n", state.hostname));
}

/// os-release text per distribution, as each ships it (abridged to the fields tools read).
pub fn os_release(distro: &str) -> String {
    match distro {
        "ubuntu-20.04" => "PRETTY_NAME=\"Ubuntu 20.04.6 LTS\"\nNAME=\"Ubuntu\"\nVERSION_ID=\"20.04\"\nVERSION=\"20.04.6 LTS (Focal Fossa)\"\nVERSION_CODENAME=focal\nID=ubuntu\nID_LIKE=debian\nUBUNTU_CODENAME=focal\n",
        "ubuntu-22.04" => "PRETTY_NAME=\"Ubuntu 22.04.5 LTS\"\nNAME=\"Ubuntu\"\nVERSION_ID=\"22.04\"\nVERSION=\"22.04.5 LTS (Jammy Jellyfish)\"\nVERSION_CODENAME=jammy\nID=ubuntu\nID_LIKE=debian\nUBUNTU_CODENAME=jammy\n",
        "ubuntu-24.04" => "PRETTY_NAME=\"Ubuntu 24.04.1 LTS\"\nNAME=\"Ubuntu\"\nVERSION_ID=\"24.04\"\nVERSION=\"24.04.1 LTS (Noble Numbat)\"\nVERSION_CODENAME=noble\nID=ubuntu\nID_LIKE=debian\nUBUNTU_CODENAME=noble\n",
        "alma-8" => "NAME=\"AlmaLinux\"\nVERSION=\"8.10 (Cerulean Leopard)\"\nID=\"almalinux\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"8.10\"\nPLATFORM_ID=\"platform:el8\"\nPRETTY_NAME=\"AlmaLinux 8.10 (Cerulean Leopard)\"\n",
        "alma-9" => "NAME=\"AlmaLinux\"\nVERSION=\"9.4 (Seafoam Ocelot)\"\nID=\"almalinux\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.4\"\nPLATFORM_ID=\"platform:el9\"\nPRETTY_NAME=\"AlmaLinux 9.4 (Seafoam Ocelot)\"\n",
        "rocky-9" => "NAME=\"Rocky Linux\"\nVERSION=\"9.4 (Blue Onyx)\"\nID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.4\"\nPLATFORM_ID=\"platform:el9\"\nPRETTY_NAME=\"Rocky Linux 9.4 (Blue Onyx)\"\n",
        _ => "NAME=\"Microsoft Azure Linux\"\nVERSION=\"3.0.20240824\"\nID=azurelinux\nVERSION_ID=\"3.0\"\nPRETTY_NAME=\"Microsoft Azure Linux 3.0\"\n",
    }
    .to_owned()
}

/// Every file the simulator owns, for this state.
pub fn tree(state: &NodeState) -> Tree {
    let mut tree = Tree::new();
    os_files(state, &mut tree);
    kernel_files(state, &mut tree);
    module_files(state, &mut tree);
    dkms_files(state, &mut tree);
    efi_files(state, &mut tree);
    lockdown_files(state, &mut tree);
    lustre_files(state, &mut tree);
    lnet_files(state, &mut tree);
    ib_files(state, &mut tree);
    net_files(state, &mut tree);
    put(&mut tree, "proc/self/mountinfo", mountinfo(state));
    put(&mut tree, "proc/filesystems", filesystems(state));
    let kmsg: String = state
        .faults
        .kmsg
        .iter()
        .map(|line| format!("{line}\n"))
        .collect();
    put(&mut tree, "dev/kmsg", kmsg);
    tree
}

/// Brings the files under `root` to [`tree`] of `state`.
pub fn render(root: &Path, state: &NodeState) -> Result<(), SimError> {
    let wanted = tree(state);
    let manifest_path = root.join(".sim/manifest.json");
    let previous: BTreeSet<String> = fs::read_to_string(&manifest_path)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default();
    for (relative, entry) in &wanted {
        let path = root.join(relative);
        match entry {
            Entry::File(bytes) => {
                if fs::read(&path).ok().as_deref() != Some(bytes.as_slice()) {
                    write_atomic(&path, bytes)?;
                }
            }
            Entry::Symlink(target) => {
                if fs::read_link(&path).ok().as_deref() != Some(Path::new(target)) {
                    let dir = path.parent().expect("has a parent");
                    fs::create_dir_all(dir).map_err(|source| SimError::Io {
                        what: "creating".into(),
                        path: dir.to_path_buf(),
                        source,
                    })?;
                    let temp = dir.join(format!(
                        ".sim-link-{}",
                        TEMP.fetch_add(1, Ordering::Relaxed)
                    ));
                    symlink(target, &temp).map_err(|source| SimError::Io {
                        what: "linking".into(),
                        path: temp.clone(),
                        source,
                    })?;
                    fs::rename(&temp, &path).map_err(|source| SimError::Io {
                        what: "renaming".into(),
                        path: path.clone(),
                        source,
                    })?;
                }
            }
        }
    }
    // Remove what was rendered before and is not wanted now, then empty directories left.
    let mut dirs: BTreeSet<PathBuf> = BTreeSet::new();
    for relative in previous.iter().filter(|p| !wanted.contains_key(*p)) {
        let path = root.join(relative);
        let _ = fs::remove_file(&path);
        let mut parent = Path::new(relative).parent();
        while let Some(dir) = parent.filter(|d| !d.as_os_str().is_empty()) {
            dirs.insert(dir.to_path_buf());
            parent = dir.parent();
        }
    }
    for dir in dirs.iter().rev() {
        // Only empty directories go; remove_dir refuses others.
        let _ = fs::remove_dir(root.join(dir));
    }
    let manifest: BTreeSet<&String> = wanted.keys().collect();
    write_atomic(
        &manifest_path,
        serde_json::to_string(&manifest)
            .expect("serializes")
            .as_bytes(),
    )
}
