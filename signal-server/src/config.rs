//! Server configuration, shared by the CLI and by apps that host the server in-process.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Serialize;

use crate::hub::HubConfig;

/// Port of the classic Node broadcast server, kept so existing pages and bookmarks still work.
pub const DEFAULT_HTTP_PORT: u16 = 4000;
/// The standard STUN port.
pub const DEFAULT_STUN_PORT: u16 = 3478;

/// An ICE server handed to clients, in the shape of the browser's `RTCIceServer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// PEM files for HTTPS.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// HTTP (or HTTPS) and Socket.IO address; port 0 picks a free port.
    pub http_bind: SocketAddr,
    /// Embedded STUN server address; `None` turns it off.
    pub stun_bind: Option<SocketAddr>,
    /// Serve this directory instead of the built-in pages.
    pub web_root: Option<PathBuf>,
    pub tls: Option<TlsFiles>,
    /// STUN/TURN servers handed to clients in addition to the embedded one.
    pub extra_ice_servers: Vec<IceServer>,
    pub hub: HubConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            http_bind: SocketAddr::from(([0, 0, 0, 0], DEFAULT_HTTP_PORT)),
            stun_bind: Some(SocketAddr::from(([0, 0, 0, 0], DEFAULT_STUN_PORT))),
            web_root: None,
            tls: None,
            extra_ice_servers: Vec::new(),
            hub: HubConfig::default(),
        }
    }
}

impl ServerConfig {
    /// Everything on 127.0.0.1 with OS-chosen ports: for tests and benchmarks.
    pub fn loopback_ephemeral() -> Self {
        Self {
            http_bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            stun_bind: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            ..Self::default()
        }
    }
}
