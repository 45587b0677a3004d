//! The coordinator's certificate authority: made on first start in the data directory (or
//! given), it signs the coordinator's server certificate, agents' short-lived client
//! certificates (subject CN = the node name, nothing else taken from the CSR but its key), and
//! operators' admin certificates (CN `admin:<name>`, which no node name can be: `:` is not
//! allowed in one). A peer's identity is read from the certificate TLS verified.

use std::path::Path;

use lfleet_types::NodeName;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};

/// Why a certificate operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{0}")]
    Host(String),
    #[error("{what}: {source}")]
    Cert {
        what: &'static str,
        source: rcgen::Error,
    },
    #[error("{0}")]
    Refused(String),
}

/// What a verified peer certificate says it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerIdentity {
    Node(NodeName),
    Admin(String),
}

/// The CA and the server's certificate.
#[derive(Debug)]
pub struct Pki {
    pub ca_pem: String,
    ca_key: KeyPair,
    pub server_cert_pem: String,
    pub server_key_pem: String,
}

fn cert_error(what: &'static str) -> impl FnOnce(rcgen::Error) -> PkiError {
    move |source| PkiError::Cert { what, source }
}

/// Files are read and written through the host boundary (atomic writes, fsync).
fn files() -> lfleet_host::HostRoot {
    lfleet_host::HostRoot::new("/")
}

fn write_private(path: &Path, text: &str, mode: u32) -> Result<(), PkiError> {
    files()
        .write_atomic(path, text.as_bytes(), mode)
        .map_err(|e| PkiError::Host(lfleet_types::error_chain(&e)))
}

fn read(path: &Path) -> Result<Option<String>, PkiError> {
    files()
        .read_optional(path)
        .map_err(|e| PkiError::Host(lfleet_types::error_chain(&e)))
}

fn validity(params: &mut CertificateParams, seconds: i64) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::seconds(seconds);
}

/// A random 16-byte serial, so every certificate can be told apart (and revoked).
fn serial(params: &mut CertificateParams) -> String {
    let bytes: [u8; 16] = rand::random();
    // Positive, as RFC 5280 asks.
    let mut bytes = bytes.to_vec();
    bytes[0] &= 0x7f;
    let hex = hex(&bytes);
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&bytes));
    hex
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 of a public key (its SubjectPublicKey bits), in hex: what a node's name is
/// bound to.
pub fn key_fingerprint(public_key: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, public_key).as_ref())
}

/// What a verified peer certificate says, with what the coordinator checks it against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCertificate {
    pub identity: PeerIdentity,
    pub key_fingerprint: String,
    pub serial: String,
    pub not_before_unix: i64,
    pub not_after_unix: i64,
}

/// Reads a verified peer certificate (DER).
pub fn peer_certificate(der: &[u8]) -> Option<PeerCertificate> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let identity = identity_of(&cert)?;
    Some(PeerCertificate {
        identity,
        key_fingerprint: key_fingerprint(&cert.public_key().subject_public_key.data),
        serial: hex(cert.raw_serial()),
        not_before_unix: cert.validity().not_before.timestamp(),
        not_after_unix: cert.validity().not_after.timestamp(),
    })
}

/// The key fingerprint of a CSR's public key; the CSR's signature is checked.
pub fn csr_key_fingerprint(csr_pem: &str) -> Result<String, PkiError> {
    if csr_pem.len() > 16 * 1024 {
        return Err(PkiError::Refused("the CSR is larger than 16 KiB".into()));
    }
    let csr = CertificateSigningRequestParams::from_pem(csr_pem)
        .map_err(|e| PkiError::Refused(format!("the CSR is not a valid signed request: {e}")))?;
    Ok(key_fingerprint(rcgen::PublicKeyData::der_bytes(
        &csr.public_key,
    )))
}

