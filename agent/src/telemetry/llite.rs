//! Per mount, from `llite.<fsname>-<instance>.stats`: application read and write bytes/s and
//! ops/s (the `read_bytes`/`write_bytes` sums and counts: VFS level, cache hits included) and
//! metadata ops/s (each VFS op, and their total).
//!
//! The last reading of a mount point is kept after it disappears (their number is bounded by
//! the mounts), so a remount is seen as what it is: a reset with a new instance.

use std::collections::BTreeMap;

use lfleet_parse::stats::{Stats, parse_stats};

use super::params::ParamFiles;
use super::rates::{RateTracker, Reading};
use super::{CycleInput, Sample};

pub const NAME: &str = "llite";

/// The VFS operations counted as metadata (llite's `lprocfs_llite_ops`).
pub const METADATA_OPS: [&str; 19] = [
    "open",
    "close",
    "getattr",
    "setattr",
    "truncate",
    "flock",
    "getxattr",
    "setxattr",
    "listxattr",
    "removexattr",
    "inode_permission",
    "create",
    "link",
    "unlink",
    "symlink",
    "mkdir",
    "rmdir",
    "mknod",
    "rename",
];

#[derive(Debug, Default)]
pub struct Llite {
    tracker: RateTracker,
}

/// The kernel's snapshot time in seconds, the identity of the counters' life, and the time
/// base used (monotonic when the file has no snapshot_time, which no Lustre prints).
pub fn timing(stats: &Stats, instance: &str, fallback_s: f64) -> (f64, String) {
    let at = stats
        .snapshot_time
        .map(|t| t.secs as f64 + f64::from(t.nanos) / 1e9)
        .unwrap_or(fallback_s);
    let start = stats
        .start_time
        .map(|t| format!("{}.{:09}", t.secs, t.nanos))
        .unwrap_or_else(|| "-".into());
    (at, format!("instance {instance} start_time {start}"))
}

impl Llite {
    pub fn collect(&mut self, input: &CycleInput<'_>, files: &mut ParamFiles) -> Vec<Sample> {
        let mut samples = Vec::new();
        for (known, read) in files.read_mounts(input.host, parse_stats) {
            let mount = &known.mount;
            let Some(read) = read else {
                samples.push(Sample::unavailable(
                    NAME,
                    &mount.mount_point,
                    input.unix_ms,
                    format!("no llite.{}.stats in lctl's search path", known.llite),
                ));
                continue;
            };
            let stats = match read {
                Ok(stats) => stats,
                Err(why) => {
                    samples.push(Sample::unavailable(
                        NAME,
                        &mount.mount_point,
                        input.unix_ms,
                        why,
                    ));
                    continue;
                }
            };
            let (at, identity) = timing(&stats, &mount.instance, input.monotonic_s);
            // The kernel leaves counters at zero out of the file: the data counters are
            // there from the start, at zero until the first read or write.
            let mut counters: BTreeMap<String, u64> =
                ["read_bytes", "read_ops", "write_bytes", "write_ops"]
                    .into_iter()
                    .map(|name| (name.to_owned(), 0))
                    .collect();
            let mut metadata = 0u64;
            for (name, counter) in &stats.counters {
                match name.as_str() {
                    "read_bytes" => {
                        counters.insert("read_bytes".to_owned(), counter.sum.unwrap_or(0));
                        counters.insert("read_ops".to_owned(), counter.count);
                    }
                    "write_bytes" => {
                        counters.insert("write_bytes".to_owned(), counter.sum.unwrap_or(0));
                        counters.insert("write_ops".to_owned(), counter.count);
                    }
                    op if METADATA_OPS.contains(&op) => {
                        metadata = metadata.saturating_add(counter.count);
                        counters.insert(format!("{op}_ops"), counter.count);
                    }
                    _ => {}
                }
            }
            counters.insert("metadata_ops".to_owned(), metadata);
            let mut sample = Sample::new(NAME, &mount.mount_point, input.unix_ms);
            sample
                .labels
                .insert("instance".into(), mount.instance.clone());
            sample.keep_raw(&counters);
            sample.apply(self.tracker.update(
                &mount.mount_point,
                Reading {
                    at,
                    identity,
                    counters,
                },
            ));
            samples.push(sample);
        }
        samples
    }
}
