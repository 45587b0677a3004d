//! The coordinator's listeners: agents and certificate-holding operators on TCP with TLS
//! (client certificates verified against the coordinator's CA, optional so a new node can
//! enroll), root operators on the admin Unix socket, and the optional Prometheus endpoint.
//! Messages above `MAX_MESSAGE_BYTES` are refused from their length prefix, before they are
//! buffered.

use std::net::SocketAddr;
use std::sync::Arc;

use lfleet_proto::MAX_MESSAGE_BYTES;
use lfleet_proto::v1::agent_service_server::AgentServiceServer;
use lfleet_proto::v1::fleet_service_server::FleetServiceServer;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

use crate::api::{AgentApi, FleetApi};
use crate::app::Coordinator;
use crate::config::ServerConfig;

/// Where the coordinator listens, once it does.
#[derive(Debug, Clone)]
pub struct Bound {
    pub grpc: SocketAddr,
    pub metrics: Option<SocketAddr>,
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
        .client_auth_optional(true);
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
            .map_err(|e| format!("admin socket directory: {e}"))?;
    }
    let _ = lfleet_host::HostRoot::new("/").remove_file(&server.admin_socket);
    let unix = tokio::net::UnixListener::bind(&server.admin_socket)
        .map_err(|e| format!("admin socket {}: {e}", server.admin_socket.display()))?;

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
    ready(&Bound { grpc, metrics });

    let agent = AgentServiceServer::new(AgentApi(coordinator.clone()))
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let fleet = FleetServiceServer::new(FleetApi(coordinator.clone()))
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
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
    let mut stop = stop_rx;
    let result = Server::builder()
        .tls_config(tls)
        .map_err(|e| format!("TLS: {e}"))?
        .add_service(agent)
        .add_service(fleet)
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener),
            async move {
                let _ = stop.wait_for(|s| *s).await;
            },
        )
        .await;
    let _ = admin.await;
    result.map_err(|e| format!("serving: {e}"))
}
