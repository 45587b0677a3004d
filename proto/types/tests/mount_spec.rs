//! MountSpec validation: a table of bad inputs, each refused with the field named and a
//! specific reason; good specs; and properties (no panic on any input, render/parse round
//! trips).

use lfleet_types::{MountSource, MountSpec, RawMountSpec};
use proptest::prelude::*;

const NIDS: &str = "10.0.1.4@tcp";
const FS: &str = "lustrefs";
const DIR: &str = "/lustre";
const OPTS: [&str; 2] = ["noatime", "flock"];

/// (what is tested, mgs_nids, fsname, mount point, options, field, reason fragment)
type Case = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static str,
    &'static str,
);

const BAD: &[Case] = &[
    (
        "option injection in one option",
        NIDS,
        FS,
        DIR,
        &["lustrefs,exec"],
        "options",
        "contains ','",
    ),
    (
        "suid smuggled after noatime",
        NIDS,
        FS,
        DIR,
        &["noatime,suid"],
        "options",
        "contains ','",
    ),
    (
        "exec",
        NIDS,
        FS,
        DIR,
        &["exec"],
        "options",
        "not an option lfleet allows",
    ),
    (
        "suid",
        NIDS,
        FS,
        DIR,
        &["suid"],
        "options",
        "not an option lfleet allows",
    ),
    (
        "empty option",
        NIDS,
        FS,
        DIR,
        &[""],
        "options",
        "empty option",
    ),
    (
        "ro and rw",
        NIDS,
        FS,
        DIR,
        &["ro", "rw"],
        "options",
        "contradict each other: ro and rw",
    ),
    (
        "two lock modes",
        NIDS,
        FS,
        DIR,
        &["flock", "localflock"],
        "options",
        "contradict each other: flock and localflock",
    ),
    (
        "duplicate",
        NIDS,
        FS,
        DIR,
        &["noatime", "noatime"],
        "options",
        "gives noatime twice",
    ),
    (
        "timeout out of range",
        NIDS,
        FS,
        DIR,
        &["x-systemd.mount-timeout=0"],
        "options",
        "from 1 to 3600",
    ),
    (
        "timeout not a number",
        NIDS,
        FS,
        DIR,
        &["x-systemd.mount-timeout=2min"],
        "options",
        "from 1 to 3600",
    ),
    (
        "requires a non-unit",
        NIDS,
        FS,
        DIR,
        &["x-systemd.requires=/bin/sh"],
        "options",
        "systemd unit name",
    ),
    (
        "unknown x-systemd",
        NIDS,
        FS,
        DIR,
        &["x-systemd.wanted-by=x.service"],
        "options",
        "not an option lfleet allows",
    ),
    (
        "newline in path",
        NIDS,
        FS,
        "/lustre\nx",
        &OPTS,
        "mount_point",
        "control character",
    ),
    (
        "NUL in path",
        NIDS,
        FS,
        "/lus\0tre",
        &OPTS,
        "mount_point",
        "control character",
    ),
    (
        "parent component",
        NIDS,
        FS,
        "/lustre/../etc",
        &OPTS,
        "mount_point",
        "'..' component",
    ),
    (
        "leading ../",
        NIDS,
        FS,
        "../lustre",
        &OPTS,
        "mount_point",
        "not absolute",
    ),
    (
        "dot component",
        NIDS,
        FS,
        "/lustre/./x",
        &OPTS,
        "mount_point",
        "'.' component",
    ),
    (
        "lookalike slash",
        NIDS,
        FS,
        "/lustre\u{2215}etc",
        &OPTS,
        "mount_point",
        "U+2215, which looks like '/'",
    ),
    (
        "fullwidth slash",
        NIDS,
        FS,
        "/lustre\u{FF0F}x",
        &OPTS,
        "mount_point",
        "U+FF0F",
    ),
    (
        "under /etc",
        NIDS,
        FS,
        "/etc/x",
        &OPTS,
        "mount_point",
        "under /etc",
    ),
    (
        "/etc itself",
        NIDS,
        FS,
        "/etc",
        &OPTS,
        "mount_point",
        "under /etc",
    ),
    (
        "under the agent's state",
        NIDS,
        FS,
        "/var/lib/lfleet/m",
        &OPTS,
        "mount_point",
        "under /var/lib/lfleet",
    ),
    (
        "under /proc",
        NIDS,
        FS,
        "/proc/lustre",
        &OPTS,
        "mount_point",
        "under /proc",
    ),
    (
        "root",
        NIDS,
        FS,
        "/",
        &OPTS,
        "mount_point",
        "root directory",
    ),
    (
        "relative",
        NIDS,
        FS,
        "lustre",
        &OPTS,
        "mount_point",
        "not absolute",
    ),
    (
        "trailing slash",
        NIDS,
        FS,
        "/lustre/",
        &OPTS,
        "mount_point",
        "ends with '/'",
    ),
    (
        "double slash",
        NIDS,
        FS,
        "/lustre//x",
        &OPTS,
        "mount_point",
        "contains '//'",
    ),
    (
        "space",
        NIDS,
        FS,
        "/lus tre",
        &OPTS,
        "mount_point",
        "whitespace",
    ),
    (
        "tab",
        NIDS,
        FS,
        "/lus\ttre",
        &OPTS,
        "mount_point",
        "control character",
    ),
    (
        "non-ASCII",
        NIDS,
        FS,
        "/lüstre",
        &OPTS,
        "mount_point",
        "only ASCII",
    ),
    ("empty path", NIDS, FS, "", &OPTS, "mount_point", "is empty"),
    (
        "nine-character fsname",
        NIDS,
        "lustrefs9",
        DIR,
        &OPTS,
        "fsname",
        "longer than 8",
    ),
    ("empty fsname", NIDS, "", DIR, &OPTS, "fsname", "is empty"),
    (
        "fsname with a dot",
        NIDS,
        "lus.fs",
        DIR,
        &OPTS,
        "fsname",
        "only letters, digits",
    ),
    ("empty NID list", "", FS, DIR, &OPTS, "mgs_nids", "is empty"),
    (
        "@tcp without an address",
        "@tcp",
        FS,
        DIR,
        &OPTS,
        "mgs_nids",
        "no address before '@'",
    ),
    ("no @", "10.0.1.4", FS, DIR, &OPTS, "mgs_nids", "not a NID"),
    (
        "hostname",
        "mgs.example@tcp",
        FS,
        DIR,
        &OPTS,
        "mgs_nids",
        "not a dotted IPv4",
    ),
    (
        "IPv6",
        "fe80::1@tcp",
        FS,
        DIR,
        &OPTS,
        "mgs_nids",
        "looks like an IPv6 address",
    ),
    (
        "octet 256",
        "10.0.1.256@tcp",
        FS,
        DIR,
        &OPTS,
        "mgs_nids",
        "not a dotted IPv4",
    ),
    (
        "leading zero octet",
        "10.0.01.4@tcp",
        FS,
        DIR,
        &OPTS,
        "mgs_nids",
        "not a dotted IPv4",
    ),
    (
        "unsupported LND",
        "10.0.1.4@gni",
        FS,
        DIR,
        &OPTS,
        "mgs_nids",
        "only tcp and o2ib",
    ),
    (
        "non-digit net number",
        "10.0.1.4@tcpx",
        FS,
        DIR,
        &OPTS,
        "mgs_nids",
        "not a decimal number",
    ),
    (
        "trailing colon",
        "10.0.1.4@tcp:",
        FS,
        DIR,
        &OPTS,
        "mgs_nids",
        "empty entry between ':'",
    ),
    (
        "empty failover NID",
        "10.0.1.4@tcp,",
        FS,
        DIR,
        &OPTS,
        "mgs_nids",
        "empty entry between ','",
    ),
];

