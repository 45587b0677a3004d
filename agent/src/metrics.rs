//! The agent's metrics for Prometheus: served at `/metrics` (`[prometheus] enabled = true`;
//! loopback, port 10988, by default) and/or written for node_exporter's textfile collector
//! (`[prometheus] textfile`), both from what the loops last stored: this module never reads
//! the node, so the endpoint answers at once even while a mount is hung.
//!
//! The text is the `prometheus` crate's encoder (the coordinator's): HELP and TYPE on every
//! family, families grouped and sorted. Conventions: counters are the kernel's own counters
//! as read (cumulative, `_total`, base units: bytes, seconds), never rates, which are left to
//! PromQL; one label per dimension (`mount`, `fsname`, `target`, `device`, `port`, `nid`,
//! `kernel`), a label left out when it has no value; InfiniBand families are node_exporter's
//! `infiniband` collector's names under `lfleet_` with its labels (`device`, `port`), and the
//! Ethernet ones its `netdev` names. No family uses node_exporter's own names (`process_*`),
//! so the textfile collector can serve them beside its own.
//!
//! Families: [`FAMILIES`]. Entry points: [`render`], [`serve`], [`write_textfile`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use lfleet_host::{HostError, HostRoot};
use lfleet_types::KnownCheck;
use prometheus::proto::{self, MetricType};

use crate::checks::{CheckResult, Outcome};
use crate::telemetry::{Sample, split_target_subject};

/// What the loops last found.
#[derive(Debug, Default)]
pub struct MetricsState {
    pub results: Vec<CheckResult>,
    /// (collector, subject) -> the last sample.
    pub samples: BTreeMap<(String, String), Sample>,
    /// Event kind -> how many since the start.
    pub events: BTreeMap<String, u64>,
    pub dropped_samples: u64,
    /// The reconciler's last published status (none when it does not run).
    pub reconcile: Option<crate::reconciler::ReconcilerStatus>,
    /// Mount point -> fsname of the Lustre mounts telemetry last found.
    pub mounts: BTreeMap<String, String>,
}

pub type SharedMetrics = Arc<Mutex<MetricsState>>;

/// One metric family: its name, type and HELP.
#[derive(Debug)]
pub struct Family {
    pub name: &'static str,
    pub kind: MetricType,
    pub help: &'static str,
}

const fn counter(name: &'static str, help: &'static str) -> Family {
    Family {
        name,
        kind: MetricType::COUNTER,
        help,
    }
}

const fn gauge(name: &'static str, help: &'static str) -> Family {
    Family {
        name,
        kind: MetricType::GAUGE,
        help,
    }
}

// === the families ===

const CHECK_STATE: Family = gauge(
    "lfleet_check_state",
    "1 for the current outcome (pass, fail, unknown) of a check on its subject; code is the failure's.",
);
const CHECK_DURATION: Family = gauge(
    "lfleet_check_duration_seconds",
    "How long the last run of a check took.",
);
const EVENTS: Family = counter(
    "lfleet_events_total",
    "Events the checks found (an import reconnecting, IB error counters rising, ...), by kind.",
);
const SOURCE_UNAVAILABLE: Family = gauge(
    "lfleet_source_unavailable",
    "1 while a telemetry source cannot be read (its metrics are absent, never zero).",
);
const DROPPED_SAMPLES: Family = counter(
    "lfleet_telemetry_dropped_samples_total",
    "Telemetry samples dropped because the queue to the coordinator was full.",
);
const AGENT_RSS: Family = gauge(
    "lfleet_agent_resident_memory_bytes",
    "The agent's resident memory.",
);
const AGENT_CPU: Family = counter(
    "lfleet_agent_cpu_seconds_total",
    "CPU time the agent used (user and system).",
);

