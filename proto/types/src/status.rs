//! What an agent reports and both sides interpret: checks and their [`Outcome`]s
//! ([`Condition`]), reconcile [`ItemResult`]s with their [`ItemKind`] and [`FailureClass`],
//! the events an agent may report ([`AgentEventKind`]), the [`ReconcileStatus`], and the
//! [`StatusReport`] that carries them.
//!
//! Each closed set names its members once (`as_str` / `FromStr`); a value from a newer peer
//! that this build does not know becomes an explicit `Unrecognized`/`Other` value (or, for
//! event kinds, a refusal), never a silent default.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Generation, SpecError};

/// Declares a closed set of names: the enum, `ALL`, `as_str`, `FromStr`, `Display` and serde
/// through the name.
macro_rules! named_set {
    (
        $(#[$meta:meta])*
        pub enum $name:ident ($field:literal, $what:literal) {
            $( $(#[$variant_meta:meta])* $variant:ident => $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $( $(#[$variant_meta])* $variant, )+
        }

        impl $name {
            /// Every member, in declaration order.
            pub const ALL: &'static [$name] = &[ $( $name::$variant, )+ ];

            /// The stable name on the wire, in configuration and in logs.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }
        }

        impl FromStr for $name {
            type Err = SpecError;

            fn from_str(text: &str) -> Result<Self, SpecError> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|member| member.as_str() == text)
                    .ok_or_else(|| SpecError::new($field, text, concat!("is not ", $what)))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        serde_via_string!($name);
    };
}

// === impl CheckId ===

named_set! {
    /// A health check this build knows. The registry order is the order agents run them.
    pub enum KnownCheck ("check", "a check lfleet knows") {
        MountPresent => "mount.present",
        MountResponsive => "mount.responsive",
        LustreImports => "lustre.imports",
        LustreLbug => "lustre.lbug",
        LustreClient => "lustre.client",
        Lnet => "lnet",
        IbPorts => "ib.ports",
        Accelnet => "accelnet",
        LustreSlow => "lustre.slow",
    }
}

/// A check's name: one this build knows, or another that a newer agent reports (kept as
/// text, shown, never drained on unless a policy names it).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CheckId {
    Known(KnownCheck),
    Other(String),
}

impl CheckId {
    pub fn as_str(&self) -> &str {
        match self {
            CheckId::Known(known) => known.as_str(),
            CheckId::Other(name) => name,
        }
    }

    pub fn known(&self) -> Option<KnownCheck> {
        match self {
            CheckId::Known(known) => Some(*known),
            CheckId::Other(_) => None,
        }
    }
}

impl From<KnownCheck> for CheckId {
    fn from(known: KnownCheck) -> CheckId {
        CheckId::Known(known)
    }
}

impl PartialEq<KnownCheck> for CheckId {
    fn eq(&self, other: &KnownCheck) -> bool {
        self.known() == Some(*other)
    }
}

impl FromStr for CheckId {
    type Err = SpecError;

    /// A known name, or another of 1 to 64 bytes of `[a-z0-9._-]` (the shape of every check
    /// name), so nothing unprintable travels as a check name.
    fn from_str(text: &str) -> Result<Self, SpecError> {
        if let Ok(known) = text.parse::<KnownCheck>() {
            return Ok(CheckId::Known(known));
        }
        let good = !text.is_empty()
            && text.len() <= 64
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
        if good {
            Ok(CheckId::Other(text.to_owned()))
        } else {
            Err(SpecError::new(
                "check",
                text,
                "is not a check name (1 to 64 of a-z, 0-9, '.', '_', '-')",
            ))
        }
    }
}

impl fmt::Display for CheckId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

serde_via_string!(CheckId);

// === impl Outcome ===

/// A check's verdict: it passed, it failed (a reason to act), or it could not tell (never a
/// reason to drain on its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    Unknown,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One check's latest result on one subject (a mount, a port, a NIC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Condition {
    pub check: CheckId,
    /// What it looked at: `/lustre`, `mlx5_0/1`, `eth0`.
    pub subject: String,
    pub outcome: Outcome,
    /// A stable code for Fail (`import-not-full`) or Unknown (`timeout`); empty for Pass.
    pub code: String,
    pub detail: String,
    /// When the outcome last changed, by the agent's clock: evidence only; the coordinator
    /// times windows from when it received the change.
    pub since_unix_ms: i64,
    pub observed_unix_ms: i64,
}

impl Condition {
    /// The part that decides whether a report changed anything: check, subject, outcome, code.
    pub fn shape(&self) -> (&CheckId, &str, Outcome, &str) {
        (&self.check, &self.subject, self.outcome, &self.code)
    }
}

// === impl ItemKind ===

named_set! {
    /// An item the agent reconciles.
    pub enum ItemKind ("kind", "an item kind lfleet knows") {
        Repository => "repository",
        Package => "package",
        Module => "module",
        Lnet => "lnet",
        Fstab => "fstab",
        Mount => "mount",
        Dropin => "dropin",
        Kernel => "kernel",
        Command => "command",
        /// A kind a newer agent reported that this build does not know.
        Unrecognized => "unrecognized",
    }
}

// === impl FailureClass ===

named_set! {
    /// Why an item failed, in terms that say what to do about it.
    pub enum FailureClass ("class", "a failure class lfleet knows") {
        /// The repository has this Lustre client, but not yet for this kernel (AMLFS
        /// publishes kernel-matched packages within about a business day). Retry.
        NotYetPublished => "not-yet-published",
        /// No package of this Lustre version exists for this kernel's series at all.
        SeriesUnsupported => "kernel-series-unsupported",
        /// The repository could not be reached or answered garbage. Retry.
        RepositoryUnreachable => "repository-unreachable",
        /// The package exists but a package it depends on is not published yet. Retry.
        DependencyNotPublished => "dependency-not-published",
        /// Another process holds the package database lock past our deadline. Retry.
        PackageLockHeld => "package-lock-held",
        /// A DKMS build of the client failed.
        DkmsBuildFailed => "dkms-build-failed",
        /// The kernel refused an unsigned or untrusted module (Secure Boot, lockdown).
        SecureBootRejected => "secure-boot-rejected",
        /// No client module exists for the running kernel.
        ModuleMissing => "module-missing",
        /// A different client version is loaded than installed; it goes at the next reboot.
        StaleModule => "stale-module",
        /// The repository's signing key is not where the configuration says.
        RepositoryKeyMissing => "repository-key-missing",
        /// A file the agent owns could not be written.
        WriteFailed => "write-failed",
        /// A mount waits for something that is not ready yet (the client, LNet).
        NotReady => "not-ready",
        /// mount or umount failed.
        MountFailed => "mount-failed",
        /// A mount point is held by something the agent does not own.
        MountConflict => "mount-conflict",
        /// No route to the MGS.
        NoRoute => "no-route",
        /// The configured interface is missing or cannot carry LNet.
        BadInterface => "bad-interface",
        /// The interface has no IPv4 address.
        NoAddress => "no-address",
        /// lnetctl refused the configuration.
        LnetConfigFailed => "lnet-config-failed",
        /// LNet is up but without the expected NID.
        NidMissing => "nid-missing",
        /// A coordinator command could not be carried out.
        CommandFailed => "command-failed",
        /// Nothing above matched: read the message.
        Unknown => "unknown",
        /// A class a newer agent reported that this build does not know.
        Unrecognized => "unrecognized",
    }
}

impl FailureClass {
    /// The stable code reported to the coordinator and in findings.
    pub fn code(self) -> &'static str {
        self.as_str()
    }

    /// Whether trying again later (with backoff) can succeed without anyone acting.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            FailureClass::NotYetPublished
                | FailureClass::RepositoryUnreachable
                | FailureClass::DependencyNotPublished
                | FailureClass::PackageLockHeld
                | FailureClass::NotReady
        )
    }
}

