//! `/proc/net/dev`: two header lines, then `<iface>: <8 receive fields> <8 transmit fields>`.
//! A long interface name runs into its first number (`eth0:874354587`), so the line is split
//! at the colon first.

use std::collections::BTreeMap;

use crate::ParseError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NetDevCounters {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

pub fn parse_net_dev(text: &str) -> Result<BTreeMap<String, NetDevCounters>, ParseError> {
    let mut devices = BTreeMap::new();
    for (index, raw) in text.lines().enumerate() {
        if raw.contains('|') {
            continue;
        }
        let Some((name, rest)) = raw.split_once(':') else {
            if raw.trim().is_empty() {
                continue;
            }
            return Err(ParseError::new(index + 1, "no `<iface>:`", raw));
        };
        let values: Vec<u64> = rest
            .split_whitespace()
            .map(|v| v.parse().ok())
            .collect::<Option<_>>()
            .ok_or_else(|| ParseError::new(index + 1, "a counter that is not a u64", raw))?;
        if values.len() != 16 {
            return Err(ParseError::new(index + 1, "not 16 counters", raw));
        }
        devices.insert(
            name.trim().to_owned(),
            NetDevCounters {
                rx_bytes: values[0],
                rx_packets: values[1],
                rx_errors: values[2],
                rx_dropped: values[3],
                tx_bytes: values[8],
                tx_packets: values[9],
                tx_errors: values[10],
                tx_dropped: values[11],
            },
        );
    }
    Ok(devices)
}
