//! Ethernet bytes/s, packets/s, errors and drops of the interfaces LNet uses (AMLFS traffic
//! is TCP on the VM's NIC), from /proc/net/dev. A counter decrease (driver reload) is a reset.

use std::collections::{BTreeMap, BTreeSet};

use lfleet_parse::netdev::parse_net_dev;

use lfleet_host::ResolvedPath;

use super::params::ParamFiles;
use super::rates::{RateTracker, Reading};
use super::{CycleInput, Sample};

pub const NAME: &str = "netdev";

#[derive(Debug, Default)]
pub struct NetDev {
    tracker: RateTracker,
    /// /proc/net/dev, resolved once.
    path: Option<ResolvedPath>,
}

impl NetDev {
    pub fn collect(&mut self, input: &CycleInput<'_>, files: &mut ParamFiles) -> Vec<Sample> {
        if input.lnet_interfaces.is_empty() {
            return Vec::new();
        }
        if self.path.is_none() {
            self.path = input.host.resolve_path("proc/net/dev").ok();
        }
        let devices = match self
            .path
            .as_ref()
            .ok_or_else(|| "proc/net/dev cannot be resolved".to_owned())
            .and_then(|path| {
                input
                    .host
                    .read_text(path, &mut files.buffer)
                    .map_err(|e| lfleet_types::error_chain(&e))
            })
            .and_then(|text| parse_net_dev(&text).map_err(|e| format!("/proc/net/dev: {e}")))
        {
            Ok(devices) => devices,
            Err(why) => {
                return input
                    .lnet_interfaces
                    .iter()
                    .map(|i| Sample::unavailable(NAME, i, input.unix_ms, why.clone()))
                    .collect();
            }
        };
        let mut keep = BTreeSet::new();
        let mut samples = Vec::new();
        for interface in input.lnet_interfaces {
            let Some(c) = devices.get(interface) else {
                samples.push(Sample::unavailable(
                    NAME,
                    interface,
                    input.unix_ms,
                    format!("{interface} is not in /proc/net/dev"),
                ));
                continue;
            };
            let counters = BTreeMap::from([
                ("rx_bytes".to_owned(), c.rx_bytes),
                ("tx_bytes".to_owned(), c.tx_bytes),
                ("rx_packets".to_owned(), c.rx_packets),
                ("tx_packets".to_owned(), c.tx_packets),
                ("rx_errors".to_owned(), c.rx_errors),
                ("tx_errors".to_owned(), c.tx_errors),
                ("rx_dropped".to_owned(), c.rx_dropped),
                ("tx_dropped".to_owned(), c.tx_dropped),
            ]);
            let mut sample = Sample::new(NAME, interface, input.unix_ms);
            sample.keep_raw(&counters);
            sample.apply(self.tracker.update(
                interface,
                Reading {
                    at: input.monotonic_s,
                    identity: String::new(),
                    counters,
                },
            ));
            keep.insert(interface.clone());
            samples.push(sample);
        }
        self.tracker.retain(&keep);
        samples
    }
}
