//! `lustre.imports`: every osc, mdc and mgc import of each managed mount. FULL and IDLE pass;
//! any other state fails, naming the targets. Import files are found where lctl looks for
//! them (debugfs first, then /proc), so the 2.10 to 2.17 layouts all work; the mount's
//! devices are the ones whose names end in its instance.
//!
//! Right after a telemetry cycle the mounts, their instances and their imports come from
//! what it read ([`CheckContext`]'s `readings`), so a round reads mountinfo, the device
//! listings and each import file once; otherwise they are read here.
//!
//! The instance comes from the llite device listing when the filesystem is mounted once, so a
//! round forks nothing and never touches the mount. Only a filesystem mounted twice needs
//! `lfs getname`, which opens the mount point and hangs with a hung mount: it runs under the
//! mount's probe guard (the `BoundedWorker` key `mount.responsive` probes on), never while a
//! probe of that mount is stuck, and with the probe deadline, so a hung mount holds at most
//! one stuck probe, thread or process, whatever the number of rounds.
//!
//! Events, reported once each: `import-reconnect` (connection_attempts or generation rose
//! since the last run), `import-failover` (current_connection changed) and `evicted` (the
//! kernel's "This client was evicted by" message in /dev/kmsg, read without blocking).

use lfleet_host::CommandSpec;
use lfleet_parse::import::parse_import;

use lfleet_types::{AgentEventKind, KnownCheck};

use super::memory::ImportSeen;
use super::{CheckContext, CheckResult, Prober, Verdict, fail, kmsg, result, unknown};
use crate::telemetry::params::{find_devices, lustre_mounts, sole_instance};

/// The most of /dev/kmsg read per run.
const KMSG_LIMIT: usize = 1 << 20;

pub const NAME: KnownCheck = KnownCheck::LustreImports;

/// lctl's search order for import files (libcfs/libcfs/util/param.c).
const ROOTS: [&str; 2] = ["sys/kernel/debug/lustre", "proc/fs/lustre"];

/// `lfs getname POINT` under the mount's probe guard; the instance, or why there is none.
async fn getname(context: CheckContext<'_>, point: &str) -> Result<Option<String>, Verdict> {
    let _claim = match context.prober {
        Prober::Thread(worker) => match worker.claim(point) {
            Ok(claim) => Some(claim),
            Err(since) => {
                return Err(unknown(format!(
                    "the mount's probe has been stuck for {:.0} s; its instance is not asked",
                    since.as_secs_f64()
                )));
            }
        },
        // A one-shot check exits after its round: the command's deadline is the bound.
        Prober::Process(_) => None,
    };
    let spec = CommandSpec::new("lfs", context.syscall_deadline).args(["getname", point]);
    match context.runner.run(&spec).await {
        Ok(output) => Ok(output
            .stdout
            .split_whitespace()
            .next()
            .and_then(|name| name.rsplit_once('-'))
            .map(|(_, inst)| inst.to_owned())),
        Err(error) if error.is_timeout() => Err(unknown(format!(
            "lfs getname {point} did not answer within {:?}: the mount hangs",
            context.syscall_deadline
        ))),
        // Not a mounted Lustre filesystem: mount.present says so.
        Err(_) => Ok(None),
    }
}

pub async fn run(context: CheckContext<'_>) -> Vec<CheckResult> {
    evictions(context);
    let mut results = Vec::new();
    // Read only for a mount the cycle's readings do not have (or with no readings).
    let mut own: Option<Result<OwnLook, String>> = None;
    for want in context.config.desired_mounts() {
        let point = want.mount_point;
        let from_cycle = context
            .readings
            .and_then(|r| r.mounts.iter().find(|m| m.mount_point == point));
        let instance = if let Some(mount) = from_cycle {
            mount.instance.clone()
        } else {
            let OwnLook { mounted, llite } =
                match own.get_or_insert_with(|| mounts_and_llite(context)) {
                    Ok(found) => &*found,
                    Err(error) => return vec![result(context, NAME, "", unknown(error.clone()))],
                };
            let Some((_, fsname)) = mounted.iter().find(|(p, _)| *p == point) else {
                // Not mounted: mount.present says so.
                continue;
            };
            let once = mounted.iter().filter(|(_, f)| f == fsname).count() == 1;
            match sole_instance(llite, fsname).filter(|_| once) {
                Some(instance) => instance.to_owned(),
                None => match getname(context, &point).await {
                    Ok(Some(instance)) => instance,
                    Ok(None) => continue,
                    Err(verdict) => {
                        results.push(result(context, NAME, &point, verdict));
                        continue;
                    }
                },
            }
        };
        let mut bad = Vec::new();
        let mut seen = 0;
        for (name, read) in imports(context, &instance) {
            match read {
                Ok(import) => {
                    seen += 1;
                    churn(context, &name, &import);
                    if !import.is_healthy() {
                        let target = import.target.trim_end_matches("_UUID").to_owned();
                        bad.push(format!("{target} {}", import.state));
                    }
                }
                Err(why) => bad.push(format!("{name} unreadable ({why})")),
            }
        }
        let outcome = if seen == 0 && bad.is_empty() {
            unknown(format!("no import files found for instance {instance}"))
        } else if bad.is_empty() {
            Verdict::Pass
        } else {
            fail("import-not-full", bad.join(", "))
        };
        results.push(result(context, NAME, &point, outcome));
    }
    results
}

