//! Wire conversions of everything agents send and the coordinator pushes: every domain value
//! survives domain -> wire -> bytes -> wire -> domain unchanged (property tests), and what a
//! newer or hostile peer sends is bounded, escaped, made explicit or refused.

use lfleet_proto::convert::{agent_text, report::MAX_DETAIL_BYTES, status_from_wire};
use lfleet_proto::v1;
use lfleet_types::{
    AckRefusal, AgentEvent, AgentEventKind, AgentHello, CheckId, ClientPolicy, Condition,
    ConfigAck, DesiredConfig, DkmsPolicy, FailureClass, Generation, HelloClaims, ItemKind,
    ItemResult, KnownCheck, LnetInterface, LnetPolicy, MountSpec, Outcome, ReconcileStatus, Role,
    SampleValue, StatusReport, TelemetryBatch, TelemetrySample,
};
use proptest::prelude::*;
use prost::Message;

/// Printable text without control characters: what the agent itself produces.
fn text(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[ -~äöü€]{{0,{max}}}")).unwrap()
}

fn check() -> impl Strategy<Value = CheckId> {
    prop_oneof![
        proptest::sample::select(KnownCheck::ALL).prop_map(CheckId::Known),
        "[a-z][a-z0-9._-]{0,20}".prop_map(|name| name.parse().unwrap()),
    ]
}

fn condition() -> impl Strategy<Value = Condition> {
    (
        check(),
        text(40),
        proptest::sample::select(vec![Outcome::Pass, Outcome::Fail, Outcome::Unknown]),
        "[a-z-]{0,20}",
        text(200),
        any::<i64>(),
        any::<i64>(),
    )
        .prop_map(
            |(check, subject, outcome, code, detail, since, observed)| Condition {
                check,
                subject,
                outcome,
                code,
                detail,
                since_unix_ms: since,
                observed_unix_ms: observed,
            },
        )
}

fn item() -> impl Strategy<Value = ItemResult> {
    (
        proptest::sample::select(ItemKind::ALL),
        text(40),
        proptest::option::of(proptest::sample::select(FailureClass::ALL)),
        text(200),
    )
        .prop_map(|(kind, id, failure, message)| ItemResult {
            kind,
            id,
            failure,
            message,
        })
}

fn event() -> impl Strategy<Value = AgentEvent> {
    (
        proptest::sample::select(AgentEventKind::ALL),
        text(40),
        text(200),
        any::<i64>(),
    )
        .prop_map(|(kind, subject, detail, at)| AgentEvent {
            kind,
            subject,
            detail,
            at_unix_ms: at,
        })
}

fn report() -> impl Strategy<Value = StatusReport> {
    (
        any::<u64>(),
        proptest::sample::select(vec![
            ReconcileStatus::NotYetRun,
            ReconcileStatus::Running,
            ReconcileStatus::Idle,
        ]),
        proptest::collection::vec(condition(), 0..6),
        proptest::collection::vec(item(), 0..6),
        proptest::collection::vec(event(), 0..6),
        ("[0-9a-z._]{0,20}", proptest::option::of(1..i64::MAX)),
    )
        .prop_map(
            |(generation, reconcile, conditions, items, events, (version, retry))| StatusReport {
                applied_generation: Generation(generation),
                reconcile,
                conditions,
                items,
                events,
                lustre_client_version: version,
                next_retry_unix_ms: retry,
            },
        )
}

fn sample() -> impl Strategy<Value = TelemetrySample> {
    (
        any::<u64>(),
        any::<i64>(),
        "[a-z_.]{1,30}",
        proptest::collection::vec(("[a-z]{1,8}", text(20)), 0..4),
        prop_oneof![
            Just(None),
            (-1e12f64..1e12).prop_map(|v| Some(SampleValue::Gauge(v))),
            (any::<u64>(), any::<u64>())
                .prop_map(|(delta, interval_ms)| Some(SampleValue::Delta { delta, interval_ms })),
        ],
        any::<bool>(),
        proptest::option::of(text(40)),
    )
        .prop_map(
            |(seq, at, metric, labels, value, reset, unavailable)| TelemetrySample {
                seq,
                at_unix_ms: at,
                metric,
                labels,
                value,
                reset,
                unavailable,
            },
        )
}

