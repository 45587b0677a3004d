//! What happens after an item failed: retry on a schedule, build with DKMS, or refuse with a
//! reason. One pure function, [`follow_up`], used by the one-shot `apply` (which reports the
//! decision) and by the long-running reconciler (which acts on it).
//!
//! | class                                      | follow-up                                        |
//! |--------------------------------------------|--------------------------------------------------|
//! | package-lock-held, repository-unreachable  | retry: 30 s doubling to 30 min                   |
//! | dependency-not-published                   | retry: 5 min doubling to 2 h (a partial publish)  |
//! | not-yet-published                          | DKMS if [`dkms_decision`] allows and it has not failed; else retry: 15 min doubling to 6 h (AMLFS publishes within about a business day) |
//! | kernel-series-unsupported                  | DKMS if allowed and not failed; else refuse: no prebuilt client will come |
//! | secure-boot-rejected                       | refuse: the signing certificate or a MOK is missing |
//! | dkms-build-failed, module-missing, unknown | refuse: a person reads the log                    |
//!
//! Retries wait between half and all of the nominal delay (full jitter, so a fleet that lost
//! its repository at the same moment does not come back in lockstep); the caller supplies the
//! random fraction so this stays pure. "Refuse" means no scheduled retry: the item is tried
//! again when something changes (kernel, client version, configuration) or an operator asks.
//!
//! [`dkms_decision`]: crate::dkms::dkms_decision

use std::fmt;
use std::time::Duration;

use crate::FailureClass;
use crate::dkms::DkmsDecision;

/// The decision for one failed item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowUp {
    /// Try the same again after `after`: the cause goes away by itself. `note` says what
    /// else was considered (why DKMS was not tried, or that it failed).
    Retry {
        after: Duration,
        note: Option<String>,
    },
    /// Build the client with DKMS now: no prebuilt package exists and the DKMS rule allows it.
    BuildWithDkms,
    /// No scheduled retry: `reason` says what a person has to do.
    Refuse { reason: String },
}

/// What [`follow_up`] decides from.
#[derive(Debug, Clone, Copy)]
pub struct Failure<'a> {
    /// The class of the prebuilt install or module load that failed.
    pub class: FailureClass,
    /// Failures of this item in a row, this one included (1 the first time).
    pub attempt: u32,
    /// The DKMS rule's verdict for this node.
    pub dkms: &'a DkmsDecision,
    /// A DKMS build for this kernel was tried and failed (in this pass or an earlier one).
    pub dkms_failed: bool,
    /// A random fraction in [0, 1) for the jitter.
    pub jitter: f64,
}

/// A retry schedule: the first delay, doubled per attempt up to the cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub first: Duration,
    pub cap: Duration,
}

const FAST: Schedule = Schedule {
    first: Duration::from_secs(30),
    cap: Duration::from_secs(30 * 60),
};
const PARTIAL_PUBLISH: Schedule = Schedule {
    first: Duration::from_secs(5 * 60),
    cap: Duration::from_secs(2 * 3600),
};
const PUBLISH: Schedule = Schedule {
    first: Duration::from_secs(15 * 60),
    cap: Duration::from_secs(6 * 3600),
};

impl Schedule {
    /// The delay before attempt `attempt + 1`, with `jitter` in [0, 1) taking it to between
    /// half and all of the nominal delay.
    pub fn delay(self, attempt: u32, jitter: f64) -> Duration {
        let doublings = attempt.saturating_sub(1).min(20);
        let nominal = self.first.saturating_mul(1u32 << doublings).min(self.cap);
        nominal.mul_f64(0.5 + jitter.clamp(0.0, 1.0) / 2.0)
    }
}

/// The retry schedule of a class, if a retry can fix it without anyone acting.
pub fn schedule(class: FailureClass) -> Option<Schedule> {
    match class {
        FailureClass::PackageLockHeld | FailureClass::RepositoryUnreachable => Some(FAST),
        FailureClass::DependencyNotPublished => Some(PARTIAL_PUBLISH),
        FailureClass::NotYetPublished => Some(PUBLISH),
        _ => None,
    }
}

/// The rule in this module's header.
pub fn follow_up(failure: &Failure<'_>) -> FollowUp {
    let retry = |schedule: Schedule, note: Option<String>| FollowUp::Retry {
        after: schedule.delay(failure.attempt, failure.jitter),
        note,
    };
    let dkms_note = || match failure.dkms {
        _ if failure.dkms_failed => "the DKMS build failed".to_owned(),
        DkmsDecision::Refused(why) => format!("DKMS not tried: {why}"),
        DkmsDecision::Build => "DKMS allowed".to_owned(),
    };
    let may_build = *failure.dkms == DkmsDecision::Build && !failure.dkms_failed;
    match failure.class {
        FailureClass::NotYetPublished if may_build => FollowUp::BuildWithDkms,
        FailureClass::NotYetPublished => retry(PUBLISH, Some(dkms_note())),
        FailureClass::SeriesUnsupported if may_build => FollowUp::BuildWithDkms,
        FailureClass::SeriesUnsupported => FollowUp::Refuse {
            reason: format!(
                "no prebuilt client will be published for this kernel; {}; boot a kernel of a series AMLFS publishes for",
                dkms_note()
            ),
        },
        FailureClass::PackageLockHeld
        | FailureClass::RepositoryUnreachable
        | FailureClass::DependencyNotPublished => {
            retry(schedule(failure.class).unwrap_or(FAST), None)
        }
        FailureClass::SecureBootRejected => FollowUp::Refuse {
            reason: "the kernel rejected the module's signature: with Secure Boot on it needs the Azure Services Linux Kmod PCA certificate in the VM's Secure Boot keys (a Confidential VM has to add it), or a Machine Owner Key for a DKMS-built module".into(),
        },
        FailureClass::DkmsBuildFailed => FollowUp::Refuse {
            reason: "the DKMS build failed: read its make.log; not retried until the kernel or the client version changes".into(),
        },
        FailureClass::ModuleMissing => FollowUp::Refuse {
            reason: "the package is installed but no module for this kernel exists: reinstall the client package".into(),
        },
        FailureClass::Unknown | FailureClass::Unrecognized => FollowUp::Refuse {
            reason: "a failure lfleet does not recognise: read the command's output; not retried on a schedule".into(),
        },
        FailureClass::NotReady => retry(FAST, None),
        // The classes of other items (mounts, LNet, files): their own messages say what to do.
        other => FollowUp::Refuse {
            reason: format!("{other} is not retried on a schedule: read the message"),
        },
    }
}

