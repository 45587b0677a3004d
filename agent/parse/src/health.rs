//! `health_check`: `healthy`, `NOT HEALTHY` (procfs-era and DDN builds print `device <name>
//! reported unhealthy` lines first), or `LBUG`.

/// The client's own verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Healthy,
    /// With the devices that reported unhealthy, when the file names them.
    NotHealthy {
        devices: Vec<String>,
    },
    Lbug,
    /// Text no rule knows: reported as it is, never taken as healthy.
    Unrecognized(String),
}

pub fn parse_health(text: &str) -> Health {
    let text = text.replace('\0', "");
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if lines.iter().any(|l| l.contains("LBUG")) {
        return Health::Lbug;
    }
    if lines.contains(&"NOT HEALTHY") {
        let devices = lines
            .iter()
            .filter_map(|l| {
                l.strip_prefix("device ")
                    .and_then(|rest| rest.strip_suffix(" reported unhealthy"))
            })
            .map(str::to_owned)
            .collect();
        return Health::NotHealthy { devices };
    }
    match lines.as_slice() {
        ["healthy"] => Health::Healthy,
        _ => Health::Unrecognized(text.trim().to_owned()),
    }
}
