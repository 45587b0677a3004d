//! Per mount capacity from `llite.<fsname>-<instance>.kbytes{total,free,avail}` and
//! `files{total,free}` (in /proc on 2.10, sysfs after). Reading these makes the client send
//! statfs RPCs, so this runs on its own slow, time-boxed task, never in the fast cycle.

use super::params::find_devices;
use super::{CycleInput, Sample};

pub const NAME: &str = "capacity";

const FILES: [(&str, &str, f64); 5] = [
    ("kbytestotal", "bytes_total", 1024.0),
    ("kbytesfree", "bytes_free", 1024.0),
    ("kbytesavail", "bytes_avail", 1024.0),
    ("filestotal", "files_total", 1.0),
    ("filesfree", "files_free", 1.0),
];

pub fn collect(input: &CycleInput<'_>) -> Vec<Sample> {
    let devices = find_devices(input.host, "llite", "kbytesavail");
    let mut samples = Vec::new();
    for mount in input.mounts {
        let device = format!("{}-{}", mount.fsname, mount.instance);
        let Some(avail_path) = devices.get(&device) else {
            samples.push(Sample::unavailable(
                NAME,
                &mount.mount_point,
                input.unix_ms,
                format!("no llite.{device}.kbytesavail in lctl's search path"),
            ));
            continue;
        };
        let dir = avail_path.trim_end_matches("/kbytesavail");
        let mut sample = Sample::new(NAME, &mount.mount_point, input.unix_ms);
        let mut errors = Vec::new();
        for (file, name, scale) in FILES {
            match input.host.read_optional(format!("{dir}/{file}")) {
                Ok(Some(text)) => match text.trim().parse::<u64>() {
                    Ok(value) => {
                        sample.values.insert(name.into(), value as f64 * scale);
                    }
                    Err(_) => errors.push(format!("{file}: {:?}", text.trim())),
                },
                Ok(None) => {}
                Err(error) => errors.push(format!("{file}: {}", lfleet_types::ErrorChain(&error))),
            }
        }
        if sample.values.is_empty() {
            sample.unavailable = Some(errors.join(", "));
        } else if !errors.is_empty() {
            sample
                .flags
                .push(format!("unreadable: {}", errors.join(", ")));
        }
        samples.push(sample);
    }
    samples
}