impl FollowUp {
    /// The short name reports and logs use: `retry`, `dkms`, `refused`.
    pub fn action(&self) -> &'static str {
        match self {
            FollowUp::Retry { .. } => "retry",
            FollowUp::BuildWithDkms => "dkms",
            FollowUp::Refuse { .. } => "refused",
        }
    }
}

impl fmt::Display for FollowUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FollowUp::Retry { after, note } => {
                write!(f, "retry in {}", human(*after))?;
                if let Some(note) = note {
                    write!(f, " ({note})")?;
                }
                Ok(())
            }
            FollowUp::BuildWithDkms => f.write_str("build with DKMS"),
            FollowUp::Refuse { reason } => write!(f, "refused: {reason}"),
        }
    }
}

/// `45 s`, `12 min`, `3 h 5 min`.
fn human(duration: Duration) -> String {
    let seconds = duration.as_secs();
    if seconds < 120 {
        format!("{seconds} s")
    } else if seconds < 3600 {
        format!("{} min", seconds / 60)
    } else if seconds % 3600 < 60 {
        format!("{} h", seconds / 3600)
    } else {
        format!("{} h {} min", seconds / 3600, seconds % 3600 / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decide(class: FailureClass, dkms: &DkmsDecision, dkms_failed: bool) -> FollowUp {
        follow_up(&Failure {
            class,
            attempt: 1,
            dkms,
            dkms_failed,
            jitter: 0.999_999,
        })
    }

    #[test]
    fn each_class_gets_its_follow_up() {
        let forbidden = DkmsDecision::Refused("client.dkms is \"forbidden\"".into());
        let allowed = DkmsDecision::Build;
        for class in [
            FailureClass::PackageLockHeld,
            FailureClass::RepositoryUnreachable,
        ] {
            assert_eq!(
                decide(class, &forbidden, false).to_string(),
                "retry in 29 s"
            );
        }
        assert_eq!(
            decide(FailureClass::DependencyNotPublished, &forbidden, false).to_string(),
            "retry in 4 min"
        );
        assert_eq!(
            decide(FailureClass::NotYetPublished, &forbidden, false).to_string(),
            "retry in 14 min (DKMS not tried: client.dkms is \"forbidden\")"
        );
        assert_eq!(
            decide(FailureClass::NotYetPublished, &allowed, false),
            FollowUp::BuildWithDkms
        );
        assert_eq!(
            decide(FailureClass::NotYetPublished, &allowed, true).action(),
            "retry",
            "the prebuilt package may still come after a failed build"
        );
        assert_eq!(
            decide(FailureClass::SeriesUnsupported, &allowed, false),
            FollowUp::BuildWithDkms
        );
        for (dkms, failed, note) in [
            (&forbidden, false, "DKMS not tried: client.dkms"),
            (&allowed, true, "the DKMS build failed"),
        ] {
            let refused = decide(FailureClass::SeriesUnsupported, dkms, failed).to_string();
            assert!(
                refused.starts_with("refused: no prebuilt client will be published"),
                "{refused}"
            );
            assert!(refused.contains(note), "{refused}");
        }
        for (class, words) in [
            (
                FailureClass::SecureBootRejected,
                "Azure Services Linux Kmod PCA",
            ),
            (FailureClass::DkmsBuildFailed, "make.log"),
            (FailureClass::ModuleMissing, "reinstall"),
            (FailureClass::Unknown, "does not recognise"),
        ] {
            let refused = decide(class, &allowed, false);
            assert_eq!(refused.action(), "refused");
            assert!(refused.to_string().contains(words), "{refused}");
        }
    }

    #[test]
    fn retries_back_off_with_jitter_up_to_their_cap() {
        let schedule = schedule(FailureClass::NotYetPublished).unwrap();
        assert_eq!(schedule.delay(1, 0.0), Duration::from_secs(450));
        assert_eq!(schedule.delay(2, 0.0), Duration::from_secs(900));
        assert_eq!(schedule.delay(3, 0.5), Duration::from_secs(2700));
        assert_eq!(schedule.delay(40, 0.0), Duration::from_secs(3 * 3600));
        assert!(schedule.delay(40, 1.0) <= Duration::from_secs(6 * 3600));
        assert_eq!(super::schedule(FailureClass::SecureBootRejected), None);
        assert_eq!(human(Duration::from_secs(3 * 3600 + 300)), "3 h 5 min");
    }
}