const LLITE_READ_BYTES: Family = counter(
    "lfleet_llite_read_bytes_total",
    "Bytes applications read through a Lustre mount (llite stats read_bytes, cache hits included).",
);
const LLITE_WRITE_BYTES: Family = counter(
    "lfleet_llite_write_bytes_total",
    "Bytes applications wrote through a Lustre mount (llite stats write_bytes).",
);
const LLITE_READS: Family = counter(
    "lfleet_llite_reads_total",
    "Read calls on a Lustre mount (llite stats read_bytes count).",
);
const LLITE_WRITES: Family = counter(
    "lfleet_llite_writes_total",
    "Write calls on a Lustre mount (llite stats write_bytes count).",
);
const LLITE_METADATA: Family = counter(
    "lfleet_llite_metadata_operations_total",
    "Metadata operations on a Lustre mount (llite stats), by operation.",
);
const LLITE_SIZE: Family = gauge(
    "lfleet_llite_size_bytes",
    "A Lustre filesystem's size as the client sees it (llite kbytestotal).",
);
const LLITE_FREE: Family = gauge(
    "lfleet_llite_free_bytes",
    "A Lustre filesystem's free space (llite kbytesfree).",
);
const LLITE_AVAIL: Family = gauge(
    "lfleet_llite_avail_bytes",
    "A Lustre filesystem's space available to users (llite kbytesavail).",
);
const LLITE_FILES: Family = gauge(
    "lfleet_llite_files",
    "A Lustre filesystem's inodes (llite filestotal).",
);
const LLITE_FILES_FREE: Family = gauge(
    "lfleet_llite_files_free",
    "A Lustre filesystem's free inodes (llite filesfree).",
);

const OSC_READ_BYTES: Family = counter(
    "lfleet_osc_read_bytes_total",
    "Bytes read from an OST over the wire (osc stats read_bytes).",
);
const OSC_WRITE_BYTES: Family = counter(
    "lfleet_osc_write_bytes_total",
    "Bytes written to an OST over the wire (osc stats write_bytes).",
);
const OSC_REQUESTS: Family = counter(
    "lfleet_osc_requests_total",
    "RPCs to an OST (osc stats req_waittime count).",
);
const OSC_REQUEST_WAIT: Family = counter(
    "lfleet_osc_request_wait_seconds_total",
    "Time RPCs to an OST waited, summed (osc stats req_waittime sum); divide by requests for the mean.",
);
const MDC_METADATA: Family = counter(
    "lfleet_mdc_metadata_requests_total",
    "Metadata requests to an MDT (mdc md_stats), by operation.",
);
const MDC_REQUESTS: Family = counter(
    "lfleet_mdc_requests_total",
    "RPCs to an MDT (mdc stats req_waittime count).",
);
const MDC_REQUEST_WAIT: Family = counter(
    "lfleet_mdc_request_wait_seconds_total",
    "Time RPCs to an MDT waited, summed (mdc stats req_waittime sum); divide by requests for the mean.",
);

const IMPORT_HEALTHY: Family = gauge(
    "lfleet_import_healthy",
    "1 while a target's import is FULL or IDLE, else 0.",
);
const IMPORT_INFO: Family = gauge(
    "lfleet_import_info",
    "1 for a target's import state and current server connection.",
);
const IMPORT_ATTEMPTS: Family = counter(
    "lfleet_import_connection_attempts_total",
    "Connection attempts of a target's import.",
);
const IMPORT_GENERATION: Family = gauge(
    "lfleet_import_generation",
    "A target's import generation (it rises at each reconnection).",
);
const IMPORT_TIMEOUTS: Family = counter(
    "lfleet_import_rpc_timeouts_total",
    "RPC timeouts of a target's import.",
);

const LNET_ERRORS: Family = counter("lfleet_lnet_errors_total", "LNet errors.");
const LNET_SENT: Family = counter("lfleet_lnet_sent_messages_total", "LNet messages sent.");
const LNET_RECEIVED: Family = counter(
    "lfleet_lnet_received_messages_total",
    "LNet messages received.",
);
const LNET_DROPPED: Family = counter(
    "lfleet_lnet_dropped_messages_total",
    "LNet messages dropped.",
);
const LNET_SENT_BYTES: Family = counter("lfleet_lnet_sent_bytes_total", "LNet bytes sent.");
const LNET_RECEIVED_BYTES: Family =
    counter("lfleet_lnet_received_bytes_total", "LNet bytes received.");
const LNET_DROPPED_BYTES: Family =
    counter("lfleet_lnet_dropped_bytes_total", "LNet bytes dropped.");
const LNET_MSGS_ALLOC: Family = gauge(
    "lfleet_lnet_messages_allocated",
    "LNet messages allocated now.",
);

