//! `ib.ports`: each InfiniBand port of the configured inventory (never discovery: a missing
//! HCA is a failure) is ACTIVE, LinkUp, at its expected rate, and its error counters did not
//! rise within the window. A counter at the all-ones value of its width has saturated: its
//! rises can no longer be seen, which is reported (clear it with `perfquery -x -R`). A
//! decrease is a reset (someone cleared the counters): the window starts again.
//!
//! Reads sysfs only (Linux drivers/infiniband/core/sysfs.c); right after a telemetry cycle,
//! the port files as that cycle read them (the same files, read once per round).

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
        // The cycle's reading when it read the port's state and no file failed (a missing
        // port, an unreadable state: read here, where each has its verdict).
        let cycle = context
            .readings
            .and_then(|r| r.ib_ports.get(&subject))
            .filter(|r| {
                matches!(r.state, Some(Ok(_)))
                    && !matches!(r.phys_state, Some(Err(_)))
                    && !matches!(r.rate, Some(Err(_)))
            });
        if let Some(reading) = cycle {
            let text = |read: &'_ Option<Result<String, String>>| -> Option<String> {
                read.as_ref()?.as_ref().ok().cloned()
            };
            let mut counter = |index: usize, _: &str| match reading.errors.get(index) {
                Some(Some(Ok(text))) => Ok(Some(text.clone())),
                Some(Some(Err(why))) => Err(why.clone()),
                Some(None) | None => Ok(None),
            };
            let outcome = judge(
                context,
                &subject,
                port.rate_gbps,
                text(&reading.state).as_deref().unwrap_or_default(),
                text(&reading.phys_state).as_deref(),
                text(&reading.rate).as_deref(),
                &mut counter,
                (now, window_ms),
            );
            results.push(result(context, NAME, &subject, outcome));
            continue;
        }
        let mut counter = |_: usize, name: &str| {
            context
                .host
                .read_optional(format!("{dir}/counters/{name}"))
                .map_err(|e| lfleet_types::ErrorChain(&e).to_string())
        };
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
                    port.rate_gbps,
                    &state,
                    phys.ok().flatten().as_deref(),
                    rate.ok().flatten().as_deref(),
                    &mut counter,
                    (now, window_ms),
                ),
            },
        };
        results.push(result(context, NAME, &subject, outcome));
    }
    results
}

/// Reads [`ERROR_COUNTERS`]`[i]` (given `i` and its name): its text, `None` when the port
/// has no such counter, or why it is unreadable.
type ReadCounter<'a> = dyn FnMut(usize, &str) -> Result<Option<String>, String> + 'a;

#[allow(
    clippy::too_many_arguments,
    reason = "one port's readings, judged together"
)]
fn judge(
    context: CheckContext<'_>,
    subject: &str,
    expected_gbps: u32,
    state: &str,
    phys: Option<&str>,
    rate: Option<&str>,
    read_counter: &mut ReadCounter<'_>,
    (now, window_ms): (u64, u64),
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
    for (index, counter) in ERROR_COUNTERS.into_iter().enumerate() {
        let text = match read_counter(index, counter) {
            Ok(Some(text)) => text,
            // A counter this device does not have is not judged.
            Ok(None) => continue,
            Err(error) => {
                unreadable.push(format!("{counter}: {error}"));
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
        let (baseline, over_ms) = {
            let mut memory = context.memory();
            remember(
                memory.ib_counters.entry(key).or_default(),
                now,
                value,
                window_ms,
            )
        };
        if is_saturated(value, width) {
            saturated.push(format!("{counter} stuck at {value} ({width}-bit)"));
        } else if value > baseline {
            rose.push(format!(
                "{counter} +{} in {} s",
                value - baseline,
                over_ms / 1000
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

/// Adds a counter reading to its history and answers the value at the start of the window
/// and how long ago that was (at most the window). The history keeps only changes: the
/// oldest entry is the value the counter had when the window began (or when it was first
/// read, or reset), each later entry a change, so a quiet counter is one entry whatever the
/// window and the interval. A decrease is a reset: the history starts again.
fn remember(history: &mut Vec<(u64, u64)>, now: u64, value: u64, window_ms: u64) -> (u64, u64) {
    if history.last().is_some_and(|(_, last)| value < *last) {
        history.clear();
    }
    if history.last().is_none_or(|(_, last)| value != *last) {
        history.push((now, value));
    }
    // A change older than the window is the baseline as soon as a later one is too.
    while history.len() > 1 && history[1].0 + window_ms <= now {
        history.remove(0);
    }
    let (since, baseline) = history[0];
    (baseline, now.saturating_sub(since).min(window_ms))
}

#[cfg(test)]
mod tests {
    use super::remember;

    #[test]
    fn a_rise_fails_for_one_window_and_a_quiet_counter_is_one_entry() {
        let window = 300_000;
        let mut history = Vec::new();
        // Quiet for an hour of 10 s rounds: one entry, no rise.
        for round in 0..360u64 {
            assert_eq!(remember(&mut history, round * 10_000, 7, window).0, 7);
        }
        assert_eq!(history.len(), 1);
        // A rise of 5 at 3,600 s: seen against the value at the window's start...
        let (baseline, over) = remember(&mut history, 3_600_000, 12, window);
        assert_eq!((baseline, over), (7, window));
        // ...for as long as the rise is inside the window...
        assert_eq!(remember(&mut history, 3_890_000, 12, window).0, 7);
        // ...and no longer once it is a window old.
        assert_eq!(remember(&mut history, 3_900_000, 12, window).0, 12);
        assert_eq!(history, vec![(3_600_000, 12)]);
        // Read first a moment ago: the rise is over that moment, not the window.
        let mut fresh = Vec::new();
        remember(&mut fresh, 1_000_000, 0, window);
        assert_eq!(remember(&mut fresh, 1_020_000, 3, window), (0, 20_000));
        // A decrease is a reset: the new value is the baseline.
        assert_eq!(remember(&mut fresh, 1_030_000, 1, window), (1, 0));
        assert_eq!(fresh, vec![(1_030_000, 1)]);
    }
}
