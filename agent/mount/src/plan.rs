//! The mount plan: a pure function from desired mounts and what was observed to the steps
//! that make them agree.
//!
//! Rules it keeps:
//! - unmounts come before mounts, and the fstab write comes before mounts (so a reboot in
//!   between finds the line);
//! - nothing is unmounted unless desired state has been loaded at least once and the mount
//!   table was read: unknown is not absent;
//! - only mounts the agent owns (its fstab block) are ever unmounted or remounted; a mount
//!   point held by anything else is a [`Conflict`], reported and left alone, and no fstab line
//!   is written for it;
//! - a second plan over the result is empty.
//!
//! Entry points: [`plan`], [`DesiredMount`], [`Observed`], [`Step`].

use std::collections::BTreeSet;

use crate::fstab::{Fstab, FstabEntry};
use crate::mountinfo::MountInfo;

/// One mount the node should have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredMount {
    /// `10.0.1.4@tcp:/lustrefs`.
    pub source: String,
    pub mount_point: String,
    /// The fstab options, in order (`defaults,noatime,flock,_netdev,...`).
    pub fstab_options: Vec<String>,
}

impl DesiredMount {
    /// The fstab line the agent owns for this mount.
    pub fn fstab_entry(&self) -> FstabEntry {
        FstabEntry {
            spec: self.source.clone(),
            file: self.mount_point.clone(),
            vfstype: "lustre".into(),
            mntops: self.fstab_options.join(","),
            freq: 0,
            passno: 0,
        }
    }

    /// The options passed to `mount -o`: the fstab options that mean something to the
    /// kernel or mount.lustre, without the ones only fstab readers use (`defaults`,
    /// `_netdev`, `nofail`, `x-systemd.*`).
    pub fn mount_options(&self) -> Vec<String> {
        self.fstab_options
            .iter()
            .filter(|option| {
                !(option.as_str() == "defaults"
                    || option.as_str() == "_netdev"
                    || option.as_str() == "nofail"
                    || option.starts_with("x-systemd."))
            })
            .cloned()
            .collect()
    }
}

/// What the agent saw on the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// The whole mount table.
    pub mounts: Vec<MountInfo>,
    /// The parsed fstab.
    pub fstab: Fstab,
}

/// A mount point the agent wants but may not take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub mount_point: String,
    pub reason: String,
}

/// One step, in the order the plan lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Unmount an owned mount (plain umount: no force, no lazy).
    Unmount { mount_point: String, why: String },
    /// Replace /etc/fstab with this text (atomically).
    WriteFstab { text: String },
    /// Create the mount point if missing, then mount.
    Mount {
        source: String,
        mount_point: String,
        options: Vec<String>,
    },
}

/// The steps and the conflicts found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MountPlan {
    pub steps: Vec<Step>,
    pub conflicts: Vec<Conflict>,
}

impl MountPlan {
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

/// Whether destructive steps are allowed yet (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Knowledge {
    /// Desired state has not been loaded from the ledger or the coordinator yet.
    DesiredNotLoaded,
    /// Desired state is loaded and the observation succeeded.
    Complete,
}

/// Kernel-visible options compared for drift. The rest (`_netdev`, `x-systemd.*`) never
/// appear in mountinfo, and Lustre adds its own (`lazystatfs`), so only these are judged.
const DRIFT_OPTIONS: [&str; 4] = ["flock", "localflock", "noflock", "noatime"];

