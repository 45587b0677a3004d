//! How the `lfleet` CLI shows the fleet to a person: tables whose columns fit long CycleCloud
//! names and the terminal, rates in B/s with SI prefixes, times in the operator's zone (or the
//! one given), node lists compressed as `sinfo` prints them. `--json` bypasses all of this
//! (the serde form of the views, raw numbers). Pure: the caller passes the time and the zone,
//! so the golden tests pin the output.

use comfy_table::{ContentArrangement, Table, presets};
use lfleet_types::fleet::{
    DrainRecord, FilesystemSummary, FleetEvent, IncidentView, NodeDetail, NodeSummary, UpgradeView,
};
use lfleet_types::{Outcome, ReconcileStatus};

use crate::hostlist;

/// Where times are shown.
#[derive(Debug, Clone, Copy)]
pub enum Zone {
    /// The operator's (TZ, /etc/localtime).
    Local,
    /// A fixed offset from UTC, in seconds (the golden tests use 0).
    Fixed(i32),
}

/// How output is laid out.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    /// Now, for "ago" columns.
    pub now_ms: i64,
    pub zone: Zone,
    /// The width tables may take; `None`: as wide as their content.
    pub width: Option<u16>,
}

/// A rate in bytes per second: `unknown` when it is not known (never 0 for unknown).
pub fn rate(value: Option<f64>) -> String {
    match value {
        None => "unknown".into(),
        Some(value) => format!("{}/s", bytes_si(value)),
    }
}

fn bytes_si(value: f64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut value = value.max(0.0);
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} B")
    } else if value < 10.0 {
        format!("{value:.2} {}", UNITS[unit])
    } else if value < 100.0 {
        format!("{value:.1} {}", UNITS[unit])
    } else {
        format!("{value:.0} {}", UNITS[unit])
    }
}

/// A wall-clock time: `2026-11-26 23:40:01` in the style's zone (`-` for none).
pub fn time(unix_ms: i64, style: &Style) -> String {
    use chrono::TimeZone;
    if unix_ms <= 0 {
        return "-".into();
    }
    let format = "%Y-%m-%d %H:%M:%S";
    match style.zone {
        Zone::Local => chrono::Local
            .timestamp_millis_opt(unix_ms)
            .single()
            .map(|t| t.format(format).to_string()),
        Zone::Fixed(seconds) => chrono::FixedOffset::east_opt(seconds)
            .and_then(|zone| zone.timestamp_millis_opt(unix_ms).single())
            .map(|t| t.format(format).to_string()),
    }
    .unwrap_or_else(|| "-".into())
}

/// How long ago: `4 s`, `12 min`, `3 h`, `2 d`.
pub fn ago(unix_ms: i64, style: &Style) -> String {
    if unix_ms <= 0 {
        return "never".into();
    }
    let seconds = ((style.now_ms - unix_ms) / 1000).max(0);
    match seconds {
        0..=119 => format!("{seconds} s ago"),
        120..=7199 => format!("{} min ago", seconds / 60),
        7200..=172_799 => format!("{} h ago", seconds / 3600),
        _ => format!("{} d ago", seconds / 86_400),
    }
}

/// A borderless table for `style`'s width; its rows are added by the caller, then [`finish`].
fn table(style: &Style, header: &[&str]) -> Table {
    let mut table = Table::new();
    table.load_preset(presets::NOTHING);
    match style.width {
        Some(width) => {
            table
                .set_content_arrangement(ContentArrangement::Dynamic)
                .set_width(width);
        }
        None => {
            table.set_content_arrangement(ContentArrangement::Disabled);
        }
    }
    table.set_header(header.to_vec());
    // The first column names things (nodes, filesystems): never broken across lines; the
    // others wrap to fit the terminal.
    if let Some(first) = table.column_mut(0) {
        first.set_constraint(comfy_table::ColumnConstraint::ContentWidth);
    }
    table
}

fn finish(table: Table) -> String {
    let mut text: String = table
        .lines()
        .map(|line| line.trim_end().to_owned())
        .collect::<Vec<_>>()
        .join("\n");
    text.push('\n');
    text
}

/// What fails or is unknown on a node, in a few words.
fn problems(node: &NodeSummary) -> String {
    let bad: Vec<String> = node
        .conditions
        .iter()
        .filter(|c| c.outcome != Outcome::Pass)
        .map(|c| {
            format!(
                "{} {} {}",
                c.check,
                c.subject,
                if c.code.is_empty() {
                    c.outcome.as_str()
                } else {
                    &c.code
                }
            )
        })
        .collect();
    if bad.is_empty() {
        "-".into()
    } else {
        bad.join("; ")
    }
}

