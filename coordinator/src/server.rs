//! The coordinator's listeners: agents and certificate-holding operators on TCP with TLS
//! (client certificates verified against the coordinator's CA, optional so a new node can
//! enroll), root operators on the admin Unix socket, the optional Prometheus endpoint and
//! the web dashboard (`dashboard`).
//!
//! What keeps it answering under faults and load:
//! - Admission: a connection beyond `max_connections` (kept below the open-file limit, so
//!   the admin socket, /metrics and the store always have descriptors) or beyond
//!   `max_connections_per_address` from one source is closed at once, counted and logged
//!   (at most every 10 s); a TLS handshake that does not finish within
//!   `tls_handshake_seconds` is dropped, so idle and stalled connections free themselves.
//! - Liveness: HTTP/2 keepalive pings with a timeout and TCP keepalive, so a frozen agent's
//!   connection is closed; (the fleet marks it SILENT from its own clock regardless).
//! - Shutdown: every session is told the coordinator is going away (agents reconnect with
//!   backoff), the listeners stop, and whatever is still open after [`SHUTDOWN_GRACE`] is
//!   dropped, so SIGTERM ends the process in seconds.
//! - Messages above `MAX_MESSAGE_BYTES` are refused from their length prefix.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use lfleet_proto::MAX_MESSAGE_BYTES;
use lfleet_proto::v1::agent_service_server::AgentServiceServer;
use lfleet_proto::v1::fleet_service_server::FleetServiceServer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tonic::transport::server::{Connected, TcpConnectInfo};
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

use crate::api::{AgentApi, FleetApi};
use crate::app::Coordinator;
use crate::config::ServerConfig;

/// How long connections may take to close after SIGTERM before they are dropped.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// File descriptors kept free of agent connections (admin socket, /metrics, the store,
/// scontrol's pipes).
const RESERVED_DESCRIPTORS: usize = 256;

/// Where the coordinator listens, once it does.
#[derive(Debug, Clone)]
pub struct Bound {
    pub grpc: SocketAddr,
    pub metrics: Option<SocketAddr>,
    pub dashboard: crate::dashboard::Started,
}

// === impl Admission ===

/// Connection caps, overall and per source address, with what they refused.
#[derive(Debug)]
pub struct Admission {
    max_total: usize,
    max_per_address: usize,
    total: AtomicUsize,
    per_address: Mutex<HashMap<IpAddr, usize>>,
    /// Connections refused by the caps since start.
    pub refused: AtomicU64,
    logged: Mutex<tokio::time::Instant>,
}

impl Admission {
    pub fn new(max_total: usize, max_per_address: usize) -> Admission {
        Admission {
            max_total,
            max_per_address,
            total: AtomicUsize::new(0),
            per_address: Mutex::new(HashMap::new()),
            refused: AtomicU64::new(0),
            logged: Mutex::new(tokio::time::Instant::now() - Duration::from_secs(60)),
        }
    }

    /// Takes a place for a connection from `address`, or says why there is none.
    fn admit(self: &Arc<Self>, address: IpAddr) -> Result<AdmissionGuard, &'static str> {
        let mut per_address = self.per_address.lock().unwrap_or_else(|e| e.into_inner());
        if self.total.load(Ordering::Relaxed) >= self.max_total {
            return Err("the coordinator's connection cap is reached");
        }
        let count = per_address.entry(address).or_insert(0);
        if *count >= self.max_per_address {
            return Err("this address holds as many connections as one source may");
        }
        *count += 1;
        self.total.fetch_add(1, Ordering::Relaxed);
        Ok(AdmissionGuard {
            admission: self.clone(),
            address,
        })
    }

    fn refuse(&self, address: IpAddr, why: &str) {
        let refused = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let mut logged = self.logged.lock().unwrap_or_else(|e| e.into_inner());
        if logged.elapsed() >= Duration::from_secs(10) {
            *logged = tokio::time::Instant::now();
            tracing::warn!(%address, refused_total = refused, why, "connections refused");
        }
    }

    /// Connections held now.
    pub fn open(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }
}

/// A place taken by one connection, given back when the connection ends.
#[derive(Debug)]
struct AdmissionGuard {
    admission: Arc<Admission>,
    address: IpAddr,
}

impl Drop for AdmissionGuard {
    fn drop(&mut self) {
        let mut per_address = self
            .admission
            .per_address
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(count) = per_address.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                per_address.remove(&self.address);
            }
        }
        self.admission.total.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A TCP connection that holds its admission place.
#[derive(Debug)]
struct Admitted {
    stream: TcpStream,
    _guard: AdmissionGuard,
}

impl Connected for Admitted {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        TcpConnectInfo {
            local_addr: self.stream.local_addr().ok(),
            remote_addr: self.stream.peer_addr().ok(),
        }
    }
}

impl AsyncRead for Admitted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Admitted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Raises the soft open-file limit to the hard one; the connection cap that fits below it.
fn connection_cap(configured: usize) -> usize {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return configured;
    };
    let soft = if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        hard
    } else {
        soft
    };
    let fits = (soft as usize).saturating_sub(RESERVED_DESCRIPTORS).max(1);
    if fits < configured {
        tracing::warn!(
            open_file_limit = soft,
            configured,
            cap = fits,
            "the open-file limit caps agent connections below max_connections (raise LimitNOFILE)"
        );
    }
    configured.min(fits)
}

