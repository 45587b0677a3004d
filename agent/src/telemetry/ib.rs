//! Per InfiniBand port (`/sys/class/infiniband/<hca>/ports/<n>`): data rates in bytes/s (the
//! PMA counts 4-octet words, so x4), packets/s, error-counter deltas, the link state and rate.
//!
//! Data counters are 32-bit unless the port has 64-bit ones: learned from a value above
//! 2^32-1, the legacy `counters_ext/*_64` files (preferred when present), or an mlx4/mlx5
//! HCA (extended width). A PMA counter saturates at all-ones instead of wrapping: then no rate
//! is given and the sample says which counter. `N/A (no PMA)` is unavailable, never zero.
//!
//! The ports and which file holds each counter are found once and kept while the HCAs listed
//! in /sys/class/infiniband stay the same; a kept file found missing makes them be searched
//! again at the next cycle.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use lfleet_host::{HostRoot, ResolvedPath};
use lfleet_parse::ib::{
    CounterValue, counter_width, is_saturated, parse_counter, parse_rate_gbps, parse_state,
};

use super::params::ParamFiles;
use super::rates::{RateTracker, Rated, Reading};
use super::{CycleInput, IbPortReading, Readings, Sample};
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
    /// What /sys/class/infiniband listed when `ports` was found, and the ports then.
    hcas: Option<Vec<std::ffi::OsString>>,
    ports: Vec<PortFiles>,
    /// A kept file was missing: find the ports' files again at the next cycle.
    stale: bool,
}

/// One port's files, found once: `None` for a file the port does not have (not read, as
/// an absent file was never judged).
#[derive(Debug)]
struct PortFiles {
    hca: String,
    /// `<hca>/<port>`.
    subject: String,
    state: Option<ResolvedPath>,
    phys_state: Option<ResolvedPath>,
    rate: Option<ResolvedPath>,
    /// Per [`DATA`] entry: the legacy 64-bit `counters_ext` file (preferred), then the
    /// `counters/` one.
    data: Vec<(Option<ResolvedPath>, Option<ResolvedPath>)>,
    /// Per [`ERROR_COUNTERS`] entry.
    errors: Vec<Option<ResolvedPath>>,
}

impl PortFiles {
    fn find(host: &HostRoot, hca: &str, port: &str) -> PortFiles {
        let dir = format!("sys/class/infiniband/{hca}/ports/{port}");
        let at = |name: &str| {
            let path = format!("{dir}/{name}");
            if host.exists(&path).unwrap_or(false) {
                host.resolve_path(path).ok()
            } else {
                None
            }
        };
        PortFiles {
            hca: hca.to_owned(),
            subject: format!("{hca}/{port}"),
            state: at("state"),
            phys_state: at("phys_state"),
            rate: at("rate"),
            data: DATA
                .iter()
                .map(|(_, file, legacy, _)| {
                    (
                        at(&format!("counters_ext/{legacy}")),
                        at(&format!("counters/{file}")),
                    )
                })
                .collect(),
            errors: ERROR_COUNTERS
                .iter()
                .map(|counter| at(&format!("counters/{counter}")))
                .collect(),
        }
    }
}

/// Reads a kept file (a sysfs attribute, in one read): `None` when the port has no such file, or when it is gone (then the
/// port's files are found again at the next cycle), else its text or why it could not be
/// read.
fn read<'b>(
    host: &HostRoot,
    path: Option<&ResolvedPath>,
    buffer: &'b mut Vec<u8>,
    stale: &mut bool,
) -> Option<Result<Cow<'b, str>, String>> {
    match host.read_attribute(path?, buffer) {
        Ok(text) => Some(Ok(text)),
        Err(error) if error.is_not_found() => {
            *stale = true;
            None
        }
        Err(error) => Some(Err(lfleet_types::error_chain(&error))),
    }
}

impl Ib {
    /// The samples; each port's state, rate and error counter texts also go into
    /// `readings`.
    pub fn collect(
        &mut self,
        input: &CycleInput<'_>,
        files: &mut ParamFiles,
        readings: &mut Readings,
    ) -> Vec<Sample> {
        let host = input.host;
        let Ok(hcas) = host.list_dir("sys/class/infiniband") else {
            self.hcas = None;
            self.ports.clear();
            return Vec::new();
        };
        if self.stale || self.hcas.as_ref() != Some(&hcas) {
            self.find_ports(host, hcas);
        }
        let ports = std::mem::take(&mut self.ports);
        let samples = ports
            .iter()
            .map(|port| {
                let mut reading = IbPortReading::default();
                let sample = self.port(input, port, &mut files.buffer, &mut reading);
                readings.ib_ports.insert(port.subject.clone(), reading);
                sample
            })
            .collect();
        self.ports = ports;
        samples
    }

