//! Every parser on every relevant real sample (tests/fixtures), with expected values written
//! by hand from the files, and on the format-rule cases no sample shows. Cases built from the
//! rules are labelled "constructed".

use lfleet_parse::health::{Health, parse_health};
use lfleet_parse::ib::{
    CounterValue, counter_width, is_saturated, parse_counter, parse_rate_gbps,
    parse_state as parse_ib_state,
};
use lfleet_parse::import::{parse_import, parse_state};
use lfleet_parse::lnet::{parse_lnet_stats, parse_lnetctl_stats, u32_delta};
use lfleet_parse::netdev::parse_net_dev;
use lfleet_parse::stats::{Timestamp, parse_stats};
use proptest::prelude::*;

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!("../../../tests/fixtures/", $name))
    };
}

fn ts(secs: u64, nanos: u32) -> Option<Timestamp> {
    Some(Timestamp { secs, nanos })
}

#[test]
fn llite_stats_2_10() {
    let stats = parse_stats(fixture!("lustre-2.10.1_llite_stats.txt")).unwrap();
    assert_eq!(stats.snapshot_time, ts(1_510_950_459, 772_792_457));
    assert_eq!(stats.start_time, None);
    let read = &stats.counters["read_bytes"];
    assert_eq!(
        (
            read.count,
            read.unit.as_str(),
            read.min,
            read.max,
            read.sum,
            read.sumsq
        ),
        (
            1,
            "bytes",
            Some(4_194_304),
            Some(4_194_304),
            Some(4_194_304),
            None
        )
    );
    let write = &stats.counters["write_bytes"];
    assert_eq!(
        (write.count, write.min, write.max, write.sum),
        (
            89_467_810,
            Some(4096),
            Some(1_048_576),
            Some(93_813_797_294_080)
        )
    );
    assert_eq!(
        (
            stats.count("open"),
            stats.counters["open"].unit.as_str(),
            stats.counters["open"].sum
        ),
        (136, "regs", None)
    );
    assert_eq!(stats.count("close"), 96);
}

#[test]
fn llite_stats_2_15_from_lctl_with_wall_clock_header() {
    let stats = parse_stats(fixture!("lustre-2.15plus_llite_stats_lctl.txt")).unwrap();
    assert_eq!(stats.snapshot_time, ts(1_749_630_724, 585_904_599));
    assert_eq!(stats.start_time, ts(1_748_858_812, 971_617_845));
    assert_eq!(stats.elapsed_time, ts(771_911, 614_286_754));
    assert!(
        stats.snapshot_time.unwrap().is_wall_clock()
            && !stats.elapsed_time.unwrap().is_wall_clock()
    );
    let read = &stats.counters["read_bytes"];
    assert_eq!(
        (read.count, read.min, read.max, read.sum, read.sumsq),
        (3, Some(28), Some(40), Some(96), Some(3168))
    );
    assert_eq!(stats.sum("write_bytes"), 176_653);
    assert_eq!(stats.counters["read"].unit, "usecs");
    assert_eq!(
        stats.counters["openclosetime"].sumsq,
        Some(5_538_044_318_550_188_265)
    );
    assert_eq!(stats.counters["ioctl"].sum, None);
}

#[test]
fn llite_stats_2_14_ddn_excerpt_with_start_time() {
    let stats = parse_stats(fixture!(
        "lustre-2.14.0-ddn145_llite_stats_with_start_time_excerpt.txt"
    ))
    .unwrap();
    assert_eq!(stats.start_time, ts(1_715_767_600, 564_021_089));
    assert_eq!(stats.counters["getattr"].sumsq, Some(1_088_895));
}

#[test]
fn osc_stats_with_a_sumsq_above_i64_max() {
    let stats = parse_stats(fixture!("lustre-2.10.1_osc_stats.txt")).unwrap();
    assert_eq!(stats.snapshot_time, ts(1_510_950_459, 787_092_770));
    let write = &stats.counters["write_bytes"];
    assert_eq!(write.sum, Some(65_298_098_221_056));
    assert_eq!(write.sumsq, Some(10_009_909_738_331_963_392));
    assert!(write.sumsq.unwrap() > i64::MAX as u64);
    assert_eq!(stats.counters["req_waittime"].unit, "usec");
    assert_eq!(stats.count("read_bytes"), 0, "absent means zero");
    let newer = parse_stats(fixture!("lustre-2.15plus_osc_stats.txt")).unwrap();
    assert_eq!(newer.counters["ost_write"].unit, "usecs");
    assert_eq!(
        (newer.count("write_bytes"), newer.sum("write_bytes")),
        (15, 102_925)
    );
}

