//! `mount.present`: each managed mount is in mountinfo, as Lustre, from the desired source.
//! Reads /proc/self/mountinfo only, so it never blocks.

use lfleet_mount::parse_mountinfo;
use lfleet_mount::plan::normalize_source;

use lfleet_types::KnownCheck;

use super::{CheckContext, CheckResult, Verdict, fail, result, unknown};

pub const NAME: KnownCheck = KnownCheck::MountPresent;

pub fn run(context: CheckContext<'_>) -> Vec<CheckResult> {
    let mounts = match context
        .host
        .read_to_string("proc/self/mountinfo")
        .map_err(|e| lfleet_types::error_chain(&e))
        .and_then(|t| parse_mountinfo(&t).map_err(|e| lfleet_types::error_chain(&e)))
    {
        Ok(mounts) => mounts,
        Err(error) => return vec![result(context, NAME, "", unknown(error))],
    };
    context
        .config
        .desired_mounts()
        .iter()
        .map(|want| {
            let found = mounts
                .iter()
                .rev()
                .find(|m| m.mount_point == want.mount_point);
            let outcome = match found {
                None => fail(
                    "not-mounted",
                    format!("{} is not mounted", want.mount_point),
                ),
                Some(m) if m.fstype != "lustre" => fail(
                    "not-lustre",
                    format!(
                        "{} is a {} mount of {}",
                        want.mount_point, m.fstype, m.source
                    ),
                ),
                Some(m) if normalize_source(&m.source) != normalize_source(&want.source) => fail(
                    "wrong-source",
                    format!(
                        "{} is mounted from {}, not {}",
                        want.mount_point, m.source, want.source
                    ),
                ),
                Some(_) => Verdict::Pass,
            };
            result(context, NAME, &want.mount_point, outcome)
        })
        .collect()
}