/// The result of reconciling one item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemResult {
    pub kind: ItemKind,
    /// The item's identity: a mount point, a kernel release, a file.
    pub id: String,
    /// `None` when the item is as desired.
    pub failure: Option<FailureClass>,
    pub message: String,
}

impl ItemResult {
    pub fn ok(&self) -> bool {
        self.failure.is_none()
    }
}

// === impl AgentEventKind ===

named_set! {
    /// The events an agent may report; anything else is refused by the coordinator. Kinds
    /// that record what the coordinator or an operator did are not here: only the
    /// coordinator writes those.
    pub enum AgentEventKind ("kind", "an agent event kind") {
        ImportReconnect => "import-reconnect",
        ImportFailover => "import-failover",
        Evicted => "evicted",
        VfAbsent => "vf-absent",
        VfReturned => "vf-returned",
        LnetHealthDropped => "lnet-health-dropped",
        CounterReset => "counter-reset",
        Remounted => "remounted",
        ClientInstalled => "client-installed",
        ReconcileFailed => "reconcile-failed",
    }
}

/// Something that happened on a node, reported once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentEvent {
    pub kind: AgentEventKind,
    pub subject: String,
    pub detail: String,
    pub at_unix_ms: i64,
}

// === impl ConfigAck ===

named_set! {
    /// Why an agent refused a desired config or a command.
    pub enum AckRefusal ("error_class", "a refusal lfleet knows") {
        /// The generation is older than the one the agent accepted.
        StaleGeneration => "stale-generation",
        /// The config breaks a rule (a mount point outside the allowed roots, a bad NID).
        InvalidConfig => "invalid-config",
        /// The agent could not record the config in its ledger.
        Ledger => "ledger",
        /// The node cannot be managed (an unsupported distribution).
        Reconcile => "reconcile",
        /// The command is not one this agent knows, or not allowed on this subject.
        UnknownCommand => "unknown-command",
        /// A refusal a newer agent reported that this build does not know.
        Unrecognized => "unrecognized",
    }
}

