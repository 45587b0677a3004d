//! `lnet`: every local NI (but `lo`) is up and its health value is 1000. LNet lowers an NI's
//! health value on send failures and raises it again as sends succeed, so a dip is normal;
//! a value below 1000 for `health.lnet_health_sustain_seconds` fails. Until then the verdict
//! is Unknown (with how long and how low), and the first dip is an event.
//!
//! Runs `lnetctl net show -v 3` (no LNet file carries NI health) through the command runner.
//! While every NI passes, the daemon's rounds repeat that verdict for three check intervals
//! (`CheckContext::repeat_steady_for`) instead of forking lnetctl each round; anything but a
//! pass is asked again every round, so a dip's sustain is timed round by round, and a first
//! dip is seen at most three intervals late.

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
    let asked = context.clock.wall_unix_ms();
    if let Some(keep) = context.repeat_steady_for
        && let Some((at, results)) = &context.memory().lnet_steady
        && asked.saturating_sub(*at) < keep.as_millis() as u64
    {
        return results.clone();
    }
    let results = query(context).await;
    context.memory().lnet_steady = results
        .iter()
        .all(|r| r.outcome == lfleet_types::Outcome::Pass)
        .then(|| (asked, results.clone()));
    results
}

/// Runs lnetctl and judges every NI.
async fn query(context: CheckContext<'_>) -> Vec<CheckResult> {
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use lfleet_host::{BoundedWorker, FakeClock, FakeCommandRunner, FakeResponse, HostRoot};

    use super::*;
    use crate::checks::{CheckMemory, Prober};
    use crate::config::NodeConfig;

    /// `lnetctl net show -v 3` with one tcp NI at `health`.
    fn net_show(health: u32) -> String {
        format!(
            "net:\n    - net type: lo\n      local NI(s):\n        - nid: 0@lo\n          status: up\n    - net type: tcp\n      local NI(s):\n        - nid: 10.0.0.5@tcp\n          status: up\n          interfaces:\n              0: eth0\n          health stats:\n              health value: {health}\n"
        )
    }

    #[tokio::test]
    async fn a_steady_pass_is_repeated_for_its_time_and_anything_else_is_asked_each_round() {
        let dir = tempfile::tempdir().unwrap();
        let host = HostRoot::new(dir.path());
        let config =
            NodeConfig::from_toml(include_str!("../../../packaging/examples/agent.toml")).unwrap();
        let health = Arc::new(Mutex::new(1000));
        let runner = FakeCommandRunner::new();
        let answer = health.clone();
        runner.on("lnetctl", move |_| {
            FakeResponse::ok(net_show(*answer.lock().unwrap()))
        });
        let clock = FakeClock::at_unix(1_700_000_000);
        let worker = BoundedWorker::new();
        let memory = std::sync::Mutex::new(CheckMemory::default());
        let round = |repeat: Option<Duration>| {
            let context = CheckContext {
                host: &host,
                runner: &runner,
                clock: &clock,
                config: &config,
                prober: Prober::Thread(&worker),
                syscall_deadline: Duration::from_secs(1),
                memory: &memory,
                converging: false,
                readings: None,
                repeat_steady_for: repeat,
            };
            async move {
                let results = run(context).await;
                assert_eq!(results.len(), 1, "{results:?}");
                results[0].outcome
            }
        };
        let asked = || runner.log_lines().len();
        let keep = Some(Duration::from_secs(30));
        // Healthy: asked once, repeated for 30 s, asked again then.
        assert_eq!(round(keep).await, lfleet_types::Outcome::Pass);
        for _ in 0..2 {
            clock.advance(Duration::from_secs(10));
            assert_eq!(round(keep).await, lfleet_types::Outcome::Pass);
        }
        assert_eq!(asked(), 1);
        clock.advance(Duration::from_secs(10));
        round(keep).await;
        assert_eq!(asked(), 2);
        // A probe asked for now runs lnetctl whatever was seen.
        round(None).await;
        assert_eq!(asked(), 3);
        // A dip is seen at the next query and then asked every round.
        *health.lock().unwrap() = 600;
        clock.advance(Duration::from_secs(30));
        assert_eq!(round(keep).await, lfleet_types::Outcome::Unknown);
        for _ in 0..2 {
            clock.advance(Duration::from_secs(10));
            round(keep).await;
        }
        assert_eq!(asked(), 6);
    }
}
