//! The committed generated code (`src/generated/lfleet.v1.rs`) must be what the .proto files
//! generate. This test regenerates it with protox (a pure-Rust protobuf compiler) and
//! tonic-prost-build, so no protoc is needed anywhere, and fails on any drift.
//! `LFLEET_BLESS=1 cargo test -p lfleet-proto --test bootstrap` rewrites the committed file.
#![allow(
    clippy::disallowed_methods,
    reason = "the test reads and writes the repository's own generated source, not a node's"
)]

use std::path::{Path, PathBuf};

use prost::Message;

const PROTOS: [&str; 3] = [
    "lfleet/v1/common.proto",
    "lfleet/v1/agent.proto",
    "lfleet/v1/fleet.proto",
];

fn generate(into: &Path) -> PathBuf {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let include = crate_dir.join("proto");
    let descriptors = protox::compile(PROTOS, [&include]).expect("the .proto files compile");
    let descriptor_path = into.join("lfleet.fds");
    std::fs::write(&descriptor_path, descriptors.encode_to_vec()).unwrap();
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .out_dir(into)
        .file_descriptor_set_path(&descriptor_path)
        .skip_protoc_run()
        .emit_rerun_if_changed(false)
        .compile_protos(
            &PROTOS.map(|p| include.join(p)),
            std::slice::from_ref(&include),
        )
        .expect("code generation succeeds");
    into.join("lfleet.v1.rs")
}

#[test]
fn committed_generated_code_matches_the_proto_files() {
    let scratch = tempfile::tempdir().unwrap();
    let generated = std::fs::read_to_string(generate(scratch.path())).unwrap();
    let committed_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/generated/lfleet.v1.rs");
    let committed = std::fs::read_to_string(&committed_path).unwrap_or_default();
    if std::env::var_os("LFLEET_BLESS").is_some() {
        std::fs::write(&committed_path, &generated).unwrap();
        return;
    }
    assert!(
        committed == generated,
        "{} is out of date with proto/; run `LFLEET_BLESS=1 cargo test -p lfleet-proto --test bootstrap` and commit the result",
        committed_path.display()
    );
}
