//! The node's key and certificate: kept under `var/lib/lfleet/tls` (the key 0600), made once
//! by enrolling with the join token, then renewed over the mTLS session with the current
//! certificate, for the same key, before half its life. The join token is needed again only
//! when the certificate expired while the agent could not reach the coordinator (or the
//! operator released the node's key with `lfleet node rekey`).
//!
//! The VM identity sent at enrollment is the DMI product UUID (`sys/class/dmi/id/
//! product_uuid`, Azure's VM unique id), read through the node root like every other file.

use lfleet_host::{Clock, HostRoot};
use lfleet_proto::v1;
use lfleet_proto::v1::agent_service_client::AgentServiceClient;
use lfleet_types::ErrorChain;
use tonic::transport::Channel;

/// Where the node's key, certificate and its times are kept, under the node root.
pub const TLS_DIR: &str = "var/lib/lfleet/tls";

/// The node's key and certificate with their times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeTls {
    pub key_pem: String,
    pub cert_pem: String,
    pub issued_unix: i64,
    pub not_after_unix: i64,
}

impl NodeTls {
    /// Past half its life: time to renew.
    pub fn needs_renewal(&self, now_unix: i64) -> bool {
        now_unix >= self.issued_unix + (self.not_after_unix - self.issued_unix) / 2
    }

    /// No longer valid: only a new enrollment (with a join token) helps.
    pub fn expired(&self, now_unix: i64) -> bool {
        now_unix >= self.not_after_unix
    }

    /// A CSR for this key (renewals keep the key the name is bound to).
    pub fn csr(&self, name: &str) -> Result<String, IdentityError> {
        let key = rcgen::KeyPair::from_pem(&self.key_pem)
            .map_err(|e| IdentityError::Key(e.to_string()))?;
        csr_for(&key, name)
    }
}

/// Why the node's identity could not be made or renewed.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("the node key: {0}")]
    Key(String),
    #[error("{what} {path}")]
    File {
        what: &'static str,
        path: String,
        #[source]
        source: lfleet_host::HostError,
    },
    #[error("the coordinator refused: {0}")]
    Refused(#[from] tonic::Status),
}

fn csr_for(key: &rcgen::KeyPair, name: &str) -> Result<String, IdentityError> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
        .map_err(|e| IdentityError::Key(e.to_string()))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params
        .serialize_request(key)
        .and_then(|csr| csr.pem())
        .map_err(|e| IdentityError::Key(e.to_string()))
}

fn paths() -> (String, String, String) {
    (
        format!("{TLS_DIR}/node.key"),
        format!("{TLS_DIR}/node.pem"),
        format!("{TLS_DIR}/node.json"),
    )
}

/// The stored key and certificate, if they are for `name`.
pub fn load(host: &HostRoot, name: &str) -> Option<NodeTls> {
    let (key_path, cert_path, meta_path) = paths();
    let read = |path: &str| host.read_optional(path).ok().flatten();
    let (key_pem, cert_pem, meta) = (read(&key_path)?, read(&cert_path)?, read(&meta_path)?);
    let times: serde_json::Value = serde_json::from_str(&meta).ok()?;
    (times["node"].as_str() == Some(name)).then(|| NodeTls {
        key_pem,
        cert_pem,
        issued_unix: times["issued_unix"].as_i64().unwrap_or(0),
        not_after_unix: times["not_after_unix"].as_i64().unwrap_or(0),
    })
}

/// Stores a key and certificate (the key 0600, written before the certificate).
pub fn store(host: &HostRoot, name: &str, tls: &NodeTls) -> Result<(), IdentityError> {
    let (key_path, cert_path, meta_path) = paths();
    let file = |what: &'static str, path: &str| {
        let path = path.to_owned();
        move |source| IdentityError::File { what, path, source }
    };
    host.create_dir_all(TLS_DIR, 0o700)
        .map_err(file("creating", TLS_DIR))?;
    host.write_atomic(&key_path, tls.key_pem.as_bytes(), 0o600)
        .map_err(file("writing", &key_path))?;
    host.write_atomic(&cert_path, tls.cert_pem.as_bytes(), 0o644)
        .map_err(file("writing", &cert_path))?;
    let meta = serde_json::json!({
        "node": name,
        "issued_unix": tls.issued_unix,
        "not_after_unix": tls.not_after_unix,
    });
    host.write_atomic(&meta_path, meta.to_string().as_bytes(), 0o644)
        .map_err(file("writing", &meta_path))
}

