//! Conversions between wire messages (`v1::*`) and domain types (`lfleet_types`), done at the
//! edge: a wire value that breaks a domain rule is refused here, naming the field.

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

/// Validates every mount of a desired config, naming the failing one (`mounts[1].fsname`).
pub fn mounts_from_wire(mounts: &[v1::MountSpec]) -> Result<Vec<MountSpec>, SpecError> {
    mounts
        .iter()
        .enumerate()
        .map(|(index, wire)| {
            MountSpec::try_from(wire).map_err(|error| error.within(&format!("mounts[{index}]")))
        })
        .collect()
}

/// A node name from the wire.
pub fn node_name_from_wire(name: &str) -> Result<NodeName, SpecError> {
    name.parse()
}

/// A generation from the wire (0 means none).
pub fn generation_from_wire(generation: u64) -> Generation {
    Generation(generation)
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
    }
}
