//! `MountSpec` and its parts: Lustre NIDs, fsname, mount point, mount options.
//!
//! The rules, each enforced when a value is built:
//! - **NIDs**: `<IPv4>@<lnd>[<net number>]`, the LND `tcp` or `o2ib`, for example
//!   `10.0.1.4@tcp` or `10.0.1.4@o2ib1`. Failover MGS nodes are separated by `:`, several NIDs
//!   of one node by `,` (mount.lustre's syntax). Network number 0 is the default, so `tcp0`
//!   is stored and shown as `tcp`.
//! - **fsname**: 1 to 8 of `[A-Za-z0-9_-]` (Lustre's limit).
//! - **mount point**: absolute and normalized (no `//`, no trailing `/`, no `.` or `..`), not
//!   `/`, not under a system directory (see [`FORBIDDEN_MOUNT_ROOTS`]), at most 4095 bytes,
//!   and only `[A-Za-z0-9._+@=,/-]`: no whitespace, control characters or non-ASCII, so the
//!   path needs no escaping in fstab or in a systemd unit name and a lookalike slash cannot
//!   pass for a real one.
//! - **options**: an allowlist (see [`MountOption`]); contradictory pairs are refused.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::SpecError;

/// Directories no Lustre filesystem may be mounted on or under.
pub const FORBIDDEN_MOUNT_ROOTS: [&str; 12] = [
    "/etc",
    "/usr",
    "/proc",
    "/sys",
    "/dev",
    "/boot",
    "/bin",
    "/sbin",
    "/lib",
    "/lib64",
    "/run",
    "/var/lib/lfleet",
];

/// A Lustre network driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Lnd {
    Tcp,
    O2ib,
}

impl Lnd {
    pub fn as_str(self) -> &'static str {
        match self {
            Lnd::Tcp => "tcp",
            Lnd::O2ib => "o2ib",
        }
    }
}

/// One Lustre network identifier: `10.0.1.4@tcp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Nid {
    pub address: Ipv4Addr,
    pub lnd: Lnd,
    /// The network number; 0 (the default) is not shown.
    pub net: u32,
}

impl Nid {
    /// The LNet network name: `tcp`, `tcp1`, `o2ib`.
    pub fn network(&self) -> String {
        if self.net == 0 {
            self.lnd.as_str().to_owned()
        } else {
            format!("{}{}", self.lnd.as_str(), self.net)
        }
    }
}

fn parse_ipv4(text: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = text.split('.').collect();
    if parts.len() != 4 {
        return None;
    }
    let mut octets = [0u8; 4];
    for (octet, part) in octets.iter_mut().zip(&parts) {
        let strict = !part.is_empty()
            && part.len() <= 3
            && part.bytes().all(|b| b.is_ascii_digit())
            && !(part.len() > 1 && part.starts_with('0'));
        if !strict {
            return None;
        }
        *octet = part.parse().ok()?;
    }
    Some(Ipv4Addr::from(octets))
}

impl FromStr for Nid {
    type Err = SpecError;

    fn from_str(text: &str) -> Result<Nid, SpecError> {
        let refuse = |reason: &str| Err(SpecError::new("mgs_nids", text, reason));
        let Some((address, network)) = text.split_once('@') else {
            return refuse("is not a NID: expected <IPv4 address>@tcp or @o2ib");
        };
        if address.is_empty() {
            return refuse("has no address before '@'");
        }
        let Some(address) = parse_ipv4(address) else {
            return refuse(
                "has an address that is not a dotted IPv4 address (hostnames and IPv6 are not accepted)",
            );
        };
        let (lnd, number) = if let Some(number) = network.strip_prefix("tcp") {
            (Lnd::Tcp, number)
        } else if let Some(number) = network.strip_prefix("o2ib") {
            (Lnd::O2ib, number)
        } else {
            return refuse("has an unsupported LNet network: only tcp and o2ib are");
        };
        let net = if number.is_empty() {
            0
        } else if number.len() <= 5 && number.bytes().all(|b| b.is_ascii_digit()) {
            match number.parse::<u32>() {
                Ok(net) if net <= 65535 => net,
                _ => return refuse("has a network number above 65535"),
            }
        } else {
            return refuse("has a network number that is not a decimal number");
        };
        Ok(Nid { address, lnd, net })
    }
}

impl fmt::Display for Nid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.address, self.network())
    }
}

/// The MGS NIDs: failover nodes (`:`-separated), each with one or more NIDs (`,`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MgsNids(Vec<Vec<Nid>>);

impl MgsNids {
    pub fn nodes(&self) -> &[Vec<Nid>] {
        &self.0
    }