/// Canonical form of a Lustre mount source for comparison: LNet network number 0 is the
/// default (`tcp0` is `tcp`).
pub fn normalize_source(source: &str) -> String {
    let (nids, fsname) = source.rsplit_once(":/").unwrap_or((source, ""));
    let nids: Vec<String> = nids
        .split(':')
        .map(|group| {
            group
                .split(',')
                .map(|nid| match nid.split_once('@') {
                    Some((addr, net)) => {
                        // The network number is the trailing digits (`o2ib` has a digit of
                        // its own in the name): `tcp0` and `o2ib0` are `tcp` and `o2ib`.
                        let name = net.trim_end_matches(|c: char| c.is_ascii_digit());
                        let number = &net[name.len()..];
                        let keep_number = !number.is_empty() && number.parse() != Ok(0u32);
                        if keep_number || name.is_empty() {
                            format!("{addr}@{net}")
                        } else {
                            format!("{addr}@{name}")
                        }
                    }
                    None => nid.to_owned(),
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    format!("{}:/{fsname}", nids.join(":"))
}

fn drift(desired: &DesiredMount, mounted: &MountInfo) -> Option<String> {
    if normalize_source(&mounted.source) != normalize_source(&desired.source) {
        return Some(format!(
            "source is {} but should be {}",
            mounted.source, desired.source
        ));
    }
    let have: BTreeSet<&str> = mounted.options().collect();
    let want: BTreeSet<&str> = desired.fstab_options.iter().map(String::as_str).collect();
    // rw is the default, so only ro is compared.
    if want.contains("ro") != have.contains("ro") {
        let name = |ro: bool| if ro { "ro" } else { "rw" };
        return Some(format!(
            "mounted {} but should be {}",
            name(have.contains("ro")),
            name(want.contains("ro"))
        ));
    }
    for option in DRIFT_OPTIONS {
        let (wanted, present) = (want.contains(option), have.contains(option));
        if wanted != present {
            return Some(format!(
                "option {option} is {} but should be {}",
                if present { "set" } else { "missing" },
                if wanted { "set" } else { "absent" }
            ));
        }
    }
    None
}

/// Plans the steps from `observed` to `desired`.
pub fn plan(desired: &[DesiredMount], observed: &Observed, knowledge: Knowledge) -> MountPlan {
    let mut result = MountPlan::default();
    let owned: BTreeSet<&str> = observed
        .fstab
        .managed()
        .iter()
        .map(|entry| entry.file.as_str())
        .collect();
    let foreign_fstab = observed.fstab.foreign();
    let desired_points: BTreeSet<&str> = desired.iter().map(|m| m.mount_point.as_str()).collect();
    // The last mount on a path is the visible one.
    let mounted_at = |point: &str| {
        observed
            .mounts
            .iter()
            .rev()
            .find(|m| m.mount_point == point)
    };

    // Which desired mounts the agent may manage at all.
    let mut manageable: Vec<&DesiredMount> = Vec::new();
    for want in desired {
        let point = want.mount_point.as_str();
        if let Some(line) = foreign_fstab.iter().find(|entry| entry.file == point) {
            result.conflicts.push(Conflict {
                mount_point: point.to_owned(),
                reason: format!(
                    "/etc/fstab already has a line for {point} that lfleet does not own ({} {})",
                    line.spec, line.vfstype
                ),
            });
            continue;
        }
        if let Some(mounted) = mounted_at(point)
            && !owned.contains(point)
            && !(mounted.fstype == "lustre"
                && normalize_source(&mounted.source) == normalize_source(&want.source))
        {
            result.conflicts.push(Conflict {
                mount_point: point.to_owned(),
                reason: format!(
                    "{point} is already a {} mount of {} that lfleet does not own",
                    mounted.fstype, mounted.source
                ),
            });
            continue;
        }
        manageable.push(want);
    }

    // 1. Unmounts: owned mounts no longer desired, and owned mounts that drifted.
    if knowledge == Knowledge::Complete {
        for point in &owned {
            if desired_points.contains(point) {
                continue;
            }
            if let Some(mounted) = mounted_at(point)
                && mounted.fstype == "lustre"
            {
                result.steps.push(Step::Unmount {
                    mount_point: (*point).to_owned(),
                    why: "no longer in the desired configuration".into(),
                });
            }
        }
    }
    let mut remount: BTreeSet<&str> = BTreeSet::new();
    for want in &manageable {
        let point = want.mount_point.as_str();
        if let Some(mounted) = mounted_at(point)
            && mounted.fstype == "lustre"
            && owned.contains(point)
            && let Some(why) = drift(want, mounted)
            && knowledge == Knowledge::Complete
        {
            result.steps.push(Step::Unmount {
                mount_point: point.to_owned(),
                why,
            });
            remount.insert(point);
        }
    }

    // 2. fstab: exactly the manageable desired mounts, in desired order. Before desired state
    //    is loaded, owned lines are kept rather than removed.
    let mut entries: Vec<FstabEntry> = manageable.iter().map(|m| m.fstab_entry()).collect();
    if knowledge == Knowledge::DesiredNotLoaded {
        for entry in observed.fstab.managed() {
            if !entries.iter().any(|e| e.file == entry.file) {
                entries.push(entry.clone());
            }
        }
    }
    let new_fstab = observed.fstab.with_managed(entries);
    if new_fstab != observed.fstab {
        result.steps.push(Step::WriteFstab {
            text: new_fstab.render(),
        });
    }

    // 3. Mounts: manageable desired mounts not mounted, or just unmounted for drift.
    for want in &manageable {
        let point = want.mount_point.as_str();
        let is_mounted = mounted_at(point).is_some_and(|m| m.fstype == "lustre");
        if !is_mounted || remount.contains(point) {
            result.steps.push(Step::Mount {
                source: want.source.clone(),
                mount_point: point.to_owned(),
                options: want.mount_options(),
            });
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mountinfo::parse_mountinfo;

    const BASE: &str = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n";

    fn want(point: &str) -> DesiredMount {
        DesiredMount {
            source: "10.0.1.4@tcp:/lustrefs".into(),
            mount_point: point.into(),
            fstab_options: ["defaults", "noatime", "flock", "_netdev", "nofail"]
                .map(String::from)
                .to_vec(),
        }
    }

    fn lustre_line(id: u32, point: &str, source: &str, options: &str) -> String {
        format!(
            "{id} 22 0:{id} / {point} {options} shared:{id} - lustre {source} rw,flock,lazystatfs\n"
        )
    }

    fn observed(mountinfo: &str, fstab: &str) -> Observed {
        Observed {
            mounts: parse_mountinfo(mountinfo).unwrap(),
            fstab: Fstab::parse(fstab).unwrap(),
        }
    }

    /// Applies a plan to the observation as the real steps would, for idempotence checks.
    fn apply(observed: &Observed, plan: &MountPlan) -> Observed {
        let mut mountinfo: String = observed
            .mounts
            .iter()
            .map(|m| {
                format!(
                    "{} {} {} {} {} {} - {} {} {}\n",
                    m.mount_id,
                    m.parent_id,
                    m.device,
                    m.root,
                    m.mount_point,
                    m.mount_options,
                    m.fstype,
                    m.source,
                    m.super_options
                )
            })
            .collect();
        let mut fstab = observed.fstab.render();
        for step in &plan.steps {
            match step {
                Step::Unmount { mount_point, .. } => {
                    mountinfo = mountinfo
                        .lines()
                        .filter(|line| line.split(' ').nth(4) != Some(mount_point))
                        .map(|line| format!("{line}\n"))
                        .collect();
                }
                Step::WriteFstab { text } => fstab = text.clone(),
                Step::Mount {
                    source,
                    mount_point,
                    options,
                } => {
                    let mut kernel_options = vec!["rw".to_string()];
                    kernel_options.extend(options.iter().filter(|o| *o == "noatime").cloned());
                    mountinfo.push_str(&lustre_line(
                        90,
                        mount_point,
                        source,
                        &kernel_options.join(","),
                    ));
                }
            }
        }
        observed_from(&mountinfo, &fstab)
    }

    fn observed_from(mountinfo: &str, fstab: &str) -> Observed {
        observed(mountinfo, fstab)
    }

    #[test]
    fn a_fresh_node_gets_an_fstab_line_then_a_mount_and_a_second_plan_is_empty() {
        let before = observed(BASE, "LABEL=root / ext4 defaults 0 1\n");
        let plan1 = plan(&[want("/lustre")], &before, Knowledge::Complete);
        assert!(matches!(plan1.steps[0], Step::WriteFstab { .. }));
        assert_eq!(
            plan1.steps[1],
            Step::Mount {
                source: "10.0.1.4@tcp:/lustrefs".into(),
                mount_point: "/lustre".into(),
                options: vec!["noatime".into(), "flock".into()],
            }
        );
        let after = apply(&before, &plan1);
        let plan2 = plan(&[want("/lustre")], &after, Knowledge::Complete);
        assert_eq!(plan2, MountPlan::default());
    }

    #[test]
    fn a_mount_removed_from_config_is_unmounted_before_its_line_goes() {
        let fstab = Fstab::parse("")
            .unwrap()
            .with_managed(vec![want("/old").fstab_entry()]);
        let mountinfo = format!(
            "{BASE}{}",
            lustre_line(40, "/old", "10.0.1.4@tcp:/lustrefs", "rw,noatime")
        );
        let before = observed(&mountinfo, &fstab.render());
        let plan1 = plan(&[], &before, Knowledge::Complete);
        assert!(
            matches!(&plan1.steps[0], Step::Unmount { mount_point, .. } if mount_point == "/old")
        );
        assert_eq!(
            plan1.steps[1],
            Step::WriteFstab {
                text: String::new()
            }
        );
        assert_eq!(plan1.steps.len(), 2);
        // Before desired state is loaded, nothing is unmounted and the owned line stays.
        let cautious = plan(&[], &before, Knowledge::DesiredNotLoaded);
        assert_eq!(cautious, MountPlan::default());
    }

    #[test]
    fn a_mount_made_by_hand_is_never_touched() {
        let mountinfo = format!(
            "{BASE}{}",
            lustre_line(41, "/scratch", "10.0.9.9@tcp:/other", "rw")
        );
        let before = observed(&mountinfo, "");
        // Not desired: left alone. Desired at the same point with another source: conflict.
        assert_eq!(
            plan(&[], &before, Knowledge::Complete),
            MountPlan::default()
        );
        let result = plan(&[want("/scratch")], &before, Knowledge::Complete);
        assert!(result.steps.is_empty(), "{result:?}");
        assert_eq!(result.conflicts.len(), 1);
        assert!(result.conflicts[0].reason.contains("lfleet does not own"));
    }

    #[test]
    fn a_foreign_fstab_line_for_the_mount_point_is_a_conflict_and_nothing_is_written() {
        let before = observed(BASE, "10.0.9.9@tcp:/other /lustre lustre defaults 0 0\n");
        let result = plan(&[want("/lustre")], &before, Knowledge::Complete);
        assert!(result.steps.is_empty());
        assert!(
            result.conflicts[0]
                .reason
                .contains("/etc/fstab already has a line")
        );
    }

    #[test]
    fn source_or_option_drift_remounts_owned_mounts() {
        let fstab = Fstab::parse("")
            .unwrap()
            .with_managed(vec![want("/lustre").fstab_entry()]);
        let wrong_source = format!(
            "{BASE}{}",
            lustre_line(42, "/lustre", "10.0.1.99@tcp:/lustrefs", "rw,noatime")
        );
        let result = plan(
            &[want("/lustre")],
            &observed(&wrong_source, &fstab.render()),
            Knowledge::Complete,
        );
        assert!(
            matches!(&result.steps[0], Step::Unmount { why, .. } if why.contains("source is 10.0.1.99@tcp:/lustrefs"))
        );
        assert!(matches!(result.steps[1], Step::Mount { .. }));
        let read_only = format!(
            "{BASE}{}",
            lustre_line(42, "/lustre", "10.0.1.4@tcp0:/lustrefs", "ro,noatime")
        );
        let result = plan(
            &[want("/lustre")],
            &observed(&read_only, &fstab.render()),
            Knowledge::Complete,
        );
        assert!(
            matches!(&result.steps[0], Step::Unmount { why, .. } if why == "mounted ro but should be rw")
        );
        // tcp0 is tcp: the same source, no drift.
        let same = format!(
            "{BASE}{}",
            lustre_line(42, "/lustre", "10.0.1.4@tcp0:/lustrefs", "rw,noatime")
        );
        assert_eq!(
            plan(
                &[want("/lustre")],
                &observed(&same, &fstab.render()),
                Knowledge::Complete
            ),
            MountPlan::default()
        );
    }

    #[test]
    fn normalizes_network_number_zero_only() {
        assert_eq!(
            normalize_source("10.0.1.4@tcp0:10.0.1.5@tcp0:/fs"),
            "10.0.1.4@tcp:10.0.1.5@tcp:/fs"
        );
        assert_eq!(normalize_source("10.0.1.4@tcp1:/fs"), "10.0.1.4@tcp1:/fs");
        assert_eq!(
            normalize_source("10.0.1.4@o2ib10:/fs"),
            "10.0.1.4@o2ib10:/fs"
        );
        assert_eq!(normalize_source("10.0.1.4@o2ib0:/fs"), "10.0.1.4@o2ib:/fs");
        assert_eq!(
            normalize_source("10.0.1.4@tcp,10.0.2.4@tcp0:/fs"),
            "10.0.1.4@tcp,10.0.2.4@tcp:/fs"
        );
    }

    proptest::proptest! {
        #[test]
        fn plans_converge_in_one_step_and_never_touch_foreign_mounts(
            desired_points in proptest::sample::subsequence(vec!["/a", "/b", "/c", "/d"], 0..=4),
            owned_mounted in proptest::sample::subsequence(vec!["/a", "/b", "/e"], 0..=3),
            drifted in proptest::bool::ANY,
            foreign_point in proptest::sample::select(vec!["/c", "/f"]),
        ) {
            let desired: Vec<DesiredMount> = desired_points.iter().map(|p| want(p)).collect();
            let fstab = Fstab::parse("UUID=x / ext4 defaults 0 1\n")
                .unwrap()
                .with_managed(owned_mounted.iter().map(|p| want(p).fstab_entry()).collect());
            let mut mountinfo = BASE.to_string();
            for (i, point) in owned_mounted.iter().enumerate() {
                let source = if drifted { "10.0.1.99@tcp:/lustrefs" } else { "10.0.1.4@tcp:/lustrefs" };
                mountinfo.push_str(&lustre_line(50 + i as u32, point, source, "rw,noatime"));
            }
            let foreign = lustre_line(70, foreign_point, "10.0.9.9@tcp:/other", "rw");
            mountinfo.push_str(&foreign);
            let before = observed(&mountinfo, &fstab.render());
            let first = plan(&desired, &before, Knowledge::Complete);
            // The hand-made mount is never unmounted.
            let touches_foreign = first.steps.iter().any(|step| {
                matches!(step, Step::Unmount { mount_point, .. } if mount_point == foreign_point)
            });
            proptest::prop_assert!(!touches_foreign);
            // Unmounts come before the fstab write, which comes before mounts.
            let rank = |step: &Step| match step {
                Step::Unmount { .. } => 0,
                Step::WriteFstab { .. } => 1,
                Step::Mount { .. } => 2,
            };
            proptest::prop_assert!(first.steps.windows(2).all(|w| rank(&w[0]) <= rank(&w[1])));
            let after = apply(&before, &first);
            let second = plan(&desired, &after, Knowledge::Complete);
            proptest::prop_assert!(second.steps.is_empty(), "second plan: {:?}", second.steps);
            proptest::prop_assert_eq!(&second.conflicts, &first.conflicts);
            proptest::prop_assert!(after.mounts.iter().any(|m| m.mount_point == foreign_point));
        }
    }
}
