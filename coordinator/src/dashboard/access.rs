//! Who may see the dashboard and who may act through it, decided per request from the
//! connection (its peer address, the client certificate TLS verified) and the headers.
//!
//! - Reading: an operator with an unrevoked admin certificate (`admin:<name>`, the `lfleet`
//!   PKI), or any browser on this host (a loopback peer) when it presents no certificate.
//!   Anything else is refused, so over the network the dashboard needs TLS and an admin
//!   certificate (a plain-HTTP listener on a non-loopback address is refused at start).
//! - Acting (undrain, dry-run): an admin only, and only from the dashboard's own pages: the
//!   browser's `Sec-Fetch-Site` must say `same-origin` and `Origin` must be this dashboard
//!   when present, and the request must carry the CSRF token that only a page served to
//!   that certificate holds (an HMAC of its name and serial under a key made at start). A
//!   client certificate is ambient, like a cookie: without these checks any site the
//!   operator visits could post a form to the dashboard.
//! - The `Host` header must be an IP address, `localhost` or one of `[server]
//!   server_names`: a DNS-rebinding page cannot read a loopback dashboard under its own name.

use std::net::SocketAddr;

use axum::http::{HeaderMap, StatusCode, header};

use crate::pki::{PeerCertificate, PeerIdentity};

/// The header that carries the CSRF token.
pub const CSRF_HEADER: &str = "x-lfleet-csrf";

/// What a connection showed: where it comes from and the certificate TLS verified.
#[derive(Debug, Clone)]
pub struct Peer {
    pub address: SocketAddr,
    pub tls: bool,
    pub certificate: Option<PeerCertificate>,
}

/// Who is looking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Viewer {
    /// An operator with an unrevoked admin certificate: may read and act.
    Admin { name: String, serial: String },
    /// A browser on this host without a certificate: may read.
    Local,
}

impl Viewer {
    /// What the page says about the viewer.
    pub fn describe(&self) -> String {
        match self {
            Viewer::Admin { name, .. } => format!("admin {name}"),
            Viewer::Local => "read-only (this host)".into(),
        }
    }
}

/// Why a request is refused: its status and a sentence saying what would be allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub message: String,
}

fn refuse(status: StatusCode, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        message: message.into(),
    }
}

/// Decides who a connection's peer is; `admin_allowed(name, serial)` says whether an
/// operator's certificate was not revoked.
pub fn viewer(peer: &Peer, admin_allowed: impl Fn(&str, &str) -> bool) -> Result<Viewer, Refusal> {
    match &peer.certificate {
        Some(PeerCertificate {
            identity: PeerIdentity::Admin(name),
            serial,
            ..
        }) => {
            if admin_allowed(name, serial) {
                Ok(Viewer::Admin {
                    name: name.clone(),
                    serial: serial.clone(),
                })
            } else {
                Err(refuse(
                    StatusCode::FORBIDDEN,
                    format!("the certificate of operator {name:?} was revoked"),
                ))
            }
        }
        _ if peer.address.ip().is_loopback() => Ok(Viewer::Local),
        _ => Err(refuse(
            StatusCode::FORBIDDEN,
            "beyond this host the dashboard needs an admin client certificate \
             (`lfleet-coordinator admin-cert NAME`, imported into the browser)",
        )),
    }
}

/// Whether the `Host` header names this dashboard: an IP address, `localhost` or one of
/// `server_names` (with any port).
pub fn host_allowed(headers: &HeaderMap, server_names: &[String]) -> Result<(), Refusal> {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return Err(refuse(StatusCode::BAD_REQUEST, "no Host header"));
    };
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    let allowed = name.parse::<std::net::IpAddr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
        || server_names.iter().any(|n| n.eq_ignore_ascii_case(name));
    if allowed {
        Ok(())
    } else {
        Err(refuse(
            StatusCode::MISDIRECTED_REQUEST,
            format!(
                "Host {host:?} is not this dashboard's address (an IP address, localhost or \
                 [server] server_names)"
            ),
        ))
    }
}