    /// Every NID, in order.
    pub fn all(&self) -> impl Iterator<Item = &Nid> {
        self.0.iter().flatten()
    }
}

impl FromStr for MgsNids {
    type Err = SpecError;

    fn from_str(text: &str) -> Result<MgsNids, SpecError> {
        if text.trim().is_empty() {
            return Err(SpecError::new(
                "mgs_nids",
                text,
                "is empty: at least one MGS NID is needed",
            ));
        }
        if text.contains("::") || text.contains('[') {
            return Err(SpecError::new(
                "mgs_nids",
                text,
                "looks like an IPv6 address; LNet NIDs take IPv4 addresses",
            ));
        }
        let mut nodes = Vec::new();
        for node in text.split(':') {
            if node.is_empty() {
                return Err(SpecError::new(
                    "mgs_nids",
                    text,
                    "has an empty entry between ':' separators",
                ));
            }
            let mut nids = Vec::new();
            for nid in node.split(',') {
                if nid.is_empty() {
                    return Err(SpecError::new(
                        "mgs_nids",
                        text,
                        "has an empty entry between ',' separators",
                    ));
                }
                nids.push(nid.parse::<Nid>()?);
            }
            nodes.push(nids);
        }
        Ok(MgsNids(nodes))
    }
}

impl fmt::Display for MgsNids {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, node) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str(":")?;
            }
            for (position, nid) in node.iter().enumerate() {
                if position > 0 {
                    f.write_str(",")?;
                }
                write!(f, "{nid}")?;
            }
        }
        Ok(())
    }
}

/// A Lustre filesystem name: 1 to 8 of `[A-Za-z0-9_-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FsName(String);

impl FsName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for FsName {
    type Err = SpecError;

    fn from_str(text: &str) -> Result<FsName, SpecError> {
        let refuse = |reason: &str| Err(SpecError::new("fsname", text, reason));
        if text.is_empty() {
            return refuse("is empty");
        }
        if text.len() > 8 {
            return refuse("is longer than 8 characters, Lustre's limit");
        }
        if !text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return refuse("may hold only letters, digits, '_' and '-'");
        }
        Ok(FsName(text.to_owned()))
    }
}

impl fmt::Display for FsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A mount source, `<MGS NIDs>:/<fsname>`, as fstab and mountinfo show it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MountSource {
    pub mgs: MgsNids,
    pub fsname: FsName,
}

impl FromStr for MountSource {
    type Err = SpecError;

    fn from_str(text: &str) -> Result<MountSource, SpecError> {
        let Some((nids, fsname)) = text.rsplit_once(":/") else {
            return Err(SpecError::new(
                "source",
                text,
                "is not <MGS NIDs>:/<fsname>",
            ));
        };
        Ok(MountSource {
            mgs: nids.parse()?,
            fsname: fsname.parse()?,
        })
    }
}

impl fmt::Display for MountSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:/{}", self.mgs, self.fsname)
    }
}

/// Characters that look like `/` but are not.
const LOOKALIKE_SLASHES: [char; 6] = [
    '\u{2215}', '\u{2044}', '\u{FF0F}', '\u{29F8}', '\u{2571}', '\u{1735}',
];

/// An absolute, normalized mount point the agent may mount on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MountPoint(String);

impl MountPoint {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for MountPoint {
    type Err = SpecError;

