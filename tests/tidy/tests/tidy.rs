//! Tidy checks over the whole repository: the project's rules that no compiler enforces.
//!
//! - every Rust source file opens with a `//!` comment naming its role;
//! - every crate inherits the workspace lints;
//! - only the host boundary (`lfleet-host`) and the host stand-in (`lfleet-sim`) opt out of
//!   the disallowed-methods rules, and only at their crate roots or in their own tests;
//! - no test carries the `ignore` or `should_panic` attribute;
//! - there is no `rust-toolchain` file (the machine has one toolchain and can fetch no other);
//! - `.ci/run` runs exactly the test command the README gives;
//! - wire types stay at the edge, wall time comes from the clock, outcomes, policies and
//!   roles are compared as types, and no document calls built things unbuilt.
#![allow(
    clippy::disallowed_methods,
    reason = "the tidy test reads the repository's own source files, not a node's"
)]

use std::fs;
use std::path::{Path, PathBuf};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("tests/tidy is two levels below the repository root")
        .to_path_buf()
}

fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name != ".ci" || name == "target" || name.starts_with("target-")
        {
            continue;
        }
        if path.is_dir() {
            walk(&path, found);
        } else {
            found.push(path);
        }
    }
}

fn files_with_extension(extension: &str) -> Vec<PathBuf> {
    let mut all = Vec::new();
    walk(&repo_root(), &mut all);
    all.retain(|path| path.extension().is_some_and(|ext| ext == extension));
    all.sort();
    all
}

