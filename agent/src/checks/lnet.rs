//! `lnet`: every local NI (but `lo`) is up and its health value is 1000. LNet lowers an NI's
//! health value on send failures and raises it again as sends succeed, so a dip is normal;
//! a value below 1000 for `health.lnet_health_sustain_seconds` fails. Until then the verdict
//! is Unknown (with how long and how low), and the first dip is an event.
//!
//! Runs `lnetctl net show -v 3` (no LNet file carries NI health) through the command runner.

use std::time::Duration;

use lfleet_host::CommandSpec;
use lfleet_lnet::parse_net_show;

use lfleet_types::{AgentEventKind, KnownCheck};

use super::{CheckContext, CheckResult, Verdict, fail, result, unknown};

pub const NAME: KnownCheck = KnownCheck::Lnet;

pub async fn run(context: CheckContext<'_>) -> Vec<CheckResult> {
    if context.config.mounts.is_empty() {
        return Vec::new();
    }
    let spec =
        CommandSpec::new("lnetctl", Duration::from_secs(10)).args(["net", "show", "-v", "3"]);
    let output = match context.runner.run(&spec).await {
        Ok(output) => output.stdout,
        Err(error) => {
            // lnetctl answers "Network is down" when LNet is not configured at all.
            let text = format!("{}{}", error.stdout(), error.stderr());
            let outcome = if text.contains("Network is down") {
                fail(
                    "lnet-down",
                    "LNet is not configured (lnetctl: Network is down)",
                )
            } else {
                unknown(lfleet_types::error_chain(&error))
            };
            return vec![result(context, NAME, "lnet", outcome)];
        }
    };
    let now = context.clock.wall_unix_ms();
    let sustain_ms = context.config.health.lnet_health_sustain_seconds * 1000;
    let nis: Vec<_> = parse_net_show(&output)
        .into_iter()
        .filter(|ni| ni.net_type != "lo")
        .collect();
    if nis.is_empty() {
        return vec![result(
            context,
            NAME,
            "lnet",
            fail("no-ni", "LNet has no network interface but lo"),
        )];
    }
    let mut results = Vec::new();
    for ni in nis {
        let outcome = if ni.status.as_deref().is_some_and(|s| s != "up") {
            context.memory().lnet_low_since.remove(&ni.nid);
            fail(
                "ni-down",
                format!(
                    "NI {} on {} is {}",
                    ni.nid,
                    ni.interfaces.join(","),
                    ni.status.as_deref().unwrap_or("?")
                ),
            )
        } else {
            match ni.health_value {
                None => unknown(format!("lnetctl shows no health value for {}", ni.nid)),
                Some(value) if value >= 1000 => {
                    context.memory().lnet_low_since.remove(&ni.nid);
                    Verdict::Pass
                }
                Some(value) => {
                    let since = *context
                        .memory()
                        .lnet_low_since
                        .entry(ni.nid.clone())
                        .or_insert(now);
                    if since == now {
                        context.event(
                            AgentEventKind::LnetHealthDropped,
                            &ni.nid,
                            format!("health value {value}"),
                        );
                    }
                    let low_for = now.saturating_sub(since);
                    if low_for >= sustain_ms {
                        fail(
                            "ni-health-low",
                            format!(
                                "NI {} health value {value} (below 1000 for {} s)",
                                ni.nid,
                                low_for / 1000
                            ),
                        )
                    } else {
                        unknown(format!(
                            "NI {} health value {value} for {} s; fails after {} s",
                            ni.nid,
                            low_for / 1000,
                            sustain_ms / 1000
                        ))
                    }
                }
            }
        };
        results.push(result(context, NAME, &ni.nid, outcome));
    }
    results
}
