//! The web dashboard the coordinator serves (`[server] dashboard_listen`, default
//! `127.0.0.1:7444`): the fleet's heatmap, a node's page, filesystems, drains and incidents
//! beside Slurm's view, and the event stream, updated live by polling (no reload). Its
//! HTML, JavaScript, CSS and icon are embedded in the binary ([`assets`]): nothing is
//! loaded from anywhere else, so it works on an air-gapped cluster.
//!
//! Every view is built from the coordinator's domain functions ([`views`] over `app`);
//! actions call `Coordinator::undrain` and `Coordinator::set_dry_run`, the same functions
//! `lfleet` reaches over gRPC. Access ([`access`]): reading on loopback or with an admin
//! certificate, acting only as an admin from the dashboard's own pages; a non-loopback
//! address without TLS is refused at start (`config::dashboard_address`). A dashboard that
//! cannot bind its port does not stop the coordinator (agents and drains matter more): the
//! error is logged and printed, and the coordinator runs without it.
//!
//! Routes: pages `/`, `/nodes/{name}`, `/filesystems`, `/drains`, `/events`; assets under
//! `/assets/`; JSON under `/api/` (`fleet` with an ETag, `nodes/{name}`, `filesystems`,
//! `drains`, `events?since=MS&limit=N&node=NAME`); actions `POST /api/nodes/{name}/undrain`
//! and `POST /api/dry-run`.

pub mod access;
mod listener;
pub mod views;

use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use lfleet_types::ErrorChain;
use serde::{Deserialize, Serialize};

use crate::app::{ApiError, Coordinator};
use crate::config::ServerConfig;
use access::{Csrf, Peer, Refusal, Viewer};

pub use listener::{Counters, MAX_CONNECTIONS};

/// The embedded pages.
pub mod assets {
    pub const INDEX_HTML: &str = include_str!("assets/index.html");
    pub const APP_JS: &str = include_str!("assets/app.js");
    pub const APP_CSS: &str = include_str!("assets/app.css");
    pub const ICON_SVG: &str = include_str!("assets/icon.svg");
}

/// Events one poll returns at most.
const EVENTS_LIMIT: u32 = 500;

/// How long Slurm's view is reused: however many pages are open, scontrol is asked for the
/// dashboard at most this often.
const SLURM_VIEW_TTL: std::time::Duration = std::time::Duration::from_secs(5);

/// What serves the dashboard.
#[derive(Debug)]
struct Dashboard {
    coordinator: Arc<Coordinator>,
    csrf: Csrf,
    server_names: Vec<String>,
    scheme: &'static str,
    /// The last answer of `Coordinator::drains` (Slurm's view) and when it was taken.
    slurm_view: tokio::sync::Mutex<Option<(tokio::time::Instant, views::SlurmView)>>,
}

impl Dashboard {
    /// lfleet's drains beside Slurm's view, asked at most every [`SLURM_VIEW_TTL`]; an action
    /// forgets it, so the pages show its effect at once.
    async fn slurm_view(&self) -> views::SlurmView {
        let mut cached = self.slurm_view.lock().await;
        if let Some((at, view)) = cached.as_ref()
            && at.elapsed() < SLURM_VIEW_TTL
        {
            return view.clone();
        }
        let view = self
            .coordinator
            .drains()
            .await
            .map_err(|e| ErrorChain(&e).to_string());
        *cached = Some((tokio::time::Instant::now(), view.clone()));
        view
    }

    async fn forget_slurm_view(&self) {
        *self.slurm_view.lock().await = None;
    }
}

/// The dashboard once started.
#[derive(Debug, Clone)]
pub enum Started {
    /// `dashboard_listen` is empty.
    Off,
    /// Bound and serving at this URL.
    Serving { url: String, address: SocketAddr },
    /// The port could not be bound (the coordinator runs on without it).
    Unavailable(String),
}