    fn from_str(text: &str) -> Result<MountPoint, SpecError> {
        let refuse = |reason: String| Err(SpecError::new("mount_point", text, reason));
        if text.is_empty() {
            return refuse("is empty".into());
        }
        if let Some(c) = text.chars().find(|c| LOOKALIKE_SLASHES.contains(c)) {
            return refuse(format!(
                "contains U+{:04X}, which looks like '/' but is not",
                c as u32
            ));
        }
        if text.chars().any(char::is_control) {
            return refuse("contains a control character (NUL, newline, tab...)".into());
        }
        if text.chars().any(char::is_whitespace) {
            return refuse("contains whitespace".into());
        }
        if !text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._+@=,/-".contains(&b))
        {
            return refuse("may hold only ASCII letters, digits, '/' and . _ + @ = , -".into());
        }
        if !text.starts_with('/') {
            return refuse("is not absolute".into());
        }
        if text == "/" {
            return refuse("is the root directory".into());
        }
        if text.len() > 4095 {
            return refuse("is longer than 4095 bytes".into());
        }
        if text.ends_with('/') {
            return refuse("ends with '/'; write it without".into());
        }
        for component in text[1..].split('/') {
            match component {
                "" => return refuse("contains '//'".into()),
                "." => return refuse("contains a '.' component".into()),
                ".." => return refuse("contains a '..' component".into()),
                _ => {}
            }
        }
        for root in FORBIDDEN_MOUNT_ROOTS {
            if text == root
                || text
                    .strip_prefix(root)
                    .is_some_and(|rest| rest.starts_with('/'))
            {
                return refuse(format!("is under {root}, which lfleet never mounts over"));
            }
        }
        Ok(MountPoint(text.to_owned()))
    }
}

impl fmt::Display for MountPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A mount option lfleet accepts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MountOption {
    Noatime,
    Flock,
    Localflock,
    Noflock,
    UserXattr,
    NoUserXattr,
    Lazystatfs,
    Nolazystatfs,
    Ro,
    Rw,
    /// `x-systemd.mount-timeout=<seconds>`, 1 to 3600.
    MountTimeout(u32),
    /// `x-systemd.requires=<unit>`.
    Requires(String),
    /// `x-systemd.before=<unit>`.
    Before(String),
    /// `x-systemd.after=<unit>`.
    After(String),
    /// `x-systemd.automount`.
    Automount,
}

fn valid_unit_name(unit: &str) -> bool {
    let suffix_ok = [".service", ".target", ".mount", ".socket"]
        .iter()
        .any(|suffix| unit.len() > suffix.len() && unit.ends_with(suffix));
    suffix_ok
        && unit.len() <= 255
        && unit
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b":_.@-".contains(&b))
}

impl FromStr for MountOption {
    type Err = SpecError;

    fn from_str(text: &str) -> Result<MountOption, SpecError> {
        let refuse = |reason: &str| Err(SpecError::new("options", text, reason));
        if text.is_empty() {
            return refuse("is an empty option");
        }
        if text.contains(',') {
            return refuse("contains ',': give each option separately");
        }
        let option = match text {
            "noatime" => MountOption::Noatime,
            "flock" => MountOption::Flock,
            "localflock" => MountOption::Localflock,
            "noflock" => MountOption::Noflock,
            "user_xattr" => MountOption::UserXattr,
            "nouser_xattr" => MountOption::NoUserXattr,
            "lazystatfs" => MountOption::Lazystatfs,
            "nolazystatfs" => MountOption::Nolazystatfs,
            "ro" => MountOption::Ro,
            "rw" => MountOption::Rw,
            "x-systemd.automount" => MountOption::Automount,
            _ => {
                if let Some(seconds) = text.strip_prefix("x-systemd.mount-timeout=") {
                    match seconds.parse::<u32>() {
                        Ok(s @ 1..=3600) if seconds.bytes().all(|b| b.is_ascii_digit()) => {
                            MountOption::MountTimeout(s)
                        }
                        _ => return refuse("needs a whole number of seconds from 1 to 3600"),
                    }
                } else if let Some((key, unit)) = text
                    .strip_prefix("x-systemd.")
                    .and_then(|rest| rest.split_once('='))
                    .filter(|(key, _)| matches!(*key, "requires" | "before" | "after"))
                {
                    if !valid_unit_name(unit) {
                        return refuse("needs a systemd unit name such as lfleet-lnet.service");
                    }
                    match key {
                        "requires" => MountOption::Requires(unit.to_owned()),
                        "before" => MountOption::Before(unit.to_owned()),
                        _ => MountOption::After(unit.to_owned()),
                    }
                } else {
                    return refuse(
                        "is not an option lfleet allows (noatime, flock, localflock, noflock, user_xattr, nouser_xattr, lazystatfs, nolazystatfs, ro, rw, x-systemd.mount-timeout/requires/before/after/automount)",
                    );
                }
            }
        };
        Ok(option)
    }
}

impl fmt::Display for MountOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MountOption::Noatime => f.write_str("noatime"),
            MountOption::Flock => f.write_str("flock"),
            MountOption::Localflock => f.write_str("localflock"),
            MountOption::Noflock => f.write_str("noflock"),
            MountOption::UserXattr => f.write_str("user_xattr"),
            MountOption::NoUserXattr => f.write_str("nouser_xattr"),
            MountOption::Lazystatfs => f.write_str("lazystatfs"),
            MountOption::Nolazystatfs => f.write_str("nolazystatfs"),
            MountOption::Ro => f.write_str("ro"),
            MountOption::Rw => f.write_str("rw"),
            MountOption::MountTimeout(s) => write!(f, "x-systemd.mount-timeout={s}"),
            MountOption::Requires(u) => write!(f, "x-systemd.requires={u}"),
            MountOption::Before(u) => write!(f, "x-systemd.before={u}"),
            MountOption::After(u) => write!(f, "x-systemd.after={u}"),
            MountOption::Automount => f.write_str("x-systemd.automount"),
        }
    }
}

