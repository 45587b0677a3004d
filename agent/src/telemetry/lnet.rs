//! LNet totals from the `stats` file (found in lctl's order: /proc/sys/lnet on 2.10, debugfs
//! after): messages, errors and drops per second and bytes per second. The kernel keeps the
//! message counts in u32: a decrease from above 2^31 is a wrap and is unwrapped; any other
//! decrease is a reset (LNet restarted) and gives no rate.
//!
//! The file's place is searched once and kept; it is searched again when the device index
//! was rebuilt (mounts or devices changed), when it was not found, and at once when the kept
//! path has gone.

use std::collections::BTreeMap;

use lfleet_parse::lnet::{LnetStats, parse_lnet_stats, u32_delta};

use lfleet_host::ResolvedPath;

use super::params::{ParamFiles, find_lnet};
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
    /// Where the stats file was found, and the device index's build it was searched at.
    path: Option<ResolvedPath>,
    searched_at: u64,
}

const NOT_FOUND: &str = "no LNet stats file in lctl's search path (LNet not loaded?)";

fn small(stats: &LnetStats) -> [(&'static str, u32); 4] {
    [
        ("errors", stats.errors),
        ("send_count", stats.send_count),
        ("recv_count", stats.recv_count),
        ("drop_count", stats.drop_count),
    ]
}

impl Lnet {
    /// Reads the stats file where it was last found, searching lctl's roots when needed.
    fn read(
        &mut self,
        input: &CycleInput<'_>,
        files: &mut ParamFiles,
    ) -> Result<LnetStats, String> {
        let builds = files.devices.builds();
        for attempt in 0..2 {
            if attempt > 0 || self.path.is_none() || self.searched_at != builds {
                self.path = find_lnet(input.host, "stats")
                    .and_then(|path| input.host.resolve_path(path).ok());
                self.searched_at = builds;
            }
            let Some(path) = &self.path else {
                return Err(NOT_FOUND.into());
            };
            match input.host.read_text(path, &mut files.buffer) {
                Ok(text) => {
                    return parse_lnet_stats(&text)
                        .map_err(|e| format!("{}: {e}", path.node_path()));
                }
                // Gone since it was found: search again now, as if it had never been kept.
                Err(error) if error.is_not_found() && attempt == 0 => {}
                Err(error) => return Err(lfleet_types::error_chain(&error)),
            }
        }
        Err(NOT_FOUND.into())
    }

    pub fn collect(&mut self, input: &CycleInput<'_>, files: &mut ParamFiles) -> Vec<Sample> {
        let stats = match self.read(input, files) {
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
        sample.keep_raw(&counters);
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
