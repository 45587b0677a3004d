//! MountSpec validation: a table of bad inputs, each refused with the field named and a
//! specific reason; good specs; and properties (no panic on any input, render/parse round
//! trips).

use lfleet_types::{
    FsName, MgsNids, MountOption, MountPoint, MountSource, MountSpec, Nid, NodeName, RawMountSpec,
    UnitName,
};
use proptest::prelude::*;

const NIDS: &str = "10.0.1.4@tcp";
const FS: &str = "lustrefs";
const DIR: &str = "/lustre";
const OPTS: &[&str] = &["noatime", "flock"];

/// One bad spec: what it tests, the four inputs, and the field and reason fragment expected.
struct Bad {
    what: &'static str,
    nids: &'static str,
    fsname: &'static str,
    dir: &'static str,
    options: &'static [&'static str],
    field: &'static str,
    fragment: &'static str,
}

const fn bad_nids(what: &'static str, nids: &'static str, fragment: &'static str) -> Bad {
    Bad {
        what,
        nids,
        fsname: FS,
        dir: DIR,
        options: OPTS,
        field: "mgs_nids",
        fragment,
    }
}

const fn bad_fsname(what: &'static str, fsname: &'static str, fragment: &'static str) -> Bad {
    Bad {
        what,
        nids: NIDS,
        fsname,
        dir: DIR,
        options: OPTS,
        field: "fsname",
        fragment,
    }
}

const fn bad_dir(what: &'static str, dir: &'static str, fragment: &'static str) -> Bad {
    Bad {
        what,
        nids: NIDS,
        fsname: FS,
        dir,
        options: OPTS,
        field: "mount_point",
        fragment,
    }
}

const fn bad_options(
    what: &'static str,
    options: &'static [&'static str],
    fragment: &'static str,
) -> Bad {
    Bad {
        what,
        nids: NIDS,
        fsname: FS,
        dir: DIR,
        options,
        field: "options",
        fragment,
    }
}