fn relative(path: &Path) -> String {
    path.strip_prefix(repo_root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Generated code is exempt from the header rule; it says where it came from instead.
fn is_generated(path: &Path) -> bool {
    path.components().any(|c| c.as_os_str() == "generated")
}

#[test]
fn every_rust_file_opens_with_a_module_doc_comment() {
    let mut offenders = Vec::new();
    let files = files_with_extension("rs");
    assert!(files.len() > 5, "found too few Rust files: {files:?}");
    for path in files.iter().filter(|path| !is_generated(path)) {
        let text = fs::read_to_string(path).unwrap();
        let first = text
            .lines()
            .find(|line| !line.trim().is_empty())
            .unwrap_or("");
        if !first.starts_with("//!") {
            offenders.push(relative(path));
        }
    }
    assert!(
        offenders.is_empty(),
        "these files do not open with a `//!` comment naming their role: {offenders:#?}"
    );
}

#[test]
fn every_crate_inherits_the_workspace_lints() {
    let manifests: Vec<_> = files_with_extension("toml")
        .into_iter()
        .filter(|path| path.file_name().is_some_and(|name| name == "Cargo.toml"))
        .filter(|path| path.parent() != Some(repo_root().as_path()))
        .collect();
    assert!(manifests.len() >= 3, "found too few crates: {manifests:?}");
    let offenders: Vec<_> = manifests
        .iter()
        .filter(|path| {
            let text = fs::read_to_string(path).unwrap();
            !text.contains("[lints]\nworkspace = true")
        })
        .map(|path| relative(path))
        .collect();
    assert!(
        offenders.is_empty(),
        "these crates lack `[lints]\\nworkspace = true`: {offenders:#?}"
    );
}

#[test]
fn only_the_host_boundary_opts_out_of_the_disallowed_methods_rules() {
    // The host boundary, the simulator and test-support crates under tests/, and integration
    // tests (a crate's tests/ directory), which drive real processes and inspect node roots.
    let allowed = |rel: &str| {
        rel.starts_with("agent/host/") || rel.starts_with("tests/") || rel.contains("/tests/")
    };
    let needle = ["clippy::disallowed", "_methods"].concat();
    let offenders: Vec<_> = files_with_extension("rs")
        .into_iter()
        .filter(|path| {
            let rel = relative(path);
            !allowed(&rel) && fs::read_to_string(path).unwrap().contains(&needle)
        })
        .map(|path| relative(&path))
        .collect();
    assert!(
        offenders.is_empty(),
        "only lfleet-host, the simulator and test code may allow the disallowed-methods lint: {offenders:#?}"
    );
}

#[test]
fn no_test_is_ignored_or_expected_to_panic() {
    let patterns = [["#[", "ignore"].concat(), ["#[", "should_panic"].concat()];
    let offenders: Vec<_> = files_with_extension("rs")
        .into_iter()
        .filter(|path| {
            let text = fs::read_to_string(path).unwrap();
            patterns
                .iter()
                .any(|pattern| text.contains(pattern.as_str()))
        })
        .map(|path| relative(&path))
        .collect();
    assert!(
        offenders.is_empty(),
        "ignored or should_panic tests in {offenders:#?}"
    );
}

#[test]
fn there_is_no_toolchain_pin() {
    for name in ["rust-toolchain", "rust-toolchain.toml"] {
        assert!(
            !repo_root().join(name).exists(),
            "{name} would name a toolchain this machine cannot fetch"
        );
    }
}

#[test]
fn ci_runs_the_readme_test_command() {
    let readme = fs::read_to_string(repo_root().join("README.md")).unwrap();
    let ci = fs::read_to_string(repo_root().join(".ci/run")).unwrap();
    // The README's test command is the line after the marker comment in its first block.
    let marker = "# the tests:";
    let command = readme
        .lines()
        .skip_while(|line| !line.trim_start().starts_with(marker))
        .nth(1)
        .map(str::trim)
        .expect("README.md has a '# the tests:' line followed by the test command");
    let ci_command = ci
        .lines()
        .map(str::trim)
        .rfind(|line| !line.is_empty() && !line.starts_with('#'))
        .unwrap();
    assert_eq!(
        ci_command, command,
        ".ci/run must run the README's test command"
    );
}

#[test]
fn the_pure_agent_crates_depend_on_no_host_crate() {
    for krate in ["agent/mount", "agent/install", "agent/lnet", "agent/parse"] {
        let manifest = fs::read_to_string(repo_root().join(krate).join("Cargo.toml")).unwrap();
        let dependencies = manifest
            .split("[dependencies]")
            .nth(1)
            .unwrap_or("")
            .split("\n[")
            .next()
            .unwrap_or("");
        for forbidden in ["lfleet-host", "tokio", "nix", "lfleet-proto", "tonic"] {
            assert!(
                !dependencies.contains(forbidden),
                "{krate} must stay pure, but depends on {forbidden}"
            );
        }
    }
}

/// Rust sources outside tests (no `tests/` directory, no test-support crate, no `#[cfg(test)]`
/// module below the line it opens on).
fn production_sources() -> Vec<(PathBuf, String)> {
    files_with_extension("rs")
        .into_iter()
        .filter(|path| {
            let rel = relative(path);
            !rel.starts_with("tests/") && !rel.contains("/tests/") && !is_generated(path)
        })
        .map(|path| {
            let text = fs::read_to_string(&path).unwrap();
            let code = match text.find("#[cfg(test)]") {
                Some(at) => text[..at].to_owned(),
                None => text,
            };
            (path, code)
        })
        .collect()
}

#[test]
fn the_fleet_model_planners_and_agent_logic_never_see_wire_types() {
    let domain_only = [
        "coordinator/src/fleet.rs",
        "coordinator/src/policy.rs",
        "coordinator/src/slow.rs",
        "coordinator/src/app/slow.rs",
        "coordinator/src/drain.rs",
        "coordinator/src/events.rs",
        "coordinator/src/store.rs",
        "coordinator/src/sessions.rs",
        "agent/src/checks/",
        "agent/src/telemetry/",
        "agent/src/reconcile",
    ];
    let mut offenders = Vec::new();
    for (path, code) in production_sources() {
        let rel = relative(&path);
        if domain_only.iter().any(|prefix| rel.starts_with(prefix))
            && (code.contains("lfleet_proto") || code.contains("v1::"))
        {
            offenders.push(rel);
        }
    }
    assert!(
        offenders.is_empty(),
        "wire types (lfleet_proto, v1::) belong at the edge (lfleet_proto::convert and the \
         session/api modules), not in: {offenders:?}"
    );
}

#[test]
fn the_agents_reconcile_planner_reads_nothing_and_runs_nothing() {
    let (_, code) = production_sources()
        .into_iter()
        .find(|(path, _)| relative(path) == "agent/src/reconcile/plan.rs")
        .expect("agent/src/reconcile/plan.rs exists");
    for forbidden in [
        "HostRoot",
        "CommandRunner",
        "NodeHandle",
        "Clock",
        "async ",
        ".await",
        "tokio",
        "std::fs",
    ] {
        assert!(
            !code.contains(forbidden),
            "the reconcile planner must stay pure (observation and execution do the I/O), but \
             it mentions {forbidden}"
        );
    }
}

#[test]
fn the_slow_node_detector_reads_no_clock_and_does_no_io() {
    let (_, code) = production_sources()
        .into_iter()
        .find(|(path, _)| relative(path) == "coordinator/src/slow.rs")
        .expect("coordinator/src/slow.rs exists");
    for forbidden in [
        "Clock",
        "now_ms()",
        "std::time",
        "async ",
        ".await",
        "tokio",
        "std::fs",
        "Store",
        "EventLog",
    ] {
        assert!(
            !code.contains(forbidden),
            "the slow-node detector must stay pure (time passed in, its decisions carried out \
             by app/slow.rs), but it mentions {forbidden}"
        );
    }
}

#[test]
fn wall_time_comes_only_from_the_clock() {
    let mut offenders = Vec::new();
    for (path, code) in production_sources() {
        let rel = relative(&path);
        if rel == "agent/host/src/clock.rs" {
            continue;
        }
        if code.contains("SystemTime::now") {
            offenders.push(rel);
        }
    }
    assert!(
        offenders.is_empty(),
        "take wall time from lfleet_host::Clock (SystemClock or an injected one): {offenders:?}"
    );
}

#[test]
fn outcomes_policies_and_roles_are_compared_as_types_not_strings() {
    let words = [
        "pass",
        "fail",
        "unknown",
        "allowed",
        "forbidden",
        "head",
        "compute",
        "login",
    ];
    let mut offenders = Vec::new();
    for (path, code) in production_sources() {
        // lfleet-types is where these words are parsed into the types.
        if relative(&path).starts_with("proto/types/") {
            continue;
        }
        for (number, line) in code.lines().enumerate() {
            let compared = words.iter().any(|word| {
                let quoted = format!("\"{word}\"");
                line.contains(&format!("== {quoted}"))
                    || line.contains(&format!("!= {quoted}"))
                    || line.contains(&format!("{quoted} =="))
                    || line.contains(&format!("{quoted} !="))
                    || line.contains(&format!("[{quoted},"))
                    || line.contains(&format!("{quoted} =>"))
            });
            if compared {
                offenders.push(format!(
                    "{}:{}: {}",
                    relative(&path),
                    number + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "parse into lfleet_types (Outcome, DkmsPolicy, Role) and compare the values:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn no_document_calls_something_unbuilt_that_exists() {
    let mut documents = files_with_extension("md");
    documents.retain(|path| !relative(path).starts_with("target"));
    let mut offenders = Vec::new();
    for path in documents {
        let text = fs::read_to_string(&path).unwrap();
        for stale in ["not built yet", "Coming next", "plugs in here"] {
            if text.contains(stale) {
                offenders.push(format!("{}: {stale:?}", relative(&path)));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "documents must say what is true today (put plans in the issues): {offenders:?}"
    );
}

#[test]
fn lfleet_types_depends_on_no_wire_crate() {
    let manifest = fs::read_to_string(repo_root().join("proto/types/Cargo.toml")).unwrap();
    let dependencies = manifest
        .split("[dependencies]")
        .nth(1)
        .unwrap_or_default()
        .split("\n[")
        .next()
        .unwrap_or_default();
    for wire in ["prost", "tonic", "lfleet-proto"] {
        assert!(
            !dependencies
                .lines()
                .any(|l| l.trim_start().starts_with(wire)),
            "lfleet-types must not depend on {wire}: wire types are converted at the edge"
        );
    }
}
