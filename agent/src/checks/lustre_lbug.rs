//! `lustre.lbug`: the client's own health_check says LBUG or NOT HEALTHY.

use lfleet_parse::health::{Health, parse_health};

use lfleet_types::KnownCheck;

use super::{CheckContext, CheckResult, Verdict, fail, result, unknown};

pub const NAME: KnownCheck = KnownCheck::LustreLbug;

pub fn run(context: CheckContext<'_>) -> Vec<CheckResult> {
    let outcome = match context.host.read_optional("sys/fs/lustre/health_check") {
        Ok(None) => {
            unknown("sys/fs/lustre/health_check is absent: the lustre module is not loaded")
        }
        Err(error) => unknown(lfleet_types::error_chain(&error)),
        Ok(Some(text)) => match parse_health(&text) {
            Health::Healthy => Verdict::Pass,
            Health::Lbug => fail("lbug", "health_check says LBUG: the client needs a reboot"),
            Health::NotHealthy { devices } => fail(
                "not-healthy",
                format!("health_check says NOT HEALTHY ({})", devices.join(", ")),
            ),
            Health::Unrecognized(text) => unknown(format!("health_check says {text:?}")),
        },
    };
    vec![result(context, NAME, "client", outcome)]
}
