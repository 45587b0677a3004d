//! The dashboard's listener: plain HTTP/1.1 on loopback, or TLS with the coordinator's own
//! server certificate, asking for a client certificate (optional in the handshake, verified
//! against the coordinator's CA, so an admin's browser presents its certificate and a
//! local browser without one still reads).
//!
//! Bounded: at most [`MAX_CONNECTIONS`] connections at once (more are closed at once and
//! counted), a TLS handshake has [`HANDSHAKE`] to finish and request headers
//! [`HEADER_READ`] to arrive, so idle and stalled clients free their places. Each request
//! carries its connection's [`Peer`] as an extension.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tower::ServiceExt;

use super::access::Peer;
use crate::pki::{Pki, peer_certificate};

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 256;

/// A TLS handshake that takes longer is dropped.
pub const HANDSHAKE: Duration = Duration::from_secs(10);

/// Request headers that take longer to arrive end the connection.
pub const HEADER_READ: Duration = Duration::from_secs(10);

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("the {what} PEM")]
    Pem {
        what: &'static str,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("the CA certificate")]
    Ca(#[source] rustls::Error),
    #[error("the client certificate verifier")]
    Verifier(#[source] rustls::server::VerifierBuilderError),
    #[error("the server certificate and key")]
    Server(#[source] rustls::Error),
}

/// TLS with the coordinator's server certificate, client certificates optional and
/// verified against its CA.
pub fn tls_config(pki: &Pki) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let pem = |what| move |source| TlsError::Pem { what, source };
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(pki.ca_pem.as_bytes()) {
        roots.add(ca.map_err(pem("CA"))?).map_err(TlsError::Ca)?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()
    .map_err(TlsError::Verifier)?;
    let chain = CertificateDer::pem_slice_iter(pki.server_cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem("server certificate"))?;
    let key =
        PrivateKeyDer::from_pem_slice(pki.server_key_pem.as_bytes()).map_err(pem("server key"))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Server)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(TlsError::Server)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Connections refused by the cap since start.
#[derive(Debug, Default)]
pub struct Counters {
    pub refused: AtomicU64,
    pub handshakes_failed: AtomicU64,
}

/// Serves `router` on `listener` until the task is dropped.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    router: axum::Router,
    counters: Arc<Counters>,
) {
    let places = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let (stream, address) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "dashboard: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(place) = places.clone().try_acquire_owned() else {
            let refused = counters.refused.fetch_add(1, Ordering::Relaxed) + 1;
            if refused.is_power_of_two() {
                tracing::warn!(%address, refused_total = refused, "dashboard: connection cap reached; refused");
            }
            continue;
        };
        let router = router.clone();
        let acceptor = acceptor.clone();
        let counters = counters.clone();
        tokio::spawn(async move {
            let _place = place;
            let _ = stream.set_nodelay(true);
            match acceptor {
                None => {
                    let peer = Peer {
                        address,
                        tls: false,
                        certificate: None,
                    };
                    connection(TokioIo::new(stream), peer, router).await;
                }
                Some(acceptor) => {
                    let stream = match tokio::time::timeout(HANDSHAKE, acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(error)) => {
                            counters.handshakes_failed.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(%address, %error, "dashboard: TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            counters.handshakes_failed.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                    };
                    let certificate = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|chain| chain.first())
                        .and_then(|der| peer_certificate(der));
                    let peer = Peer {
                        address,
                        tls: true,
                        certificate,
                    };
                    connection(TokioIo::new(stream), peer, router).await;
                }
            }
        });
    }
}

/// Serves HTTP/1.1 requests on one connection, each with the connection's peer.
async fn connection<I>(io: TokioIo<I>, peer: Peer, router: axum::Router)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let address: SocketAddr = peer.address;
    let service =
        hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(peer.clone());
            router.clone().oneshot(request)
        });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ)
        .serve_connection(io, service)
        .await;
    if let Err(error) = served {
        tracing::debug!(%address, %error, "dashboard: connection ended with an error");
    }
}
