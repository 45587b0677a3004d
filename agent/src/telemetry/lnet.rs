//! LNet totals from the `stats` file (found in lctl's order: /proc/sys/lnet on 2.10, debugfs
//! after): messages, errors and drops per second and bytes per second. The kernel keeps the
//! message counts in u32: a decrease from above 2^31 is a wrap and is unwrapped; any other
//! decrease is a reset (LNet restarted) and gives no rate.

use std::collections::BTreeMap;

use lfleet_parse::lnet::{LnetStats, parse_lnet_stats, u32_delta};

use super::params::{find_lnet, read_parsed};
use super::rates::{RateTracker, Reading};
use super::{CycleInput, Sample};

pub const NAME: &str = "lnet";

#[derive(Debug, Default)]
pub struct Lnet {
    tracker: RateTracker,
    /// The last raw reading and the u32 counters unwrapped into u64 totals.
    last: Option<LnetStats>,
    totals: BTreeMap<&'static str, u64>,
    /// Bumped at every reset, so the tracker sees a new identity.
    epoch: u64,
}

fn small(stats: &LnetStats) -> [(&'static str, u32); 4] {
    [
        ("errors", stats.errors),
        ("send_count", stats.send_count),
        ("recv_count", stats.recv_count),
        ("drop_count", stats.drop_count),
    ]
}

impl Lnet {
    pub fn collect(&mut self, input: &CycleInput<'_>) -> Vec<Sample> {
        let Some(path) = find_lnet(input.host, "stats") else {
            return vec![Sample::unavailable(
                NAME,
                "lnet",
                input.unix_ms,
                "no LNet stats file in lctl's search path (LNet not loaded?)",
            )];
        };
        let stats = match read_parsed(input.host, &path, parse_lnet_stats) {
            Ok(stats) => stats,
            Err(why) => return vec![Sample::unavailable(NAME, "lnet", input.unix_ms, why)],
        };
        let mut sample = Sample::new(NAME, "lnet", input.unix_ms);
        match self.last {
            None => {
                for (name, value) in small(&stats) {
                    self.totals.insert(name, u64::from(value));
                }
            }
            Some(last) => {
                let mut reset = false;
                for ((name, old), (_, new)) in small(&last).into_iter().zip(small(&stats)) {
                    match u32_delta(old, new) {
                        Some(delta) => {
                            if new < old {
                                sample.flags.push(format!("{name} wrapped at 2^32"));
                            }
                            *self.totals.entry(name).or_default() += delta;
                        }
                        None => reset = true,
                    }
                }
                if reset {
                    self.epoch += 1;
                    for (name, value) in small(&stats) {
                        self.totals.insert(name, u64::from(value));
                    }
                }
            }
        }
        self.last = Some(stats);
        let mut counters: BTreeMap<String, u64> = self
            .totals
            .iter()
            .map(|(name, value)| ((*name).to_owned(), *value))
            .collect();
        counters.insert("send_bytes".into(), stats.send_length);
        counters.insert("recv_bytes".into(), stats.recv_length);
        counters.insert("drop_bytes".into(), stats.drop_length);
        sample.apply(self.tracker.update(
            "lnet",
            Reading {
                at: input.monotonic_s,
                identity: format!("epoch {}", self.epoch),
                counters,
            },
        ));
        sample
            .values
            .insert("msgs_alloc".into(), f64::from(stats.msgs_alloc));
        vec![sample]
    }
}