impl Pki {
    /// Loads `ca.pem`/`ca.key` from `dir`, making them on first start, and issues a fresh
    /// server certificate for `server_names` (DNS names or IP addresses).
    pub fn load_or_create(dir: &Path, server_names: &[String]) -> Result<Pki, PkiError> {
        files()
            .create_dir_all(dir, 0o700)
            .map_err(|e| PkiError::Host(lfleet_types::error_chain(&e)))?;
        let (ca_path, key_path) = (dir.join("ca.pem"), dir.join("ca.key"));
        let (ca_pem, ca_key) = match (read(&ca_path)?, read(&key_path)?) {
            (Some(pem), Some(key)) => (
                pem,
                KeyPair::from_pem(&key).map_err(cert_error("the CA key"))?,
            ),
            (None, None) => {
                let key = KeyPair::generate().map_err(cert_error("a CA key"))?;
                let mut params = CertificateParams::new(Vec::<String>::new())
                    .map_err(cert_error("CA parameters"))?;
                let mut name = DistinguishedName::new();
                name.push(DnType::CommonName, "lfleet coordinator CA");
                params.distinguished_name = name;
                params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
                params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
                validity(&mut params, 10 * 365 * 86_400);
                let cert = params.self_signed(&key).map_err(cert_error("the CA"))?;
                write_private(&key_path, &key.serialize_pem(), 0o600)?;
                write_private(&ca_path, &cert.pem(), 0o644)?;
                (cert.pem(), key)
            }
            _ => {
                return Err(PkiError::Refused(format!(
                    "{} and {} must both exist or both be absent",
                    ca_path.display(),
                    key_path.display()
                )));
            }
        };
        let server_key = KeyPair::generate().map_err(cert_error("a server key"))?;
        let mut params =
            CertificateParams::new(server_names.to_vec()).map_err(cert_error("server names"))?;
        params
            .distinguished_name
            .push(DnType::CommonName, "lfleet-coordinator");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        validity(&mut params, 365 * 86_400);
        let issuer = Issuer::from_ca_cert_pem(&ca_pem, &ca_key).map_err(cert_error("the CA"))?;
        let server = params
            .signed_by(&server_key, &issuer)
            .map_err(cert_error("the server certificate"))?;
        Ok(Pki {
            ca_pem,
            ca_key,
            server_cert_pem: server.pem(),
            server_key_pem: server_key.serialize_pem(),
        })
    }

    /// A client certificate: `(PEM, serial, not_after_unix)`.
    fn sign(
        &self,
        public: &impl rcgen::PublicKeyData,
        common_name: &str,
        seconds: i64,
    ) -> Result<(String, String, i64), PkiError> {
        let mut params = CertificateParams::new(Vec::<String>::new())
            .map_err(cert_error("client parameters"))?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        validity(&mut params, seconds);
        let serial = serial(&mut params);
        let not_after = params.not_after.unix_timestamp();
        let issuer =
            Issuer::from_ca_cert_pem(&self.ca_pem, &self.ca_key).map_err(cert_error("the CA"))?;
        let cert = params
            .signed_by(public, &issuer)
            .map_err(cert_error("a client certificate"))?;
        Ok((cert.pem(), serial, not_after))
    }

    /// Signs a node's CSR: only its public key is used; the subject is `node`. Returns the
    /// certificate (PEM) and its not-after time.
    pub fn sign_node(
        &self,
        node: &NodeName,
        csr_pem: &str,
        seconds: u32,
    ) -> Result<(String, i64), PkiError> {
        if csr_pem.len() > 16 * 1024 {
            return Err(PkiError::Refused("the CSR is larger than 16 KiB".into()));
        }
        let csr = CertificateSigningRequestParams::from_pem(csr_pem).map_err(|e| {
            PkiError::Refused(format!("the CSR is not a valid signed request: {e}"))
        })?;
        let (pem, _, not_after) = self.sign(&csr.public_key, node.as_str(), i64::from(seconds))?;
        Ok((pem, not_after))
    }

    /// An operator's certificate and key (PEM), valid for `hours`, with its serial and
    /// not-after time.
    pub fn issue_admin(&self, name: &str, hours: u32) -> Result<IssuedAdmin, PkiError> {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(PkiError::Refused(format!(
                "{name:?} is not an operator name"
            )));
        }
        let key = KeyPair::generate().map_err(cert_error("an operator key"))?;
        let (certificate_pem, serial, not_after_unix) =
            self.sign(&key, &format!("admin:{name}"), i64::from(hours) * 3600)?;
        Ok(IssuedAdmin {
            certificate_pem,
            key_pem: key.serialize_pem(),
            serial,
            not_after_unix,
        })
    }
}

/// An operator's new certificate.
#[derive(Debug, Clone)]
pub struct IssuedAdmin {
    pub certificate_pem: String,
    pub key_pem: String,
    pub serial: String,
    pub not_after_unix: i64,
}

/// The identity in a verified peer certificate (DER), by its subject CN.
pub fn peer_identity(der: &[u8]) -> Option<PeerIdentity> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    identity_of(&cert)
}

fn identity_of(cert: &x509_parser::certificate::X509Certificate<'_>) -> Option<PeerIdentity> {
    let cn = cert
        .subject()
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_owned();
    if let Some(admin) = cn.strip_prefix("admin:") {
        return Some(PeerIdentity::Admin(admin.to_owned()));
    }
    cn.parse::<NodeName>().ok().map(PeerIdentity::Node)
}

/// A key and a CSR for a node (the agent's side of enrollment), PEM.
pub fn node_csr(node: &NodeName) -> Result<(String, String), PkiError> {
    let key = KeyPair::generate().map_err(cert_error("a node key"))?;
    let mut params =
        CertificateParams::new(Vec::<String>::new()).map_err(cert_error("CSR parameters"))?;
    params
        .distinguished_name
        .push(DnType::CommonName, node.as_str());
    let csr = params
        .serialize_request(&key)
        .map_err(cert_error("a CSR"))?;
    Ok((key.serialize_pem(), csr.pem().map_err(cert_error("a CSR"))?))
}
