//! `lustre.client`: the lustre module is loaded, it is the configured client version, the
//! running kernel has the module installed, and every other installed kernel has one too (a
//! kernel without it is `reboot-unsafe`: the next boot comes up without Lustre).
//!
//! Reads sysfs and /lib/modules only; a node with no managed mount has nothing to check.

use crate::install::{find_module, installed_kernels, running_kernel};

use lfleet_types::KnownCheck;

use super::{CheckContext, CheckResult, Verdict, fail, result, unknown};

pub const NAME: KnownCheck = KnownCheck::LustreClient;

pub fn run(context: CheckContext<'_>) -> Vec<CheckResult> {
    if context.config.mounts.is_empty() {
        return Vec::new();
    }
    let host = context.host;
    let wanted = &context.config.client.lustre_version;
    let running = match running_kernel(host) {
        Ok(kernel) => kernel,
        Err(error) => {
            return vec![result(
                context,
                NAME,
                "client",
                unknown(lfleet_types::error_chain(&error)),
            )];
        }
    };
    let mut results = Vec::new();
    let loaded = host.read_optional("sys/module/lustre/version");
    let module = find_module(host, &running, "lustre");
    let outcome = match (loaded, module) {
        (Err(error), _) | (_, Err(error)) => unknown(lfleet_types::error_chain(&error)),
        (Ok(None), Ok(None)) => fail(
            "module-missing",
            format!("no lustre module is installed for the running kernel {running}"),
        ),
        (Ok(None), Ok(Some(_))) => fail("module-not-loaded", "the lustre module is not loaded"),
        (Ok(Some(version)), _) if !wanted.matches_module(&version) => fail(
            "stale-module",
            format!(
                "the loaded lustre module is {} but the configured client is {wanted}",
                version.trim()
            ),
        ),
        (Ok(Some(_)), Ok(None)) => fail(
            "module-missing",
            format!(
                "the lustre module is loaded but none is installed for the running kernel {running} (removed under it?)"
            ),
        ),
        (Ok(Some(_)), Ok(Some(_))) => Verdict::Pass,
    };
    results.push(result(context, NAME, "client", outcome));
    match installed_kernels(host) {
        Ok(kernels) => {
            for kernel in kernels.iter().filter(|k| **k != running) {
                let outcome = match find_module(host, kernel, "lustre") {
                    Ok(Some(_)) => Verdict::Pass,
                    Ok(None) => fail(
                        "reboot-unsafe",
                        format!(
                            "kernel {kernel} is installed but has no Lustre client: a reboot into it comes up without Lustre"
                        ),
                    ),
                    Err(error) => unknown(lfleet_types::error_chain(&error)),
                };
                results.push(result(context, NAME, &format!("kernel {kernel}"), outcome));
            }
        }
        Err(error) => results.push(result(
            context,
            NAME,
            "kernels",
            unknown(lfleet_types::error_chain(&error)),
        )),
    }
    results
}