/// `lfleet nodes`.
pub fn nodes(nodes: &[NodeSummary], style: &Style) -> String {
    let mut table = table(
        style,
        &[
            "NODE", "HEALTH", "GEN", "MOUNTS", "KERNEL", "SEEN", "PROBLEMS",
        ],
    );
    for node in nodes {
        let mounted = node.mounts.iter().filter(|m| m.mounted).count();
        table.add_row(vec![
            node.name.clone(),
            node.health.to_string(),
            format!("{}/{}", node.applied_generation, node.desired_generation),
            format!("{mounted}/{}", node.mounts.len()),
            node.kernel_release.clone(),
            ago(node.last_seen_unix_ms, style),
            problems(node),
        ]);
    }
    finish(table)
}

/// `lfleet node NAME`.
pub fn node(detail: &NodeDetail, style: &Style) -> String {
    let summary = &detail.summary;
    let mut out = format!(
        "{}  {}  generation {}/{}  seen {}\n  kernel {}  {}  client {}\n  slurm {}  role {}  nodearray {}\n",
        summary.name,
        summary.health,
        summary.applied_generation,
        summary.desired_generation,
        ago(summary.last_seen_unix_ms, style),
        summary.kernel_release,
        detail.distro,
        if detail.lustre_client_version.is_empty() {
            "none"
        } else {
            &detail.lustre_client_version
        },
        summary.slurm_node_name,
        summary.role.map_or("-".to_owned(), |r| r.to_string()),
        if summary.nodearray.is_empty() {
            "-"
        } else {
            &summary.nodearray
        },
    );
    out.push_str(&format!(
        "  reconcile {}{}\n",
        match detail.reconcile {
            ReconcileStatus::NotYetRun => "not yet run",
            ReconcileStatus::Running => "running",
            ReconcileStatus::Idle => "idle",
            ReconcileStatus::Unrecognized => "unrecognized",
        },
        detail
            .next_retry_unix_ms
            .map(|at| format!(", next retry {}", time(at, style)))
            .unwrap_or_default()
    ));
    let mut conditions = table(
        style,
        &["OUTCOME", "CHECK", "SUBJECT", "CODE", "SINCE", "DETAIL"],
    );
    for c in &summary.conditions {
        conditions.add_row(vec![
            c.outcome.to_string(),
            c.check.to_string(),
            c.subject.clone(),
            c.code.clone(),
            time(c.since_unix_ms, style),
            c.detail.clone(),
        ]);
    }
    out.push('\n');
    out.push_str(&finish(conditions));
    let mut mounts = table(style, &["MOUNT", "SOURCE", "STATE", "READ", "WRITE"]);
    for m in &summary.mounts {
        mounts.add_row(vec![
            m.mount_point.clone(),
            m.source.clone(),
            if m.mounted { "mounted" } else { "NOT MOUNTED" }.to_owned(),
            rate(m.read_bytes_per_second),
            rate(m.write_bytes_per_second),
        ]);
    }
    out.push('\n');
    out.push_str(&finish(mounts));
    let failed: Vec<String> = detail
        .items
        .iter()
        .filter(|i| !i.ok())
        .map(|i| {
            format!(
                "  {} {}: {} {}",
                i.kind,
                i.id,
                i.failure.map(|f| f.to_string()).unwrap_or_default(),
                i.message
            )
        })
        .collect();
    if !failed.is_empty() {
        out.push_str("\nfailed items\n");
        out.push_str(&failed.join("\n"));
        out.push('\n');
    }
    if !detail.events.is_empty() {
        out.push_str("\nrecent events\n");
        out.push_str(&events(&detail.events, style));
    }
    out
}

/// `lfleet fs`.
pub fn filesystems(list: &[FilesystemSummary], style: &Style) -> String {
    let mut table = table(
        style,
        &[
            "FILESYSTEM",
            "MOUNT",
            "SOURCE",
            "CLIENTS",
            "READ",
            "WRITE",
            "IMPORTS",
        ],
    );
    for f in list {
        let imports: Vec<String> = f
            .targets
            .iter()
            .flat_map(|t| {
                t.nodes_by_state
                    .iter()
                    .map(move |(state, count)| format!("{state} {count}"))
            })
            .collect();
        table.add_row(vec![
            f.name.clone(),
            f.mount_point.clone(),
            f.source.clone(),
            format!("{}/{}", f.clients_mounted, f.clients_expected),
            rate(Some(f.read_bytes_per_second)),
            rate(Some(f.write_bytes_per_second)),
            if imports.is_empty() {
                "-".into()
            } else {
                imports.join(", ")
            },
        ]);
    }
    finish(table)
}

/// `lfleet events`.
pub fn events(list: &[FleetEvent], style: &Style) -> String {
    let mut table = table(style, &["TIME", "NODE", "SOURCE", "KIND", "DETAIL"]);
    for e in list {
        table.add_row(vec![
            time(e.at_unix_ms, style),
            if e.node.is_empty() {
                "-".to_owned()
            } else {
                e.node.clone()
            },
            e.source.clone(),
            e.kind.clone(),
            e.detail.clone(),
        ]);
    }
    finish(table)
}

