//! Per mount and OST, from `osc.<fsname>-OSTxxxx-osc-<instance>.stats`: wire bytes/s read and
//! written (bulk RPC bytes), RPCs/s and their mean wait (`req_waittime`, in microseconds),
//! and `req_waittime`'s count and sum as deltas (`rpcs`, `rpc_wait_us`), which the
//! coordinator sums over its windows to compare each node's wait with its peers'.

use std::collections::BTreeMap;

use lfleet_parse::stats::parse_stats;

use super::llite::timing;
use super::params::ParamFiles;
use super::rates::{RateTracker, Rated, Reading};
use super::{CounterDelta, CycleInput, Sample};

pub const NAME: &str = "osc";

#[derive(Debug, Default)]
pub struct Osc {
    tracker: RateTracker,
}

impl Osc {
    pub fn collect(&mut self, input: &CycleInput<'_>, files: &mut ParamFiles) -> Vec<Sample> {
        let mut samples = Vec::new();
        for (device, read) in files.read_clients(input.host, "osc", "stats", parse_stats) {
            let subject = &device.subject;
            let stats = match read {
                Ok(stats) => stats,
                Err(why) => {
                    samples.push(Sample::unavailable(NAME, subject, input.unix_ms, why));
                    continue;
                }
            };
            let (at, identity) = timing(&stats, &device.instance, input.monotonic_s);
            let counters = BTreeMap::from([
                ("read_bytes".to_owned(), stats.sum("read_bytes")),
                ("write_bytes".to_owned(), stats.sum("write_bytes")),
                ("rpcs".to_owned(), stats.count("req_waittime")),
                ("rpc_wait_us".to_owned(), stats.sum("req_waittime")),
            ]);
            let mut sample = Sample::new(NAME, subject, input.unix_ms);
            sample.keep_raw(&counters);
            let rated = self.tracker.update(
                subject,
                Reading {
                    at,
                    identity,
                    counters,
                },
            );
            rpc_wait(&mut sample, &rated);
            sample.apply(rated);
            sample.values.remove("rpc_wait_us_per_s");
            samples.push(sample);
        }
        samples
    }
}

/// From a rated reading with `rpcs` (req_waittime's count) and `rpc_wait_us` (its sum): the
/// mean wait, and both counters' deltas with the interval they cover.
pub fn rpc_wait(sample: &mut Sample, rated: &Rated) {
    let Rated::Rates {
        interval_s, deltas, ..
    } = rated
    else {
        return;
    };
    let rpcs = deltas.get("rpcs").copied().unwrap_or(0);
    let wait = deltas.get("rpc_wait_us").copied().unwrap_or(0);
    if rpcs > 0 {
        sample
            .values
            .insert("rpc_wait_mean_us".into(), wait as f64 / rpcs as f64);
    }
    let interval_ms = (interval_s * 1000.0).round() as u64;
    for (name, delta) in [("rpcs", rpcs), ("rpc_wait_us", wait)] {
        sample
            .deltas
            .insert(name.into(), CounterDelta { delta, interval_ms });
    }
}