#[test]
fn mdc_stats_with_a_name_longer_than_the_pad() {
    let stats = parse_stats(fixture!("lustre-2.15plus_mdc_stats_lctl.txt")).unwrap();
    assert_eq!(stats.snapshot_time, ts(1_749_628_869, 786_323_838));
    assert_eq!(stats.counters["llog_origin_handle_next_block"].count, 40);
    assert_eq!(
        stats.counters["llog_origin_handle_next_block"].sum,
        Some(50_175)
    );
    assert_eq!(stats.counters["mds_close"].sumsq, Some(78_830_640));
    let md = parse_stats(fixture!("lustre-2.10.1_mdc_md_stats.txt")).unwrap();
    assert_eq!(
        (
            md.count("intent_lock"),
            md.count("setattr"),
            md.count("read_page")
        ),
        (329, 134, 6)
    );
    let old = parse_stats(fixture!("lustre-2.10.1_mdc_stats.txt")).unwrap();
    assert!(old.snapshot_time.is_some());
}

#[test]
fn a_header_only_stats_file_is_valid_and_empty() {
    let stats = parse_stats(fixture!(
        "lustre-2.10.1_llite_read_ahead_stats_header_only.txt"
    ))
    .unwrap();
    assert_eq!(stats.snapshot_time, ts(1_510_950_459, 776_359_249));
    assert!(stats.counters.is_empty());
}

