//! `ib.ports`: each InfiniBand port of the configured inventory (never discovery: a missing
//! HCA is a failure) is ACTIVE, LinkUp, at its expected rate, and its error counters did not
//! rise within the window. A counter at the all-ones value of its width has saturated: its
//! rises can no longer be seen, which is reported (clear it with `perfquery -x -R`). A
//! decrease is a reset (someone cleared the counters): the window starts again.
//!
//! Reads sysfs only (Linux drivers/infiniband/core/sysfs.c).

use lfleet_parse::ib::{
    CounterValue, counter_width, is_saturated, parse_counter, parse_rate_gbps, parse_state,
};

use lfleet_types::KnownCheck;

use super::{CheckContext, CheckResult, Verdict, fail, result, unknown};

pub const NAME: KnownCheck = KnownCheck::IbPorts;

/// The PMA error counters judged.
pub const ERROR_COUNTERS: [&str; 12] = [
    "symbol_error",
    "link_error_recovery",
    "link_downed",
    "port_rcv_errors",
    "port_rcv_remote_physical_errors",
    "port_rcv_switch_relay_errors",
    "port_xmit_discards",
    "port_xmit_constraint_errors",
    "port_rcv_constraint_errors",
    "local_link_integrity_errors",
    "excessive_buffer_overrun_errors",
    "VL15_dropped",
];

pub fn run(context: CheckContext<'_>) -> Vec<CheckResult> {
    let now = context.clock.wall_unix_ms();
    let window_ms = context.config.health.ib_error_window_seconds * 1000;
    let mut results = Vec::new();
    for port in &context.config.health.ib_ports {
        let subject = format!("{}/{}", port.hca, port.port);
        let dir = format!("sys/class/infiniband/{}/ports/{}", port.hca, port.port);
        let read = |name: &str| context.host.read_optional(format!("{dir}/{name}"));
        let outcome = match context
            .host
            .exists(format!("sys/class/infiniband/{}", port.hca))
        {
            Err(error) => unknown(lfleet_types::error_chain(&error)),
            Ok(false) => fail("hca-missing", format!("HCA {} is not present", port.hca)),
            Ok(true) => match (read("state"), read("phys_state"), read("rate")) {
                (Err(error), _, _) | (_, Err(error), _) | (_, _, Err(error)) => {
                    unknown(lfleet_types::error_chain(&error))
                }
                (Ok(None), _, _) => fail(
                    "port-missing",
                    format!("{} has no port {}", port.hca, port.port),
                ),
                (Ok(Some(state)), phys, rate) => judge(
                    context,
                    &subject,
                    &dir,
                    port.rate_gbps,
                    &state,
                    phys.ok().flatten().as_deref(),
                    rate.ok().flatten().as_deref(),
                    now,
                    window_ms,
                ),
            },
        };
        results.push(result(context, NAME, &subject, outcome));
    }
    results
}

#[allow(
    clippy::too_many_arguments,
    reason = "one port's readings, judged together"
)]
fn judge(
    context: CheckContext<'_>,
    subject: &str,
    dir: &str,
    expected_gbps: u32,
    state: &str,
    phys: Option<&str>,
    rate: Option<&str>,
    now: u64,
    window_ms: u64,
) -> Verdict {
    let state_name = parse_state(state).map(|(_, name)| name);
    if state_name.as_deref() != Some("ACTIVE") {
        return fail("port-down", format!("{subject} state is {}", state.trim()));
    }
    let phys_name = phys.and_then(parse_state).map(|(_, name)| name);
    if phys_name.as_deref() != Some("LinkUp") {
        return fail(
            "port-down",
            format!(
                "{subject} physical state is {}",
                phys.unwrap_or("unreadable").trim()
            ),
        );
    }
    match rate.and_then(parse_rate_gbps) {
        Some(gbps) if gbps + 0.5 < f64::from(expected_gbps) => {
            return fail(
                "rate-degraded",
                format!(
                    "{subject} runs at {} (expected {expected_gbps} Gb/sec)",
                    rate.unwrap_or("").trim()
                ),
            );
        }
        Some(_) => {}
        None => {
            return unknown(format!(
                "{subject} rate unreadable: {:?}",
                rate.unwrap_or("")
            ));
        }
    }
    let mut saturated = Vec::new();
    let mut rose = Vec::new();
    let mut unreadable = Vec::new();
    for counter in ERROR_COUNTERS {
        let text = match context
            .host
            .read_optional(format!("{dir}/counters/{counter}"))
        {
            Ok(Some(text)) => text,
            // A counter this device does not have is not judged.
            Ok(None) => continue,
            Err(error) => {
                unreadable.push(format!("{counter}: {}", lfleet_types::ErrorChain(&error)));
                continue;
            }
        };
        let value = match parse_counter(&text) {
            Some(CounterValue::Value(value)) => value,
            Some(CounterValue::Unavailable) => continue,
            None => {
                unreadable.push(format!("{counter}: {:?}", text.trim()));
                continue;
            }
        };
        let width = counter_width(counter);
        let key = format!("{subject}/{counter}");
        let mut memory = context.memory();
        let history = memory.ib_counters.entry(key).or_default();
        if history.last().is_some_and(|(_, last)| value < *last) {
            history.clear();
        }
        history.push((now, value));
        // Keep the samples inside the window, and the newest one before it as the baseline.
        while history.len() > 1 && history[1].0 + window_ms <= now {
            history.remove(0);
        }
        let baseline = history[0].1;
        if is_saturated(value, width) {
            saturated.push(format!("{counter} stuck at {value} ({width}-bit)"));
        } else if value > baseline {
            rose.push(format!(
                "{counter} +{} in {} s",
                value - baseline,
                (now - history[0].0) / 1000
            ));
        }
    }
    if !saturated.is_empty() {
        fail(
            "counter-saturated",
            format!(
                "{subject}: {}; rises can no longer be seen (clear with perfquery -x -R)",
                saturated.join(", ")
            ),
        )
    } else if !rose.is_empty() {
        fail("link-errors", format!("{subject}: {}", rose.join(", ")))
    } else if !unreadable.is_empty() {
        unknown(format!("{subject}: unreadable {}", unreadable.join(", ")))
    } else {
        Verdict::Pass
    }
}
