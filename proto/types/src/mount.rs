//! `MountSpec` and its parts: Lustre NIDs, fsname, mount point, mount options.
//!
//! The rules, each enforced when a value is parsed:
//! - **NIDs**: `<IPv4>@<lnd>[<net number>]`, the LND `tcp` or `o2ib` and the net number 0 to
//!   65535, for example `10.0.1.4@tcp` or `10.0.1.4@o2ib1`. Failover MGS nodes are separated
//!   by `:`, several NIDs of one node by `,` (mount.lustre's syntax). The address is a strict
//!   dotted quad: no hostnames (the kernel client does not resolve them), no IPv6, no leading
//!   zeros (`010` is octal to `inet_aton`, decimal to others).
//! - **Normalization**: network number 0 is LNet's default, so `tcp0` and `tcp` are the same
//!   network; a [`Nid`] stores the number, and shows 0 as nothing. `10.0.1.4@tcp0` and
//!   `10.0.1.4@tcp` therefore parse to equal values and both render as `10.0.1.4@tcp`, which
//!   is what lets the agent compare a mountinfo source with the desired one.
//! - **fsname**: 1 to 8 of `[A-Za-z0-9_-]` (Lustre's limit).
//! - **mount point**: absolute and normalized (no `//`, no trailing `/`, no `.` or `..`), not
//!   `/`, not on, under or above a system directory (see [`FORBIDDEN_MOUNT_ROOTS`]), at most
//!   4095 bytes with components of at most 255, and only `[A-Za-z0-9._+@=/-]`. Why so
//!   narrow: fstab separates fields by whitespace and escapes space, tab, newline and `\` as
//!   octal, systemd derives the `.mount` unit name from the path and escapes everything but a
//!   few ASCII characters, and a mount point may end up inside a comma-separated option
//!   (`x-systemd.requires-mounts-for=`). With this set the path is written and read back
//!   byte for byte everywhere, and a lookalike slash (U+2215 and friends) cannot pass for `/`.
//! - **options**: an allowlist (see [`MountOption`]), each option on its own (a `,` inside
//!   one is refused, so `noatime,suid` cannot smuggle `suid` in); duplicates and
//!   contradictions (`ro` with `rw`) are refused.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::SpecError;

/// Directories no Lustre filesystem may be mounted on, under, or above (mounting on `/var`
/// would hide `/var/lib/lfleet`). The system directories, `/run` (systemd's and the agent's
/// runtime state) and the agent's own state directory.
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

/// Where Lustre filesystems may be mounted unless a configuration says otherwise: a mount
/// point must be one of these or below one. Both the coordinator (for what it pushes) and the
/// agent (for what it accepts, from its own agent.toml) enforce a list, so a compromised
/// coordinator cannot mount over `/root` or `/var/spool/cron`.
pub const DEFAULT_ALLOWED_MOUNT_ROOTS: [&str; 8] = [
    "/lustre",
    "/amlfs",
    "/mnt",
    "/scratch",
    "/shared",
    "/data",
    "/projects",
    "/work",
];

/// The roots mount points must be on or below.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MountRoots(Vec<MountPoint>);

impl Default for MountRoots {
    fn default() -> Self {
        MountRoots(
            DEFAULT_ALLOWED_MOUNT_ROOTS
                .iter()
                .map(|root| {
                    root.parse()
                        .expect("the default roots are valid mount points")
                })
                .collect(),
        )
    }
}

