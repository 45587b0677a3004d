//! Turning two readings of counters into rates, or into a flag when that would lie.
//!
//! A reading has a time (the kernel's `snapshot_time`, or the agent's monotonic clock), an
//! identity (what must not change between readings for a difference to mean anything: the
//! device instance and `start_time`), and u64 counters. A missing counter is 0 (the kernel
//! leaves zero lines out of stats files). Rules: identity changed or any counter decreased:
//! reset, no rate; time did not move: unchanged, the previous reading is kept so the next
//! rate covers both intervals; otherwise rate = difference / interval, with the difference itself
//! kept (the coordinator sums differences over its own windows).

use std::collections::{BTreeMap, BTreeSet};

/// One reading of one subject.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub at: f64,
    pub identity: String,
    pub counters: BTreeMap<String, u64>,
}

/// What two readings give.
#[derive(Debug, Clone, PartialEq)]
pub enum Rated {
    Rates {
        interval_s: f64,
        rates: BTreeMap<String, f64>,
        /// Each counter's increase over the interval (what the rates divide).
        deltas: BTreeMap<String, u64>,
    },
    /// The first reading of this subject.
    First,
    /// The kernel's snapshot did not move since the last reading.
    Unchanged,
    /// The counters restarted.
    Reset { why: String },
}

/// The last reading of every subject.
#[derive(Debug, Default)]
pub struct RateTracker {
    previous: BTreeMap<String, Reading>,
}

impl RateTracker {
    pub fn update(&mut self, key: &str, reading: Reading) -> Rated {
        let Some(previous) = self.previous.get(key) else {
            self.previous.insert(key.to_owned(), reading);
            return Rated::First;
        };
        if previous.identity != reading.identity {
            let why = format!(
                "identity changed ({} -> {})",
                previous.identity, reading.identity
            );
            self.previous.insert(key.to_owned(), reading);
            return Rated::Reset { why };
        }
        let decreased = previous
            .counters
            .iter()
            .find(|(name, old)| reading.counters.get(*name).copied().unwrap_or(0) < **old);
        if let Some((name, old)) = decreased {
            let why = format!(
                "{name} decreased ({old} -> {})",
                reading.counters.get(name).copied().unwrap_or(0)
            );
            self.previous.insert(key.to_owned(), reading);
            return Rated::Reset { why };
        }
        let interval_s = reading.at - previous.at;
        if interval_s <= 0.0 {
            return Rated::Unchanged;
        }
        let deltas: BTreeMap<String, u64> = reading
            .counters
            .iter()
            .map(|(name, value)| {
                let old = previous.counters.get(name).copied().unwrap_or(0);
                (name.clone(), value - old)
            })
            .collect();
        let rates = deltas
            .iter()
            .map(|(name, delta)| (name.clone(), *delta as f64 / interval_s))
            .collect();
        self.previous.insert(key.to_owned(), reading);
        Rated::Rates {
            interval_s,
            rates,
            deltas,
        }
    }

    /// Forgets subjects not in `keep` (an unmounted filesystem, a removed HCA).
    pub fn retain(&mut self, keep: &BTreeSet<String>) {
        self.previous.retain(|key, _| keep.contains(key));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(at: f64, identity: &str, counters: &[(&str, u64)]) -> Reading {
        Reading {
            at,
            identity: identity.into(),
            counters: counters.iter().map(|(n, v)| (n.to_string(), *v)).collect(),
        }
    }

    #[test]
    fn rates_resets_and_unchanged_snapshots() {
        let mut tracker = RateTracker::default();
        assert_eq!(
            tracker.update("m", reading(10.0, "a", &[("w", 100)])),
            Rated::First
        );
        assert_eq!(
            tracker.update("m", reading(12.0, "a", &[("w", 1100), ("r", 50)])),
            Rated::Rates {
                interval_s: 2.0,
                rates: [("r".to_string(), 25.0), ("w".to_string(), 500.0)].into(),
                deltas: [("r".to_string(), 50), ("w".to_string(), 1000)].into()
            }
        );
        // The same snapshot again: nothing, and the next rate spans both intervals.
        assert_eq!(
            tracker.update("m", reading(12.0, "a", &[("w", 1100), ("r", 50)])),
            Rated::Unchanged
        );
        assert_eq!(
            tracker.update("m", reading(14.0, "a", &[("w", 2100), ("r", 50)])),
            Rated::Rates {
                interval_s: 2.0,
                rates: [("r".to_string(), 0.0), ("w".to_string(), 500.0)].into(),
                deltas: [("r".to_string(), 0), ("w".to_string(), 1000)].into()
            }
        );
        // A counter left out (zero) after being non-zero is a decrease: a reset, no spike.
        assert!(matches!(
            tracker.update("m", reading(15.0, "a", &[("w", 2200)])),
            Rated::Reset { .. }
        ));
        assert!(matches!(
            tracker.update("m", reading(16.0, "b", &[("w", 5)])),
            Rated::Reset { why } if why.contains("a -> b")
        ));
        assert_eq!(
            tracker.update("m", reading(17.0, "b", &[("w", 10)])),
            Rated::Rates {
                interval_s: 1.0,
                rates: [("w".to_string(), 5.0)].into(),
                deltas: [("w".to_string(), 5)].into()
            }
        );
    }
}