impl MountOption {
    /// Parses a list of options, each given on its own, refusing duplicates and
    /// contradictions (ro with rw; two of flock, localflock, noflock; and so on).
    pub fn parse_all<S: AsRef<str>>(options: &[S]) -> Result<Vec<MountOption>, SpecError> {
        let parsed: Vec<MountOption> = options
            .iter()
            .map(|option| option.as_ref().parse())
            .collect::<Result<_, _>>()?;
        let joined = options
            .iter()
            .map(AsRef::as_ref)
            .collect::<Vec<_>>()
            .join(",");
        let groups: [&[&str]; 5] = [
            &["ro", "rw"],
            &["flock", "localflock", "noflock"],
            &["user_xattr", "nouser_xattr"],
            &["lazystatfs", "nolazystatfs"],
            &["x-systemd.mount-timeout"],
        ];
        let rendered: Vec<String> = parsed.iter().map(ToString::to_string).collect();
        for (index, option) in rendered.iter().enumerate() {
            if rendered[..index].contains(option) {
                return Err(SpecError::new(
                    "options",
                    &joined,
                    format!("gives {option} twice"),
                ));
            }
        }
        // Option names without values, for the contradiction groups.
        let names: Vec<&str> = rendered
            .iter()
            .map(|option| option.split('=').next().unwrap_or(""))
            .collect();
        for group in groups {
            let present: Vec<&str> = group
                .iter()
                .copied()
                .filter(|name| names.iter().filter(|n| *n == name).count() > 0)
                .collect();
            let timeouts = names
                .iter()
                .filter(|n| **n == "x-systemd.mount-timeout")
                .count();
            if timeouts > 1 {
                return Err(SpecError::new(
                    "options",
                    &joined,
                    "give x-systemd.mount-timeout more than once",
                ));
            }
            if present.len() > 1 {
                return Err(SpecError::new(
                    "options",
                    &joined,
                    format!("contradict each other: {}", present.join(" and ")),
                ));
            }
        }
        Ok(parsed)
    }
}

/// A Lustre filesystem mount, validated.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawMountSpec", into = "RawMountSpec")]
pub struct MountSpec {
    pub mgs: MgsNids,
    pub fsname: FsName,
    pub mount_point: MountPoint,
    pub options: Vec<MountOption>,
}

/// The plain-string form of a [`MountSpec`], as configuration files and the wire carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawMountSpec {
    pub mgs_nids: String,
    pub fsname: String,
    pub mount_point: String,
    #[serde(default)]
    pub options: Vec<String>,
}

impl MountSpec {
    /// Validates every field; the first refusal is returned.
    pub fn new<S: AsRef<str>>(
        mgs_nids: &str,
        fsname: &str,
        mount_point: &str,
        options: &[S],
    ) -> Result<MountSpec, SpecError> {
        Ok(MountSpec {
            mgs: mgs_nids.parse()?,
            fsname: fsname.parse()?,
            mount_point: mount_point.parse()?,
            options: MountOption::parse_all(options)?,
        })
    }

    /// The mount source: `10.0.1.4@tcp:/lustrefs`.
    pub fn source(&self) -> MountSource {
        MountSource {
            mgs: self.mgs.clone(),
            fsname: self.fsname.clone(),
        }
    }

    /// The LNet network of the first MGS NID (`tcp` for AMLFS).
    pub fn network(&self) -> String {
        self.mgs
            .all()
            .next()
            .map(Nid::network)
            .unwrap_or_else(|| "tcp".into())
    }
}

impl TryFrom<RawMountSpec> for MountSpec {
    type Error = SpecError;
    fn try_from(raw: RawMountSpec) -> Result<MountSpec, SpecError> {
        MountSpec::new(&raw.mgs_nids, &raw.fsname, &raw.mount_point, &raw.options)
    }
}

impl From<MountSpec> for RawMountSpec {
    fn from(spec: MountSpec) -> RawMountSpec {
        RawMountSpec::from(&spec)
    }
}

impl From<&MountSpec> for RawMountSpec {
    fn from(spec: &MountSpec) -> RawMountSpec {
        RawMountSpec {
            mgs_nids: spec.mgs.to_string(),
            fsname: spec.fsname.to_string(),
            mount_point: spec.mount_point.to_string(),
            options: spec.options.iter().map(ToString::to_string).collect(),
        }
    }
}