/// The VM identity to bind the name to: the DMI product UUID, empty where there is none.
pub fn vm_id(host: &HostRoot) -> String {
    host.read_optional("sys/class/dmi/id/product_uuid")
        .ok()
        .flatten()
        .map(|text| text.trim().to_lowercase())
        .unwrap_or_default()
}

/// Enrolls with the join token and a new key; stores and returns the result.
pub async fn enroll(
    host: &HostRoot,
    clock: &dyn Clock,
    channel: Channel,
    name: &str,
    token: String,
) -> Result<NodeTls, IdentityError> {
    let key = rcgen::KeyPair::generate().map_err(|e| IdentityError::Key(e.to_string()))?;
    let csr = csr_for(&key, name)?;
    let response = AgentServiceClient::new(channel)
        .enroll(v1::EnrollRequest {
            join_token: token,
            node_name: name.to_owned(),
            csr_pem: csr,
            vm_id: vm_id(host),
        })
        .await?
        .into_inner();
    let tls = NodeTls {
        key_pem: key.serialize_pem(),
        cert_pem: response.certificate_pem,
        issued_unix: (clock.wall_unix_ms() / 1000) as i64,
        not_after_unix: response.not_after_unix,
    };
    store(host, name, &tls)?;
    tracing::info!(node = name, not_after = tls.not_after_unix, "enrolled");
    Ok(tls)
}

/// Renews the certificate for the same key over `channel` (an mTLS channel with the current
/// certificate); stores and returns the result.
pub async fn renew(
    host: &HostRoot,
    clock: &dyn Clock,
    channel: Channel,
    name: &str,
    current: &NodeTls,
) -> Result<NodeTls, IdentityError> {
    let csr = current.csr(name)?;
    let response = AgentServiceClient::new(channel)
        .max_decoding_message_size(lfleet_proto::MAX_MESSAGE_BYTES)
        .renew(v1::RenewRequest { csr_pem: csr })
        .await?
        .into_inner();
    let tls = NodeTls {
        key_pem: current.key_pem.clone(),
        cert_pem: response.certificate_pem,
        issued_unix: (clock.wall_unix_ms() / 1000) as i64,
        not_after_unix: response.not_after_unix,
    };
    store(host, name, &tls)?;
    tracing::info!(
        node = name,
        not_after = tls.not_after_unix,
        "certificate renewed"
    );
    Ok(tls)
}

/// Logs a failed renewal with its whole cause; the session goes on with the current
/// certificate and tries again at the next tick.
pub fn renewal_failed(name: &str, error: &IdentityError) {
    tracing::warn!(node = name, error = %ErrorChain(error), "certificate renewal failed; retrying");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_at_half_life_and_expiry() {
        let tls = NodeTls {
            key_pem: String::new(),
            cert_pem: String::new(),
            issued_unix: 1000,
            not_after_unix: 1020,
        };
        assert!(!tls.needs_renewal(1009));
        assert!(tls.needs_renewal(1010));
        assert!(!tls.expired(1019));
        assert!(tls.expired(1020));
    }

    #[test]
    fn a_stored_identity_is_for_its_name_only_and_the_key_stays_private() {
        let dir = tempfile::tempdir().unwrap();
        let host = HostRoot::new(dir.path());
        let key = rcgen::KeyPair::generate().unwrap();
        let tls = NodeTls {
            key_pem: key.serialize_pem(),
            cert_pem: "CERT".into(),
            issued_unix: 5,
            not_after_unix: 25,
        };
        store(&host, "n1", &tls).unwrap();
        assert_eq!(load(&host, "n1"), Some(tls.clone()));
        assert_eq!(load(&host, "n2"), None);
        assert_eq!(host.mode(format!("{TLS_DIR}/node.key")).unwrap(), 0o600);
        assert!(tls.csr("n1").unwrap().contains("CERTIFICATE REQUEST"));
    }
}
