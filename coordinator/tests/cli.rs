//! The `lfleet` CLI's output, pinned: golden files of `nodes`, `node`, `fs`, `events`,
//! `incidents` and `drains` for people and for `--json` (the serde form of the views),
//! rendered from fixed views at a fixed time in UTC; `UPDATE_GOLDEN=1` rewrites them. And
//! what the packages ship is what the clap definitions generate: the man page and the shell
//! completions; every argument of every command has help text.
#![allow(
    clippy::disallowed_methods,
    reason = "the test reads and writes its golden files and runs the lfleet binary"
)]

use std::path::PathBuf;

use lfleet_coordinator::render::{self, Style, Zone};
use lfleet_harness::lfleet_binary;
use lfleet_types::fleet::{
    DrainRecord, FilesystemSummary, FleetEvent, Health, IncidentView, MountState, NodeDetail,
    NodeSummary, TargetState,
};
use lfleet_types::{Condition, FailureClass, ItemKind, ItemResult, KnownCheck, Outcome, Role};

const NOW: i64 = 1_795_726_191_584;

fn style() -> Style {
    Style {
        now_ms: NOW,
        zone: Zone::Fixed(0),
        width: None,
    }
}

fn golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
    assert_eq!(
        actual,
        expected,
        "{} differs (UPDATE_GOLDEN=1 rewrites it after a deliberate change)",
        path.display()
    );
}

fn condition(
    check: KnownCheck,
    subject: &str,
    outcome: Outcome,
    code: &str,
    detail: &str,
) -> Condition {
    Condition {
        check: check.into(),
        subject: subject.into(),
        outcome,
        code: code.into(),
        detail: detail.into(),
        since_unix_ms: NOW - 95_000,
        observed_unix_ms: NOW - 2_000,
    }
}

fn node(
    name: &str,
    health: Health,
    conditions: Vec<Condition>,
    rates: Option<(f64, f64)>,
) -> NodeSummary {
    NodeSummary {
        name: name.into(),
        health,
        connected: health != Health::Silent,
        last_seen_unix_ms: if health == Health::Silent {
            NOW - 3_900_000
        } else {
            NOW - 3_000
        },
        agent_version: "0.1.0".into(),
        kernel_release: "5.15.0-1075-azure".into(),
        applied_generation: 4,
        desired_generation: 4,
        conditions,
        mounts: vec![MountState {
            mount_point: "/lustre".into(),
            source: "10.0.1.4@tcp:/lustrefs".into(),
            mounted: rates.is_some(),
            read_bytes_per_second: rates.map(|r| r.0),
            write_bytes_per_second: rates.map(|r| r.1),
        }],
        role: Some(Role::Compute),
        slurm_node_name: name.into(),
        nodearray: "hpc".into(),
    }
}

fn nodes() -> Vec<NodeSummary> {
    let healthy = vec![condition(
        KnownCheck::MountPresent,
        "/lustre",
        Outcome::Pass,
        "",
        "",
    )];
    vec![
        node(
            "hpc-pg0-1",
            Health::Healthy,
            healthy.clone(),
            Some((1_234.0, 500_000_019.0)),
        ),
        node(
            "ccw-hpc-pg0-with-a-long-cyclecloud-name-27",
            Health::Unhealthy,
            vec![condition(
                KnownCheck::LustreImports,
                "/lustre",
                Outcome::Fail,
                "import-not-full",
                "lustrefs-OST0001 EVICTED",
            )],
            Some((0.0, 0.0)),
        ),
        node("hpc-pg0-3", Health::Silent, healthy, None),
    ]
}

