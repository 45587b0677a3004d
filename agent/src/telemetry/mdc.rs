//! Per mount and MDT, from `mdc.<fsname>-MDTxxxx-mdc-<instance>.md_stats` (`[reqs]` counts,
//! in /proc on every version): metadata requests/s, each and in total; and from the same
//! device's `stats` (debugfs from 2.12): RPCs/s, their mean wait and `req_waittime`'s count
//! and sum as deltas, as the osc collector gives them per OST.

use std::collections::BTreeMap;

use lfleet_parse::stats::{Stats, parse_stats};

use super::llite::timing;
use super::osc::rpc_wait;
use super::params::ParamFiles;
use super::rates::{RateTracker, Rated, Reading};
use super::{CycleInput, Sample};

pub const NAME: &str = "mdc";

#[derive(Debug, Default)]
pub struct Mdc {
    tracker: RateTracker,
    /// `req_waittime` of each device's `stats`, whose snapshot times are its own.
    waits: RateTracker,
}

impl Mdc {
    pub fn collect(&mut self, input: &CycleInput<'_>, files: &mut ParamFiles) -> Vec<Sample> {
        let mut samples = Vec::new();
        let mut waits: BTreeMap<String, Result<Stats, String>> = files
            .read_clients(input.host, "mdc", "stats", parse_stats)
            .into_iter()
            .map(|(device, read)| (device.subject.clone(), read))
            .collect();
        for (device, read) in files.read_clients(input.host, "mdc", "md_stats", parse_stats) {
            let subject = &device.subject;
            let stats = match read {
                Ok(stats) => stats,
                Err(why) => {
                    samples.push(Sample::unavailable(NAME, subject, input.unix_ms, why));
                    continue;
                }
            };
            let (at, identity) = timing(&stats, &device.instance, input.monotonic_s);
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
            let mut sample = Sample::new(NAME, subject, input.unix_ms);
            sample.keep_raw(&counters);
            self.rpc_waits(input, &device.instance, waits.remove(subject), &mut sample);
            sample.apply(self.tracker.update(
                subject,
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

    /// The device's RPC waits from its `stats` file, or a flag saying why there are none.
    fn rpc_waits(
        &mut self,
        input: &CycleInput<'_>,
        instance: &str,
        read: Option<Result<Stats, String>>,
        sample: &mut Sample,
    ) {
        let stats = match read {
            None => {
                sample
                    .flags
                    .push("no stats file in lctl's search path: no RPC waits".into());
                return;
            }
            Some(Err(why)) => {
                sample.flags.push(format!("RPC waits unavailable: {why}"));
                return;
            }
            Some(Ok(stats)) => stats,
        };
        let (at, identity) = timing(&stats, instance, input.monotonic_s);
        let counters = BTreeMap::from([
            ("rpcs".to_owned(), stats.count("req_waittime")),
            ("rpc_wait_us".to_owned(), stats.sum("req_waittime")),
        ]);
        sample.keep_raw(&counters);
        let rated = self.waits.update(
            &sample.subject,
            Reading {
                at,
                identity,
                counters,
            },
        );
        match &rated {
            Rated::Reset { why } => sample.flags.push(format!("RPC waits reset: {why}")),
            Rated::Rates { rates, .. } => {
                if let Some(rate) = rates.get("rpcs") {
                    sample.values.insert("rpcs_per_s".into(), *rate);
                }
            }
            Rated::First | Rated::Unchanged => {}
        }
        rpc_wait(sample, &rated);
    }
}
