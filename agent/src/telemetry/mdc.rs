//! Per mount and MDT, from `mdc.<fsname>-MDTxxxx-mdc-<instance>.md_stats` (`[reqs]` counts,
//! in /proc on every version): metadata requests/s, each and in total.

use std::collections::BTreeMap;

use lfleet_parse::stats::parse_stats;

use super::llite::timing;
use super::params::{client_devices, read_parsed};
use super::rates::{RateTracker, Reading};
use super::{CycleInput, Sample};

pub const NAME: &str = "mdc";

#[derive(Debug, Default)]
pub struct Mdc {
    tracker: RateTracker,
}

impl Mdc {
    pub fn collect(&mut self, input: &CycleInput<'_>) -> Vec<Sample> {
        let mut samples = Vec::new();
        for device in client_devices(input.host, input.mounts, "mdc", "md_stats") {
            let subject = device.subject;
            let stats = match read_parsed(input.host, &device.path, parse_stats) {
                Ok(stats) => stats,
                Err(why) => {
                    samples.push(Sample::unavailable(NAME, subject, input.unix_ms, why));
                    continue;
                }
            };
            let (at, identity) = timing(&stats, &device.mount.instance, input.monotonic_s);
            let mut counters: BTreeMap<String, u64> = stats
                .counters
                .iter()
                .map(|(name, c)| (format!("{name}_reqs"), c.count))
                .collect();
            let total = stats
                .counters
                .values()
                .map(|c| c.count)
                .fold(0u64, u64::saturating_add);
            counters.insert("md_reqs".into(), total);
            let mut sample = Sample::new(NAME, &subject, input.unix_ms);
            sample.apply(self.tracker.update(
                &subject,
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
