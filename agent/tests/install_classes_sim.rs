//! Every install failure class on every distribution family, end to end: `lfleet-agent apply`
//! as a real process against lfleet-sim nodes (Ubuntu 22.04 with apt, AlmaLinux 9 with dnf,
//! Azure Linux 3 with tdnf), each class produced by the simulated package manager, dkms or
//! modprobe in the real tool's words. For each: exit 1 naming exactly that class, the right
//! follow-up (retry scheduled, DKMS tried, or refused with a reason), and nothing left
//! half-installed on the node.
//!
//! Also the DKMS rule where it differs by distribution: Azure Linux 3 refuses a DKMS build
//! while lockdown is on, even with Secure Boot off, and builds when lockdown is off.
#![allow(
    clippy::disallowed_methods,
    reason = "the test writes configurations and runs the agent binary"
)]

mod common;

use std::path::Path;

use lfleet_sim::{Fault, LustreVersion, NodeSpec, SimNode};
use serde_json::Value;

/// A distribution family: its sim name, Lustre version, and kernels for each case.
struct Family {
    distro: &'static str,
    lustre: LustreVersion,
    /// The running kernel of most cases.
    running: &'static str,
    /// An older kernel of the same series, which the repository publishes.
    published_earlier: &'static str,
    /// A running kernel whose series the repository does not serve (or serves only from a
    /// newer kernel on), with `published_earlier` published.
    unsupported: &'static str,
}

const FAMILIES: [Family; 3] = [
    Family {
        distro: "ubuntu-22.04",
        lustre: LustreVersion::V2_15,
        running: "5.15.0-1075-azure",
        published_earlier: "5.15.0-1074-azure",
        // The HWE kernel AMLFS does not build 22.04 clients for.
        unsupported: "6.8.0-1030-azure",
    },
    Family {
        distro: "alma-9",
        lustre: LustreVersion::V2_15,
        running: "5.14.0-427.20.1.el9_4.x86_64",
        published_earlier: "5.14.0-427.13.1.el9_4.x86_64",
        // 9.5's series, with only 9.4's published.
        unsupported: "5.14.0-503.11.1.el9_5.x86_64",
    },
    Family {
        distro: "azurelinux-3",
        lustre: LustreVersion::V2_17,
        running: "6.6.121.1-1.azl3",
        published_earlier: "6.6.119.3-1.azl3",
        // Older than the series' floor: AMLFS publishes Azure Linux 3 from 6.6.119.3 on.
        unsupported: "6.6.57.1-6.azl3",
    },
];

/// The install failure classes, as the agent names them.
const CLASSES: [&str; 7] = [
    "not-yet-published",
    "kernel-series-unsupported",
    "repository-unreachable",
    "dependency-not-published",
    "package-lock-held",
    "dkms-build-failed",
    "secure-boot-rejected",
];

/// Builds the node and the faults that produce `class` on `family`; returns the node and
/// the agent configuration to apply with.
fn setup(dir: &Path, family: &Family, class: &str) -> (SimNode, String) {
    let running = if class == "kernel-series-unsupported" {
        family.unsupported
    } else {
        family.running
    };
    let mut spec = NodeSpec::new(family.distro, running, family.lustre);
    spec.repo_kernels = vec![family.published_earlier.to_owned()];
    let mut dkms = "forbidden";
    match class {
        "dkms-build-failed" => {
            // A build is allowed here: Secure Boot off, lockdown off (Azure Linux 3 boots
            // with it on; the other test below shows that refusal).
            dkms = "allowed";
            spec.secure_boot = Some(false);
            spec.lockdown = Some(false);
        }
        "secure-boot-rejected" => {
            spec.secure_boot = Some(true);
            spec.confidential_vm = true;
        }
        _ => {}
    }
    let node = SimNode::create(&dir.join("node"), &spec).unwrap();
    let faults = match class {
        "not-yet-published" | "kernel-series-unsupported" => vec![Fault::RepoMissing {
            kernel: running.into(),
        }],
        "repository-unreachable" => vec![Fault::RepoUnreachable],
        "dependency-not-published" => vec![Fault::RepoDependencyMissing {
            kernel: running.into(),
        }],
        "package-lock-held" => vec![Fault::PackageLockHeld],
        "dkms-build-failed" => vec![
            Fault::RepoMissing {
                kernel: running.into(),
            },
            Fault::DkmsBuildFails,
        ],
        _ => vec![],
    };
    for fault in &faults {
        node.fault(fault).unwrap();
    }
    // No mounts: the install and module items are the whole pass. dnf and tdnf wait for a
    // held lock without a limit of their own, so the pass's deadline is short.
    let config = format!(
        "generation = 1\ninstall_timeout_seconds = 2\n[client]\nlustre_version = \"{}\"\ndkms = \"{dkms}\"\n",
        family.lustre.amlfs_version()
    );
    (node, config)
}

