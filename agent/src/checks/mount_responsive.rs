//! `mount.responsive`: statfs and a stat of each mounted managed mount's root, on a bounded
//! worker off the async runtime, at most one in flight per mount. A hang past the deadline is
//! a failure with its length and, where the kernel shows it, the wchan of the stuck task (the
//! kernel function it is blocked in); a mount still hung from an earlier run is reported as
//! such at once, and the agent keeps answering.
//!
//! The one-shot probe child (`probe-statfs --report-after-ms`) reports its own stuck thread's
//! wchan at 80% of the deadline and exits with [`PROBE_STUCK_EXIT`].

use lfleet_host::{Bounded, CommandSpec, statfs_and_stat, thread_wchan};
use lfleet_mount::parse_mountinfo;

use lfleet_types::KnownCheck;

use super::{CheckContext, CheckResult, Prober, Verdict, fail, result, unknown};

pub const NAME: KnownCheck = KnownCheck::MountResponsive;

/// The probe child's exit status when its statfs is still blocked.
pub const PROBE_STUCK_EXIT: u8 = 3;

/// ` (wchan request_wait_answer)`, or nothing when the kernel does not show it.
fn wchan_note(wchan: Option<&str>) -> String {
    wchan.map(|w| format!(" (wchan {w})")).unwrap_or_default()
}

pub async fn run(context: CheckContext<'_>) -> Vec<CheckResult> {
    let mounted: Vec<String> = match context
        .host
        .read_to_string("proc/self/mountinfo")
        .map_err(|e| lfleet_types::error_chain(&e))
        .and_then(|t| parse_mountinfo(&t).map_err(|e| lfleet_types::error_chain(&e)))
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
                results.push(result(
                    context,
                    NAME,
                    &point,
                    unknown(lfleet_types::error_chain(&error)),
                ));
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
                Bounded::Done(Ok(_)) => Verdict::Pass,
                Bounded::Done(Err((path, error))) => fail(
                    "statfs-error",
                    format!("statfs {}: {error}", path.display()),
                ),
                Bounded::TimedOut { after } => fail(
                    "hung",
                    format!(
                        "statfs stuck {} s{}",
                        after.as_secs_f64(),
                        wchan_note(worker.thread_id(&point).and_then(thread_wchan).as_deref())
                    ),
                ),
                Bounded::StillStuck { since } => fail(
                    "hung",
                    format!(
                        "statfs stuck {:.0} s{}",
                        since.as_secs_f64(),
                        wchan_note(worker.thread_id(&point).and_then(thread_wchan).as_deref())
                    ),
                ),
            },
            Prober::Process(program) => {
                let report_after = context.syscall_deadline.mul_f64(0.8);
                let spec =
                    CommandSpec::new(program.display().to_string(), context.syscall_deadline)
                        .arg("probe-statfs")
                        .arg("--report-after-ms")
                        .arg(report_after.as_millis().to_string())
                        .arg(&path);
                match context.runner.run(&spec).await {
                    Ok(_) => Verdict::Pass,
                    Err(error)
                        if error.status()
                            == Some(lfleet_host::ExitStatus::Code(i32::from(PROBE_STUCK_EXIT))) =>
                    {
                        let wchan = error
                            .stdout()
                            .lines()
                            .find_map(|l| l.strip_prefix("wchan "))
                            .map(str::trim);
                        fail(
                            "hung",
                            format!(
                                "statfs stuck {} s{}",
                                context.syscall_deadline.as_secs_f64(),
                                wchan_note(wchan)
                            ),
                        )
                    }
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
