//! Telemetry as it travels from agent to coordinator: [`TelemetrySample`]s in a
//! [`TelemetryBatch`] that counts what the agent had to drop, and the [`metric`] names both
//! sides use.

use serde::{Deserialize, Serialize};

/// Metric names the coordinator reads. A sample's metric is `<collector>.<value>`.
pub mod metric {
    /// Bytes read per second through a mount (llite), over the kernel's own interval.
    pub const LLITE_READ_BYTES_PER_S: &str = "llite.read_bytes_per_s";
    /// Bytes written per second through a mount (llite).
    pub const LLITE_WRITE_BYTES_PER_S: &str = "llite.write_bytes_per_s";
    /// RPCs to one OST (subject `<mount> <target>`): `req_waittime`'s count, as a delta.
    pub const OSC_RPCS: &str = "osc.rpcs";
    /// Microseconds those RPCs waited in total: `req_waittime`'s sum, as a delta.
    pub const OSC_RPC_WAIT_US: &str = "osc.rpc_wait_us";
    /// RPCs to one MDT (subject `<mount> <target>`), as a delta.
    pub const MDC_RPCS: &str = "mdc.rpcs";
    /// Microseconds those RPCs waited in total, as a delta.
    pub const MDC_RPC_WAIT_US: &str = "mdc.rpc_wait_us";
    /// LNet messages dropped per second (subject `lnet`).
    pub const LNET_DROPS_PER_S: &str = "lnet.drop_count_per_s";
}

/// A sample's value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SampleValue {
    Gauge(f64),
    /// A counter's change over an interval measured by the source's own clock.
    Delta {
        delta: u64,
        interval_ms: u64,
    },
}

/// One measurement of one metric on one subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TelemetrySample {
    pub seq: u64,
    pub at_unix_ms: i64,
    pub metric: String,
    /// `subject` (a mount point, `<mount> <target>`, an interface, `<hca>/<port>`) and others.
    pub labels: Vec<(String, String)>,
    /// `None` at a reset or when the source could not be read.
    pub value: Option<SampleValue>,
    /// The counter restarted (remount, start_time change, decrease): no rate this interval.
    pub reset: bool,
    /// Why the source could not be read: not zero, unknown.
    pub unavailable: Option<String>,
}

impl TelemetrySample {
    /// The value of label `key`, if present.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Samples in order, with how many the agent dropped since the previous batch.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TelemetryBatch {
    pub first_seq: u64,
    pub dropped_samples: u64,
    pub samples: Vec<TelemetrySample>,
}
