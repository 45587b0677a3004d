//! `lustre.imports`: every osc, mdc and mgc import of each managed mount. FULL and IDLE pass;
//! any other state fails, naming the targets. Import files are found where lctl looks for
//! them (debugfs first, then /proc), so the 2.10 to 2.17 layouts all work; the mount's
//! devices are the ones whose names end in its instance (`lfs getname`).

use std::time::Duration;

use lfleet_host::CommandSpec;
use lfleet_parse::import::parse_import;

use super::{CheckContext, CheckResult, Outcome, fail, result, unknown};

pub const NAME: &str = "lustre.imports";

/// lctl's search order for import files (libcfs/libcfs/util/param.c).
const ROOTS: [&str; 2] = ["sys/kernel/debug/lustre", "proc/fs/lustre"];

pub async fn run(context: CheckContext<'_>) -> Vec<CheckResult> {
    let mut results = Vec::new();
    for want in context.config.desired_mounts() {
        let point = want.mount_point;
        let spec =
            CommandSpec::new("lfs", Duration::from_secs(10)).args(["getname", point.as_str()]);
        let instance = match context.runner.run(&spec).await {
            Ok(output) => output
                .stdout
                .split_whitespace()
                .next()
                .and_then(|name| name.rsplit_once('-'))
                .map(|(_, inst)| inst.to_owned()),
            Err(_) => None,
        };
        let Some(instance) = instance else {
            // Not a mounted Lustre filesystem: mount.present says so.
            continue;
        };
        let mut bad = Vec::new();
        let mut seen = 0;
        for kind in ["osc", "mdc"] {
            for root in ROOTS {
                let dir = format!("{root}/{kind}");
                let Ok(names) = context.host.list_dir(&dir) else {
                    continue;
                };
                for name in names
                    .iter()
                    .map(|n| n.to_string_lossy().into_owned())
                    .filter(|n| n.ends_with(&format!("-{instance}")))
                {
                    match context.host.read_optional(format!("{dir}/{name}/import")) {
                        Ok(Some(text)) => match parse_import(&text) {
                            Ok(import) => {
                                seen += 1;
                                if !import.is_healthy() {
                                    let target = import.target.trim_end_matches("_UUID").to_owned();
                                    bad.push(format!("{target} {}", import.state));
                                }
                            }
                            Err(error) => bad.push(format!("{name} unreadable ({error})")),
                        },
                        Ok(None) => {}
                        Err(error) => bad.push(format!("{name} unreadable ({error})")),
                    }
                }
            }
        }
        let outcome = if seen == 0 && bad.is_empty() {
            unknown(format!("no import files found for instance {instance}"))
        } else if bad.is_empty() {
            Outcome::Pass
        } else {
            fail("import-not-full", bad.join(", "))
        };
        results.push(result(context, NAME, &point, outcome));
    }
    results
}