/// `lfleet incidents`: the nodes as a compressed host list.
pub fn incidents(list: &[IncidentView], style: &Style) -> String {
    let mut table = table(
        style,
        &[
            "STATE",
            "CHECK",
            "FILESYSTEM",
            "OPENED",
            "CLOSED",
            "NODES",
            "WHICH",
        ],
    );
    for i in list {
        table.add_row(vec![
            if i.closed_unix_ms.is_none() {
                "OPEN".to_owned()
            } else {
                "closed".to_owned()
            },
            i.check.clone(),
            i.filesystem.clone(),
            time(i.opened_unix_ms, style),
            i.closed_unix_ms.map_or("-".to_owned(), |t| time(t, style)),
            i.node_count.to_string(),
            hostlist::compress(&i.affected_nodes),
        ]);
    }
    finish(table)
}

/// `lfleet drains`.
pub fn drains(list: &[DrainRecord], style: &Style) -> String {
    let mut table = table(
        style,
        &[
            "NODE",
            "LFLEET ID",
            "STATUS",
            "SLURM",
            "USER",
            "SINCE",
            "REASON",
        ],
    );
    for d in list {
        table.add_row(vec![
            d.node.clone(),
            if d.by_lfleet {
                d.drain_id.clone()
            } else {
                "-".to_owned()
            },
            d.status.clone(),
            d.slurm_state.clone(),
            d.reason_user.clone(),
            time(d.reason_time_unix * 1000, style),
            d.reason.clone(),
        ]);
    }
    finish(table)
}

/// A bar of `width` cells, `done` of `total` filled.
fn bar(done: usize, total: usize, width: usize) -> String {
    let filled = (done * width).checked_div(total).unwrap_or(width);
    format!("[{}{}]", "#".repeat(filled), ".".repeat(width - filled))
}

/// `lfleet upgrade plan|status`: the rollout's state, one line per wave (a progress bar on
/// a terminal), every node's step, and the nodes left out with why.
pub fn upgrade(view: &UpgradeView, style: &Style, bars: bool) -> String {
    if view.state.is_empty() {
        return "no upgrade was ever started\n".to_owned();
    }
    let mut out = String::new();
    if view.state == "plan" {
        out.push_str(&format!(
            "plan: {} nodes to {} in {} waves of at most {}; pauses at {} failures\n",
            view.nodes.len(),
            view.client,
            view.waves,
            view.wave_size,
            view.max_failures
        ));
    } else {
        out.push_str(&format!(
            "upgrade {} to {}: {}{} (started {}, {} failed of {} allowed)\n",
            view.id,
            view.client,
            view.state,
            if view.state_detail.is_empty() {
                String::new()
            } else {
                format!(": {}", view.state_detail)
            },
            time(view.started_unix_ms, style),
            view.failures,
            view.max_failures
        ));
    }
    for wave in 1..=view.waves {
        let nodes: Vec<_> = view.nodes.iter().filter(|n| n.wave == wave).collect();
        let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
        let finished = nodes
            .iter()
            .filter(|n| ["done", "failed", "skipped"].contains(&n.step.as_str()))
            .count();
        out.push_str(&format!(
            "wave {wave}: {} {}/{} {}\n",
            if bars {
                bar(finished, nodes.len(), 20)
            } else {
                String::new()
            },
            finished,
            nodes.len(),
            hostlist::compress(&names)
        ));
    }
    if view.state != "plan" {
        let mut table = table(style, &["NODE", "WAVE", "STEP", "SINCE", "DETAIL"]);
        for n in &view.nodes {
            table.add_row(vec![
                n.name.clone(),
                n.wave.to_string(),
                n.step.clone(),
                ago(n.since_unix_ms, style),
                n.detail.clone(),
            ]);
        }
        out.push_str(&finish(table));
    }
    if !view.skipped.is_empty() {
        let mut table = table(style, &["SKIPPED", "WHY"]);
        for s in &view.skipped {
            table.add_row(vec![s.name.clone(), s.why.clone()]);
        }
        out.push_str(&finish(table));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_use_si_prefixes_and_unknown_is_not_zero() {
        assert_eq!(rate(None), "unknown");
        assert_eq!(rate(Some(0.0)), "0 B/s");
        assert_eq!(rate(Some(500_000_019.0)), "500 MB/s");
        assert_eq!(rate(Some(1_234.0)), "1.23 kB/s");
        assert_eq!(rate(Some(45_600_000_000.0)), "45.6 GB/s");
    }

    #[test]
    fn times_are_in_the_zone_and_ages_read_naturally() {
        let style = Style {
            now_ms: 1_795_726_191_584,
            zone: Zone::Fixed(0),
            width: None,
        };
        assert_eq!(time(1_795_726_191_584, &style), "2026-11-26 20:49:51");
        let east = Style {
            zone: Zone::Fixed(3600),
            ..style
        };
        assert_eq!(time(1_795_726_191_584, &east), "2026-11-26 21:49:51");
        assert_eq!(ago(style.now_ms - 4_000, &style), "4 s ago");
        assert_eq!(ago(style.now_ms - 720_000, &style), "12 min ago");
        assert_eq!(ago(0, &style), "never");
    }
}