const NET_RX_BYTES: Family = counter(
    "lfleet_network_receive_bytes_total",
    "Bytes received by an interface LNet uses (/proc/net/dev).",
);
const NET_TX_BYTES: Family = counter(
    "lfleet_network_transmit_bytes_total",
    "Bytes sent by an interface LNet uses (/proc/net/dev).",
);
const NET_RX_PACKETS: Family = counter(
    "lfleet_network_receive_packets_total",
    "Packets received by an interface LNet uses.",
);
const NET_TX_PACKETS: Family = counter(
    "lfleet_network_transmit_packets_total",
    "Packets sent by an interface LNet uses.",
);
const NET_RX_ERRS: Family = counter(
    "lfleet_network_receive_errs_total",
    "Receive errors of an interface LNet uses.",
);
const NET_TX_ERRS: Family = counter(
    "lfleet_network_transmit_errs_total",
    "Transmit errors of an interface LNet uses.",
);
const NET_RX_DROP: Family = counter(
    "lfleet_network_receive_drop_total",
    "Received packets an interface LNet uses dropped.",
);
const NET_TX_DROP: Family = counter(
    "lfleet_network_transmit_drop_total",
    "Packets to send an interface LNet uses dropped.",
);

const IB_STATE: Family = gauge(
    "lfleet_infiniband_state_id",
    "State of the InfiniBand port (0: no change, 1: down, 2: init, 3: armed, 4: active, 5: act defer).",
);
const IB_PHYS_STATE: Family = gauge(
    "lfleet_infiniband_physical_state_id",
    "Physical state of the InfiniBand port (1: sleep, 2: polling, 3: disabled, 4: port configuration training, 5: link up, 6: link error recovery, 7: phy test).",
);
const IB_RATE: Family = gauge(
    "lfleet_infiniband_rate_bytes_per_second",
    "The InfiniBand port's signalling rate.",
);
const IB_RX_BYTES: Family = counter(
    "lfleet_infiniband_port_data_received_bytes_total",
    "Data octets received on the port (port_rcv_data x 4).",
);
const IB_TX_BYTES: Family = counter(
    "lfleet_infiniband_port_data_transmitted_bytes_total",
    "Data octets transmitted on the port (port_xmit_data x 4).",
);
const IB_RX_PACKETS: Family = counter(
    "lfleet_infiniband_port_packets_received_total",
    "Packets received on the port.",
);
const IB_TX_PACKETS: Family = counter(
    "lfleet_infiniband_port_packets_transmitted_total",
    "Packets transmitted on the port.",
);
const IB_SYMBOL: Family = counter(
    "lfleet_infiniband_symbol_error_total",
    "Minor link errors detected on one or more physical lanes.",
);
const IB_RECOVERY: Family = counter(
    "lfleet_infiniband_link_error_recovery_total",
    "Times the link recovered from an error state.",
);
const IB_DOWNED: Family = counter(
    "lfleet_infiniband_link_downed_total",
    "Times the link failed to recover from an error state and went down.",
);
const IB_RX_ERRORS: Family = counter(
    "lfleet_infiniband_port_errors_received_total",
    "Packets with an error received on the port.",
);
const IB_REMOTE_PHYSICAL: Family = counter(
    "lfleet_infiniband_port_receive_remote_physical_errors_total",
    "Packets marked with the EBP delimiter received on the port.",
);
const IB_SWITCH_RELAY: Family = counter(
    "lfleet_infiniband_port_receive_switch_relay_errors_total",
    "Packets that could not be forwarded by the switch.",
);
const IB_TX_DISCARDS: Family = counter(
    "lfleet_infiniband_port_discards_transmitted_total",
    "Outbound packets discarded because the port was down or congested.",
);
const IB_TX_CONSTRAINT: Family = counter(
    "lfleet_infiniband_port_constraint_errors_transmitted_total",
    "Packets not transmitted from the switch physical port.",
);
const IB_RX_CONSTRAINT: Family = counter(
    "lfleet_infiniband_port_constraint_errors_received_total",
    "Packets received on the switch physical port that were discarded.",
);
const IB_INTEGRITY: Family = counter(
    "lfleet_infiniband_local_link_integrity_errors_total",
    "Times the count of local physical errors exceeded the LocalPhyErrors threshold.",
);
const IB_OVERRUN: Family = counter(
    "lfleet_infiniband_excessive_buffer_overrun_errors_total",
    "Times OverrunErrors consecutive flow-control update periods had at least one overrun.",
);
const IB_VL15: Family = counter(
    "lfleet_infiniband_vl15_dropped_total",
    "Incoming VL15 packets dropped for lack of resources.",
);

const RECONCILE_STATE: Family = gauge(
    "lfleet_reconcile_state",
    "1 for the reconciler's state (not-yet-run, running, idle).",
);
const RECONCILE_PASSES: Family = counter(
    "lfleet_reconcile_passes_total",
    "Reconcile passes since the start.",
);
const RECONCILE_GENERATION: Family = gauge(
    "lfleet_reconcile_applied_generation",
    "The configuration generation the last pass applied.",
);
const RECONCILE_FAILED: Family = gauge(
    "lfleet_reconcile_item_failed",
    "1 for each item (package, module, mount, ...) whose last attempt failed, with its class.",
);
const RECONCILE_RETRY: Family = gauge(
    "lfleet_reconcile_next_retry_timestamp_seconds",
    "When the reconciler next retries a failed item (Unix time).",
);

