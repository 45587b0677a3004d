//! Conversions between wire messages (`v1::*`) and domain types (`lfleet_types`), done at the
//! edge: a wire value that breaks a domain rule is refused here, naming the field. Logic
//! crates only ever see the domain side. This module holds mounts, node names and
//! generations; [`desired`] the rest of a desired config; [`report`] what agents send;
//! [`command`] what operators ask of one agent; [`fleet`] what operators are shown.

pub mod command;
pub mod desired;
pub mod fleet;
pub mod report;

pub use report::{ReceivedStatus, agent_text, role_from_wire, role_to_wire, status_from_wire};

use lfleet_types::{Generation, MountSpec, NodeName, RawMountSpec, SpecError};

use crate::v1;

impl TryFrom<&v1::MountSpec> for MountSpec {
    type Error = SpecError;

    fn try_from(wire: &v1::MountSpec) -> Result<MountSpec, SpecError> {
        MountSpec::new(
            &wire.mgs_nids,
            &wire.fsname,
            &wire.mount_point,
            &wire.options,
        )
    }
}

impl TryFrom<v1::MountSpec> for MountSpec {
    type Error = SpecError;

    fn try_from(wire: v1::MountSpec) -> Result<MountSpec, SpecError> {
        MountSpec::try_from(&wire)
    }
}

impl From<MountSpec> for v1::MountSpec {
    fn from(spec: MountSpec) -> v1::MountSpec {
        v1::MountSpec::from(&spec)
    }
}

impl From<&MountSpec> for v1::MountSpec {
    fn from(spec: &MountSpec) -> v1::MountSpec {
        let raw = RawMountSpec::from(spec);
        v1::MountSpec {
            mgs_nids: raw.mgs_nids,
            fsname: raw.fsname,
            mount_point: raw.mount_point,
            options: raw.options,
        }
    }
}

/// Validates every mount of a desired config, naming the failing one (`mounts[1].fsname`); two
/// mounts on one mount point are refused too.
pub fn mounts_from_wire(mounts: &[v1::MountSpec]) -> Result<Vec<MountSpec>, SpecError> {
    let mut specs: Vec<MountSpec> = Vec::with_capacity(mounts.len());
    for (index, wire) in mounts.iter().enumerate() {
        let within = format!("mounts[{index}]");
        let spec = MountSpec::try_from(wire).map_err(|error| error.within(&within))?;
        if specs
            .iter()
            .any(|other| other.mount_point == spec.mount_point)
        {
            return Err(SpecError::new(
                "mount_point",
                spec.mount_point.as_str(),
                "is the mount point of an earlier mount too",
            )
            .within(&within));
        }
        specs.push(spec);
    }
    Ok(specs)
}

/// A node name from the wire; the error names `node_name`.
pub fn node_name_from_wire(name: &str) -> Result<NodeName, SpecError> {
    name.parse()
}

/// A generation from the wire; 0, what an unset field decodes to, is [`Generation::ZERO`].
pub fn generation_from_wire(generation: u64) -> Generation {
    Generation::from(generation)
}