// === impl Csrf ===

/// The CSRF tokens of this process: an HMAC of the operator's name and certificate serial.
#[derive(Debug)]
pub struct Csrf {
    key: ring::hmac::Key,
}

impl Csrf {
    /// A key made from `secret` (random at every start: tokens end with the process).
    pub fn new(secret: &[u8; 32]) -> Csrf {
        Csrf {
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret),
        }
    }

    fn message(name: &str, serial: &str) -> Vec<u8> {
        format!("lfleet-dashboard\0{name}\0{serial}").into_bytes()
    }

    /// The token a page served to this admin carries.
    pub fn token(&self, name: &str, serial: &str) -> String {
        let tag = ring::hmac::sign(&self.key, &Csrf::message(name, serial));
        tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Whether `token` is this admin's (compared in constant time).
    fn verify(&self, name: &str, serial: &str, token: &str) -> bool {
        let Some(tag) = decode_hex(token) else {
            return false;
        };
        ring::hmac::verify(&self.key, &Csrf::message(name, serial), &tag).is_ok()
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || text.len() > 128 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Checks an action request: an admin, from the dashboard's own page, with its token.
/// Returns the operator's name.
pub fn action(
    viewer: &Viewer,
    headers: &HeaderMap,
    scheme: &str,
    csrf: &Csrf,
) -> Result<String, Refusal> {
    let Viewer::Admin { name, serial } = viewer else {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "refused: actions need an admin client certificate, and this browser presented \
             none (read-only)",
        ));
    };
    let text = |name: header::HeaderName| {
        headers
            .get(name)
            .map(|v| v.to_str().unwrap_or("(not text)").to_owned())
    };
    if let Some(site) = text(header::HeaderName::from_static("sec-fetch-site"))
        && site != "same-origin"
    {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            format!(
                "refused: a cross-site request (Sec-Fetch-Site: {site}); actions are taken only \
                 from the dashboard's own pages"
            ),
        ));
    }
    if let Some(origin) = text(header::ORIGIN) {
        let host = text(header::HOST).unwrap_or_default();
        if origin != format!("{scheme}://{host}") {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                format!("refused: Origin {origin} is not this dashboard ({scheme}://{host})"),
            ));
        }
    }
    match text(header::HeaderName::from_static(CSRF_HEADER)) {
        Some(token) if csrf.verify(name, serial, &token) => Ok(name.clone()),
        Some(_) => Err(refuse(
            StatusCode::FORBIDDEN,
            "refused: the page's token is not this certificate's or is from before the \
             coordinator restarted; reload the page",
        )),
        None => Err(refuse(
            StatusCode::FORBIDDEN,
            "refused: no CSRF token; actions are taken only from the dashboard's own pages",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admin(name: &str, serial: &str) -> Option<PeerCertificate> {
        Some(PeerCertificate {
            identity: PeerIdentity::Admin(name.into()),
            key_fingerprint: "k".into(),
            serial: serial.into(),
            not_before_unix: 0,
            not_after_unix: i64::MAX,
        })
    }

    fn peer(address: &str, certificate: Option<PeerCertificate>) -> Peer {
        Peer {
            address: address.parse().unwrap(),
            tls: true,
            certificate,
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn reading_needs_loopback_or_an_unrevoked_admin_certificate() {
        let allowed = |name: &str, _: &str| name != "mallory";
        assert_eq!(
            viewer(&peer("127.0.0.1:5000", None), allowed),
            Ok(Viewer::Local)
        );
        assert_eq!(
            viewer(&peer("[::1]:5000", None), allowed),
            Ok(Viewer::Local)
        );
        let far = viewer(&peer("10.1.2.3:5000", None), allowed).unwrap_err();
        assert_eq!(far.status, StatusCode::FORBIDDEN);
        assert!(far.message.contains("admin client certificate"), "{far:?}");
        assert_eq!(
            viewer(&peer("10.1.2.3:5000", admin("alice", "01")), allowed),
            Ok(Viewer::Admin {
                name: "alice".into(),
                serial: "01".into()
            })
        );
        // A revoked certificate is refused, from anywhere.
        let revoked = viewer(&peer("127.0.0.1:5000", admin("mallory", "02")), allowed);
        assert!(revoked.unwrap_err().message.contains("revoked"));
        // A node's certificate is no operator's.
        let node = PeerCertificate {
            identity: PeerIdentity::Node("hpc-1".parse().unwrap()),
            ..admin("x", "03").unwrap()
        };
        assert!(viewer(&peer("10.1.2.3:5000", Some(node)), allowed).is_err());
    }

    #[test]
    fn a_foreign_host_name_is_refused() {
        let names = vec!["head.cluster".to_owned()];
        for good in [
            "127.0.0.1:7444",
            "localhost:7444",
            "[::1]:7444",
            "HEAD.cluster:7444",
            "10.0.0.5",
        ] {
            assert!(
                host_allowed(&headers(&[("host", good)]), &names).is_ok(),
                "{good}"
            );
        }
        for bad in ["evil.example:7444", "127.0.0.1.evil.example", ""] {
            assert!(
                host_allowed(&headers(&[("host", bad)]), &names).is_err(),
                "{bad}"
            );
        }
        assert!(host_allowed(&HeaderMap::new(), &names).is_err());
    }

    #[test]
    fn actions_need_an_admin_the_same_origin_and_the_token_of_that_certificate() {
        let csrf = Csrf::new(&[7; 32]);
        let alice = Viewer::Admin {
            name: "alice".into(),
            serial: "01".into(),
        };
        let token = csrf.token("alice", "01");
        let good = [
            ("host", "127.0.0.1:7444"),
            ("origin", "https://127.0.0.1:7444"),
            ("sec-fetch-site", "same-origin"),
            (CSRF_HEADER, token.as_str()),
        ];
        assert_eq!(
            action(&alice, &headers(&good), "https", &csrf),
            Ok("alice".into())
        );
        // A client without fetch metadata (curl) with the token is fine.
        assert!(
            action(
                &alice,
                &headers(&[("host", "h"), (CSRF_HEADER, &token)]),
                "https",
                &csrf
            )
            .is_ok()
        );
        let refused = |pairs: &[(&'static str, &str)], viewer: &Viewer| {
            action(viewer, &headers(pairs), "https", &csrf)
                .unwrap_err()
                .message
        };
        assert!(refused(&good, &Viewer::Local).contains("admin client certificate"));
        let mut cross = good;
        cross[2] = ("sec-fetch-site", "cross-site");
        assert!(refused(&cross, &alice).contains("cross-site"));
        let mut same_site = good;
        same_site[2] = ("sec-fetch-site", "same-site");
        assert!(refused(&same_site, &alice).contains("cross-site"));
        let mut origin = good;
        origin[1] = ("origin", "http://127.0.0.1:9999");
        assert!(refused(&origin, &alice).contains("Origin"));
        assert!(refused(&good[..3], &alice).contains("no CSRF token"));
        let bob_token = csrf.token("bob", "01");
        let mut other = good;
        other[3] = (CSRF_HEADER, bob_token.as_str());
        assert!(refused(&other, &alice).contains("token"));
        // Another certificate of the same operator has another token.
        let renewed = Viewer::Admin {
            name: "alice".into(),
            serial: "02".into(),
        };
        assert!(refused(&good, &renewed).contains("token"));
        // Tokens end with the process.
        let restarted = Csrf::new(&[8; 32]);
        assert!(action(&alice, &headers(&good), "https", &restarted).is_err());
        let mut garbage = good;
        garbage[3] = (CSRF_HEADER, "zz");
        assert!(refused(&garbage, &alice).contains("token"));
    }
}
