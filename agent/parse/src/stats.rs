//! lprocfs stats files (`llite.*.stats`, `osc.*.stats`, `mdc.*.stats`, `md_stats`), and the
//! headers of `rpc_stats`/`osc_stats`.
//!
//! Rules: the header is `snapshot_time` (2.10 to 2.14) plus `start_time` and `elapsed_time`
//! (2.15+), as `<s>.<9 digits>` with `secs.nsecs` after; the name column is padded to 25 (35
//! on 2.17), but names longer than the pad are followed by one space, so lines are split on
//! whitespace, never on columns. A counter line is `<name> <count> samples [<unit>]` with
//! optional `<min> <max> <sum>` and optional `<sumsq>`. All numbers are u64: sumsq exceeds
//! i64 and wraps. Lines with count 0 are not printed, so a missing counter means 0 and a
//! header-only file is valid. `lctl get_param` output starts with a `param=` line, skipped.

use std::collections::BTreeMap;

use crate::ParseError;

/// A kernel time stamp, kept as whole seconds and nanoseconds so no precision is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Timestamp {
    pub secs: u64,
    pub nanos: u32,
}

impl Timestamp {
    /// Parses `<s>.<ns>` (the fraction as printed, up to 9 digits).
    pub fn parse(text: &str) -> Option<Timestamp> {
        let (secs, fraction) = text.split_once('.')?;
        if secs.is_empty()
            || fraction.is_empty()
            || fraction.len() > 9
            || !fraction.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let secs = secs.parse().ok()?;
        // Up to 9 digits, padded on the right: "5" is 500000000 ns.
        let digits: u32 = fraction.parse().ok()?;
        let nanos = digits * 10u32.pow(9 - fraction.len() as u32);
        Some(Timestamp { secs, nanos })
    }

    /// Seconds from `earlier` to `self` (negative if earlier is later).
    pub fn seconds_since(&self, earlier: &Timestamp) -> f64 {
        (self.secs as f64 - earlier.secs as f64)
            + (f64::from(self.nanos) - f64::from(earlier.nanos)) / 1e9
    }

    /// Before 2.15.2, `snapshot_time` was seconds since boot: fine for intervals, useless as
    /// a wall-clock time.
    pub fn is_wall_clock(&self) -> bool {
        self.secs >= 1_000_000_000
    }
}

/// One counter line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Counter {
    pub count: u64,
    pub unit: String,
    pub min: Option<u64>,
    pub max: Option<u64>,
    pub sum: Option<u64>,
    pub sumsq: Option<u64>,
}

/// A parsed stats file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stats {
    pub snapshot_time: Option<Timestamp>,
    pub start_time: Option<Timestamp>,
    pub elapsed_time: Option<Timestamp>,
    pub counters: BTreeMap<String, Counter>,
}

impl Stats {
    /// A counter's count; 0 when the line is absent (the kernel leaves zero lines out).
    pub fn count(&self, name: &str) -> u64 {
        self.counters.get(name).map_or(0, |c| c.count)
    }

    /// A counter's sum; 0 when absent.
    pub fn sum(&self, name: &str) -> u64 {
        self.counters.get(name).and_then(|c| c.sum).unwrap_or(0)
    }
}

fn number(field: &str) -> Option<u64> {
    field.parse().ok()
}

/// Parses a stats file (or one `lctl get_param` block of one).
///
/// Read every cycle for every OST, so a line is taken apart in place: no list of its fields
/// or values is built.
pub fn parse_stats(text: &str) -> Result<Stats, ParseError> {
    let mut stats = Stats::default();
    for (index, raw) in text.lines().enumerate() {
        let line_number = index + 1;
        let line = raw.trim_matches(['\0', ' ', '\t', '\r']);
        if line.is_empty() {
            continue;
        }
        let mut fields = line.split_whitespace();
        // A line of other whitespace (vertical tab, form feed, NBSP) survives the trim above.
        let Some(first) = fields.next() else {
            continue;
        };
        let second = fields.next();
        // `lctl get_param` prints `param=` before the file.
        if index == 0 && second.is_none() && line.ends_with('=') {
            continue;
        }
        let name = first.trim_end_matches(':');
        if matches!(name, "snapshot_time" | "start_time" | "elapsed_time") {
            let value = second
                .into_iter()
                .chain(fields)
                .filter(|f| *f != ":")
                .find_map(Timestamp::parse)
                .ok_or_else(|| {
                    ParseError::new(line_number, "a time stamp line without <s>.<ns>", raw)
                })?;
            match name {
                "snapshot_time" => stats.snapshot_time = Some(value),
                "start_time" => stats.start_time = Some(value),
                _ => stats.elapsed_time = Some(value),
            }
            continue;
        }
        let (Some(count), Some("samples"), Some(unit)) = (second, fields.next(), fields.next())
        else {
            return Err(ParseError::new(
                line_number,
                "not `<name> <count> samples [<unit>] ...`",
                raw,
            ));
        };
        if !unit.starts_with('[') || !unit.ends_with(']') {
            return Err(ParseError::new(
                line_number,
                "not `<name> <count> samples [<unit>] ...`",
                raw,
            ));
        }
        let count = number(count)
            .ok_or_else(|| ParseError::new(line_number, "a count that is not a u64", raw))?;
        // min, max, sum and sumsq, as many as there are; every field must be a number.
        let mut values = [None; 4];
        let mut found = 0usize;
        for field in fields {
            let value = number(field)
                .ok_or_else(|| ParseError::new(line_number, "a value that is not a u64", raw))?;
            if let Some(slot) = values.get_mut(found) {
                *slot = Some(value);
            }
            found += 1;
        }
        if !matches!(found, 0 | 3 | 4) {
            return Err(ParseError::new(
                line_number,
                "neither 0, 3 (min max sum) nor 4 (with sumsq) values",
                raw,
            ));
        }
        let [min, max, sum, sumsq] = values;
        stats.counters.insert(
            first.to_owned(),
            Counter {
                count,
                unit: unit.trim_matches(['[', ']']).to_owned(),
                min,
                max,
                sum,
                sumsq,
            },
        );
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_keep_nanoseconds() {
        assert_eq!(
            Timestamp::parse("1510950459.772792457"),
            Some(Timestamp {
                secs: 1_510_950_459,
                nanos: 772_792_457
            })
        );
        assert_eq!(
            Timestamp::parse("771911.614286754").map(|t| t.is_wall_clock()),
            Some(false)
        );
        assert_eq!(
            Timestamp::parse("12.5"),
            Some(Timestamp {
                secs: 12,
                nanos: 500_000_000
            })
        );
        for bad in ["", ".", "1.", ".5", "1.1234567890", "x.1", "1.x"] {
            assert_eq!(Timestamp::parse(bad), None, "{bad:?}");
        }
    }
}