/// Accepts connections, admits or refuses each, and hands the admitted ones on.
async fn accept_loop(
    listener: tokio::net::TcpListener,
    admission: Arc<Admission>,
    admitted: tokio::sync::mpsc::Sender<std::io::Result<Admitted>>,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of descriptors or a connection reset before accept: wait, never spin.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        match admission.admit(peer.ip()) {
            Ok(guard) => {
                let _ = stream.set_nodelay(true);
                let connection = Admitted {
                    stream,
                    _guard: guard,
                };
                if admitted.send(Ok(connection)).await.is_err() {
                    return;
                }
            }
            Err(why) => {
                drop(stream);
                admission.refuse(peer.ip(), why);
            }
        }
    }
}

/// Binds every listener, then serves until `shutdown` resolves. `ready` gets the addresses
/// as soon as the listeners are bound.
pub async fn serve(
    coordinator: Arc<Coordinator>,
    server: &ServerConfig,
    ready: impl FnOnce(&Bound),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let tls = ServerTlsConfig::new()
        .identity(Identity::from_pem(
            &coordinator.pki().server_cert_pem,
            &coordinator.pki().server_key_pem,
        ))
        .client_ca_root(Certificate::from_pem(&coordinator.pki().ca_pem))
        .client_auth_optional(true)
        .timeout(Duration::from_secs_f64(server.tls_handshake_seconds));
    let listener = tokio::net::TcpListener::bind(&server.listen)
        .await
        .map_err(|e| format!("listen on {}: {e}", server.listen))?;
    let grpc = listener
        .local_addr()
        .map_err(|e| format!("listen on {}: {e}", server.listen))?;

    // The admin socket: root only (checked per call from the peer's credentials).
    if let Some(parent) = server.admin_socket.parent() {
        lfleet_host::HostRoot::new("/")
            .create_dir_all(parent, 0o755)
            .map_err(|e| format!("admin socket directory: {}", lfleet_types::ErrorChain(&e)))?;
    }
    let _ = lfleet_host::HostRoot::new("/").remove_file(&server.admin_socket);
    let unix = tokio::net::UnixListener::bind(&server.admin_socket)
        .map_err(|e| format!("admin socket {}: {e}", server.admin_socket.display()))?;

    let admission = Arc::new(Admission::new(
        connection_cap(server.max_connections),
        server.max_connections_per_address,
    ));
    coordinator.set_admission(admission.clone());
    let metrics = match &server.metrics_listen {
        Some(address) => {
            let listener = tokio::net::TcpListener::bind(address)
                .await
                .map_err(|e| format!("metrics_listen {address}: {e}"))?;
            let bound = listener.local_addr().ok();
            let state = coordinator.clone();
            tokio::spawn(async move {
                if let Err(error) = crate::metrics::serve(listener, state).await {
                    tracing::error!(error = %lfleet_types::ErrorChain(&error), "the Prometheus endpoint stopped");
                }
            });
            bound
        }
        None => None,
    };
    let dashboard = crate::dashboard::start(coordinator.clone(), server).await?;
    ready(&Bound {
        grpc,
        metrics,
        dashboard,
    });

    let agent = AgentServiceServer::new(AgentApi(coordinator.clone()))
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let fleet = FleetServiceServer::new(FleetApi(coordinator.clone()))
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let going_away = coordinator.clone();
    tokio::spawn(async move {
        shutdown.await;
        // Sessions first: their streams end with "going away", so connections can close.
        going_away.sessions().shut_down();
        let _ = stop_tx.send(true);
    });
    let admin = {
        let fleet = fleet.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            Server::builder()
                .add_service(fleet)
                .serve_with_incoming_shutdown(
                    tokio_stream::wrappers::UnixListenerStream::new(unix),
                    async move {
                        let _ = stop.wait_for(|s| *s).await;
                    },
                )
                .await
        })
    };
    let (admitted_tx, admitted_rx) = tokio::sync::mpsc::channel(1024);
    let accepting = tokio::spawn(accept_loop(listener, admission, admitted_tx));
    let keepalive = Duration::from_secs_f64(server.keepalive_seconds);
    let mut stop = stop_rx.clone();
    let serving = Server::builder()
        .tls_config(tls)
        .map_err(|e| format!("TLS: {e}"))?
        .http2_keepalive_interval(Some(keepalive))
        .http2_keepalive_timeout(Some(keepalive))
        .tcp_keepalive(Some(keepalive))
        .add_service(agent)
        .add_service(fleet)
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::ReceiverStream::new(admitted_rx),
            async move {
                let _ = stop.wait_for(|s| *s).await;
            },
        );
    tokio::pin!(serving);
    let mut stopped = stop_rx.clone();
    let result = tokio::select! {
        result = &mut serving => result.map_err(|e| format!("serving: {e}")),
        _ = async {
            let _ = stopped.wait_for(|s| *s).await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => {
            tracing::info!("connections still open after the shutdown grace; dropping them");
            Ok(())
        }
    };
    accepting.abort();
    let _ = tokio::time::timeout(Duration::from_secs(1), admin).await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_address_and_overall_and_places_come_back() {
        let admission = Arc::new(Admission::new(3, 2));
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        let first = admission.admit(a).unwrap();
        let _second = admission.admit(a).unwrap();
        assert!(admission.admit(a).is_err(), "per address");
        let _third = admission.admit(b).unwrap();
        assert!(admission.admit(b).is_err(), "overall");
        assert_eq!(admission.open(), 3);
        drop(first);
        assert_eq!(admission.open(), 2);
        let _again = admission.admit(a).unwrap();
    }
}
