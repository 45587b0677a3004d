//! Per mount and OST, from `osc.<fsname>-OSTxxxx-osc-<instance>.stats`: wire bytes/s read and
//! written (bulk RPC bytes), RPCs/s and their mean wait (`req_waittime`, in microseconds).

use std::collections::BTreeMap;

use lfleet_parse::stats::parse_stats;

use super::llite::timing;
use super::params::{client_devices, read_parsed};
use super::rates::{RateTracker, Rated, Reading};
use super::{CycleInput, Sample};

pub const NAME: &str = "osc";

#[derive(Debug, Default)]
pub struct Osc {
    tracker: RateTracker,
}

impl Osc {
    pub fn collect(&mut self, input: &CycleInput<'_>) -> Vec<Sample> {
        let mut samples = Vec::new();
        for device in client_devices(input.host, input.mounts, "osc", "stats") {
            let subject = device.subject;
            let stats = match read_parsed(input.host, &device.path, parse_stats) {
                Ok(stats) => stats,
                Err(why) => {
                    samples.push(Sample::unavailable(NAME, subject, input.unix_ms, why));
                    continue;
                }
            };
            let (at, identity) = timing(&stats, &device.mount.instance, input.monotonic_s);
            let counters = BTreeMap::from([
                ("read_bytes".to_owned(), stats.sum("read_bytes")),
                ("write_bytes".to_owned(), stats.sum("write_bytes")),
                ("rpcs".to_owned(), stats.count("req_waittime")),
                ("rpc_wait_us".to_owned(), stats.sum("req_waittime")),
            ]);
            let rated = self.tracker.update(
                &subject,
                Reading {
                    at,
                    identity,
                    counters,
                },
            );
            let mut sample = Sample::new(NAME, &subject, input.unix_ms);
            if let Rated::Rates { rates, .. } = &rated {
                let rpcs = rates.get("rpcs").copied().unwrap_or(0.0);
                if rpcs > 0.0 {
                    sample.values.insert(
                        "rpc_wait_mean_us".into(),
                        rates.get("rpc_wait_us").copied().unwrap_or(0.0) / rpcs,
                    );
                }
            }
            sample.apply(rated);
            sample.values.remove("rpc_wait_us_per_s");
            samples.push(sample);
        }
        samples
    }
}