/// Every family the agent exports, grouped by source.
pub const FAMILIES: &[&Family] = &[
    &CHECK_STATE,
    &CHECK_DURATION,
    &EVENTS,
    &SOURCE_UNAVAILABLE,
    &DROPPED_SAMPLES,
    &AGENT_RSS,
    &AGENT_CPU,
    &LLITE_READ_BYTES,
    &LLITE_WRITE_BYTES,
    &LLITE_READS,
    &LLITE_WRITES,
    &LLITE_METADATA,
    &LLITE_SIZE,
    &LLITE_FREE,
    &LLITE_AVAIL,
    &LLITE_FILES,
    &LLITE_FILES_FREE,
    &OSC_READ_BYTES,
    &OSC_WRITE_BYTES,
    &OSC_REQUESTS,
    &OSC_REQUEST_WAIT,
    &MDC_METADATA,
    &MDC_REQUESTS,
    &MDC_REQUEST_WAIT,
    &IMPORT_HEALTHY,
    &IMPORT_INFO,
    &IMPORT_ATTEMPTS,
    &IMPORT_GENERATION,
    &IMPORT_TIMEOUTS,
    &LNET_ERRORS,
    &LNET_SENT,
    &LNET_RECEIVED,
    &LNET_DROPPED,
    &LNET_SENT_BYTES,
    &LNET_RECEIVED_BYTES,
    &LNET_DROPPED_BYTES,
    &LNET_MSGS_ALLOC,
    &NET_RX_BYTES,
    &NET_TX_BYTES,
    &NET_RX_PACKETS,
    &NET_TX_PACKETS,
    &NET_RX_ERRS,
    &NET_TX_ERRS,
    &NET_RX_DROP,
    &NET_TX_DROP,
    &IB_STATE,
    &IB_PHYS_STATE,
    &IB_RATE,
    &IB_RX_BYTES,
    &IB_TX_BYTES,
    &IB_RX_PACKETS,
    &IB_TX_PACKETS,
    &IB_SYMBOL,
    &IB_RECOVERY,
    &IB_DOWNED,
    &IB_RX_ERRORS,
    &IB_REMOTE_PHYSICAL,
    &IB_SWITCH_RELAY,
    &IB_TX_DISCARDS,
    &IB_TX_CONSTRAINT,
    &IB_RX_CONSTRAINT,
    &IB_INTEGRITY,
    &IB_OVERRUN,
    &IB_VL15,
    &RECONCILE_STATE,
    &RECONCILE_PASSES,
    &RECONCILE_GENERATION,
    &RECONCILE_FAILED,
    &RECONCILE_RETRY,
];

/// How a sample's value or raw counter becomes a metric: its family, an extra label, and the
/// factor to base units.
struct Mapping {
    key: &'static str,
    family: &'static Family,
    scale: f64,
}

const fn map(key: &'static str, family: &'static Family) -> Mapping {
    Mapping {
        key,
        family,
        scale: 1.0,
    }
}

const fn scaled(key: &'static str, family: &'static Family, scale: f64) -> Mapping {
    Mapping { key, family, scale }
}

