//! The desired config, domain to wire and back: generation, mounts, client and LNet policy.
//! A wire value that breaks a domain rule is refused naming the field (`client.dkms`,
//! `mounts[1].mount_point`).

use lfleet_types::{ClientPolicy, DesiredConfig, DkmsPolicy, LnetInterface, LnetPolicy, SpecError};

use crate::v1;

use super::mounts_from_wire;

impl TryFrom<&v1::ClientPolicy> for ClientPolicy {
    type Error = SpecError;

    fn try_from(wire: &v1::ClientPolicy) -> Result<ClientPolicy, SpecError> {
        let lustre_version = wire
            .lustre_version
            .parse()
            .map_err(|e: SpecError| e.within("client"))?;
        let dkms = match v1::DkmsPolicy::try_from(wire.dkms) {
            Ok(v1::DkmsPolicy::Allowed) => DkmsPolicy::Allowed,
            Ok(v1::DkmsPolicy::Forbidden) | Ok(v1::DkmsPolicy::Unspecified) => {
                DkmsPolicy::Forbidden
            }
            // A policy this build does not know: the safe reading, never a build.
            Err(_) => DkmsPolicy::Forbidden,
        };
        Ok(ClientPolicy {
            lustre_version,
            dkms,
        })
    }
}

impl From<&ClientPolicy> for v1::ClientPolicy {
    fn from(client: &ClientPolicy) -> v1::ClientPolicy {
        v1::ClientPolicy {
            lustre_version: client.lustre_version.to_string(),
            dkms: match client.dkms {
                DkmsPolicy::Allowed => v1::DkmsPolicy::Allowed,
                DkmsPolicy::Forbidden => v1::DkmsPolicy::Forbidden,
            } as i32,
        }
    }
}

impl TryFrom<&v1::LnetConfig> for LnetPolicy {
    type Error = SpecError;

    fn try_from(wire: &v1::LnetConfig) -> Result<LnetPolicy, SpecError> {
        let within = |e: SpecError| e.within("lnet");
        Ok(LnetPolicy {
            network: if wire.network.is_empty() {
                Default::default()
            } else {
                wire.network.parse().map_err(within)?
            },
            interface: if wire.interface.is_empty() {
                LnetInterface::Auto
            } else {
                wire.interface.parse().map_err(within)?
            },
        })
    }
}

impl From<&LnetPolicy> for v1::LnetConfig {
    fn from(lnet: &LnetPolicy) -> v1::LnetConfig {
        v1::LnetConfig {
            network: lnet.network.to_string(),
            interface: lnet.interface.to_string(),
        }
    }
}

impl TryFrom<&v1::DesiredConfig> for DesiredConfig {
    type Error = SpecError;

    /// Every part validated; a config without a client policy is refused (there is no safe
    /// default version to install).
    fn try_from(wire: &v1::DesiredConfig) -> Result<DesiredConfig, SpecError> {
        if wire.generation == 0 {
            return Err(SpecError::new("generation", "0", "must be 1 or more"));
        }
        let client = wire
            .client
            .as_ref()
            .ok_or_else(|| SpecError::new("client", "", "is missing"))?;
        Ok(DesiredConfig {
            generation: wire.generation.into(),
            mounts: mounts_from_wire(&wire.mounts)?,
            client: ClientPolicy::try_from(client)?,
            lnet: wire
                .lnet
                .as_ref()
                .map(LnetPolicy::try_from)
                .transpose()?
                .unwrap_or_default(),
        })
    }
}

impl From<&DesiredConfig> for v1::DesiredConfig {
    fn from(config: &DesiredConfig) -> v1::DesiredConfig {
        v1::DesiredConfig {
            generation: config.generation.get(),
            mounts: config.mounts.iter().map(v1::MountSpec::from).collect(),
            client: Some(v1::ClientPolicy::from(&config.client)),
            lnet: Some(v1::LnetConfig::from(&config.lnet)),
        }
    }
}
