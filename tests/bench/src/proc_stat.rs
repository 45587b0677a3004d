//! A process's CPU time and memory from /proc, and the machine's description.

use std::time::Duration;

/// (CPU seconds, RSS KiB, peak RSS KiB) of a process, and the CPU seconds of the children it
/// has waited for (the commands it ran). The process's own CPU comes from its CPU-time clock
/// (clock_getcpuclockid: nanoseconds, all threads, finished ones too); /proc/PID/stat only
/// has 10 ms ticks, too coarse for a process that uses 80 ms in two minutes. The children's
/// CPU exists only there, in ticks.
pub fn usage(pid: u32) -> Option<(f64, u64, u64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()??
        .max(1) as f64;
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    let cpu = process_cpu(pid)
        .map(|d| d.as_secs_f64())
        .or_else(|| Some((field(11)? + field(12)?) / ticks))?;
    let children = (field(13)? + field(14)?) / ticks;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
    };
    Some((cpu, kib("VmRSS:")?, kib("VmHWM:")?, children))
}

/// Another process's CPU time so far, in nanoseconds, from its CPU-time clock.
fn process_cpu(pid: u32) -> Option<Duration> {
    let clock = nix::time::clock_getcpuclockid(nix::unistd::Pid::from_raw(pid as i32)).ok()?;
    let t = nix::time::clock_gettime(clock).ok()?;
    Some(Duration::new(t.tv_sec() as u64, t.tv_nsec() as u32))
}

/// CPU percent and memory of `pid` over `window`.
pub fn measure(pid: u32, window: Duration) -> serde_json::Value {
    let Some((cpu_before, _, _, children_before)) = usage(pid) else {
        return serde_json::json!(null);
    };
    std::thread::sleep(window);
    let Some((cpu_after, rss, hwm, children_after)) = usage(pid) else {
        return serde_json::json!(null);
    };
    serde_json::json!({
        "cpu_percent": (cpu_after - cpu_before) / window.as_secs_f64() * 100.0,
        "cpu_ms": (cpu_after - cpu_before) * 1000.0,
        "children_cpu_percent": (children_after - children_before) / window.as_secs_f64() * 100.0,
        "rss_kib": rss,
        "peak_rss_kib": hwm,
        "open_fds": open_fds(pid),
        "window_s": window.as_secs_f64(),
    })
}

/// How many files (sockets included) the process holds open now, from /proc/PID/fd.
pub fn open_fds(pid: u32) -> Option<usize> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(|entries| entries.count())
}

/// The process's own CPU time (all threads).
pub fn own_cpu() -> Duration {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_PROCESS_CPUTIME_ID)
        .map(|t| Duration::new(t.tv_sec() as u64, t.tv_nsec() as u32))
        .unwrap_or_default()
}

/// The process's own user and system CPU time so far (all threads, finished ones too).
pub fn own_user_system() -> (Duration, Duration) {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF);
    let duration = |t: nix::sys::time::TimeVal| {
        Duration::new(t.tv_sec().max(0) as u64, (t.tv_usec().max(0) as u32) * 1000)
    };
    usage
        .map(|u| (duration(u.user_time()), duration(u.system_time())))
        .unwrap_or_default()
}

pub fn machine() -> serde_json::Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| t.lines().next().map(str::to_owned))
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    serde_json::json!({"cpu": cpu, "cores": cores, "memory": memory, "kernel": kernel.trim()})
}
