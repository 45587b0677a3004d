//! Tidy checks over the whole repository: the project's rules that no compiler enforces.
//!
//! - every Rust source file opens with a `//!` comment naming its role;
//! - every crate inherits the workspace lints;
//! - only the host boundary (`lfleet-host`) and the host stand-in (`lfleet-sim`) opt out of
//!   the disallowed-methods rules, and only at their crate roots or in their own tests;
//! - no test carries the `ignore` or `should_panic` attribute;
//! - there is no `rust-toolchain` file (the machine has one toolchain and can fetch no other);
//! - `.ci/run` runs exactly the test command the README gives.
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