#[rustfmt::skip]
const BAD: &[Bad] = &[
    // Options.
    bad_options("injection after a bogus option", &["lustrefs,exec"], "contains ','"),
    bad_options("suid smuggled after noatime", &["noatime,suid"], "contains ','"),
    bad_options("exec", &["exec"], "not an option lfleet allows"),
    bad_options("suid", &["suid"], "not an option lfleet allows"),
    bad_options("dev", &["dev"], "not an option lfleet allows"),
    bad_options("unknown option with a value", &["uid=0"], "not an option lfleet allows"),
    bad_options("option with a space", &["noatime "], "not an option lfleet allows"),
    bad_options("empty option", &[""], "empty option"),
    bad_options("ro and rw", &["ro", "rw"], "contradict each other: ro and rw"),
    bad_options("two lock modes", &["flock", "localflock"], "contradict each other: flock and localflock"),
    bad_options("xattr both ways", &["nouser_xattr", "user_xattr"], "contradict each other: nouser_xattr and user_xattr"),
    bad_options("duplicate", &["noatime", "noatime"], "gives noatime twice"),
    bad_options("two timeouts", &["x-systemd.mount-timeout=5", "x-systemd.mount-timeout=6"], "contradict each other"),
    bad_options("timeout zero", &["x-systemd.mount-timeout=0"], "from 1 to 3600"),
    bad_options("timeout above an hour", &["x-systemd.mount-timeout=3601"], "from 1 to 3600"),
    bad_options("timeout with a unit", &["x-systemd.mount-timeout=2min"], "from 1 to 3600"),
    bad_options("timeout with a sign", &["x-systemd.mount-timeout=+5"], "from 1 to 3600"),
    bad_options("timeout empty", &["x-systemd.mount-timeout="], "from 1 to 3600"),
    bad_options("requires a path", &["x-systemd.requires=/bin/sh"], "systemd unit name"),
    bad_options("requires a bare suffix", &["x-systemd.requires=.service"], "systemd unit name"),
    bad_options("requires a non-unit", &["x-systemd.requires=lnet"], "systemd unit name"),
    bad_options("unknown x-systemd", &["x-systemd.wanted-by=x.service"], "not an option lfleet allows"),
    // Mount point.
    bad_dir("newline in path", "/lustre\nx", "control character"),
    bad_dir("NUL in path", "/lus\0tre", "control character"),
    bad_dir("tab in path", "/lus\ttre", "control character"),
    bad_dir("space in path", "/lus tre", "whitespace"),
    bad_dir("no-break space in path", "/lus\u{a0}tre", "whitespace"),
    bad_dir("parent component", "/lustre/../etc", "'..' component"),
    bad_dir("leading ../", "../lustre", "not absolute"),
    bad_dir("dot component", "/lustre/./x", "'.' component"),
    bad_dir("division slash", "/lustre\u{2215}etc", "U+2215, which looks like '/'"),
    bad_dir("fraction slash", "/lustre\u{2044}x", "U+2044"),
    bad_dir("fullwidth solidus", "/lustre\u{FF0F}x", "U+FF0F"),
    bad_dir("big solidus", "/lustre\u{29F8}x", "U+29F8"),
    bad_dir("backslash", "/lustre\\x", "only ASCII letters"),
    bad_dir("comma", "/lustre,x", "only ASCII letters"),
    bad_dir("non-ASCII", "/lüstre", "only ASCII letters"),
    bad_dir("under /etc", "/etc/x", "under /etc, which lfleet never mounts over"),
    bad_dir("/etc itself", "/etc", "under /etc"),
    bad_dir("under /usr", "/usr/local/lustre", "under /usr"),
    bad_dir("under /proc", "/proc/lustre", "under /proc"),
    bad_dir("under /run", "/run/lustre", "under /run"),
    bad_dir("under /lib64", "/lib64/x", "under /lib64"),
    bad_dir("under the agent's state", "/var/lib/lfleet/x", "under /var/lib/lfleet"),
    bad_dir("above the agent's state", "/var/lib", "would hide /var/lib/lfleet"),
    bad_dir("root", "/", "root directory"),
    bad_dir("relative", "lustre", "not absolute"),
    bad_dir("trailing slash", "/lustre/", "ends with '/'"),
    bad_dir("double slash", "/lustre//x", "contains '//'"),
    bad_dir("empty path", "", "is empty"),
    // fsname.
    bad_fsname("nine-character fsname", "lustrefs9", "longer than 8"),
    bad_fsname("empty fsname", "", "is empty"),
    bad_fsname("fsname with a dot", "lus.fs", "only letters, digits"),
    bad_fsname("fsname with a slash", "lus/fs", "only letters, digits"),
    bad_fsname("fsname with a space", "lus fs", "only letters, digits"),
    // MGS NIDs.
    bad_nids("empty NID list", "", "is empty"),
    bad_nids("@tcp without an address", "@tcp", "no address before '@'"),
    bad_nids("no @", "10.0.1.4", "not a NID"),
    bad_nids("no network", "10.0.1.4@", "no LNet network"),
    bad_nids("two @", "10.0.1.4@tcp@tcp", "more than one '@'"),
    bad_nids("hostname", "mgs.example@tcp", "not a dotted IPv4"),
    bad_nids("IPv6 shorthand", "fe80::1@tcp", "looks like an IPv6 address"),
    bad_nids("IPv6 in full", "2001:db8:0:0:0:0:0:1@tcp", "looks like an IPv6 address"),
    bad_nids("octet 256", "10.0.1.256@tcp", "not a dotted IPv4"),
    bad_nids("leading zero octet", "10.0.01.4@tcp", "not a dotted IPv4"),
    bad_nids("plus sign", "+10.0.1.4@tcp", "not a dotted IPv4"),
    bad_nids("three octets", "10.0.1@tcp", "not a dotted IPv4"),
    bad_nids("five octets", "10.0.1.4.5@tcp", "not a dotted IPv4"),
    bad_nids("space before the NID", " 10.0.1.4@tcp", "not a dotted IPv4"),
    bad_nids("unsupported LND", "10.0.1.4@gni", "only tcp and o2ib"),
    bad_nids("non-digit net number", "10.0.1.4@tcpx", "not a decimal number"),
    bad_nids("net number too large", "10.0.1.4@tcp65536", "above 65535"),
    bad_nids("trailing colon", "10.0.1.4@tcp:", "empty failover entry"),
    bad_nids("doubled colon", "10.0.1.4@tcp::10.0.1.5@tcp", "empty failover entry"),
    bad_nids("IPv6 loopback", "::1@tcp", "looks like an IPv6 address"),
    bad_nids("bracketed IPv6", "[fe80::1]@tcp", "looks like an IPv6 address"),
    bad_nids("leading colon", ":10.0.1.4@tcp", "empty failover entry"),
    bad_nids("trailing comma", "10.0.1.4@tcp,", "empty NID"),
    bad_nids("same NID twice", "10.0.1.4@tcp:10.0.1.4@tcp0", "gives the NID 10.0.1.4@tcp twice"),
];