/// Starts the dashboard as `server` says. A refused setting is an error (nothing starts);
/// a port that cannot be bound is [`Started::Unavailable`].
pub async fn start(
    coordinator: Arc<Coordinator>,
    server: &ServerConfig,
) -> Result<Started, String> {
    let Some(address) =
        crate::config::dashboard_address(&server.dashboard_listen, server.dashboard_tls)
            .map_err(|e| format!("dashboard_listen: {e}"))?
    else {
        return Ok(Started::Off);
    };
    let listener = match tokio::net::TcpListener::bind(address).await {
        Ok(listener) => listener,
        Err(error) => {
            let why = format!("listen on {address}: {error}");
            tracing::error!(
                error = why,
                "the dashboard is not served; the coordinator runs without it"
            );
            return Ok(Started::Unavailable(why));
        }
    };
    let bound = listener
        .local_addr()
        .map_err(|e| format!("dashboard_listen {address}: {e}"))?;
    spawn(
        listener,
        coordinator,
        server.dashboard_tls,
        server.server_names.clone(),
    )?;
    let scheme = if server.dashboard_tls {
        "https"
    } else {
        "http"
    };
    tracing::info!(address = %bound, tls = server.dashboard_tls, "dashboard listening");
    Ok(Started::Serving {
        url: format!("{scheme}://{bound}/"),
        address: bound,
    })
}

/// Serves the dashboard on `listener` in a task (TLS with the coordinator's certificate
/// when `tls`); `server_names` are the host names it answers to besides IP addresses and
/// localhost.
pub fn spawn(
    listener: tokio::net::TcpListener,
    coordinator: Arc<Coordinator>,
    tls: bool,
    server_names: Vec<String>,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let tls_config = if tls {
        Some(
            listener::tls_config(coordinator.pki())
                .map_err(|e| format!("dashboard TLS: {}", ErrorChain(&e)))?,
        )
    } else {
        None
    };
    let dashboard = Arc::new(Dashboard {
        coordinator,
        csrf: Csrf::new(&rand::random()),
        server_names,
        scheme: if tls { "https" } else { "http" },
        slurm_view: tokio::sync::Mutex::new(None),
    });
    let router = router(dashboard);
    Ok(tokio::spawn(listener::serve(
        listener,
        tls_config,
        router,
        Arc::new(Counters::default()),
    )))
}

fn router(dashboard: Arc<Dashboard>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/nodes/{name}", get(page))
        .route("/filesystems", get(page))
        .route("/drains", get(page))
        .route("/events", get(page))
        .route(
            "/assets/app.js",
            get(|| asset("text/javascript; charset=utf-8", assets::APP_JS)),
        )
        .route(
            "/assets/app.css",
            get(|| asset("text/css; charset=utf-8", assets::APP_CSS)),
        )
        .route(
            "/assets/icon.svg",
            get(|| asset("image/svg+xml", assets::ICON_SVG)),
        )
        .route("/api/fleet", get(fleet))
        .route("/api/nodes/{name}", get(node))
        .route("/api/filesystems", get(filesystems))
        .route("/api/drains", get(drains))
        .route("/api/events", get(events))
        .route("/api/nodes/{name}/undrain", post(undrain))
        .route("/api/dry-run", post(dry_run))
        .layer(axum::middleware::from_fn_with_state(
            dashboard.clone(),
            guard,
        ))
        .with_state(dashboard)
}

// === responses ===

fn refusal(refusal: Refusal) -> Response {
    text(refusal.status, refusal.message)
}

fn text(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message.into(),
    )
        .into_response()
}

/// The one mapping from domain errors to HTTP statuses; internal errors are logged whole.
fn api_error(error: ApiError) -> Response {
    let status = match &error {
        ApiError::InvalidArgument(_) => StatusCode::BAD_REQUEST,
        ApiError::PermissionDenied(_) => StatusCode::FORBIDDEN,
        ApiError::NotFound(_) => StatusCode::NOT_FOUND,
        ApiError::AlreadyExists(_) | ApiError::FailedPrecondition(_) => StatusCode::CONFLICT,
        ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        ApiError::ResourceExhausted(_) => StatusCode::TOO_MANY_REQUESTS,
        ApiError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let message = ErrorChain(&error).to_string();
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!(error = message, "a dashboard request failed");
    }
    text(status, message)
}

fn json_bytes(value: &impl Serialize) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(value).map_err(|e| ApiError::internal("encoding the dashboard's JSON", e))
}

fn json(value: &impl Serialize) -> Response {
    match json_bytes(value) {
        Ok(bytes) => (
            [(header::CONTENT_TYPE, "application/json")],
            Body::from(bytes),
        )
            .into_response(),
        Err(error) => api_error(error),
    }
}