fn desired() -> impl Strategy<Value = DesiredConfig> {
    (
        1u64..u64::MAX,
        proptest::sample::subsequence(
            vec![
                MountSpec::new("10.0.1.4@tcp", "lustrefs", "/lustre", &["noatime", "flock"]),
                MountSpec::new(
                    "10.0.2.4@tcp1:10.0.2.5@tcp1",
                    "scratch",
                    "/scratch",
                    &[""; 0],
                ),
                MountSpec::new("172.16.0.1@o2ib", "home", "/mnt/home", &["ro"]),
            ]
            .into_iter()
            .map(Result::unwrap)
            .collect::<Vec<_>>(),
            0..=3,
        ),
        "[0-9]\\.[0-9]{1,2}\\.[0-9]{1,2}(-[0-9]{1,3}-g[0-9a-f]{7})?",
        any::<bool>(),
        "(tcp|o2ib)[0-9]{0,2}",
        prop_oneof![Just(None), "eth[0-9]".prop_map(Some)],
    )
        .prop_map(
            |(generation, mounts, version, dkms, network, interface)| DesiredConfig {
                generation: Generation(generation),
                mounts,
                client: ClientPolicy {
                    lustre_version: version.parse().unwrap(),
                    dkms: if dkms {
                        DkmsPolicy::Allowed
                    } else {
                        DkmsPolicy::Forbidden
                    },
                },
                lnet: LnetPolicy {
                    network: network.parse().unwrap(),
                    interface: interface.map_or(LnetInterface::Auto, LnetInterface::Named),
                },
            },
        )
}

/// Through bytes, as the other side receives it.
fn over_the_wire<M: Message + Default>(message: &M) -> M {
    M::decode(message.encode_to_vec().as_slice()).unwrap()
}

proptest! {
    #[test]
    fn status_reports_round_trip(report in report()) {
        let wire = over_the_wire(&v1::StatusReport::from(&report));
        let received = status_from_wire(&wire).unwrap();
        prop_assert!(received.refused.is_empty());
        prop_assert_eq!(received.report, report);
    }

    #[test]
    fn telemetry_round_trips(samples in proptest::collection::vec(sample(), 0..8),
                             first_seq in any::<u64>(), dropped in any::<u64>()) {
        let batch = TelemetryBatch { first_seq, dropped_samples: dropped, samples };
        let wire = over_the_wire(&v1::TelemetryBatch::from(&batch));
        prop_assert_eq!(TelemetryBatch::from(&wire), batch);
    }

    #[test]
    fn desired_configs_round_trip(config in desired()) {
        let wire = over_the_wire(&v1::DesiredConfig::from(&config));
        prop_assert_eq!(DesiredConfig::try_from(&wire).unwrap(), config);
    }

    #[test]
    fn hellos_and_acks_round_trip(
        name in "[a-z][a-z0-9-]{0,20}[a-z0-9]",
        role in proptest::option::of(proptest::sample::select(Role::ALL.to_vec())),
        generation in any::<u64>(),
        version in text(30),
        refusal in proptest::option::of(proptest::sample::select(AckRefusal::ALL)),
        failed in proptest::option::of(proptest::sample::select(FailureClass::ALL)),
        message in text(100),
    ) {
        let hello = AgentHello {
            node_name: name.parse().unwrap(),
            claims: HelloClaims { slurm_node_name: name.clone(), role, nodearray: "hpc".into() },
            distro: "ubuntu-22.04".into(),
            kernel_release: "5.15.0-1079-azure".into(),
            agent_version: version.clone(),
            vm_id: String::new(),
            lustre_client_version: version,
            applied_generation: Generation(generation),
        };
        let wire = over_the_wire(&v1::Hello::from(&hello));
        prop_assert_eq!(AgentHello::try_from(&wire).unwrap(), hello);

        let ack = ConfigAck {
            generation: Generation(generation),
            refusal,
            failed_class: if refusal.is_none() { failed } else { None },
            message,
        };
        let wire = over_the_wire(&v1::Ack::from(&ack));
        prop_assert_eq!(ConfigAck::from(&wire), ack);
    }

    #[test]
    fn agent_text_is_always_bounded_and_free_of_control_characters(
        input in proptest::collection::vec(any::<char>(), 0..3000), max in 4usize..2000
    ) {
        let input: String = input.into_iter().collect();
        let out = agent_text(&input, max);
        prop_assert!(out.len() <= max, "{} > {max}", out.len());
        prop_assert!(!out.chars().any(char::is_control));
    }
}

