//! Telemetry: collectors that read the kernel's counters once per cycle, in-process, and turn
//! them into samples with rates, without ever inventing a number.
//!
//! Rules (research/telemetry.md section 4): a rate's interval is the kernel's `snapshot_time`
//! of the same file when it has one (else the agent's monotonic clock at the read); a reset
//! (start_time changed, a remount's new instance, any counter decreasing) is flagged and gives
//! no rate for that interval; a u32 LNet counter that wrapped is unwrapped; a saturated IB
//! counter gives no rate and is flagged; a source that cannot be read is `unavailable`, never
//! zero. Samples go into a bounded [`buffer::SampleBuffer`] that numbers them and counts what
//! it drops.
//!
//! One file per collector: [`llite`], [`osc`], [`mdc`], [`capacity`], [`imports`], [`lnet`],
//! [`netdev`], [`ib`], [`agent_self`]. Entry point: [`Telemetry`].

pub mod agent_self;
pub mod buffer;
pub mod capacity;
pub mod ib;
pub mod imports;
pub mod llite;
pub mod lnet;
pub mod mdc;
pub mod netdev;
pub mod osc;
pub mod params;
pub mod rates;

use std::collections::BTreeMap;

use lfleet_host::HostRoot;
use serde::Serialize;

pub use buffer::SampleBuffer;
pub use rates::{RateTracker, Rated};

/// A counter's increase over an interval of the source's own clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CounterDelta {
    pub delta: u64,
    pub interval_ms: u64,
}

/// One reading of one subject by one collector.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    /// Given by the buffer, in order, with no gaps except for samples it dropped.
    pub seq: u64,
    pub unix_ms: u64,
    pub collector: &'static str,
    /// A mount point, `<mount> <target>`, an interface, `<hca>/<port>`.
    pub subject: String,
    /// Rates (`*_per_s`) and gauges. Empty when unavailable, at the first reading or a reset.
    pub values: BTreeMap<String, f64>,
    /// Counter increases over `interval_s`, for the few counters the coordinator sums over
    /// its own windows (`req_waittime`'s count and sum per OST and MDT).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub deltas: BTreeMap<String, CounterDelta>,
    /// Labels that are not numbers: an import state, a current connection.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The interval the rates cover, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval_s: Option<f64>,
    /// The counters restarted (remount, start_time change, a decrease): no rate this time.
    pub reset: bool,
    /// Why the source could not be read; then `values` is empty, never zeros.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
    /// Anything else a reader must know: `first reading`, `saturated port_rcv_data`, ...
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
    /// The counters as read, cumulative since their source started (bytes, calls, RPCs,
    /// microseconds of wait), and the InfiniBand port's state numbers: what the node's own
    /// Prometheus endpoint exports, leaving rates to PromQL. Never sent to the coordinator.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, f64>,
}

impl Sample {
    pub fn new(collector: &'static str, subject: impl Into<String>, unix_ms: u64) -> Sample {
        Sample {
            seq: 0,
            unix_ms,
            collector,
            subject: subject.into(),
            values: BTreeMap::new(),
            deltas: BTreeMap::new(),
            labels: BTreeMap::new(),
            interval_s: None,
            reset: false,
            unavailable: None,
            flags: Vec::new(),
            raw: BTreeMap::new(),
        }
    }

    /// Keeps the counters of a reading as read, for the Prometheus endpoint.
    pub fn keep_raw(&mut self, counters: &BTreeMap<String, u64>) {
        self.raw.extend(
            counters
                .iter()
                .map(|(name, value)| (name.clone(), *value as f64)),
        );
    }

    pub fn unavailable(
        collector: &'static str,
        subject: impl Into<String>,
        unix_ms: u64,
        why: impl Into<String>,
    ) -> Sample {
        let mut sample = Sample::new(collector, subject, unix_ms);
        sample.unavailable = Some(why.into());
        sample
    }

    /// Copies a rate result in: rates as `<name>_per_s`, or the reset and first-reading flags.
    pub fn apply(&mut self, rated: Rated) {
        match rated {
            Rated::Rates {
                interval_s, rates, ..
            } => {
                self.interval_s = Some(interval_s);
                for (name, rate) in rates {
                    self.values.insert(format!("{name}_per_s"), rate);
                }
            }
            Rated::First => self.flags.push("first reading: no rate yet".into()),
            Rated::Unchanged => self
                .flags
                .push("no new kernel snapshot since the last reading".into()),
            Rated::Reset { why } => {
                self.reset = true;
                self.flags.push(format!("reset: {why}"));
            }
        }
    }
}

