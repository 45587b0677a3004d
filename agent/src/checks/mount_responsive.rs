//! `mount.responsive`: statfs and a stat of each mounted managed mount's root, on a bounded
//! worker off the async runtime, at most one in flight per mount. A hang past the deadline is
//! a failure with its length; a mount still hung from an earlier run is reported as such at
//! once, and the agent keeps answering.

use lfleet_host::{Bounded, CommandSpec, statfs_and_stat};
use lfleet_mount::parse_mountinfo;

use super::{CheckContext, CheckResult, Outcome, Prober, fail, result, unknown};

pub const NAME: &str = "mount.responsive";

pub async fn run(context: CheckContext<'_>) -> Vec<CheckResult> {
    let mounted: Vec<String> = match context
        .host
        .read_to_string("proc/self/mountinfo")
        .map_err(|e| e.to_string())
        .and_then(|t| parse_mountinfo(&t).map_err(|e| e.to_string()))
    {
        Ok(mounts) => mounts
            .into_iter()
            .filter(|m| m.fstype == "lustre")
            .map(|m| m.mount_point)
            .collect(),
        Err(error) => return vec![result(context, NAME, "", unknown(error))],
    };
    let mut results = Vec::new();
    for want in context.config.desired_mounts() {
        let point = want.mount_point;
        if !mounted.contains(&point) {
            // Not mounted is mount.present's finding; this check has nothing to probe.
            continue;
        }
        let path = match context.host.resolve(&point) {
            Ok(path) => path,
            Err(error) => {
                results.push(result(context, NAME, &point, unknown(error.to_string())));
                continue;
            }
        };
        let outcome = match context.prober {
            Prober::Thread(worker) => match worker
                .run(&point, context.syscall_deadline, move || {
                    statfs_and_stat(&path)
                })
                .await
            {
                Bounded::Done(Ok(_)) => Outcome::Pass,
                Bounded::Done(Err((path, error))) => fail(
                    "statfs-error",
                    format!("statfs {}: {error}", path.display()),
                ),
                Bounded::TimedOut { after } => {
                    fail("hung", format!("statfs stuck {} s", after.as_secs_f64()))
                }
                Bounded::StillStuck { since } => {
                    fail("hung", format!("statfs stuck {:.0} s", since.as_secs_f64()))
                }
            },
            Prober::Process(program) => {
                let spec =
                    CommandSpec::new(program.display().to_string(), context.syscall_deadline)
                        .arg("probe-statfs")
                        .arg(&path);
                match context.runner.run(&spec).await {
                    Ok(_) => Outcome::Pass,
                    Err(error) if error.is_timeout() => fail(
                        "hung",
                        format!("statfs stuck {} s", context.syscall_deadline.as_secs_f64()),
                    ),
                    Err(error) => fail(
                        "statfs-error",
                        format!("{}{}", error.stdout().trim(), error.stderr().trim()),
                    ),
                }
            }
        };
        results.push(result(context, NAME, &point, outcome));
    }
    results
}