#[test]
fn a_newer_agents_values_become_explicit_and_its_event_kinds_are_refused() {
    let wire = v1::StatusReport {
        applied_generation: 3,
        reconcile_status: 42,
        conditions: vec![v1::Condition {
            check: "gpu.nvlink".into(),
            subject: "nvl0".into(),
            outcome: 9,
            detail: "degraded".into(),
            ..Default::default()
        }],
        items: vec![v1::ItemResult {
            kind: "firmware".into(),
            id: "mlx5_0".into(),
            ok: false,
            error_class: "flash-failed".into(),
            message: "burn".into(),
        }],
        events: vec![
            v1::Event {
                kind: "manual-undrain".into(),
                subject: "n2".into(),
                detail: "by alice".into(),
                at_unix_ms: 1,
            },
            v1::Event {
                kind: "evicted".into(),
                subject: "lustrefs-OST0001".into(),
                detail: "evicted by the OSS".into(),
                at_unix_ms: 2,
            },
        ],
        lustre_client_version: "2.15.7".into(),
        next_retry_unix_ms: -5,
    };
    let received = status_from_wire(&wire).unwrap();
    let report = received.report;
    assert_eq!(report.reconcile, ReconcileStatus::Unrecognized);
    assert_eq!(report.lustre_client_version, "2.15.7");
    assert_eq!(
        report.next_retry_unix_ms, None,
        "a time before 1970 is no schedule"
    );
    let condition = &report.conditions[0];
    assert_eq!(condition.check, CheckId::Other("gpu.nvlink".into()));
    assert_eq!(condition.outcome, Outcome::Unknown);
    assert!(
        condition.detail.contains("outcome 9"),
        "{}",
        condition.detail
    );
    let item = &report.items[0];
    assert_eq!(item.kind, ItemKind::Unrecognized);
    assert_eq!(item.failure, Some(FailureClass::Unrecognized));
    assert!(
        item.message.contains("\"firmware\"") && item.message.contains("\"flash-failed\""),
        "{}",
        item.message
    );
    assert_eq!(report.events.len(), 1);
    assert_eq!(report.events[0].kind, AgentEventKind::Evicted);
    assert_eq!(received.refused.len(), 1);
    assert!(
        received.refused[0].to_string().contains("manual-undrain"),
        "{}",
        received.refused[0]
    );
}

#[test]
fn hostile_text_is_capped_and_escaped_and_a_bad_check_name_refuses_the_report() {
    let huge = "A".repeat(3 * 1024 * 1024);
    let wire = v1::StatusReport {
        conditions: vec![v1::Condition {
            check: "lustre.imports".into(),
            subject: "/lustre\u{1b}[2J".into(),
            outcome: v1::Outcome::Fail as i32,
            code: "import-not-full".into(),
            detail: huge,
            ..Default::default()
        }],
        ..Default::default()
    };
    let report = status_from_wire(&wire).unwrap().report;
    let condition = &report.conditions[0];
    assert!(condition.detail.len() <= MAX_DETAIL_BYTES);
    assert!(condition.detail.ends_with('…'));
    assert_eq!(condition.subject, "/lustre\\u{1b}[2J");

    let bad = v1::StatusReport {
        conditions: vec![v1::Condition {
            check: "Lustre Imports\n".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let error = status_from_wire(&bad).unwrap_err();
    assert_eq!(error.field, "conditions[0].check");
}

#[test]
fn a_desired_config_that_breaks_a_rule_is_refused_naming_the_field() {
    let good = v1::DesiredConfig {
        generation: 2,
        mounts: Vec::new(),
        client: Some(v1::ClientPolicy {
            lustre_version: "2.15.7".into(),
            dkms: v1::DkmsPolicy::Allowed as i32,
        }),
        lnet: None,
    };
    let config = DesiredConfig::try_from(&good).unwrap();
    assert_eq!(config.lnet, LnetPolicy::default());
    assert!(config.client.dkms.is_allowed());
    for (change, field) in [
        (
            Box::new(|c: &mut v1::DesiredConfig| c.generation = 0) as Box<dyn Fn(&mut _)>,
            "generation",
        ),
        (
            Box::new(|c: &mut v1::DesiredConfig| c.client = None),
            "client",
        ),
        (
            Box::new(|c: &mut v1::DesiredConfig| {
                c.client.as_mut().unwrap().lustre_version = "2.15;reboot".into()
            }),
            "client.lustre_version",
        ),
        (
            Box::new(|c: &mut v1::DesiredConfig| {
                c.lnet = Some(v1::LnetConfig {
                    network: "gni".into(),
                    interface: String::new(),
                })
            }),
            "lnet.network",
        ),
    ] {
        let mut wire = good.clone();
        change(&mut wire);
        assert_eq!(DesiredConfig::try_from(&wire).unwrap_err().field, field);
    }
    // A DKMS policy number from a newer coordinator is read as the safe one.
    let mut newer = good.clone();
    newer.client.as_mut().unwrap().dkms = 7;
    assert_eq!(
        DesiredConfig::try_from(&newer).unwrap().client.dkms,
        DkmsPolicy::Forbidden
    );
}