#[test]
fn every_bad_spec_is_refused_naming_the_field_and_the_reason() {
    assert!(BAD.len() >= 30);
    for bad in BAD {
        let what = bad.what;
        let err = MountSpec::new(bad.nids, bad.fsname, bad.dir, bad.options).expect_err(what);
        assert_eq!(err.field, bad.field, "{what}: {err}");
        assert!(
            err.reason.contains(bad.fragment),
            "{what}: expected {:?} in {err}",
            bad.fragment
        );
        // The message starts with the field and shows the value escaped: one printable line.
        let message = err.to_string();
        assert!(
            message.starts_with(&format!("{}: \"", bad.field)),
            "{what}: {message}"
        );
        assert!(
            !message.chars().any(char::is_control),
            "{what}: {message:?}"
        );
    }
}

#[test]
fn good_specs_are_accepted_and_normalized() {
    let spec = MountSpec::new(
        "10.0.1.4@tcp0,10.0.2.4@tcp:10.0.1.5@tcp",
        "lustrefs",
        "/mnt/lustre-fs_1",
        &[
            "noatime",
            "flock",
            "x-systemd.mount-timeout=120",
            "x-systemd.requires=lfleet-lnet.service",
            "x-systemd.before=remote-fs.target",
            "x-systemd.automount",
        ],
    )
    .unwrap();
    assert_eq!(
        spec.source().to_string(),
        "10.0.1.4@tcp,10.0.2.4@tcp:10.0.1.5@tcp:/lustrefs"
    );
    assert_eq!(spec.mgs.nodes().len(), 2);
    assert_eq!(spec.mgs.nodes()[0].len(), 2);
    assert_eq!(spec.network(), "tcp");
    assert!(
        matches!(&spec.options[3], MountOption::Requires(unit) if unit == "lfleet-lnet.service")
    );

    let o2ib = MountSpec::new("172.16.0.1@o2ib1", "scratch", "/scratch", &["ro"]).unwrap();
    assert_eq!(o2ib.source().to_string(), "172.16.0.1@o2ib1:/scratch");
    assert_eq!(o2ib.network(), "o2ib1");

    for dir in [
        "/lustre",
        "/mnt/a.b+c@d=e-f_g",
        "/var/lustre",
        "/home",
        "/etcetera",
        "/runs",
    ] {
        assert_eq!(dir.parse::<MountPoint>().unwrap().as_str(), dir);
    }
    for fsname in ["a", "lustrefs", "Scr_at-9"] {
        assert_eq!(fsname.parse::<FsName>().unwrap().as_str(), fsname);
    }
    let nid: Nid = "0.0.0.0@tcp65535".parse().unwrap();
    assert_eq!(nid.net, 65535);
}