/// Raw counters (`Sample::raw`) per collector. Keys ending in `_ops`/`_reqs` that name an
/// operation are handled apart ([`operation`]).
const RAW: &[(&str, &[Mapping])] = &[
    (
        crate::telemetry::llite::NAME,
        &[
            map("read_bytes", &LLITE_READ_BYTES),
            map("write_bytes", &LLITE_WRITE_BYTES),
            map("read_ops", &LLITE_READS),
            map("write_ops", &LLITE_WRITES),
        ],
    ),
    (
        crate::telemetry::osc::NAME,
        &[
            map("read_bytes", &OSC_READ_BYTES),
            map("write_bytes", &OSC_WRITE_BYTES),
            map("rpcs", &OSC_REQUESTS),
            scaled("rpc_wait_us", &OSC_REQUEST_WAIT, 1e-6),
        ],
    ),
    (
        crate::telemetry::mdc::NAME,
        &[
            map("rpcs", &MDC_REQUESTS),
            scaled("rpc_wait_us", &MDC_REQUEST_WAIT, 1e-6),
        ],
    ),
    (
        crate::telemetry::lnet::NAME,
        &[
            map("errors", &LNET_ERRORS),
            map("send_count", &LNET_SENT),
            map("recv_count", &LNET_RECEIVED),
            map("drop_count", &LNET_DROPPED),
            map("send_bytes", &LNET_SENT_BYTES),
            map("recv_bytes", &LNET_RECEIVED_BYTES),
            map("drop_bytes", &LNET_DROPPED_BYTES),
        ],
    ),
    (
        crate::telemetry::netdev::NAME,
        &[
            map("rx_bytes", &NET_RX_BYTES),
            map("tx_bytes", &NET_TX_BYTES),
            map("rx_packets", &NET_RX_PACKETS),
            map("tx_packets", &NET_TX_PACKETS),
            map("rx_errors", &NET_RX_ERRS),
            map("tx_errors", &NET_TX_ERRS),
            map("rx_dropped", &NET_RX_DROP),
            map("tx_dropped", &NET_TX_DROP),
        ],
    ),
    (
        crate::telemetry::ib::NAME,
        &[
            map("state_id", &IB_STATE),
            map("phys_state_id", &IB_PHYS_STATE),
            map("rcv_bytes", &IB_RX_BYTES),
            map("xmit_bytes", &IB_TX_BYTES),
            map("rcv_packets", &IB_RX_PACKETS),
            map("xmit_packets", &IB_TX_PACKETS),
            map("symbol_error", &IB_SYMBOL),
            map("link_error_recovery", &IB_RECOVERY),
            map("link_downed", &IB_DOWNED),
            map("port_rcv_errors", &IB_RX_ERRORS),
            map("port_rcv_remote_physical_errors", &IB_REMOTE_PHYSICAL),
            map("port_rcv_switch_relay_errors", &IB_SWITCH_RELAY),
            map("port_xmit_discards", &IB_TX_DISCARDS),
            map("port_xmit_constraint_errors", &IB_TX_CONSTRAINT),
            map("port_rcv_constraint_errors", &IB_RX_CONSTRAINT),
            map("local_link_integrity_errors", &IB_INTEGRITY),
            map("excessive_buffer_overrun_errors", &IB_OVERRUN),
            map("VL15_dropped", &IB_VL15),
        ],
    ),
];

/// Gauges read as they are (`Sample::values`) per collector.
const VALUES: &[(&str, &[Mapping])] = &[
    (
        crate::telemetry::capacity::NAME,
        &[
            map("bytes_total", &LLITE_SIZE),
            map("bytes_free", &LLITE_FREE),
            map("bytes_avail", &LLITE_AVAIL),
            map("files_total", &LLITE_FILES),
            map("files_free", &LLITE_FILES_FREE),
        ],
    ),
    (
        crate::telemetry::imports::NAME,
        &[
            map("healthy", &IMPORT_HEALTHY),
            map("connection_attempts", &IMPORT_ATTEMPTS),
            map("generation", &IMPORT_GENERATION),
            map("rpc_timeouts", &IMPORT_TIMEOUTS),
        ],
    ),
    (
        crate::telemetry::lnet::NAME,
        &[map("msgs_alloc", &LNET_MSGS_ALLOC)],
    ),
    (
        crate::telemetry::ib::NAME,
        &[scaled("link_rate_gbps", &IB_RATE, 1e9 / 8.0)],
    ),
    (
        crate::telemetry::agent_self::NAME,
        &[map("rss_bytes", &AGENT_RSS), map("cpu_seconds", &AGENT_CPU)],
    ),
];

/// A per-operation counter of llite (`open_ops`) or mdc (`getattr_reqs`): its family and
/// the operation.
fn operation<'k>(collector: &str, key: &'k str) -> Option<(&'static Family, &'k str)> {
    match collector {
        crate::telemetry::llite::NAME => key
            .strip_suffix("_ops")
            .filter(|op| crate::telemetry::llite::METADATA_OPS.contains(op))
            .map(|op| (&LLITE_METADATA, op)),
        crate::telemetry::mdc::NAME => key
            .strip_suffix("_reqs")
            .filter(|op| *op != "md")
            .map(|op| (&MDC_METADATA, op)),
        _ => None,
    }
}

type Labels = Vec<(&'static str, String)>;

/// The families being built: name -> (family, label set -> value).
#[derive(Default)]
struct Exposition {
    families: BTreeMap<&'static str, (&'static Family, BTreeMap<Labels, f64>)>,
}