#[test]
fn every_bad_spec_is_refused_naming_the_field_and_the_reason() {
    assert!(BAD.len() >= 25);
    for (what, nids, fsname, dir, options, field, fragment) in BAD {
        let err = MountSpec::new(nids, fsname, dir, options).expect_err(what);
        assert_eq!(err.field, *field, "{what}: {err}");
        assert!(
            err.reason.contains(fragment),
            "{what}: expected {fragment:?} in {err}"
        );
        // The message starts with the field and shows the value escaped.
        assert!(
            err.to_string().starts_with(&format!("{field}: ")),
            "{what}: {err}"
        );
        assert!(
            !err.to_string().contains('\n') && !err.to_string().contains('\0'),
            "{what}: {err:?}"
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
        ],
    )
    .unwrap();
    assert_eq!(
        spec.source().to_string(),
        "10.0.1.4@tcp,10.0.2.4@tcp:10.0.1.5@tcp:/lustrefs"
    );
    assert_eq!(spec.network(), "tcp");
    let o2ib = MountSpec::new("172.16.0.1@o2ib1", "scratch", "/scratch", &["ro"]).unwrap();
    assert_eq!(o2ib.source().to_string(), "172.16.0.1@o2ib1:/scratch");
    assert_eq!(o2ib.network(), "o2ib1");
}

#[test]
fn serde_goes_through_validation() {
    let raw =
        r#"{"mgs_nids":"10.0.1.4@tcp","fsname":"lustrefs","mount_point":"/etc/x","options":[]}"#;
    let err = serde_json::from_str::<MountSpec>(raw).unwrap_err();
    assert!(err.to_string().contains("under /etc"), "{err}");
    let good = r#"{"mgs_nids":"10.0.1.4@tcp","fsname":"lustrefs","mount_point":"/lustre","options":["noatime"]}"#;
    let spec: MountSpec = serde_json::from_str(good).unwrap();
    assert_eq!(serde_json::to_string(&spec).unwrap(), good);
}

proptest! {
    #[test]
    fn no_input_panics(nids in ".{0,40}", fsname in ".{0,12}", dir in ".{0,40}", options in prop::collection::vec(".{0,30}", 0..4)) {
        let _ = MountSpec::new(&nids, &fsname, &dir, &options);
        let _ = nids.parse::<MountSource>();
    }

    #[test]
    fn valid_specs_round_trip_through_their_raw_form(
        octets in prop::array::uniform4(0u8..=255),
        net in prop::option::of(0u32..=65535),
        fsname in "[A-Za-z0-9_-]{1,8}",
        dir in "(/[a-z0-9._-]{1,10}){1,4}",
        options in prop::sample::subsequence(vec!["noatime", "flock", "user_xattr", "lazystatfs", "ro"], 0..=5),
    ) {
        let address = format!("{}.{}.{}.{}", octets[0], octets[1], octets[2], octets[3]);
        let nids = match net { Some(n) => format!("{address}@tcp{n}"), None => format!("{address}@o2ib") };
        prop_assume!(!dir.split('/').any(|c| c == "." || c == ".."));
        prop_assume!(!["/etc", "/usr", "/proc", "/sys", "/dev", "/boot", "/bin", "/sbin", "/lib", "/lib64", "/run"].iter().any(|r| dir == *r || dir.starts_with(&format!("{r}/"))));
        let spec = MountSpec::new(&nids, &fsname, &dir, &options).unwrap();
        let raw = RawMountSpec::from(&spec);
        prop_assert_eq!(MountSpec::try_from(raw.clone()).unwrap(), spec.clone());
        let source: MountSource = spec.source().to_string().parse().unwrap();
        prop_assert_eq!(source, spec.source());
    }
}
