//! HTTP side: built-in pages (or the user's `--web-root`), the official Socket.IO browser client,
//! health, metrics and the ICE servers clients should use.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use tower_http::services::ServeDir;

use crate::relay::Shared;

/// The official `socket.io-client` browser bundle, from npm (see build.rs).
const SOCKET_IO_JS: &[u8] = include_bytes!(env!("OMNICAST_SOCKET_IO_JS"));

/// Built-in pages, from `assets/web/`.
const PAGES: &[(&str, &str, &str)] = &[
    (
        "/",
        "text/html; charset=utf-8",
        include_str!("../../assets/web/index.html"),
    ),
    (
        "/index.html",
        "text/html; charset=utf-8",
        include_str!("../../assets/web/index.html"),
    ),
    (
        "/watch.html",
        "text/html; charset=utf-8",
        include_str!("../../assets/web/index.html"),
    ),
    (
        "/broadcast.html",
        "text/html; charset=utf-8",
        include_str!("../../assets/web/broadcast.html"),
    ),
    (
        "/omnicast.css",
        "text/css; charset=utf-8",
        include_str!("../../assets/web/omnicast.css"),
    ),
    (
        "/common.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/web/common.js"),
    ),
    (
        "/watch.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/web/watch.js"),
    ),
    (
        "/broadcast.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/web/broadcast.js"),
    ),
    (
        "/channels.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/web/channels.js"),
    ),
    (
        "/sphere.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/web/sphere.js"),
    ),
    (
        "/recorder.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/web/recorder.js"),
    ),
];

pub(crate) fn router<S>(
    shared: Arc<Shared>,
    socket_io: S,
    web_root: Option<&std::path::Path>,
) -> Router
where
    S: tower::Service<axum::extract::Request, Error = std::convert::Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Response: IntoResponse + 'static,
    S::Future: Send + 'static,
{
    let socket_io = tower::ServiceBuilder::new()
        .map_request(detach_request_head)
        .service(socket_io);
    let mut router = Router::new()
        .route("/socket.io/socket.io.js", get(socket_io_js))
        .route("/socket.io/socket.io.min.js", get(socket_io_js))
        .route_service("/socket.io/", socket_io.clone())
        .route_service("/socket.io/{*rest}", socket_io)
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/ice-servers", get(ice_servers));
    match web_root {
        Some(dir) => router = router.fallback_service(ServeDir::new(dir)),
        None => {
            for &(path, content_type, body) in PAGES {
                router = router.route(
                    path,
                    get(move || async move { ([(header::CONTENT_TYPE, content_type)], body) }),
                );
            }
        }
    }
    router.with_state(shared)
}

/// Copies the URI and headers out of hyper's read buffer. hyper parses them as zero-copy slices
/// of a 16 KiB buffer, and Socket.IO keeps each connection's request parts for its whole life,
/// which would pin that buffer per socket (more than half a connection's memory).
fn detach_request_head(mut req: axum::extract::Request) -> axum::extract::Request {
    if let Ok(uri) = req.uri().to_string().parse() {
        *req.uri_mut() = uri;
    }
    let mut headers = HeaderMap::with_capacity(req.headers().len());
    for (name, value) in req.headers() {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_str().as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) else {
            continue;
        };
        headers.append(name, value);
    }
    *req.headers_mut() = headers;
    req
}

async fn socket_io_js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        SOCKET_IO_JS,
    )
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let snapshot = shared.hub.lock().snapshot();
    match crate::metrics::render(&snapshot) {
        Ok(body) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            )],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::error!("metrics encoding failed: {e}");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// `{"iceServers": [...]}`: the embedded STUN server on the host the client used to reach us,
/// then the configured extra servers.
async fn ice_servers(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> impl IntoResponse {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let servers = shared.ice.for_host(host);
    (
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(json!({ "iceServers": servers })),
    )
}
