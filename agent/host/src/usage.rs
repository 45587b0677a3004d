//! This process's own resource use, from its /proc entry: resident memory (`statm`) and CPU
//! time (`stat` fields 14 and 15, in clock ticks).

/// What the agent costs the node.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OwnUsage {
    pub rss_bytes: u64,
    pub cpu_seconds: f64,
}

/// Reads this process's usage; `None` when /proc is not readable.
pub fn own_usage() -> Option<OwnUsage> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let resident_pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE).ok()??;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name is in parentheses and may hold spaces: count fields after the last ')'.
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After ')' the first field is field 3 (state); utime is 14, stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok()??;
    Some(OwnUsage {
        rss_bytes: resident_pages * page as u64,
        cpu_seconds: (utime + stime) as f64 / ticks as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_uses_memory_and_cpu() {
        let mut x = 0u64;
        for i in 0..3_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        let usage = own_usage().expect("/proc/self is readable");
        assert!(usage.rss_bytes > 1 << 20, "{usage:?} {x}");
        assert!(usage.cpu_seconds >= 0.0);
    }
}