#[test]
fn format_rule_cases_no_sample_shows() {
    // Constructed: the 2.17 35-column pad, the 2.15.0-1 colon after the pad, the rpc_stats
    // header style, a zero-count line left out, sumsq at u64::MAX.
    let text = "snapshot_time                       1800000000.000000001 secs.nsecs\n\
                write_bytes                         2 samples [bytes] 1 18446744073709551615 3 18446744073709551615\n";
    let stats = parse_stats(text).unwrap();
    assert_eq!(stats.counters["write_bytes"].max, Some(u64::MAX));
    let colon = parse_stats("snapshot_time             : 1964295.787000000 secs.nsecs\n").unwrap();
    assert_eq!(colon.snapshot_time, ts(1_964_295, 787_000_000));
    let rpc = parse_stats("snapshot_time:         1510950459.784234932 (secs.nsecs)\n").unwrap();
    assert_eq!(rpc.snapshot_time, ts(1_510_950_459, 784_234_932));
    // Found by the no-panic property test: lines of other whitespace are blank lines.
    assert!(
        parse_stats("\u{b}\n\u{a0}\n\u{c}")
            .unwrap()
            .counters
            .is_empty()
    );
    for bad in [
        "read_bytes 1 samples bytes",
        "read_bytes x samples [bytes]",
        "read_bytes 1 samples [bytes] 1 2",
        "snapshot_time abc secs.nsecs",
        "read_bytes 1 samples [bytes] 1 2 -3",
    ] {
        assert!(parse_stats(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn imports_and_states_2_10() {
    let osc = parse_import(fixture!("lustre-2.10.1_osc_import.txt")).unwrap();
    assert_eq!(osc.name, "lustrefs-OST0000-osc-ffff88105db50000");
    assert_eq!(osc.target, "lustrefs-OST0000_UUID");
    assert_eq!(osc.state, "FULL");
    assert!(osc.is_healthy());
    assert_eq!(
        osc.failover_nids,
        vec!["172.20.20.5@o2ib", "172.20.20.6@o2ib"]
    );
    assert_eq!(osc.current_connection.as_deref(), Some("172.20.20.5@o2ib"));
    assert_eq!(
        (
            osc.connection_attempts,
            osc.generation,
            osc.idle_seconds,
            osc.rpc_timeouts
        ),
        (Some(1), Some(1), None, Some(0))
    );
    let mdc = parse_import(fixture!("lustre-2.10.1_mdc_import.txt")).unwrap();
    assert_eq!(
        (mdc.name.as_str(), mdc.current_connection.as_deref()),
        (
            "lustrefs-MDT0000-mdc-ffff88105db50000",
            Some("172.20.20.2@o2ib")
        )
    );
    let state = parse_state(fixture!("lustre-2.10.1_osc_state.txt")).unwrap();
    assert_eq!(state.current, "FULL");
    assert_eq!(
        state.history,
        vec![
            (1_510_766_261, "CONNECTING".to_string()),
            (1_510_766_261, "FULL".to_string())
        ]
    );
}

#[test]
fn a_constructed_2_16_import_with_quoted_nids_idle_and_nul_bytes() {
    // Constructed from the 2.16 format rules (no real 2.16 import sample is available).
    let text = "import:\n    name: fs-OST0001-osc-ffff8881\n    target: fs-OST0001_UUID\n    state: IDLE\n    connection:\n       failover_nids: [ \"10.0.1.4@tcp\" ]\n       current_connection: \"10.0.1.4@tcp\"\n       connection_attempts: 3\n       generation: 2\n       in-progress_invalidations: 0\n       idle: 37 sec\n    nids_stats:\n       \"10.0.1.4@tcp\": { connects: 3, replied: 3, uptodate: true, sec_ago: 1 }\n    rpcs:\n       inflight: 0\n       timeouts: 4\n\0\0";
    let import = parse_import(text).unwrap();
    assert_eq!(import.state, "IDLE");
    assert!(
        import.is_healthy(),
        "IDLE is an idle-disconnected OSC, not a fault"
    );
    assert_eq!(import.failover_nids, vec!["10.0.1.4@tcp"]);
    assert_eq!(import.current_connection.as_deref(), Some("10.0.1.4@tcp"));
    assert_eq!(
        (
            import.connection_attempts,
            import.generation,
            import.idle_seconds,
            import.rpc_timeouts
        ),
        (Some(3), Some(2), Some(37), Some(4))
    );
    let evicted = parse_import(&text.replace("state: IDLE", "state: EVICTED")).unwrap();
    assert!(!evicted.is_healthy());
    assert!(
        parse_import("import:\n    name: x\n").is_err(),
        "no state is an error, not FULL"
    );
}

#[test]
fn health_check() {
    assert_eq!(
        parse_health(fixture!("lustre-2.10.1_health_check.txt")),
        Health::Healthy
    );
    assert_eq!(parse_health("LBUG\n"), Health::Lbug);
    // Constructed: the procfs-era multi-line form.
    assert_eq!(
        parse_health(
            "device lustrefs-OST0002-osc-ffff8881 reported unhealthy\ndevice lustrefs-MDT0000-mdc-ffff8881 reported unhealthy\nNOT HEALTHY\n"
        ),
        Health::NotHealthy {
            devices: vec![
                "lustrefs-OST0002-osc-ffff8881".into(),
                "lustrefs-MDT0000-mdc-ffff8881".into()
            ]
        }
    );
    assert!(
        matches!(parse_health(""), Health::Unrecognized(_)),
        "empty is not healthy"
    );
}

#[test]
fn lnet_stats_and_u32_wrap() {
    let stats = parse_lnet_stats(fixture!("lustre-2.10.1_lnet_stats.txt")).unwrap();
    assert_eq!(
        (stats.msgs_max, stats.send_count, stats.recv_count),
        (28, 101_719_323, 101_719_291)
    );
    assert_eq!(
        (stats.send_length, stats.recv_length),
        (21_201_322_992, 53_029_565_353_720)
    );
    let yaml = parse_lnetctl_stats(fixture!("lnetctl_stats_show_tcp_client.yaml"));
    assert_eq!(
        (
            yaml["send_count"],
            yaml["recv_count"],
            yaml["send_length"],
            yaml["recv_length"]
        ),
        (415_917, 416_009, 94_582_612, 113_781_044)
    );
    // The GSI-HPC OSS figure near the u32 top wraps; a small decrease is a reset.
    assert_eq!(
        u32_delta(3_437_491_701, 100),
        Some(100 + (1u64 << 32) - 3_437_491_701)
    );
    assert_eq!(u32_delta(5_000, 100), None);
    assert_eq!(u32_delta(100, 150), Some(50));
    assert!(
        parse_lnet_stats("0 28 0 4294967296 1 0 0 1 1 0 0").is_err(),
        "a u32 field cannot exceed u32"
    );
}

#[test]
fn proc_net_dev() {
    let ttar = fixture!("proc_net_dev.ttar");
    let body: String = ttar
        .lines()
        .skip_while(|l| !l.starts_with("Lines:"))
        .skip(1)
        .take(6)
        .map(|l| format!("{l}\n"))
        .collect();
    let devices = parse_net_dev(&body).unwrap();
    let eth0 = devices["eth0"];
    assert_eq!(
        (
            eth0.rx_bytes,
            eth0.rx_packets,
            eth0.tx_bytes,
            eth0.tx_packets
        ),
        (874_354_587, 1_036_395, 563_352_563, 732_147)
    );
    assert_eq!(devices["lo"].rx_bytes, 1_664_039_048);
    assert_eq!(devices.len(), 4);
    // Constructed: a long name running into its first counter.
    let glued = parse_net_dev("enP30832s1:874354587 1 0 0 0 0 0 0 2 3 0 0 0 0 0 0\n").unwrap();
    assert_eq!(glued["enP30832s1"].rx_bytes, 874_354_587);
}

#[test]
fn infiniband_values() {
    let ttar = fixture!("sysfs_class_infiniband_hfi1_mlx4_mlx5.ttar");
    let value = |path: &str| -> String {
        let mut lines = ttar
            .lines()
            .skip_while(|l| *l != format!("Path: fixtures/sys/class/infiniband/{path}"));
        lines.next();
        lines.next();
        lines.next().unwrap().to_owned()
    };
    assert_eq!(
        parse_counter(&value("mlx4_0/ports/1/counters/port_xmit_data")),
        Some(CounterValue::Value(26_509_113_295))
    );
    assert_eq!(
        parse_counter(&value("mlx5_0/ports/1/counters/port_rcv_data")),
        Some(CounterValue::Value(18_126_345_378))
    );
    assert_eq!(parse_rate_gbps(&value("hfi1_0/ports/1/rate")), Some(100.0));
    assert_eq!(parse_rate_gbps(&value("mlx4_0/ports/1/rate")), Some(40.0));
    assert_eq!(
        parse_ib_state(&value("mlx5_0/ports/1/state")),
        Some((4, "ACTIVE".into()))
    );
    // Constructed: a device without a PMA, and saturation per counter width.
    assert_eq!(
        parse_counter("N/A (no PMA)\n"),
        Some(CounterValue::Unavailable)
    );
    assert_eq!(parse_counter("garbage"), None);
    assert!(is_saturated(65_535, counter_width("symbol_error")));
    assert!(is_saturated(255, counter_width("link_downed")));
    assert!(is_saturated(4_294_967_295, counter_width("port_xmit_wait")));
    assert!(!is_saturated(65_534, counter_width("symbol_error")));
}

proptest! {
    #[test]
    fn no_parser_panics_on_arbitrary_input(text in "(?s).{0,600}") {
        let _ = parse_stats(&text);
        let _ = parse_import(&text);
        let _ = parse_state(&text);
        let _ = parse_health(&text);
        let _ = parse_lnet_stats(&text);
        let _ = parse_lnetctl_stats(&text);
        let _ = parse_net_dev(&text);
        let _ = parse_counter(&text);
        let _ = parse_rate_gbps(&text);
        let _ = parse_ib_state(&text);
    }

    /// Whole constructed stats files as the kernel prints them (a header with the fraction
    /// printed with 1 to 9 digits, names padded to 25 or 35 or longer, 0, 3 or 4 values, an
    /// `lctl get_param` line or not) read back exactly; then one line with a wrong number of
    /// values makes the whole file an error naming that line.
    #[test]
    fn constructed_stats_files_read_back_exactly(
        secs in any::<u32>(),
        fraction in "[0-9]{1,9}",
        pad in prop_oneof![Just(25usize), Just(35usize)],
        param in any::<bool>(),
        counters in proptest::collection::btree_map(
            "[a-z][a-z_]{0,40}",
            (any::<u64>(), "[a-z]{1,6}", proptest::option::of((any::<u64>(), any::<u64>(), any::<u64>(), proptest::option::of(any::<u64>())))),
            0..12,
        ),
        bad_values in 1usize..3,
    ) {
        let mut text = String::new();
        if param {
            text.push_str("osc.fs-OST0000-osc-ffff8881.stats=\n");
        }
        text.push_str(&format!("{:<pad$} {secs}.{fraction} secs.nsecs\n", "snapshot_time"));
        for (name, (count, unit, values)) in &counters {
            text.push_str(&format!("{name:<pad$} {count} samples [{unit}]"));
            if let Some((min, max, sum, sumsq)) = values {
                text.push_str(&format!(" {min} {max} {sum}"));
                if let Some(sumsq) = sumsq {
                    text.push_str(&format!(" {sumsq}"));
                }
            }
            text.push('\n');
        }
        let stats = parse_stats(&text).unwrap();
        let nanos = fraction.parse::<u32>().unwrap() * 10u32.pow(9 - fraction.len() as u32);
        prop_assert_eq!(stats.snapshot_time, ts(u64::from(secs), nanos));
        prop_assert_eq!(stats.counters.len(), counters.len());
        for (name, (count, unit, values)) in &counters {
            let c = &stats.counters[name];
            prop_assert_eq!(c.count, *count);
            prop_assert_eq!(&c.unit, unit);
            prop_assert_eq!((c.min, c.max, c.sum), values.map_or((None, None, None), |v| (Some(v.0), Some(v.1), Some(v.2))));
            prop_assert_eq!(c.sumsq, values.and_then(|v| v.3));
        }
        let lines = text.lines().count();
        let bad = format!("{text}{:<pad$} 1 samples [reqs]{}\n", "req_active", " 7".repeat(bad_values));
        let error = parse_stats(&bad).unwrap_err();
        prop_assert_eq!(error.line, lines + 1);
    }

    /// Constructed import files (2.10 to 2.16 shapes: NIDs quoted or not, NUL padding or not)
    /// read back exactly.
    #[test]
    fn constructed_import_files_read_back_exactly(
        state in prop_oneof![Just("FULL"), Just("IDLE"), Just("DISCONN"), Just("EVICTED"), Just("REPLAY_WAIT")],
        attempts in any::<u64>(),
        generation in any::<u64>(),
        timeouts in any::<u64>(),
        idle in proptest::option::of(any::<u64>()),
        nid in "10\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}@(tcp|o2ib)[0-9]?",
        quoted in any::<bool>(),
        nuls in 0usize..4,
    ) {
        let q = if quoted { "\"" } else { "" };
        let idle_line = idle.map(|s| format!("       idle: {s} sec\n")).unwrap_or_default();
        let text = format!(
            "import:\n    name: fs-OST0001-osc-ffff8881\n    target: fs-OST0001_UUID\n    state: {state}\n    connect_flags: [ write_grant, server_lock ]\n    connection:\n       failover_nids: [ {q}{nid}{q}, {q}{nid}{q} ]\n       current_connection: {q}{nid}{q}\n       connection_attempts: {attempts}\n       generation: {generation}\n       in-progress_invalidations: 0\n{idle_line}    rpcs:\n       inflight: 0\n       timeouts: {timeouts}\n       avg_waittime: 900 usecs\n{}",
            "\0".repeat(nuls)
        );
        let import = parse_import(&text).unwrap();
        prop_assert_eq!(import.name, "fs-OST0001-osc-ffff8881");
        prop_assert_eq!(import.target, "fs-OST0001_UUID");
        prop_assert_eq!(import.state, state);
        prop_assert_eq!(import.current_connection, Some(nid.clone()));
        prop_assert_eq!(import.failover_nids, vec![nid.clone(), nid]);
        prop_assert_eq!(import.connection_attempts, Some(attempts));
        prop_assert_eq!(import.generation, Some(generation));
        prop_assert_eq!(import.rpc_timeouts, Some(timeouts));
        prop_assert_eq!(import.idle_seconds, idle);
    }

    #[test]
    fn stats_lines_round_trip_any_u64(count in any::<u64>(), min in any::<u64>(), max in any::<u64>(), sum in any::<u64>(), sumsq in any::<u64>()) {
        let text = format!("snapshot_time             1.000000001 secs.nsecs\nwrite_bytes               {count} samples [bytes] {min} {max} {sum} {sumsq}\n");
        let stats = parse_stats(&text).unwrap();
        let c = &stats.counters["write_bytes"];
        prop_assert_eq!((c.count, c.min, c.max, c.sum, c.sumsq), (count, Some(min), Some(max), Some(sum), Some(sumsq)));
    }
}