fn asset(
    content_type: &'static str,
    body: &'static str,
) -> impl std::future::Future<Output = Response> {
    std::future::ready(
        (
            [
                (header::CONTENT_TYPE, content_type),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            body,
        )
            .into_response(),
    )
}

/// Every request: the Host must be this dashboard's, the viewer is decided (or refused)
/// and travels as an extension; every answer gets the security headers.
async fn guard(
    State(dashboard): State<Arc<Dashboard>>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(peer) = request.extensions().get::<Peer>().cloned() else {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "no connection information",
        );
    };
    let decided = access::host_allowed(request.headers(), &dashboard.server_names).and_then(|()| {
        access::viewer(&peer, |name, serial| {
            dashboard
                .coordinator
                .identities()
                .admin_allowed(name, serial)
        })
    });
    let mut response = match decided {
        Ok(viewer) => {
            request.extensions_mut().insert(viewer);
            next.run(request).await
        }
        Err(refused) => refusal(refused),
    };
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Every page is the same shell; the script draws the page its path names. An admin's
/// page carries the CSRF token of its certificate.
async fn page(
    State(dashboard): State<Arc<Dashboard>>,
    Extension(viewer): Extension<Viewer>,
) -> Response {
    let (role, token) = match &viewer {
        Viewer::Admin { name, serial } => ("admin", dashboard.csrf.token(name, serial)),
        Viewer::Local => ("read-only", String::new()),
    };
    let html = assets::INDEX_HTML
        .replace("{{VIEWER}}", &escape_html(&viewer.describe()))
        .replace("{{ROLE}}", role)
        .replace("{{CSRF}}", &token)
        .replace("{{VERSION}}", env!("CARGO_PKG_VERSION"));
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
}

// === reads ===

/// The heatmap; `304 Not Modified` when the browser's ETag still matches.
async fn fleet(State(dashboard): State<Arc<Dashboard>>, headers: HeaderMap) -> Response {
    let coordinator = dashboard.coordinator.clone();
    let built = tokio::task::spawn_blocking(move || views::fleet(&coordinator)).await;
    let view = match built {
        Ok(Ok(view)) => view,
        Ok(Err(error)) => return api_error(error),
        Err(error) => return api_error(ApiError::internal("building the heatmap", error)),
    };
    let bytes = match json_bytes(&view) {
        Ok(bytes) => bytes,
        Err(error) => return api_error(error),
    };
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut hasher);
    let etag = format!("\"{:016x}\"", hasher.finish());
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == etag);
    let mut response = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, "application/json")],
            Body::from(bytes),
        )
            .into_response()
    };
    if let Ok(value) = HeaderValue::from_str(&etag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

async fn node(State(dashboard): State<Arc<Dashboard>>, Path(name): Path<String>) -> Response {
    let slurm = dashboard.slurm_view().await;
    match views::node(&dashboard.coordinator, &name, slurm) {
        Ok(view) => json(&view),
        Err(error) => api_error(error),
    }
}

async fn filesystems(State(dashboard): State<Arc<Dashboard>>) -> Response {
    let coordinator = dashboard.coordinator.clone();
    match tokio::task::spawn_blocking(move || views::filesystems(&coordinator)).await {
        Ok(view) => json(&view),
        Err(error) => api_error(ApiError::internal("building the filesystems view", error)),
    }
}

async fn drains(State(dashboard): State<Arc<Dashboard>>) -> Response {
    let slurm = dashboard.slurm_view().await;
    match views::drains(&dashboard.coordinator, slurm) {
        Ok(view) => json(&view),
        Err(error) => api_error(error),
    }
}

/// `since` (unix ms), `limit` and `node` from a query string.
fn events_query(query: Option<&str>) -> Result<(i64, u32, Option<String>), String> {
    let (mut since, mut limit, mut node) = (0, EVENTS_LIMIT, None);
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "since" => {
                since = value
                    .parse()
                    .map_err(|_| format!("since={value:?} is not a time in ms"))?
            }
            "limit" => {
                limit = value
                    .parse::<u32>()
                    .map_err(|_| format!("limit={value:?} is not a number"))?
                    .clamp(1, EVENTS_LIMIT)
            }
            "node" => {
                let name: lfleet_types::NodeName = value
                    .parse()
                    .map_err(|e: lfleet_types::SpecError| e.to_string())?;
                node = Some(name.as_str().to_owned());
            }
            other => return Err(format!("unknown parameter {other:?}")),
        }
    }
    Ok((since, limit, node))
}

