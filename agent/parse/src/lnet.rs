//! LNet counters: the one-line `stats` file (`/proc/sys/lnet/stats` on 2.10, debugfs after)
//! and `lnetctl stats show`.
//!
//! The file has 11 fields: msgs_alloc msgs_max errors send_count recv_count route_count
//! drop_count send_length recv_length route_length drop_length. The first seven are u32 in
//! the kernel (`struct lnet_counters_common`) and wrap; the last four are u64.

use std::collections::BTreeMap;

use crate::ParseError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LnetStats {
    pub msgs_alloc: u32,
    pub msgs_max: u32,
    pub errors: u32,
    pub send_count: u32,
    pub recv_count: u32,
    pub route_count: u32,
    pub drop_count: u32,
    pub send_length: u64,
    pub recv_length: u64,
    pub route_length: u64,
    pub drop_length: u64,
}

/// Parses the 11-field stats line.
pub fn parse_lnet_stats(text: &str) -> Result<LnetStats, ParseError> {
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() != 11 {
        return Err(ParseError::new(1, "not the 11 fields of LNet stats", line));
    }
    let small = |i: usize| {
        fields[i]
            .parse::<u32>()
            .map_err(|_| ParseError::new(1, "a u32 field out of range", line))
    };
    let large = |i: usize| {
        fields[i]
            .parse::<u64>()
            .map_err(|_| ParseError::new(1, "a u64 field out of range", line))
    };
    Ok(LnetStats {
        msgs_alloc: small(0)?,
        msgs_max: small(1)?,
        errors: small(2)?,
        send_count: small(3)?,
        recv_count: small(4)?,
        route_count: small(5)?,
        drop_count: small(6)?,
        send_length: large(7)?,
        recv_length: large(8)?,
        route_length: large(9)?,
        drop_length: large(10)?,
    })
}

/// The change of a u32 counter: a decrease from above 2^31 is a wrap, any other decrease
/// a reset (`None`: no delta for this interval).
pub fn u32_delta(previous: u32, current: u32) -> Option<u64> {
    if current >= previous {
        Some(u64::from(current - previous))
    } else if previous > 1 << 31 {
        Some(u64::from(current) + (1u64 << 32) - u64::from(previous))
    } else {
        None
    }
}

/// `lnetctl stats show`: the `key: value` pairs under `statistics:`.
pub fn parse_lnetctl_stats(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|line| line.trim().split_once(':'))
        .filter_map(|(key, value)| {
            value
                .trim()
                .parse()
                .ok()
                .map(|v| (key.trim().to_owned(), v))
        })
        .collect()
}