#[test]
fn sources_compare_equal_when_they_name_the_same_network() {
    let desired: MountSource = "10.0.1.4@tcp:/lustrefs".parse().unwrap();
    for same in ["10.0.1.4@tcp0:/lustrefs", "10.0.1.4@tcp00:/lustrefs"] {
        assert_eq!(same.parse::<MountSource>().unwrap(), desired, "{same}");
    }
    for different in [
        "10.0.1.4@tcp1:/lustrefs",
        "10.0.1.4@o2ib:/lustrefs",
        "10.0.1.5@tcp:/lustrefs",
        "10.0.1.4@tcp:/lustref",
    ] {
        assert_ne!(
            different.parse::<MountSource>().unwrap(),
            desired,
            "{different}"
        );
    }
    let failover: MountSource = "10.0.1.4@o2ib0,10.0.2.4@tcp:10.0.1.5@tcp:/fs"
        .parse()
        .unwrap();
    assert_eq!(
        failover.to_string(),
        "10.0.1.4@o2ib,10.0.2.4@tcp:10.0.1.5@tcp:/fs"
    );

    for (bad, field, fragment) in [
        (
            "10.0.1.4@tcp/lustrefs",
            "source",
            "not <MGS NIDs>:/<fsname>",
        ),
        ("10.0.1.4@tcp:/", "fsname", "is empty"),
        (":/lustrefs", "mgs_nids", "is empty"),
        ("10.0.1.4@tcp:/lustrefs/sub", "fsname", "only letters"),
        ("mgs@tcp:/lustrefs", "mgs_nids", "not a dotted IPv4"),
    ] {
        let err = bad.parse::<MountSource>().unwrap_err();
        assert_eq!(err.field, field, "{bad}: {err}");
        assert!(err.reason.contains(fragment), "{bad}: {err}");
    }
}

#[test]
fn option_strings_are_split_and_checked_item_by_item() {
    assert_eq!(
        MountOption::parse_list("noatime,flock").unwrap(),
        [MountOption::Noatime, MountOption::Flock]
    );
    assert_eq!(MountOption::parse_list("").unwrap(), []);
    let timeout = MountOption::parse_list("ro,x-systemd.mount-timeout=30").unwrap();
    assert_eq!(
        MountOption::render_list(&timeout),
        "ro,x-systemd.mount-timeout=30"
    );
    for (bad, value, fragment) in [
        ("lustrefs,exec", "lustrefs", "not an option lfleet allows"),
        ("noatime,suid", "suid", "not an option lfleet allows"),
        ("noatime,,flock", "", "empty option"),
        ("noatime,", "", "empty option"),
        (",noatime", "", "empty option"),
        ("noatime, flock", " flock", "not an option lfleet allows"),
        (
            "x-systemd.requires=a.service,exec",
            "exec",
            "not an option lfleet allows",
        ),
        ("ro,rw", "ro,rw", "contradict each other: ro and rw"),
        ("flock,flock", "flock,flock", "gives flock twice"),
    ] {
        let err = MountOption::parse_list(bad).unwrap_err();
        assert_eq!(err.field, "options", "{bad}: {err}");
        assert_eq!(err.value, value, "{bad}: {err}");
        assert!(err.reason.contains(fragment), "{bad}: {err}");
    }
    let unit: UnitName = "slurmd.service".parse().unwrap();
    assert_eq!(unit, "slurmd.service");
}