/// The failed items that name a cause (a module not loaded for want of a client is a
/// consequence, `not-ready`).
fn causes(report: &Value) -> Vec<&Value> {
    report["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|item| item["ok"] == false && item["class"] != "not-ready")
        .collect()
}

/// Which follow-up a class must get: `retry`, `dkms-tried` or `refused`.
fn expected_follow_up(class: &str) -> &'static str {
    match class {
        "not-yet-published"
        | "repository-unreachable"
        | "dependency-not-published"
        | "package-lock-held" => "retry",
        "dkms-build-failed" => "dkms-tried",
        _ => "refused",
    }
}

fn check_one(family: &Family, class: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let (node, config) = setup(dir.path(), family, class);
    let run = common::AgentRun::apply_json(node.root(), &config);
    let context = format!("{} {class}: {}{}", family.distro, run.stdout, run.stderr);
    if run.code != 1 {
        return Err(format!("exit {} (want 1): {context}", run.code));
    }
    let report: Value = serde_json::from_str(&run.stdout).map_err(|e| format!("{e}: {context}"))?;
    let causes = causes(&report);
    let named: Vec<&str> = causes
        .iter()
        .map(|item| item["class"].as_str().unwrap_or(""))
        .collect();
    if named != [class] {
        return Err(format!("classes {named:?}, want [{class}]: {context}"));
    }
    let follow_up = &causes[0]["follow_up"];
    let action = follow_up["action"].as_str().unwrap_or("");
    let dkms_tried = follow_up["dkms_tried"] == true;
    let text = follow_up["text"].as_str().unwrap_or("");
    let got = match (action, dkms_tried) {
        (_, true) => "dkms-tried",
        ("retry", false) => "retry",
        ("refused", false) => "refused",
        _ => "none",
    };
    if got != expected_follow_up(class) {
        return Err(format!(
            "follow-up {got} ({follow_up}), want {}: {context}",
            expected_follow_up(class)
        ));
    }
    if action == "retry" && follow_up["retry_after_seconds"].as_u64().unwrap_or(0) == 0 {
        return Err(format!("a retry without a delay: {follow_up}"));
    }
    if action == "refused" && text.len() < "refused: ".len() + 20 {
        return Err(format!("a refusal without a reason: {follow_up}"));
    }
    // Nothing half-installed: no client package for the running kernel unless it installed
    // whole (its module was then refused by the kernel), no DKMS package or module left.
    let state = node.state().unwrap();
    let running = state.running_kernel.clone();
    let installed_whole = class == "secure-boot-rejected";
    if state.clients.contains(&running) != installed_whole
        || state.dkms_half_installed
        || state.dkms
    {
        return Err(format!(
            "left behind: clients {:?}, dkms {} (half {}): {context}",
            state.clients, state.dkms, state.dkms_half_installed
        ));
    }
    for dir in ["updates/dkms", "updates/fs", "extra"] {
        let allowed = installed_whole && dir != "updates/dkms";
        let path = node.root().join(format!("lib/modules/{running}/{dir}"));
        if path.exists() && !allowed {
            return Err(format!("{} exists: {context}", path.display()));
        }
    }
    if class == "dkms-build-failed" {
        let purged = run.commands.iter().any(|c| {
            c.starts_with("apt-get purge")
                || c.starts_with("dnf remove")
                || c.starts_with("tdnf remove")
        });
        if !purged {
            return Err(format!(
                "the failed build's packages were not purged: {:?}",
                run.commands
            ));
        }
    }
    Ok(())
}

#[test]
fn every_install_failure_class_on_every_distribution_family_gets_its_follow_up() {
    let mut failures = Vec::new();
    for family in &FAMILIES {
        for class in CLASSES {
            if let Err(why) = check_one(family, class) {
                failures.push(format!("{} {class}: {why}", family.distro));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn azure_linux_3_refuses_dkms_while_lockdown_is_on_even_with_secure_boot_off() {
    let family = &FAMILIES[2];
    for (lockdown, built) in [(None, false), (Some(false), true)] {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = NodeSpec::new(family.distro, family.running, family.lustre);
        spec.repo_kernels = vec![family.published_earlier.to_owned()];
        spec.secure_boot = Some(false);
        spec.lockdown = lockdown;
        let node = SimNode::create(&dir.path().join("node"), &spec).unwrap();
        node.fault(&Fault::RepoMissing {
            kernel: family.running.into(),
        })
        .unwrap();
        let config = format!(
            "generation = 1\n[client]\nlustre_version = \"{}\"\ndkms = \"allowed\"\n",
            family.lustre.amlfs_version()
        );
        let run = common::AgentRun::apply_text(node.root(), &config);
        let tried = run
            .commands
            .iter()
            .any(|c| c.contains("lustre-client-dkms-"));
        assert_eq!(tried, built, "{lockdown:?}: {:?}", run.commands);
        if built {
            assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
            assert!(
                node.root()
                    .join(format!(
                        "lib/modules/{}/updates/dkms/lustre.ko",
                        family.running
                    ))
                    .exists()
            );
        } else {
            assert_eq!(run.code, 1, "{}", run.stdout);
            assert!(
                run.stdout.contains("follow-up: retry in ")
                    && run.stdout.contains(
                        "DKMS not tried: kernel lockdown is integrity and rejects unsigned modules even with Secure Boot off"
                    ),
                "{}",
                run.stdout
            );
        }
    }
}