impl MountRoots {
    /// A list of roots, each itself a valid mount point (so never a system directory).
    pub fn new<S: AsRef<str>>(roots: &[S]) -> Result<MountRoots, SpecError> {
        if roots.is_empty() {
            return Err(SpecError::new(
                "allowed_roots",
                "",
                "is empty: no filesystem could be mounted",
            ));
        }
        roots
            .iter()
            .map(|root| {
                root.as_ref()
                    .parse::<MountPoint>()
                    .map_err(|e| SpecError::new("allowed_roots", &e.value, e.reason))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(MountRoots)
    }

    /// Refuses a mount point that is not on or below one of the roots.
    pub fn check(&self, point: &MountPoint) -> Result<(), SpecError> {
        let text = point.as_str();
        let allowed = self.0.iter().any(|root| {
            text == root.as_str()
                || text
                    .strip_prefix(root.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        });
        if allowed {
            Ok(())
        } else {
            Err(SpecError::new(
                "mount_point",
                text,
                format!(
                    "is not on or below an allowed root ({}); the mount policy's allowed_roots lists them",
                    self.roots().join(", ")
                ),
            ))
        }
    }

    pub fn roots(&self) -> Vec<&str> {
        self.0.iter().map(MountPoint::as_str).collect()
    }
}

// === impl Nid ===

/// A Lustre network driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

/// One Lustre network identifier: `10.0.1.4@tcp`. Every combination of the fields is a valid
/// NID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Nid {
    pub address: Ipv4Addr,
    pub lnd: Lnd,
    /// The network number; 0, the default, is not shown.
    pub net: u16,
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

/// A strict dotted quad: four decimal octets 0 to 255, no sign, no leading zero, no spaces.
fn parse_ipv4(text: &str) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = text.split('.');
    for octet in &mut octets {
        let part = parts.next()?;
        let strict = !part.is_empty()
            && part.len() <= 3
            && part.bytes().all(|b| b.is_ascii_digit())
            && !(part.len() > 1 && part.starts_with('0'));
        if !strict {
            return None;
        }
        *octet = part.parse().ok()?;
    }
    if parts.next().is_some() {
        return None;
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
        if network.contains('@') {
            return refuse("has more than one '@'");
        }
        if address.is_empty() {
            return refuse("has no address before '@'");
        }
        let Some(address) = parse_ipv4(address) else {
            return refuse(
                "has an address that is not a dotted IPv4 address (hostnames and IPv6 are not accepted)",
            );
        };
        if network.is_empty() {
            return refuse("has no LNet network after '@'");
        }
        let (lnd, number) = if let Some(number) = network.strip_prefix("tcp") {
            (Lnd::Tcp, number)
        } else if let Some(number) = network.strip_prefix("o2ib") {
            (Lnd::O2ib, number)
        } else {
            return refuse("has an unsupported LNet network; lfleet takes only tcp and o2ib");
        };
        let net = if number.is_empty() {
            0
        } else if number.bytes().all(|b| b.is_ascii_digit()) {
            match number.parse::<u16>() {
                Ok(net) => net,
                Err(_) => return refuse("has a network number above 65535"),
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

serde_via_string!(Nid);

// === impl MgsNids ===

/// The MGS NIDs: failover nodes (`:`-separated), each with one or more NIDs (`,`). Never
/// empty, no node without a NID, no NID twice.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MgsNids(Vec<Vec<Nid>>);

impl MgsNids {
    /// Builds the list from failover nodes, each a list of NIDs, with the rules `parse` has.
    pub fn new(nodes: Vec<Vec<Nid>>) -> Result<MgsNids, SpecError> {
        let nids = MgsNids(nodes);
        let rendered = nids.to_string();
        if nids.0.is_empty() {
            return Err(SpecError::new(
                "mgs_nids",
                &rendered,
                "is empty: at least one MGS NID is needed",
            ));
        }
        if nids.0.iter().any(Vec::is_empty) {
            return Err(SpecError::new(
                "mgs_nids",
                &rendered,
                "has a failover node without a NID",
            ));
        }
        let all: Vec<&Nid> = nids.all().collect();
        for (index, nid) in all.iter().enumerate() {
            if all[..index].contains(nid) {
                return Err(SpecError::new(
                    "mgs_nids",
                    &rendered,
                    format!("gives the NID {nid} twice"),
                ));
            }
        }
        Ok(nids)
    }

    /// The failover nodes, in order, each with its NIDs.
    pub fn nodes(&self) -> &[Vec<Nid>] {
        &self.0
    }

    /// Every NID, in order.
    pub fn all(&self) -> impl Iterator<Item = &Nid> {
        self.0.iter().flatten()
    }
}

/// Whether a NID list with a `:` holds an IPv6 address: brackets, or a `:`-separated piece
/// whose address part is a bare group of hex digits (`fe80::1@tcp` has `fe80` and `1`). No
/// real NID's address is, as each is a dotted quad.
fn looks_like_ipv6(text: &str) -> bool {
    text.contains('[')
        || text.split(':').any(|piece| {
            let address = piece.split('@').next().unwrap_or_default();
            !address.is_empty()
                && address.len() <= 4
                && address.bytes().all(|b| b.is_ascii_hexdigit())
        })
}

impl FromStr for MgsNids {
    type Err = SpecError;

    fn from_str(text: &str) -> Result<MgsNids, SpecError> {
        let refuse = |reason: &str| Err(SpecError::new("mgs_nids", text, reason));
        if text.is_empty() {
            return refuse("is empty: at least one MGS NID is needed");
        }
        if text.contains(':') && looks_like_ipv6(text) {
            return refuse("looks like an IPv6 address; LNet NIDs take IPv4 addresses");
        }
        let mut nodes = Vec::new();
        for node in text.split(':') {
            if node.is_empty() {
                return refuse("has an empty failover entry (a leading, trailing or doubled ':')");
            }
            let mut nids = Vec::new();
            for nid in node.split(',') {
                if nid.is_empty() {
                    return refuse("has an empty NID (a leading, trailing or doubled ',')");
                }
                nids.push(nid.parse::<Nid>()?);
            }
            nodes.push(nids);
        }
        MgsNids::new(nodes).map_err(|error| SpecError::new("mgs_nids", text, error.reason))
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

serde_via_string!(MgsNids);

// === impl FsName ===

/// A Lustre filesystem name: 1 to 8 of `[A-Za-z0-9_-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
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
        if !text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return refuse("may hold only letters, digits, '_' and '-'");
        }
        if text.len() > 8 {
            return refuse("is longer than 8 characters, Lustre's limit");
        }
        Ok(FsName(text.to_owned()))
    }
}

impl fmt::Display for FsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

serde_via_string!(FsName);

// === impl MountSource ===

/// A mount source, `<MGS NIDs>:/<fsname>`, as fstab and mountinfo show it. Parsing
/// normalizes (`tcp0` is `tcp`), so two sources compare equal when they name the same MGS
/// NIDs, in the same order, and the same filesystem.
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

serde_via_string!(MountSource);

// === impl MountPoint ===

/// Characters that look like `/` but are not, named in the refusal.
const LOOKALIKE_SLASHES: [char; 6] = [
    '\u{2215}', // DIVISION SLASH
    '\u{2044}', // FRACTION SLASH
    '\u{FF0F}', // FULLWIDTH SOLIDUS
    '\u{29F8}', // BIG SOLIDUS
    '\u{2571}', // BOX DRAWINGS LIGHT DIAGONAL
    '\u{1735}', // PHILIPPINE SINGLE PUNCTUATION
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
                u32::from(c)
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
            .all(|b| b.is_ascii_alphanumeric() || b"._+@=/-".contains(&b))
        {
            return refuse(
                "may hold only ASCII letters, digits, '/' and . _ + @ = - (no escaping in fstab or systemd unit names)"
                    .into(),
            );
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
                long if long.len() > 255 => {
                    return refuse("has a component longer than 255 bytes".into());
                }
                _ => {}
            }
        }
        for root in FORBIDDEN_MOUNT_ROOTS {
            let on_or_under = text == root
                || text
                    .strip_prefix(root)
                    .is_some_and(|rest| rest.starts_with('/'));
            if on_or_under {
                return refuse(format!("is under {root}, which lfleet never mounts over"));
            }
            let above = root
                .strip_prefix(text)
                .is_some_and(|rest| rest.starts_with('/'));
            if above {
                return refuse(format!("would hide {root}, which lfleet never mounts over"));
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

serde_via_string!(MountPoint);

// === impl UnitName ===

/// A systemd unit name an `x-systemd.*` option may name: `[A-Za-z0-9:_.@-]`, at most 255
/// bytes, ending in `.service`, `.target`, `.mount` or `.socket` after a non-empty name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UnitName(String);

impl UnitName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for UnitName {
    type Err = SpecError;

    fn from_str(text: &str) -> Result<UnitName, SpecError> {
        let suffix_ok = [".service", ".target", ".mount", ".socket"]
            .iter()
            .any(|suffix| text.len() > suffix.len() && text.ends_with(suffix));
        let valid = suffix_ok
            && text.len() <= 255
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b":_.@-".contains(&b));
        if !valid {
            return Err(SpecError::new(
                "options",
                text,
                "needs a systemd unit name such as lfleet-lnet.service ([A-Za-z0-9:_.@-], ending in .service, .target, .mount or .socket)",
            ));
        }
        Ok(UnitName(text.to_owned()))
    }
}

impl PartialEq<str> for UnitName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for UnitName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl fmt::Display for UnitName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

serde_via_string!(UnitName);

// === impl MountOption ===

/// A mount option lfleet accepts. Anything else (`suid`, `dev`, `exec`, `uid=0`...) is
/// refused: the agent writes these into fstab and onto mount's command line. `nosuid` and
/// `nodev` are what the agent writes anyway; `noexec` may be asked for.
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
    /// `x-systemd.mount-timeout=<seconds>`, a plain whole number from 1 to 3600 (parsing
    /// enforces the range).
    MountTimeout(u32),
    /// `x-systemd.requires=<unit>`.
    Requires(UnitName),
    /// `x-systemd.before=<unit>`.
    Before(UnitName),
    /// `x-systemd.after=<unit>`.
    After(UnitName),
    /// `x-systemd.automount`.
    Automount,
    Nosuid,
    Nodev,
    Noexec,
}

impl FromStr for MountOption {
    type Err = SpecError;

    fn from_str(text: &str) -> Result<MountOption, SpecError> {
        let refuse = |reason: &str| Err(SpecError::new("options", text, reason));
        if text.is_empty() {
            return refuse("is an empty option");
        }
        if text.contains(',') {
            return refuse("contains ','; give each option on its own");
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
            "nosuid" => MountOption::Nosuid,
            "nodev" => MountOption::Nodev,
            "noexec" => MountOption::Noexec,
            _ => {
                if let Some(seconds) = text.strip_prefix("x-systemd.mount-timeout=") {
                    let digits = !seconds.is_empty() && seconds.bytes().all(|b| b.is_ascii_digit());
                    match seconds.parse::<u32>() {
                        Ok(seconds @ 1..=3600) if digits => MountOption::MountTimeout(seconds),
                        _ => return refuse("needs a whole number of seconds from 1 to 3600"),
                    }
                } else if let Some(unit) = text.strip_prefix("x-systemd.requires=") {
                    MountOption::Requires(unit.parse()?)
                } else if let Some(unit) = text.strip_prefix("x-systemd.before=") {
                    MountOption::Before(unit.parse()?)
                } else if let Some(unit) = text.strip_prefix("x-systemd.after=") {
                    MountOption::After(unit.parse()?)
                } else {
                    return refuse(
                        "is not an option lfleet allows (noatime, flock, localflock, noflock, user_xattr, nouser_xattr, lazystatfs, nolazystatfs, ro, rw, nosuid, nodev, noexec, x-systemd.mount-timeout/requires/before/after/automount)",
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
            MountOption::MountTimeout(seconds) => write!(f, "x-systemd.mount-timeout={seconds}"),
            MountOption::Requires(unit) => write!(f, "x-systemd.requires={unit}"),
            MountOption::Before(unit) => write!(f, "x-systemd.before={unit}"),
            MountOption::After(unit) => write!(f, "x-systemd.after={unit}"),
            MountOption::Automount => f.write_str("x-systemd.automount"),
            MountOption::Nosuid => f.write_str("nosuid"),
            MountOption::Nodev => f.write_str("nodev"),
            MountOption::Noexec => f.write_str("noexec"),
        }
    }
}

serde_via_string!(MountOption);

impl MountOption {
    /// Options of which at most one may be given; `None` for options that combine freely.
    fn exclusive_group(&self) -> Option<u8> {
        match self {
            MountOption::Ro | MountOption::Rw => Some(0),
            MountOption::Flock | MountOption::Localflock | MountOption::Noflock => Some(1),
            MountOption::UserXattr | MountOption::NoUserXattr => Some(2),
            MountOption::Lazystatfs | MountOption::Nolazystatfs => Some(3),
            MountOption::MountTimeout(_) => Some(4),
            _ => None,
        }
    }

    /// Parses a list of options, each given on its own, refusing duplicates and
    /// contradictions (ro with rw; two of flock, localflock, noflock; two mount timeouts...).
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
        for (index, option) in parsed.iter().enumerate() {
            for earlier in &parsed[..index] {
                if earlier == option {
                    return Err(SpecError::new(
                        "options",
                        &joined,
                        format!("gives {option} twice"),
                    ));
                }
                if option.exclusive_group().is_some()
                    && earlier.exclusive_group() == option.exclusive_group()
                {
                    return Err(SpecError::new(
                        "options",
                        &joined,
                        format!("contradict each other: {earlier} and {option}"),
                    ));
                }
            }
        }
        Ok(parsed)
    }

    /// Parses a comma-separated option string as fstab writes it (`noatime,flock`), with the
    /// rules of [`MountOption::parse_all`]. The empty string is no options; an empty item
    /// (`noatime,,flock`, a trailing `,`) is refused, as is every option not on the allowlist,
    /// so `lustrefs,exec` and `noatime,suid` fail on `lustrefs` and `suid`.
    pub fn parse_list(text: &str) -> Result<Vec<MountOption>, SpecError> {
        if text.is_empty() {
            return Ok(Vec::new());
        }
        let items: Vec<&str> = text.split(',').collect();
        MountOption::parse_all(&items)
    }

    /// The options as fstab writes them: `noatime,flock`.
    pub fn render_list(options: &[MountOption]) -> String {
        options
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

// === impl MountSpec ===

/// A Lustre filesystem mount, validated: every field is a validated type, and
/// [`MountSpec::new`] also refuses duplicate and contradictory options.
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
#[serde(deny_unknown_fields)]
pub struct RawMountSpec {
    pub mgs_nids: String,
    pub fsname: String,
    pub mount_point: String,
    #[serde(default)]
    pub options: Vec<String>,
}

impl MountSpec {
    /// Validates every field, in the order mgs_nids, fsname, mount_point, options; the first
    /// refusal is returned.
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

    /// The mount source; it renders as `10.0.1.4@tcp:10.0.1.5@tcp:/lustrefs`.
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
        MountSpec::try_from(&raw)
    }
}

impl TryFrom<&RawMountSpec> for MountSpec {
    type Error = SpecError;
    fn try_from(raw: &RawMountSpec) -> Result<MountSpec, SpecError> {
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
