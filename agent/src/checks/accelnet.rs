//! `accelnet`: on Azure, each synthetic NIC (driver `hv_netvsc`) has its accelerated-
//! networking VF: a NIC whose driver is mlx4_core, mlx5_core or mana, enslaved to it
//! (`master` points at the synthetic NIC), up, and carrying the traffic (when the synthetic
//! NIC's byte counters moved since the last run, the VF's moved too: netvsc counts VF traffic
//! in the synthetic NIC's totals).
//!
//! Azure removes the VF during host servicing and gives it back, so an absent VF is Unknown
//! ("degraded") for `health.accelnet_grace_seconds` and fails after. Only runs when the
//! configuration says the node has accelerated networking (`health.accelnet`).

use lfleet_types::{AgentEventKind, KnownCheck};

use super::{CheckContext, CheckResult, Verdict, fail, result, unknown};

pub const NAME: KnownCheck = KnownCheck::Accelnet;

const VF_DRIVERS: [&str; 3] = ["mlx4_core", "mlx5_core", "mana"];

/// Traffic below this many bytes on the synthetic NIC between runs says nothing.
const QUIET_BYTES: u64 = 1_000_000;

fn driver(context: CheckContext<'_>, nic: &str) -> Option<String> {
    let text = context
        .host
        .read_optional(format!("sys/class/net/{nic}/device/uevent"))
        .ok()??;
    text.lines()
        .find_map(|l| l.strip_prefix("DRIVER="))
        .map(|d| d.trim().to_owned())
}

fn bytes(context: CheckContext<'_>, nic: &str) -> Option<u64> {
    let read = |name: &str| -> Option<u64> {
        context
            .host
            .read_optional(format!("sys/class/net/{nic}/statistics/{name}"))
            .ok()??
            .trim()
            .parse()
            .ok()
    };
    Some(read("rx_bytes")? + read("tx_bytes")?)
}

pub fn run(context: CheckContext<'_>) -> Vec<CheckResult> {
    let policy = &context.config.health;
    if !policy.accelnet {
        return Vec::new();
    }
    let names: Vec<String> = match context.host.list_dir("sys/class/net") {
        Ok(names) => names
            .into_iter()
            .map(|n| n.to_string_lossy().into_owned())
            .collect(),
        Err(error) => {
            return vec![result(
                context,
                NAME,
                "",
                unknown(lfleet_types::error_chain(&error)),
            )];
        }
    };
    let synthetic: Vec<&String> = names
        .iter()
        .filter(|n| driver(context, n).as_deref() == Some("hv_netvsc"))
        .collect();
    if synthetic.is_empty() {
        return vec![result(
            context,
            NAME,
            "",
            unknown(
                "no hv_netvsc NIC: accelerated networking is configured but this is not an Azure VM's network",
            ),
        )];
    }
    let now = context.clock.wall_unix_ms();
    let mut results = Vec::new();
    for nic in synthetic {
        let vf = names.iter().find(|candidate| {
            *candidate != nic
                && context
                    .host
                    .read_link(format!("sys/class/net/{candidate}/master"))
                    .ok()
                    .and_then(|target| target.file_name().map(|f| f.to_string_lossy().into_owned()))
                    .as_deref()
                    == Some(nic.as_str())
                && driver(context, candidate).is_some_and(|d| VF_DRIVERS.contains(&d.as_str()))
        });
        let outcome = match vf {
            None => {
                let since = *context
                    .memory()
                    .vf_absent_since
                    .entry(nic.clone())
                    .or_insert(now);
                if since == now {
                    context.event(
                        AgentEventKind::VfAbsent,
                        nic,
                        "the accelerated-networking VF is gone",
                    );
                }
                context.memory().vf_traffic.remove(nic);
                let absent_for = now.saturating_sub(since) / 1000;
                if absent_for >= policy.accelnet_grace_seconds {
                    fail(
                        "vf-missing",
                        format!(
                            "{nic} has had no VF for {absent_for} s: traffic takes the slow synthetic path"
                        ),
                    )
                } else {
                    unknown(format!(
                        "degraded: {nic} has had no VF for {absent_for} s (fails after {} s; Azure host servicing removes it briefly)",
                        policy.accelnet_grace_seconds
                    ))
                }
            }
            Some(vf) => {
                if context.memory().vf_absent_since.remove(nic).is_some() {
                    context.event(AgentEventKind::VfReturned, nic, format!("VF {vf} is back"));
                }
                let operstate = context
                    .host
                    .read_optional(format!("sys/class/net/{vf}/operstate"))
                    .ok()
                    .flatten()
                    .unwrap_or_default();
                if operstate.trim() != "up" {
                    fail(
                        "vf-down",
                        format!("VF {vf} of {nic} is {}", operstate.trim()),
                    )
                } else {
                    match (bytes(context, nic), bytes(context, vf)) {
                        (Some(synthetic_bytes), Some(vf_bytes)) => {
                            let previous = context
                                .memory()
                                .vf_traffic
                                .insert(nic.clone(), (synthetic_bytes, vf_bytes));
                            match previous {
                                Some((old_synthetic, old_vf))
                                    if synthetic_bytes.saturating_sub(old_synthetic)
                                        > QUIET_BYTES
                                        && vf_bytes <= old_vf =>
                                {
                                    fail(
                                        "vf-idle",
                                        format!(
                                            "{nic} moved {} bytes but its VF {vf} none: traffic bypasses the VF",
                                            synthetic_bytes - old_synthetic
                                        ),
                                    )
                                }
                                _ => Verdict::Pass,
                            }
                        }
                        _ => unknown(format!("byte counters of {nic} or {vf} unreadable")),
                    }
                }
            }
        };
        results.push(result(context, NAME, nic, outcome));
    }
    results
}