/// What the check finds for itself without a cycle's readings.
struct OwnLook {
    /// The Lustre mounts in mountinfo: (mount point, fsname).
    mounted: Vec<(String, String)>,
    /// The llite devices listed.
    llite: Vec<String>,
}

/// Reads mountinfo and lists the llite devices.
fn mounts_and_llite(context: CheckContext<'_>) -> Result<OwnLook, String> {
    let mounted = context
        .host
        .read_to_string("proc/self/mountinfo")
        .map_err(|e| lfleet_types::error_chain(&e))
        .and_then(|text| lustre_mounts(&text))?;
    let llite = find_devices(context.host, "llite", "stats")
        .into_keys()
        .collect();
    Ok(OwnLook { mounted, llite })
}

/// The imports of a mount instance, by device name: from the telemetry cycle that just ran
/// when it found them (a device it could not read is read again here, so a file gone in
/// between is skipped as below), else each osc and mdc device in lctl's roots read here. An
/// import file that is not there is left out.
fn imports(
    context: CheckContext<'_>,
    instance: &str,
) -> Vec<(String, Result<lfleet_parse::import::Import, String>)> {
    if let Some(found) = context.readings.and_then(|r| r.imports_of(instance)) {
        return found
            .into_iter()
            .filter_map(|(name, read)| match read {
                Ok(import) => Some((name.to_owned(), Ok(import.clone()))),
                Err(_) => {
                    let kind = if name.contains("-mdc-") { "mdc" } else { "osc" };
                    ROOTS
                        .iter()
                        .find_map(|root| read_import(context, &format!("{root}/{kind}"), name))
                }
            })
            .collect();
    }
    let mut found = Vec::new();
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
                found.extend(read_import(context, &dir, &name));
            }
        }
    }
    // In name order, as the cycle's readings are.
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

/// `dir/name/import` read and parsed; `None` when it is not there.
fn read_import(
    context: CheckContext<'_>,
    dir: &str,
    name: &str,
) -> Option<(String, Result<lfleet_parse::import::Import, String>)> {
    let read = match context.host.read_optional(format!("{dir}/{name}/import")) {
        Ok(Some(text)) => parse_import(&text).map_err(|e| lfleet_types::ErrorChain(&e).to_string()),
        Ok(None) => return None,
        Err(error) => Err(lfleet_types::ErrorChain(&error).to_string()),
    };
    Some((name.to_owned(), read))
}

/// Compares an import with the last run's and reports reconnects and failovers.
fn churn(context: CheckContext<'_>, device: &str, import: &lfleet_parse::import::Import) {
    let now = ImportSeen {
        connection_attempts: import.connection_attempts,
        generation: import.generation,
        current_connection: import.current_connection.clone(),
    };
    let before = context
        .memory()
        .imports
        .insert(device.to_owned(), now.clone());
    let Some(before) = before else {
        return;
    };
    let rose =
        |old: Option<u64>, new: Option<u64>| matches!((old, new), (Some(o), Some(n)) if n > o);
    if rose(before.connection_attempts, now.connection_attempts)
        || rose(before.generation, now.generation)
    {
        context.event(
            AgentEventKind::ImportReconnect,
            device,
            format!(
                "connection_attempts {} -> {}, generation {} -> {} (state {})",
                before.connection_attempts.unwrap_or(0),
                now.connection_attempts.unwrap_or(0),
                before.generation.unwrap_or(0),
                now.generation.unwrap_or(0),
                import.state
            ),
        );
    }
    if before.current_connection.is_some()
        && now.current_connection.is_some()
        && before.current_connection != now.current_connection
    {
        context.event(
            AgentEventKind::ImportFailover,
            device,
            format!(
                "current_connection {} -> {}",
                before.current_connection.unwrap_or_default(),
                now.current_connection.unwrap_or_default()
            ),
        );
    }
}

/// Reports the kernel's eviction messages that arrived since the last run.
fn evictions(context: CheckContext<'_>) {
    let after = context.memory().kmsg_last_seq;
    let records = match kmsg::read_new(context.host, after, KMSG_LIMIT) {
        Ok(records) => records,
        Err(error) => {
            tracing::warn!(%error, "cannot read kernel messages; evictions are seen only as import states");
            return;
        }
    };
    if let Some(last) = records.iter().map(|r| r.seq).max() {
        context.memory().kmsg_last_seq = Some(last);
    }
    for record in records {
        // lustre/ptlrpc/import.c: "<device>: This client was evicted by <target>; ..."
        if let Some(at) = record.text.find("This client was evicted by") {
            let device = record.text[..at]
                .trim_end_matches([':', ' '])
                .rsplit(' ')
                .next()
                .unwrap_or("")
                .to_owned();
            context.event(AgentEventKind::Evicted, &device, record.text.clone());
        }
    }
}
