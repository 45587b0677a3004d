//! The committed generated code (`src/generated/lfleet.v1.rs`) must be what the .proto files
//! generate. This test compiles the .proto files with protox (a protobuf compiler in pure
//! Rust) into a `FileDescriptorSet`, hands that to tonic-prost-build, and fails on any
//! drift, so neither building nor testing needs protoc.
//! `LFLEET_BLESS=1 cargo test -p lfleet-proto --test bootstrap` rewrites the committed file.
#![allow(
    clippy::disallowed_methods,
    reason = "the test reads and writes the repository's own .proto and generated files, not a node's"
)]

use std::path::{Path, PathBuf};

/// Every .proto file of the package, relative to `proto/`.
const PROTOS: [&str; 3] = [
    "lfleet/v1/common.proto",
    "lfleet/v1/agent.proto",
    "lfleet/v1/fleet.proto",
];

fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Generates the code into `into` and returns the generated file's path.
fn generate(into: &Path) -> PathBuf {
    let include = crate_dir().join("proto");
    let descriptors = protox::compile(PROTOS, [&include])
        .unwrap_or_else(|error| panic!("the .proto files do not compile: {error:?}"));
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .build_transport(true)
        .emit_rerun_if_changed(false)
        .out_dir(into)
        .compile_fds(descriptors)
        .expect("code generation succeeds");
    into.join("lfleet.v1.rs")
}

#[test]
fn every_proto_file_is_compiled() {
    let directory = crate_dir().join("proto/lfleet/v1");
    let mut on_disk: Vec<String> = std::fs::read_dir(&directory)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".proto"))
        .map(|name| format!("lfleet/v1/{name}"))
        .collect();
    on_disk.sort();
    let mut listed = PROTOS.map(str::to_owned).to_vec();
    listed.sort();
    assert_eq!(
        on_disk,
        listed,
        "tests/bootstrap.rs PROTOS must list every file in {}",
        directory.display()
    );
}

#[test]
fn committed_generated_code_matches_the_proto_files() {
    let scratch = tempfile::tempdir().unwrap();
    let generated = std::fs::read_to_string(generate(scratch.path())).unwrap();
    let committed_path = crate_dir().join("src/generated/lfleet.v1.rs");
    let committed = std::fs::read_to_string(&committed_path).unwrap_or_default();
    if committed == generated {
        return;
    }
    if std::env::var_os("LFLEET_BLESS").is_some_and(|value| value == "1") {
        std::fs::write(&committed_path, &generated).unwrap();
        return;
    }
    let first_difference = committed
        .lines()
        .zip(generated.lines())
        .position(|(old, new)| old != new)
        .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()));
    panic!(
        "{} is out of date with the .proto files (first difference at line {}); run \
         `LFLEET_BLESS=1 cargo test -p lfleet-proto --test bootstrap` and commit the result",
        committed_path.display(),
        first_difference + 1
    );
}