#[test]
fn nodes_node_fs_events_incidents_and_drains_read_as_pinned() {
    let style = style();
    let nodes = nodes();
    golden("nodes.txt", &render::nodes(&nodes, &style));
    golden("nodes.json", &serde_json::to_string_pretty(&nodes).unwrap());

    let detail = NodeDetail {
        summary: nodes[1].clone(),
        distro: "ubuntu-22.04".into(),
        lustre_client_version: "2.15.7-33-g79ddf99".into(),
        reconcile: lfleet_types::ReconcileStatus::Idle,
        next_retry_unix_ms: Some(NOW + 840_000),
        items: vec![ItemResult {
            kind: ItemKind::Package,
            id: "5.15.0-1079-azure".into(),
            failure: Some(FailureClass::NotYetPublished),
            message: "the repository has no client for this kernel yet".into(),
        }],
        events: vec![FleetEvent {
            at_unix_ms: NOW - 60_000,
            node: nodes[1].name.clone(),
            source: "agent".into(),
            kind: "evicted".into(),
            detail: "lustrefs-OST0001 evicted by the OSS".into(),
        }],
    };
    golden("node.txt", &render::node(&detail, &style));
    golden("node.json", &serde_json::to_string_pretty(&detail).unwrap());

    let filesystems = vec![FilesystemSummary {
        name: "amlfs".into(),
        source: "10.0.1.4@tcp:/lustrefs".into(),
        mount_point: "/lustre".into(),
        clients_expected: 3,
        clients_mounted: 2,
        targets: vec![TargetState {
            target: "all".into(),
            nodes_by_state: [("FULL".to_owned(), 1), ("import-not-full".to_owned(), 1)]
                .into_iter()
                .collect(),
        }],
        read_bytes_per_second: 1_234.0,
        write_bytes_per_second: 500_000_019.0,
    }];
    golden("fs.txt", &render::filesystems(&filesystems, &style));
    golden(
        "fs.json",
        &serde_json::to_string_pretty(&filesystems).unwrap(),
    );

    let events = vec![
        FleetEvent {
            at_unix_ms: NOW - 120_000,
            node: String::new(),
            source: "operator".into(),
            kind: "config-applied".into(),
            detail: "generation 4 from lfleet config apply by root (admin socket)".into(),
        },
        FleetEvent {
            at_unix_ms: NOW - 30_000,
            node: "ccw-hpc-pg0-with-a-long-cyclecloud-name-27".into(),
            source: "coordinator".into(),
            kind: "drained".into(),
            detail: "lfleet: import-not-full lustre.imports /lustre lustrefs-OST0001 EVICTED id=09755dd5".into(),
        },
    ];
    golden("events.txt", &render::events(&events, &style));
    golden(
        "events.json",
        &serde_json::to_string_pretty(&events).unwrap(),
    );

    let names: Vec<String> = (1..=40)
        .filter(|n| n % 10 != 0)
        .map(|n| format!("hpc-pg0-{n}"))
        .chain(["login1".to_owned()])
        .collect();
    let incidents = vec![
        IncidentView {
            id: "lustre.imports:/lustre:1795726000000".into(),
            check: "lustre.imports".into(),
            filesystem: "/lustre".into(),
            opened_unix_ms: NOW - 191_584,
            closed_unix_ms: None,
            node_count: names.len() as u32,
            affected_nodes: names,
        },
        IncidentView {
            id: "mount.responsive:/scratch:1795720000000".into(),
            check: "mount.responsive".into(),
            filesystem: "/scratch".into(),
            opened_unix_ms: NOW - 6_191_584,
            closed_unix_ms: Some(NOW - 5_000_000),
            node_count: 2,
            affected_nodes: vec!["gpu07".into(), "gpu08".into()],
        },
    ];
    let human = render::incidents(&incidents, &style);
    assert!(
        human.contains("hpc-pg0-[1-9,11-19,21-29,31-39],login1"),
        "{human}"
    );
    golden("incidents.txt", &human);
    golden(
        "incidents.json",
        &serde_json::to_string_pretty(&incidents).unwrap(),
    );

    let drains = vec![
        DrainRecord {
            node: "ccw-hpc-pg0-with-a-long-cyclecloud-name-27".into(),
            drain_id: "09755dd5".into(),
            reason: "lfleet: import-not-full lustre.imports /lustre lustrefs-OST0001 EVICTED id=09755dd5".into(),
            reason_time_unix: (NOW - 30_000) / 1000,
            reason_user: "root".into(),
            slurm_state: "IDLE+DRAIN".into(),
            by_lfleet: true,
            status: "active".into(),
            check: "lustre.imports".into(),
        },
        DrainRecord {
            node: "hpc-pg0-9".into(),
            drain_id: String::new(),
            reason: "disk swap".into(),
            reason_time_unix: 0,
            reason_user: "alice".into(),
            slurm_state: "IDLE+DRAIN".into(),
            by_lfleet: false,
            status: "not lfleet's".into(),
            check: String::new(),
        },
    ];
    golden("drains.txt", &render::drains(&drains, &style));
}

#[test]
fn a_narrow_terminal_wraps_long_columns_instead_of_breaking_the_table() {
    let narrow = Style {
        width: Some(80),
        ..style()
    };
    let text = render::nodes(&nodes(), &narrow);
    for line in text.lines() {
        assert!(
            line.chars().count() <= 80,
            "{} > 80: {line:?}",
            line.chars().count()
        );
    }
    assert!(
        text.contains("ccw-hpc-pg0-with-a-long-cyclecloud-name-27"),
        "a node name is never broken: {text}"
    );
}

fn lfleet(args: &[&str]) -> String {
    let output = std::process::Command::new(lfleet_binary())
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "{args:?}: {output:?}");
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn the_packaged_man_page_and_completions_are_the_generated_ones() {
    let packaging = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../packaging");
    for (file, args) in [
        ("man/lfleet.1", vec!["man"]),
        ("completions/lfleet.bash", vec!["completions", "bash"]),
        ("completions/_lfleet", vec!["completions", "zsh"]),
        ("completions/lfleet.fish", vec!["completions", "fish"]),
    ] {
        let generated = lfleet(&args);
        let path = packaging.join(file);
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, &generated).unwrap();
            continue;
        }
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            generated,
            "{file} is not what `lfleet {}` generates (UPDATE_GOLDEN=1 rewrites it)",
            args.join(" ")
        );
    }
}

#[test]
fn every_argument_of_every_command_has_help() {
    let mut pending = vec![Vec::<String>::new()];
    let mut checked = 0;
    while let Some(path) = pending.pop() {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let help = lfleet(&args);
        let mut section = "";
        for line in help.lines() {
            if line.ends_with(':') && !line.starts_with(' ') {
                section = line;
                continue;
            }
            if !line.starts_with("  ") || line.trim().is_empty() {
                continue;
            }
            let item = line.trim_start();
            // "  name    Help text": a name, at least two spaces, then the text.
            let described = item
                .split_once("  ")
                .is_some_and(|(_, text)| !text.trim().is_empty());
            assert!(
                described,
                "lfleet {} {section} {item:?} has no help",
                path.join(" ")
            );
            checked += 1;
            if section == "Commands:" {
                let name = item.split_whitespace().next().unwrap().to_owned();
                if name != "help" {
                    let mut sub = path.clone();
                    sub.push(name);
                    pending.push(sub);
                }
            }
        }
    }
    assert!(checked > 60, "only {checked} items checked");
}