/// The subject of a per-target sample (`<mount point> <target>`, as the device index names
/// it) split into the mount point and the target (`OST0000`); `None` for any other subject.
pub fn split_target_subject(subject: &str) -> Option<(&str, &str)> {
    subject
        .rsplit_once(' ')
        .filter(|(mount, target)| mount.starts_with('/') && !target.is_empty())
}

/// A Lustre mount as telemetry sees it: where, and the instance its devices end in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInstance {
    pub mount_point: String,
    pub fsname: String,
    pub instance: String,
}

/// What one cycle needs from the node.
#[derive(Debug)]
pub struct CycleInput<'a> {
    pub host: &'a HostRoot,
    pub mounts: &'a [MountInstance],
    /// The interfaces LNet uses (for the Ethernet collector).
    pub lnet_interfaces: &'a [String],
    pub unix_ms: u64,
    /// Seconds on a monotonic clock, for sources without a kernel time stamp.
    pub monotonic_s: f64,
}

/// What a cycle read that the checks judge as well (import states, InfiniBand port states
/// and error counters), kept as read so a check round right after the cycle reads nothing
/// twice. What could not be read is kept as why: the check then reads it for itself.
#[derive(Debug, Clone, Default)]
pub struct Readings {
    /// The Lustre mounts the cycle read, with their instances.
    pub mounts: Vec<MountInstance>,
    /// By device name (`lustrefs-OST0001-osc-ffff...`): its import, or why it is unreadable.
    pub imports: BTreeMap<String, Result<lfleet_parse::import::Import, String>>,
    /// By `<hca>/<port>`.
    pub ib_ports: BTreeMap<String, IbPortReading>,
}

/// One port's files as a cycle read them: `None` for a file it does not have (or that was
/// gone), else its text or why it could not be read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IbPortReading {
    pub state: Option<Result<String, String>>,
    pub phys_state: Option<Result<String, String>>,
    pub rate: Option<Result<String, String>>,
    /// Per [`crate::checks::ib_ports::ERROR_COUNTERS`] entry.
    pub errors: Vec<Option<Result<String, String>>>,
}

impl Readings {
    /// The imports of one mount instance, when the cycle found any.
    pub fn imports_of(
        &self,
        instance: &str,
    ) -> Option<Vec<(&str, &Result<lfleet_parse::import::Import, String>)>> {
        let suffix = format!("-{instance}");
        let found: Vec<_> = self
            .imports
            .iter()
            .filter(|(name, _)| name.ends_with(&suffix))
            .map(|(name, import)| (name.as_str(), import))
            .collect();
        (!found.is_empty()).then_some(found)
    }
}

/// Every fast collector's state; one [`Telemetry::cycle`] reads each source once.
#[derive(Debug, Default)]
pub struct Telemetry {
    /// Where the Lustre files are (searched again only when devices or mounts change), and
    /// the buffer every file is read into.
    files: params::ParamFiles,
    /// The version of the mount table the index was last searched for.
    mount_table: u64,
    llite: llite::Llite,
    osc: osc::Osc,
    mdc: mdc::Mdc,
    imports: imports::Imports,
    lnet: lnet::Lnet,
    netdev: netdev::NetDev,
    ib: ib::Ib,
    /// What the last cycle read for the checks.
    readings: Readings,
}

impl Telemetry {
    /// Reads every fast source once and returns the samples (not yet numbered).
    pub fn cycle(&mut self, input: &CycleInput<'_>) -> Vec<Sample> {
        self.files.devices.refresh(input.host, input.mounts);
        let files = &mut self.files;
        let readings = &mut self.readings;
        *readings = Readings {
            mounts: input.mounts.to_vec(),
            ..Readings::default()
        };
        let mut samples = Vec::new();
        samples.extend(self.llite.collect(input, files));
        samples.extend(self.osc.collect(input, files));
        samples.extend(self.mdc.collect(input, files));
        samples.extend(self.imports.collect(input, files, readings));
        samples.extend(self.lnet.collect(input, files));
        samples.extend(self.netdev.collect(input, files));
        samples.extend(self.ib.collect(input, files, readings));
        samples
    }

    /// What the last cycle read for the checks (left empty behind).
    pub fn take_readings(&mut self) -> Readings {
        std::mem::take(&mut self.readings)
    }

    /// Tells which version of the mount table the next cycle runs under (the driver counts
    /// the changes of mountinfo): when it is another, every file's place is searched again,
    /// even if the device names look the same.
    pub fn mount_table(&mut self, version: u64) {
        if version != self.mount_table {
            self.mount_table = version;
            self.files.devices.mark_stale();
        }
    }

    /// Where the files are, as the index found them (tests and the benchmark look at it).
    pub fn devices(&self) -> &params::DeviceIndex {
        &self.files.devices
    }
}