#[test]
fn serde_goes_through_validation() {
    let raw =
        r#"{"mgs_nids":"10.0.1.4@tcp","fsname":"lustrefs","mount_point":"/etc/x","options":[]}"#;
    let err = serde_json::from_str::<MountSpec>(raw).unwrap_err();
    assert!(err.to_string().contains("under /etc"), "{err}");
    let typo = r#"{"mgs_nids":"10.0.1.4@tcp","fsname":"lustrefs","mount_pont":"/lustre"}"#;
    assert!(serde_json::from_str::<MountSpec>(typo).is_err());
    let good = r#"{"mgs_nids":"10.0.1.4@tcp","fsname":"lustrefs","mount_point":"/lustre","options":["noatime"]}"#;
    let spec: MountSpec = serde_json::from_str(good).unwrap();
    assert_eq!(serde_json::to_string(&spec).unwrap(), good);

    let option: MountOption = serde_json::from_str(r#""x-systemd.mount-timeout=9""#).unwrap();
    assert_eq!(option, MountOption::MountTimeout(9));
    assert!(serde_json::from_str::<MountOption>(r#""exec""#).is_err());
    assert!(serde_json::from_str::<MountPoint>(r#""/proc/x""#).is_err());
    let nids: MgsNids = serde_json::from_str(r#""10.0.1.4@tcp0""#).unwrap();
    assert_eq!(serde_json::to_string(&nids).unwrap(), r#""10.0.1.4@tcp""#);
}

/// A valid NID list in text: one or two failover nodes of one or two NIDs each, on tcp or
/// o2ib with an optional network number (0 included, to exercise normalization). Duplicates
/// are avoided by giving each NID a distinct last octet.
fn nid_list() -> impl Strategy<Value = String> {
    let nid = (
        prop::array::uniform3(0u8..=255),
        prop::sample::select(vec!["tcp", "o2ib"]),
        prop::option::of(0u16..=65535),
    );
    prop::collection::vec(prop::collection::vec(nid, 1..=2), 1..=2).prop_map(|nodes| {
        let mut last_octet = 0u8;
        nodes
            .into_iter()
            .map(|node| {
                node.into_iter()
                    .map(|(octets, lnd, net)| {
                        last_octet += 1;
                        let net = net.map(|n| n.to_string()).unwrap_or_default();
                        format!(
                            "{}.{}.{}.{last_octet}@{lnd}{net}",
                            octets[0], octets[1], octets[2]
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect::<Vec<_>>()
            .join(":")
    })
}

proptest! {
    #[test]
    fn no_input_panics(
        nids in "\\PC{0,40}|[0-9.@:,tcpo2ib]{0,40}",
        fsname in "\\PC{0,12}",
        dir in "\\PC{0,40}|[/a-z.]{0,20}",
        options in prop::collection::vec("\\PC{0,30}|x-systemd\\.[a-z-]{0,16}=[0-9a-z.]{0,12}", 0..4),
        anything in ".{0,60}",
    ) {
        let _ = MountSpec::new(&nids, &fsname, &dir, &options);
        let _ = nids.parse::<MountSource>();
        let _ = anything.parse::<MountSource>();
        let _ = anything.parse::<MgsNids>();
        let _ = anything.parse::<MountPoint>();
        let _ = anything.parse::<NodeName>();
        let _ = MountOption::parse_list(&anything);
        let _ = MountOption::parse_list(&options.join(","));
    }

    #[test]
    fn valid_specs_round_trip_through_their_rendered_forms(
        nids in nid_list(),
        fsname in "[A-Za-z0-9_-]{1,8}",
        dir in "(/[A-Za-z0-9._+@=-]{1,10}){1,4}",
        options in prop::sample::subsequence(
            vec!["noatime", "flock", "user_xattr", "lazystatfs", "ro", "x-systemd.automount",
                 "x-systemd.mount-timeout=90", "x-systemd.requires=lfleet-lnet.service"],
            0..=8,
        ),
    ) {
        let dir_ok = dir.parse::<MountPoint>().is_ok();
        prop_assume!(dir_ok);
        let spec = MountSpec::new(&nids, &fsname, &dir, &options).unwrap();

        let raw = RawMountSpec::from(&spec);
        prop_assert_eq!(MountSpec::try_from(raw.clone()).unwrap(), spec.clone());
        prop_assert_eq!(RawMountSpec::from(MountSpec::try_from(&raw).unwrap()), raw);

        let source = spec.source();
        let reparsed: MountSource = source.to_string().parse().unwrap();
        prop_assert_eq!(&reparsed, &source);
        prop_assert_eq!(reparsed.to_string(), source.to_string());
        // The input form, `tcp0` and all, names the same source as the rendered one.
        let from_input: MountSource = format!("{nids}:/{fsname}").parse().unwrap();
        prop_assert_eq!(from_input, source);

        let rendered = MountOption::render_list(&spec.options);
        prop_assert_eq!(MountOption::parse_list(&rendered).unwrap(), spec.options.clone());
    }
}