impl Exposition {
    /// Adds one metric; a label with an empty value is left out.
    fn add(&mut self, family: &'static Family, labels: &[(&'static str, &str)], value: f64) {
        let labels: Labels = labels
            .iter()
            .filter(|(_, value)| !value.is_empty())
            .map(|(name, value)| (*name, (*value).to_owned()))
            .collect();
        self.families
            .entry(family.name)
            .or_insert_with(|| (family, BTreeMap::new()))
            .1
            .insert(labels, value);
    }

    fn encode(self) -> String {
        let families: Vec<proto::MetricFamily> = self
            .families
            .into_values()
            .map(|(family, metrics)| {
                let mut out = proto::MetricFamily::default();
                out.set_name(family.name.to_owned());
                out.set_help(family.help.to_owned());
                out.set_field_type(family.kind);
                out.set_metric(
                    metrics
                        .into_iter()
                        .map(|(labels, value)| metric(family.kind, labels, value))
                        .collect(),
                );
                out
            })
            .collect();
        prometheus::TextEncoder::new()
            .encode_to_string(&families)
            .expect("every family has a name, a type and metrics of that type")
    }
}

fn metric(kind: MetricType, labels: Labels, value: f64) -> proto::Metric {
    let mut metric = proto::Metric::from_label(
        labels
            .into_iter()
            .map(|(name, value)| {
                let mut pair = proto::LabelPair::default();
                pair.set_name(name.to_owned());
                pair.set_value(value);
                pair
            })
            .collect(),
    );
    match kind {
        MetricType::COUNTER => {
            let mut counter = proto::Counter::default();
            counter.set_value(value);
            metric.set_counter(counter);
        }
        _ => {
            let mut gauge = proto::Gauge::default();
            gauge.set_value(value);
            metric.set_gauge(gauge);
        }
    }
    metric
}

/// The labels of a sample's subject: where it was read.
fn sample_labels<'a>(
    collector: &str,
    subject: &'a str,
    mounts: &'a BTreeMap<String, String>,
) -> Vec<(&'static str, &'a str)> {
    use crate::telemetry::{capacity, ib, imports, llite, mdc, netdev, osc};
    let fsname = |mount: &str| mounts.get(mount).map_or("", String::as_str);
    match collector {
        llite::NAME | capacity::NAME => vec![("mount", subject), ("fsname", fsname(subject))],
        osc::NAME | mdc::NAME | imports::NAME => match split_target_subject(subject) {
            Some((mount, target)) => vec![
                ("mount", mount),
                ("fsname", fsname(mount)),
                ("target", target),
            ],
            None => vec![("subject", subject)],
        },
        netdev::NAME => vec![("device", subject)],
        ib::NAME => match subject.split_once('/') {
            Some((device, port)) => vec![("device", device), ("port", port)],
            None => vec![("device", subject)],
        },
        _ => Vec::new(),
    }
}

/// The labels of a check result's subject, by the check's own kind of subject.
fn check_labels<'a>(
    result: &'a CheckResult,
    mounts: &'a BTreeMap<String, String>,
) -> Vec<(&'static str, &'a str)> {
    let subject = result.subject.as_str();
    match result.check {
        KnownCheck::MountPresent | KnownCheck::MountResponsive | KnownCheck::LustreImports => {
            vec![
                ("mount", subject),
                ("fsname", mounts.get(subject).map_or("", String::as_str)),
            ]
        }
        KnownCheck::IbPorts => match subject.split_once('/') {
            Some((device, port)) => vec![("device", device), ("port", port)],
            None => vec![("device", subject)],
        },
        KnownCheck::Accelnet => vec![("device", subject)],
        KnownCheck::Lnet if subject.contains('@') => vec![("nid", subject)],
        KnownCheck::LustreClient => match subject.strip_prefix("kernel ") {
            Some(kernel) => vec![("kernel", kernel)],
            None => Vec::new(),
        },
        KnownCheck::Lnet | KnownCheck::LustreLbug | KnownCheck::LustreSlow => Vec::new(),
    }
}

/// The exposition text.
pub fn render(state: &MetricsState) -> String {
    let mut out = Exposition::default();
    for result in &state.results {
        let code = match result.outcome {
            Outcome::Fail => result.code.as_str(),
            Outcome::Pass | Outcome::Unknown => "",
        };
        let mut labels = vec![("check", result.check.as_str())];
        labels.extend(check_labels(result, &state.mounts));
        labels.push(("state", result.outcome.as_str()));
        labels.push(("code", code));
        out.add(&CHECK_STATE, &labels, 1.0);
    }
    for sample in state.samples.values() {
        render_sample(&mut out, sample, &state.mounts);
    }
    for (kind, count) in &state.events {
        out.add(&EVENTS, &[("kind", kind)], *count as f64);
    }
    out.add(&DROPPED_SAMPLES, &[], state.dropped_samples as f64);
    if let Some(reconcile) = &state.reconcile {
        render_reconcile(&mut out, reconcile);
    }
    out.encode()
}

