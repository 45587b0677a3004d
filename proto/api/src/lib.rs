//! lfleet-proto: the `lfleet.v1` wire contract.
//!
//! [`v1`] is the code generated from `proto/lfleet/v1/*.proto` (committed; the `bootstrap`
//! test fails when it drifts from the .proto files). [`convert`] turns wire messages into
//! `lfleet-types` domain types and back: the one place the two meet. Logic crates use the
//! domain types only.

/// Generated from `proto/lfleet/v1/*.proto` by tonic-prost-build; do not edit.
#[allow(clippy::all, clippy::pedantic, missing_debug_implementations)]
pub mod v1 {
    include!("generated/lfleet.v1.rs");
}

pub mod convert;

/// The largest message the coordinator and agents accept, in bytes. A status report of a
/// node with hundreds of OSTs is far below it; anything larger is refused before it is
/// buffered whole.
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;