/// An agent's answer on receipt of a desired config: taken, or refused and why. What
/// applying it did comes in the next [`StatusReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigAck {
    pub generation: Generation,
    pub refusal: Option<AckRefusal>,
    /// The first failed item's class when accepted but not all applied.
    pub failed_class: Option<FailureClass>,
    pub message: String,
}

// === impl ReconcileStatus ===

/// Where the agent's reconciler is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReconcileStatus {
    #[default]
    NotYetRun,
    Running,
    Idle,
    /// A newer agent's status this build does not know.
    Unrecognized,
}

/// What an agent reports about itself.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StatusReport {
    pub applied_generation: Generation,
    pub reconcile: ReconcileStatus,
    pub conditions: Vec<Condition>,
    pub items: Vec<ItemResult>,
    pub events: Vec<AgentEvent>,
    /// The Lustre client version installed and loaded, empty when none is; reported after
    /// every reconcile pass, so an install shows without a new session.
    #[serde(default)]
    pub lustre_client_version: String,
    /// When the agent's reconciler next retries a failed item, by the agent's clock (evidence
    /// for people, not a timer anyone else keeps); `None` when nothing is scheduled.
    #[serde(default)]
    pub next_retry_unix_ms: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_parses_back_to_its_member() {
        for check in KnownCheck::ALL {
            assert_eq!(check.as_str().parse::<KnownCheck>().unwrap(), *check);
            assert_eq!(
                check.as_str().parse::<CheckId>().unwrap(),
                CheckId::Known(*check)
            );
        }
        for kind in ItemKind::ALL {
            assert_eq!(kind.as_str().parse::<ItemKind>().unwrap(), *kind);
        }
        for class in FailureClass::ALL {
            assert_eq!(class.code().parse::<FailureClass>().unwrap(), *class);
        }
        for kind in AgentEventKind::ALL {
            assert_eq!(kind.as_str().parse::<AgentEventKind>().unwrap(), *kind);
        }
    }

    #[test]
    fn other_check_names_are_kept_only_when_they_look_like_one() {
        assert_eq!(
            "gpu.nvlink".parse::<CheckId>().unwrap(),
            CheckId::Other("gpu.nvlink".into())
        );
        for bad in ["", "Mount.Present", "a b", "x\u{1b}[31m", &"a".repeat(65)] {
            assert_eq!(
                bad.parse::<CheckId>().unwrap_err().field,
                "check",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn unknown_names_are_refused_with_the_field() {
        let error = "manual-undrain".parse::<AgentEventKind>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "kind: \"manual-undrain\" is not an agent event kind"
        );
        assert!("pass".parse::<FailureClass>().is_err());
    }

    #[test]
    fn transient_classes_are_the_ones_a_retry_can_fix() {
        let transient: Vec<&str> = FailureClass::ALL
            .iter()
            .filter(|c| c.is_transient())
            .map(|c| c.code())
            .collect();
        assert_eq!(
            transient,
            [
                "not-yet-published",
                "repository-unreachable",
                "dependency-not-published",
                "package-lock-held",
                "not-ready"
            ]
        );
    }
}
