//! Section g: the coordinator's per-node throughput history (what the dashboard draws): N
//! nodes' `history::MountHistory`, each with one mount, fed one read and one write rate per
//! collection interval (10 s) for an hour of their clock, so every slot is filled. Measured:
//! this process's resident memory before and after, per node, beside the series' own
//! `history::BYTES_PER_MOUNT` (the difference is the allocator's and the map's overhead),
//! and the time one hour of samples takes to record.

use std::time::Instant;

use lfleet_coordinator::history::{BYTES_PER_MOUNT, Direction, MountHistory, STEP_MS, WINDOW_MS};

use crate::Options;
use crate::proc_stat::usage;

/// Resident memory of this process, KiB.
fn rss_kib() -> u64 {
    usage(std::process::id()).map_or(0, |(_, rss, _, _)| rss)
}

fn one(nodes: usize) -> serde_json::Value {
    let before = rss_kib();
    let started = Instant::now();
    let mut fleet: Vec<MountHistory> = vec![MountHistory::default(); nodes];
    let start_ms = 1_800_000_000_000i64;
    let mut at = start_ms;
    while at < start_ms + WINDOW_MS {
        for (index, history) in fleet.iter_mut().enumerate() {
            let rate = (index % 97) as f64 * 1.0e6;
            history.record("/lustre", at, Direction::Read, rate);
            history.record("/lustre", at, Direction::Write, rate * 2.0);
        }
        at += STEP_MS;
    }
    let took = started.elapsed();
    let after = rss_kib();
    let per_node = (after.saturating_sub(before) * 1024) as f64 / nodes as f64;
    let filled = fleet.iter().all(|h| h.series.len() == 1);
    std::hint::black_box(&fleet);
    println!(
        "{:>7} {:>16.0} {:>16} {:>14.0} {:>12.2}",
        nodes,
        per_node,
        BYTES_PER_MOUNT,
        (after.saturating_sub(before)) as f64 / 1024.0,
        took.as_secs_f64() * 1000.0 / nodes as f64,
    );
    serde_json::json!({
        "nodes": nodes,
        "rss_before_kib": before,
        "rss_after_kib": after,
        "bytes_per_node": per_node,
        "series_bytes_per_mount": BYTES_PER_MOUNT,
        "record_one_hour_ms_per_node": took.as_secs_f64() * 1000.0 / nodes as f64,
        "every_node_has_its_series": filled,
    })
}

pub fn run(options: &Options) -> serde_json::Value {
    println!(
        "\n== g. Coordinator throughput history: one mount per node, one hour at the 10 s interval"
    );
    println!(
        "{:>7} {:>16} {:>16} {:>14} {:>12}",
        "nodes", "RSS B per node", "series B/mount", "RSS added MiB", "ms per node"
    );
    // One size per process: memory freed by an earlier size would be reused and hide the
    // later one's.
    one(if options.quick { 1_000 } else { 10_000 })
}