/// One sample's metrics: its raw counters, its gauges, or that it is unavailable.
fn render_sample(out: &mut Exposition, sample: &Sample, mounts: &BTreeMap<String, String>) {
    let collector = sample.collector;
    let labels = sample_labels(collector, &sample.subject, mounts);
    if sample.unavailable.is_some() {
        let mut with = vec![("collector", collector)];
        with.extend(labels.iter().copied());
        out.add(&SOURCE_UNAVAILABLE, &with, 1.0);
        return;
    }
    let table = |tables: &'static [(&str, &[Mapping])]| {
        tables
            .iter()
            .find(|(name, _)| *name == collector)
            .map_or(&[][..], |(_, mappings)| *mappings)
    };
    for (key, value) in &sample.raw {
        if let Some(mapping) = table(RAW).iter().find(|m| m.key == key) {
            out.add(mapping.family, &labels, value * mapping.scale);
        } else if let Some((family, op)) = operation(collector, key) {
            let mut with = labels.clone();
            with.push(("operation", op));
            out.add(family, &with, *value);
        }
    }
    for (key, value) in &sample.values {
        if let Some(mapping) = table(VALUES).iter().find(|m| m.key == key) {
            out.add(mapping.family, &labels, value * mapping.scale);
        }
    }
    if collector == crate::telemetry::imports::NAME
        && let Some(state) = sample.labels.get("state")
    {
        let mut with = labels.clone();
        with.push(("state", state));
        with.push((
            "connection",
            sample
                .labels
                .get("current_connection")
                .map_or("", String::as_str),
        ));
        out.add(&IMPORT_INFO, &with, 1.0);
    }
    if collector == crate::telemetry::agent_self::NAME {
        for (key, ms) in &sample.values {
            if let Some(check) = key.strip_prefix("check_ms.") {
                out.add(&CHECK_DURATION, &[("check", check)], ms / 1000.0);
            }
        }
    }
}

/// The reconciler: state, passes, applied generation, each failed item and the next retry.
fn render_reconcile(out: &mut Exposition, status: &crate::reconciler::ReconcilerStatus) {
    use lfleet_types::ReconcileStatus;
    let state = match status.state {
        ReconcileStatus::NotYetRun => "not-yet-run",
        ReconcileStatus::Running => "running",
        ReconcileStatus::Idle => "idle",
        ReconcileStatus::Unrecognized => "unrecognized",
    };
    out.add(&RECONCILE_STATE, &[("state", state)], 1.0);
    out.add(&RECONCILE_PASSES, &[], status.passes as f64);
    out.add(
        &RECONCILE_GENERATION,
        &[],
        status.applied_generation.get() as f64,
    );
    for item in &status.items {
        if let Some(class) = item.failure {
            let kind = item.kind.to_string();
            out.add(
                &RECONCILE_FAILED,
                &[("kind", &kind), ("id", &item.id), ("class", class.code())],
                1.0,
            );
        }
    }
    if let Some(at) = status.next_retry_unix_ms() {
        out.add(&RECONCILE_RETRY, &[], at as f64 / 1000.0);
    }
}

/// Serves `GET /metrics` on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, state: SharedMetrics) -> std::io::Result<()> {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let state = state.clone();
            async move {
                let text = render(&state.lock().unwrap_or_else(|e| e.into_inner()));
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        prometheus::TEXT_FORMAT.to_owned(),
                    )],
                    text,
                )
            }
        }),
    );
    axum::serve(listener, app).await
}

