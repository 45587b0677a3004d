//! Per InfiniBand port (`/sys/class/infiniband/<hca>/ports/<n>`): data rates in bytes/s (the
//! PMA counts 4-octet words, so x4), packets/s, error-counter deltas, the link state and rate.
//!
//! Data counters are 32-bit unless the port has 64-bit ones: learned from a value above
//! 2^32-1, the legacy `counters_ext/*_64` files (preferred when present), or an mlx4/mlx5
//! HCA (extended width). A PMA counter saturates at all-ones instead of wrapping: then no rate
//! is given and the sample says which counter. `N/A (no PMA)` is unavailable, never zero.

use std::collections::{BTreeMap, BTreeSet};

use lfleet_host::HostRoot;
use lfleet_parse::ib::{
    CounterValue, counter_width, is_saturated, parse_counter, parse_rate_gbps, parse_state,
};

use super::rates::{RateTracker, Rated, Reading};
use super::{CycleInput, Sample};
use crate::checks::ib_ports::ERROR_COUNTERS;

pub const NAME: &str = "ib";

/// (sample name, counters/ file, counters_ext/ legacy file, bytes per unit).
const DATA: [(&str, &str, &str, u64); 4] = [
    ("xmit_bytes", "port_xmit_data", "port_xmit_data_64", 4),
    ("rcv_bytes", "port_rcv_data", "port_rcv_data_64", 4),
    (
        "xmit_packets",
        "port_xmit_packets",
        "port_xmit_packets_64",
        1,
    ),
    ("rcv_packets", "port_rcv_packets", "port_rcv_packets_64", 1),
];

#[derive(Debug, Default)]
pub struct Ib {
    tracker: RateTracker,
    /// Ports known to have 64-bit data counters.
    wide: BTreeSet<String>,
}

fn read(host: &HostRoot, path: &str) -> Option<Result<String, String>> {
    match host.read_optional(path) {
        Ok(Some(text)) => Some(Ok(text)),
        Ok(None) => None,
        Err(error) => Some(Err(lfleet_types::error_chain(&error))),
    }
}

impl Ib {
    pub fn collect(&mut self, input: &CycleInput<'_>) -> Vec<Sample> {
        let host = input.host;
        let Ok(hcas) = host.list_dir("sys/class/infiniband") else {
            return Vec::new();
        };
        let mut keep = BTreeSet::new();
        let mut samples = Vec::new();
        for hca in hcas.iter().map(|h| h.to_string_lossy().into_owned()) {
            let ports = host
                .list_dir(format!("sys/class/infiniband/{hca}/ports"))
                .unwrap_or_default();
            for port in ports.iter().map(|p| p.to_string_lossy().into_owned()) {
                let subject = format!("{hca}/{port}");
                let dir = format!("sys/class/infiniband/{hca}/ports/{port}");
                samples.push(self.port(input, &hca, &subject, &dir));
                keep.insert(subject);
            }
        }
        self.tracker.retain(&keep);
        samples
    }

    fn port(&mut self, input: &CycleInput<'_>, hca: &str, subject: &str, dir: &str) -> Sample {
        let host = input.host;
        let mut sample = Sample::new(NAME, subject, input.unix_ms);
        for (label, file) in [("state", "state"), ("phys_state", "phys_state")] {
            if let Some(Ok(text)) = read(host, &format!("{dir}/{file}")) {
                let name = parse_state(&text)
                    .map(|(_, n)| n)
                    .unwrap_or_else(|| text.trim().to_owned());
                sample.labels.insert(label.into(), name);
            }
        }
        if let Some(Ok(text)) = read(host, &format!("{dir}/rate"))
            && let Some(gbps) = parse_rate_gbps(&text)
        {
            sample.values.insert("link_rate_gbps".into(), gbps);
        }
        if hca.starts_with("mlx4_") || hca.starts_with("mlx5_") {
            self.wide.insert(subject.to_owned());
        }
        let mut counters = BTreeMap::new();
        let mut saturated_data = false;
        let mut unreadable = Vec::new();
        for (name, file, legacy, scale) in DATA {
            let legacy_path = format!("{dir}/counters_ext/{legacy}");
            let (text, wide_file) = match read(host, &legacy_path) {
                Some(text) => (Some(text), true),
                None => (read(host, &format!("{dir}/counters/{file}")), false),
            };
            match text.map(|t| t.map(|t| parse_counter(&t))) {
                None => {}
                Some(Err(error)) => unreadable.push(format!("{file}: {error}")),
                Some(Ok(None)) => unreadable.push(format!("{file}: not a number")),
                Some(Ok(Some(CounterValue::Unavailable))) => {
                    sample.flags.push(format!("{file} unavailable (no PMA)"))
                }
                Some(Ok(Some(CounterValue::Value(value)))) => {
                    if wide_file || value > u64::from(u32::MAX) {
                        self.wide.insert(subject.to_owned());
                    }
                    if !self.wide.contains(subject) && is_saturated(value, 32) {
                        saturated_data = true;
                        sample
                            .flags
                            .push(format!("saturated {file} (32-bit): no rate"));
                    }
                    counters.insert(name.to_owned(), value.saturating_mul(scale));
                }
            }
        }
        for counter in ERROR_COUNTERS {
            match read(host, &format!("{dir}/counters/{counter}"))
                .map(|t| t.map(|t| parse_counter(&t)))
            {
                Some(Ok(Some(CounterValue::Value(value)))) => {
                    if is_saturated(value, counter_width(counter)) {
                        sample.flags.push(format!(
                            "saturated {counter} ({}-bit): rises no longer seen",
                            counter_width(counter)
                        ));
                    }
                    counters.insert(counter.to_owned(), value);
                }
                Some(Ok(Some(CounterValue::Unavailable))) | None => {}
                Some(Ok(None)) => unreadable.push(format!("{counter}: not a number")),
                Some(Err(error)) => unreadable.push(format!("{counter}: {error}")),
            }
        }
        if counters.is_empty() {
            sample.unavailable = Some(if unreadable.is_empty() {
                format!("{subject} has no readable counters")
            } else {
                unreadable.join(", ")
            });
            return sample;
        }
        if !unreadable.is_empty() {
            sample
                .flags
                .push(format!("unreadable: {}", unreadable.join(", ")));
        }
        if saturated_data {
            return sample;
        }
        let rated = self.tracker.update(
            subject,
            Reading {
                at: input.monotonic_s,
                identity: String::new(),
                counters,
            },
        );
        if let Rated::Rates { deltas, .. } = &rated {
            for counter in ERROR_COUNTERS {
                if let Some(delta) = deltas.get(counter) {
                    sample
                        .values
                        .insert(format!("{counter}_delta"), *delta as f64);
                }
            }
        }
        sample.apply(rated);
        for counter in ERROR_COUNTERS {
            sample.values.remove(&format!("{counter}_per_s"));
        }
        sample
    }
}