    /// Finds every port of every HCA and its files; forgets ports that are gone.
    fn find_ports(&mut self, host: &HostRoot, hcas: Vec<std::ffi::OsString>) {
        self.stale = false;
        self.ports.clear();
        for hca in hcas.iter().map(|h| h.to_string_lossy().into_owned()) {
            let ports = host
                .list_dir(format!("sys/class/infiniband/{hca}/ports"))
                .unwrap_or_default();
            for port in ports.iter().map(|p| p.to_string_lossy().into_owned()) {
                self.ports.push(PortFiles::find(host, &hca, &port));
            }
        }
        self.hcas = Some(hcas);
        let keep: BTreeSet<String> = self.ports.iter().map(|p| p.subject.clone()).collect();
        self.tracker.retain(&keep);
    }

    fn port(
        &mut self,
        input: &CycleInput<'_>,
        port: &PortFiles,
        buffer: &mut Vec<u8>,
        reading: &mut IbPortReading,
    ) -> Sample {
        let host = input.host;
        let subject = port.subject.as_str();
        let stale = &mut self.stale;
        let mut sample = Sample::new(NAME, subject, input.unix_ms);
        let kept = |read: &Option<Result<Cow<'_, str>, String>>| {
            read.as_ref()
                .map(|r| r.as_ref().map(|t| t.to_string()).map_err(Clone::clone))
        };
        for (label, file) in [("state", &port.state), ("phys_state", &port.phys_state)] {
            let text = read(host, file.as_ref(), buffer, stale);
            let slot = if label == "state" {
                &mut reading.state
            } else {
                &mut reading.phys_state
            };
            *slot = kept(&text);
            if let Some(Ok(text)) = text {
                let name = match parse_state(&text) {
                    Some((number, name)) => {
                        sample.raw.insert(format!("{label}_id"), f64::from(number));
                        name
                    }
                    None => text.trim().to_owned(),
                };
                sample.labels.insert(label.into(), name);
            }
        }
        let rate = read(host, port.rate.as_ref(), buffer, stale);
        reading.rate = kept(&rate);
        if let Some(Ok(text)) = rate
            && let Some(gbps) = parse_rate_gbps(&text)
        {
            sample.values.insert("link_rate_gbps".into(), gbps);
        }
        if (port.hca.starts_with("mlx4_") || port.hca.starts_with("mlx5_"))
            && !self.wide.contains(subject)
        {
            self.wide.insert(subject.to_owned());
        }
        let mut counters = BTreeMap::new();
        let mut saturated_data = false;
        let mut unreadable = Vec::new();
        for ((name, file, _, scale), (legacy, counter)) in DATA.into_iter().zip(&port.data) {
            let mut counter_value = |path: &Option<ResolvedPath>| {
                read(host, path.as_ref(), buffer, stale).map(|t| t.map(|t| parse_counter(&t)))
            };
            let (value, wide_file) = match counter_value(legacy) {
                Some(value) => (Some(value), true),
                None => (counter_value(counter), false),
            };
            match value {
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
                    } else {
                        // A saturated counter no longer counts: not exported as one.
                        sample
                            .raw
                            .insert(name.to_owned(), value.saturating_mul(scale) as f64);
                    }
                    counters.insert(name.to_owned(), value.saturating_mul(scale));
                }
            }
        }
        for (counter, path) in ERROR_COUNTERS.into_iter().zip(&port.errors) {
            let text = read(host, path.as_ref(), buffer, stale);
            reading.errors.push(kept(&text));
            match text.map(|t| t.map(|t| parse_counter(&t))) {
                Some(Ok(Some(CounterValue::Value(value)))) => {
                    if is_saturated(value, counter_width(counter)) {
                        sample.flags.push(format!(
                            "saturated {counter} ({}-bit): rises no longer seen",
                            counter_width(counter)
                        ));
                    } else {
                        sample.raw.insert(counter.to_owned(), value as f64);
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