async fn events(State(dashboard): State<Arc<Dashboard>>, RawQuery(query): RawQuery) -> Response {
    let (since, limit, node) = match events_query(query.as_deref()) {
        Ok(query) => query,
        Err(message) => return text(StatusCode::BAD_REQUEST, message),
    };
    let listed = match node {
        Some(node) => dashboard
            .coordinator
            .store()
            .events_of(Some(&node), since, limit)
            .map(|events| {
                events
                    .into_iter()
                    .map(lfleet_types::fleet::FleetEvent::from)
                    .collect()
            })
            .map_err(ApiError::from),
        None => dashboard.coordinator.list_events(since, limit),
    };
    match listed {
        Ok(events) => json(&events),
        Err(error) => api_error(error),
    }
}

// === actions ===

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UndrainRequest {
    #[serde(default)]
    note: String,
}

#[derive(Debug, Serialize)]
struct UndrainAnswer {
    lifted: bool,
    message: String,
}

/// An action's operator (refused unless [`access::action`] allows it) and its JSON body
/// (empty: the request's defaults).
fn authorized<T: for<'a> Deserialize<'a> + Default>(
    dashboard: &Dashboard,
    viewer: &Viewer,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<(String, T), Refusal> {
    let who = access::action(viewer, headers, dashboard.scheme, &dashboard.csrf)?;
    if body.is_empty() {
        return Ok((who, T::default()));
    }
    let request = serde_json::from_slice(body).map_err(|e| Refusal {
        status: StatusCode::BAD_REQUEST,
        message: format!("the request body: {e}"),
    })?;
    Ok((who, request))
}

async fn undrain(
    State(dashboard): State<Arc<Dashboard>>,
    Extension(viewer): Extension<Viewer>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (who, request): (String, UndrainRequest) =
        match authorized(&dashboard, &viewer, &headers, &body) {
            Ok(authorized) => authorized,
            Err(refused) => return refusal(refused),
        };
    let note = lfleet_types::safe_text(
        if request.note.is_empty() {
            "from the dashboard"
        } else {
            &request.note
        },
        200,
    );
    match dashboard
        .coordinator
        .undrain(&name, &format!("{who} (dashboard)"), &note)
        .await
    {
        Ok((lifted, message)) => {
            dashboard.forget_slurm_view().await;
            json(&UndrainAnswer { lifted, message })
        }
        Err(error) => api_error(error),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DryRunRequest {
    /// Empty: every check.
    #[serde(default)]
    check: String,
    #[serde(default)]
    on: Option<bool>,
}

async fn dry_run(
    State(dashboard): State<Arc<Dashboard>>,
    Extension(viewer): Extension<Viewer>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (who, request): (String, DryRunRequest) =
        match authorized(&dashboard, &viewer, &headers, &body) {
            Ok(authorized) => authorized,
            Err(refused) => return refusal(refused),
        };
    let Some(on) = request.on else {
        return text(
            StatusCode::BAD_REQUEST,
            "the request body: {\"on\": true|false, \"check\": \"CHECK\" (empty: every check)}",
        );
    };
    match dashboard
        .coordinator
        .set_dry_run(&request.check, on, &format!("{who} (dashboard)"))
        .await
    {
        Ok(policy) => json(&policy),
        Err(error) => api_error(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_queries_are_numbers_and_node_names() {
        assert_eq!(events_query(None), Ok((0, EVENTS_LIMIT, None)));
        assert_eq!(
            events_query(Some("since=17&limit=9999&node=hpc-1")),
            Ok((17, EVENTS_LIMIT, Some("hpc-1".into())))
        );
        assert!(events_query(Some("since=yesterday")).is_err());
        assert!(events_query(Some("node=a%20b")).is_err());
        assert!(events_query(Some("drop=1")).is_err());
    }

    #[test]
    fn the_shell_escapes_what_it_shows() {
        assert_eq!(
            escape_html("<a href=\"x\">'&"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;"
        );
    }
}
