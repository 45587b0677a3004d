//! InfiniBand sysfs values (Linux `drivers/infiniband/core/sysfs.c`): port `state`
//! (`4: ACTIVE`), `phys_state` (`5: LinkUp`), `rate` (`100 Gb/sec (4X EDR)`) and counters.
//!
//! Counters are decimal; iWARP/RoCE devices without a PMA print `N/A (no PMA)` (newer kernels
//! return an error instead), which is unavailable, never zero. PMA counters saturate at
//! all-ones of their width instead of wrapping; a saturated counter carries no rate. Data
//! counters count 4-octet words.

/// A counter's value as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterValue {
    Value(u64),
    /// The device has no performance-management agent for this counter.
    Unavailable,
}

/// Parses one counter file; `None` for text that is neither.
pub fn parse_counter(text: &str) -> Option<CounterValue> {
    let text = text.trim();
    if text.starts_with("N/A") {
        return Some(CounterValue::Unavailable);
    }
    text.parse().ok().map(CounterValue::Value)
}

/// The width in bits of each standard port counter (the rest are 32, or 64 with EXT_WIDTH).
pub fn counter_width(counter: &str) -> u32 {
    match counter {
        "symbol_error"
        | "port_rcv_errors"
        | "port_rcv_remote_physical_errors"
        | "port_rcv_switch_relay_errors"
        | "port_xmit_discards"
        | "VL15_dropped" => 16,
        "link_error_recovery"
        | "link_downed"
        | "port_xmit_constraint_errors"
        | "port_rcv_constraint_errors" => 8,
        "local_link_integrity_errors" | "excessive_buffer_overrun_errors" => 4,
        _ => 32,
    }
}

/// True when `value` sits at the saturation value of a `width`-bit counter.
pub fn is_saturated(value: u64, width: u32) -> bool {
    width < 64 && value == (1u64 << width) - 1
}

/// `4: ACTIVE` -> (4, "ACTIVE").
pub fn parse_state(text: &str) -> Option<(u32, String)> {
    let (number, name) = text.trim().split_once(':')?;
    Some((number.trim().parse().ok()?, name.trim().to_owned()))
}

/// `100 Gb/sec (4X EDR)` -> 100.0 (Gb/s).
pub fn parse_rate_gbps(text: &str) -> Option<f64> {
    let mut words = text.split_whitespace();
    let value: f64 = words.next()?.parse().ok()?;
    (words.next()? == "Gb/sec").then_some(value)
}