/// A generation for the wire.
pub fn generation_to_wire(generation: Generation) -> u64 {
    generation.get()
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn wire(nids: &str, fsname: &str, dir: &str, options: &[&str]) -> v1::MountSpec {
        v1::MountSpec {
            mgs_nids: nids.into(),
            fsname: fsname.into(),
            mount_point: dir.into(),
            options: options.iter().map(|o| (*o).to_owned()).collect(),
        }
    }

    #[test]
    fn good_specs_round_trip_through_the_wire() {
        for original in [
            wire("10.0.1.4@tcp", "lustrefs", "/lustre", &["noatime", "flock"]),
            wire(
                "10.0.1.4@tcp,10.0.2.4@tcp:10.0.1.5@tcp",
                "scratch",
                "/mnt/scratch",
                &[],
            ),
            wire(
                "172.16.0.1@o2ib1",
                "home",
                "/home-lustre",
                &["ro", "x-systemd.mount-timeout=60"],
            ),
        ] {
            let domain = MountSpec::try_from(&original).unwrap();
            let back = v1::MountSpec::from(&domain);
            assert_eq!(back, original);
            // And through bytes.
            let decoded = v1::MountSpec::decode(back.encode_to_vec().as_slice()).unwrap();
            assert_eq!(MountSpec::try_from(&decoded).unwrap(), domain);
        }
    }

    #[test]
    fn good_specs_round_trip_from_the_domain_side() {
        for domain in [
            MountSpec::new("10.0.1.4@tcp", "lustrefs", "/lustre", &["noatime", "flock"]),
            MountSpec::new(
                "10.0.1.4@o2ib,10.0.2.4@tcp1:10.0.1.5@tcp",
                "fs_1",
                "/mnt/fs-1",
                &[
                    "x-systemd.requires=lfleet-lnet.service",
                    "x-systemd.automount",
                ],
            ),
        ] {
            let domain = domain.unwrap();
            let wire = v1::MountSpec::from(&domain);
            assert_eq!(MountSpec::try_from(wire.clone()).unwrap(), domain);
            assert_eq!(v1::MountSpec::from(domain), wire);
        }
    }

    #[test]
    fn wire_values_are_normalized_on_the_way_in() {
        let domain =
            MountSpec::try_from(&wire("10.0.1.4@tcp0", "lustrefs", "/lustre", &[])).unwrap();
        assert_eq!(v1::MountSpec::from(&domain).mgs_nids, "10.0.1.4@tcp");
    }

    #[test]
    fn a_bad_wire_spec_is_refused_naming_the_mount_and_field() {
        let mounts = [
            wire("10.0.1.4@tcp", "lustrefs", "/lustre", &[]),
            wire("10.0.1.4@tcp", "lustrefs", "/etc/x", &[]),
        ];
        let err = mounts_from_wire(&mounts).unwrap_err();
        assert_eq!(err.field, "mounts[1].mount_point");
        assert!(err.to_string().contains("under /etc"), "{err}");
        let twice = [
            wire("10.0.1.4@tcp", "lustrefs", "/lustre", &[]),
            wire("10.0.1.5@tcp", "scratch", "/lustre", &[]),
        ];
        let err = mounts_from_wire(&twice).unwrap_err();
        assert_eq!(err.field, "mounts[1].mount_point");
        assert!(err.reason.contains("earlier mount"), "{err}");
        assert_eq!(mounts_from_wire(&mounts[..1]).unwrap().len(), 1);

        for (bad, field, fragment) in [
            (wire("", "lustrefs", "/lustre", &[]), "mgs_nids", "is empty"),
            (
                wire("@tcp", "lustrefs", "/lustre", &[]),
                "mgs_nids",
                "no address",
            ),
            (
                wire("10.0.1.4@tcp", "lustrefs9", "/lustre", &[]),
                "fsname",
                "longer than 8",
            ),
            (
                wire("10.0.1.4@tcp", "lustrefs", "/lustre", &["noatime,suid"]),
                "options",
                "','",
            ),
            (
                wire("10.0.1.4@tcp", "lustrefs", "/", &[]),
                "mount_point",
                "root directory",
            ),
        ] {
            let err = MountSpec::try_from(&bad).unwrap_err();
            assert_eq!(err.field, field, "{err}");
            assert!(err.reason.contains(fragment), "{err}");
        }
    }

    #[test]
    fn node_names_and_generations_from_the_wire() {
        assert_eq!(
            node_name_from_wire("hpc-pg0-1").unwrap().as_str(),
            "hpc-pg0-1"
        );
        let err = node_name_from_wire("hpc pg0").unwrap_err();
        assert_eq!(err.field, "node_name");
        assert_eq!(generation_from_wire(0), Generation::ZERO);
        assert_eq!(generation_to_wire(generation_from_wire(42)), 42);
    }

    #[test]
    fn agent_messages_encode_and_decode() {
        let message = v1::AgentMessage {
            seq: 7,
            body: Some(v1::agent_message::Body::Hello(v1::Hello {
                node_name: "hpc-pg0-1".into(),
                role: v1::NodeRole::Compute as i32,
                applied_generation: 3,
                ..Default::default()
            })),
        };
        let decoded = v1::AgentMessage::decode(message.encode_to_vec().as_slice()).unwrap();
        assert_eq!(decoded, message);
        assert!(v1::AgentMessage::decode(&b"\xff\xff\xff"[..]).is_err());

        let status = v1::AgentMessage {
            seq: 8,
            body: Some(v1::agent_message::Body::Status(v1::StatusReport {
                applied_generation: 3,
                reconcile_status: v1::ReconcileStatus::Idle as i32,
                conditions: vec![v1::Condition {
                    check: "mount.responsive".into(),
                    subject: "/lustre".into(),
                    outcome: v1::Outcome::Fail as i32,
                    code: "statfs-timeout".into(),
                    detail: "statfs stuck 31 s".into(),
                    since_unix_ms: 1_700_000_000_000,
                    observed_unix_ms: 1_700_000_031_000,
                }],
                items: vec![v1::ItemResult {
                    kind: "mount".into(),
                    id: "/lustre".into(),
                    ok: true,
                    ..Default::default()
                }],
                events: Vec::new(),
                lustre_client_version: "2.15.7".into(),
                next_retry_unix_ms: 1_700_000_090_000,
            })),
        };
        let telemetry = v1::AgentMessage {
            seq: 9,
            body: Some(v1::agent_message::Body::Telemetry(v1::TelemetryBatch {
                first_seq: 100,
                dropped_samples: 2,
                samples: vec![v1::Sample {
                    seq: 100,
                    at_unix_ms: 1_700_000_000_000,
                    metric: "lustre.llite.write_bytes".into(),
                    labels: vec![v1::Label {
                        key: "fs".into(),
                        value: "lustrefs".into(),
                    }],
                    value: Some(v1::sample::Value::Delta(v1::CounterDelta {
                        delta: 4096,
                        interval_ms: 10_000,
                    })),
                    ..Default::default()
                }],
            })),
        };
        let ack = v1::AgentMessage {
            seq: 10,
            body: Some(v1::agent_message::Body::Ack(v1::Ack {
                generation: 4,
                accepted: false,
                error_class: "invalid-spec".into(),
                message: "mounts[0].fsname: \"lustrefs9\" is longer than 8 characters".into(),
                ..Default::default()
            })),
        };
        for message in [status, telemetry, ack] {
            let bytes = message.encode_to_vec();
            assert!(bytes.len() < crate::MAX_MESSAGE_BYTES);
            assert_eq!(v1::AgentMessage::decode(bytes.as_slice()).unwrap(), message);
        }
    }
}