/// Writes the exposition to `path` (a node path) for node_exporter's textfile collector:
/// a temporary file in the same directory (not named `*.prom`, so the collector never reads
/// it half-written), then a rename over the target, readable by everyone (node_exporter runs
/// as its own user). No fsync: the next collection writes it again.
pub fn write_textfile(host: &HostRoot, path: &str, text: &str) -> Result<(), HostError> {
    host.replace_volatile(path.trim_start_matches('/'), text.as_bytes(), 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_named_typed_and_helped_by_the_conventions() {
        let mut names = std::collections::BTreeSet::new();
        for family in FAMILIES {
            let name = family.name;
            assert!(names.insert(name), "{name} declared twice");
            assert!(name.starts_with("lfleet_"), "{name}");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{name}"
            );
            assert!(!family.help.is_empty(), "{name} has no HELP");
            let total = name.ends_with("_total");
            assert_eq!(total, family.kind == MetricType::COUNTER, "{name}");
            for unit in ["_ms", "_us", "_delta", "_percent", "_gbps"] {
                assert!(!name.contains(unit), "{name}: not a base unit");
            }
            // No measured rate; the one `_per_second` is the IB link's nominal signalling
            // rate (node_exporter's name), a property of the port, not traffic.
            assert!(
                !name.ends_with("_per_s")
                    && (!name.ends_with("_per_second") || name == IB_RATE.name),
                "{name}: rates are left to PromQL"
            );
        }
        // Every mapped family is declared.
        for (_, mappings) in RAW.iter().chain(VALUES) {
            for mapping in *mappings {
                assert!(
                    names.contains(mapping.family.name),
                    "{}",
                    mapping.family.name
                );
            }
        }
    }

    #[test]
    fn labels_are_split_escaped_and_counters_are_raw() {
        let mut state = MetricsState::default();
        state.mounts.insert("/lus\"tre\n".into(), "lustrefs".into());
        state.mounts.insert("/lustre".into(), "lustrefs".into());
        state.results.push(CheckResult::new(
            KnownCheck::MountResponsive,
            "/lus\"tre\n",
            crate::checks::Verdict::Fail {
                code: "hung".into(),
                detail: "x".into(),
            },
            0,
        ));
        state.results.push(CheckResult::new(
            KnownCheck::IbPorts,
            "mlx5_0/1",
            crate::checks::Verdict::Pass,
            0,
        ));
        let mut osc = Sample::new("osc", "/lustre OST0001", 0);
        osc.values.insert("write_bytes_per_s".into(), 5e8);
        osc.raw.insert("write_bytes".into(), 123_456_789.0);
        osc.raw.insert("rpc_wait_us".into(), 2_500_000.0);
        let mut agent = Sample::new("agent", "lfleet-agent", 0);
        agent.values.insert("check_ms.mount.present".into(), 2.5);
        agent.values.insert("cpu_percent".into(), 3.0);
        let mut llite = Sample::new("llite", "/lustre", 0);
        llite.raw.insert("open_ops".into(), 7.0);
        llite.raw.insert("metadata_ops".into(), 7.0);
        for sample in [osc, agent, llite] {
            state
                .samples
                .insert((sample.collector.into(), sample.subject.clone()), sample);
        }
        let text = render(&state);
        for line in [
            "lfleet_check_state{check=\"mount.responsive\",mount=\"/lus\\\"tre\\n\",fsname=\"lustrefs\",state=\"fail\",code=\"hung\"} 1",
            "lfleet_check_state{check=\"ib.ports\",device=\"mlx5_0\",port=\"1\",state=\"pass\"} 1",
            "lfleet_osc_write_bytes_total{mount=\"/lustre\",fsname=\"lustrefs\",target=\"OST0001\"} 123456789",
            "lfleet_osc_request_wait_seconds_total{mount=\"/lustre\",fsname=\"lustrefs\",target=\"OST0001\"} 2.5",
            "lfleet_check_duration_seconds{check=\"mount.present\"} 0.0025",
            "lfleet_llite_metadata_operations_total{mount=\"/lustre\",fsname=\"lustrefs\",operation=\"open\"} 7",
            "# HELP lfleet_telemetry_dropped_samples_total ",
        ] {
            assert!(text.contains(line), "{line} in:\n{text}");
        }
        // Rates, percentages and sums of other families are not exported.
        for absent in ["per_s", "percent", "subject=", "metadata_ops\""] {
            assert!(!text.contains(absent), "{absent} in:\n{text}");
        }
    }

    #[test]
    fn an_unavailable_source_is_flagged_not_zero() {
        let mut state = MetricsState::default();
        let mut sample = Sample::unavailable("ib", "mlx5_0/1", 0, "N/A (no PMA)");
        sample.raw.insert("rcv_bytes".into(), 0.0);
        state
            .samples
            .insert(("ib".into(), "mlx5_0/1".into()), sample);
        let text = render(&state);
        assert!(
            text.contains(
                "lfleet_source_unavailable{collector=\"ib\",device=\"mlx5_0\",port=\"1\"} 1"
            ),
            "{text}"
        );
        assert!(!text.contains("lfleet_infiniband_port_data"), "{text}");
    }
}
