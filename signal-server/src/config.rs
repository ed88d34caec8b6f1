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

/// Which ICE servers to hand a client: the embedded STUN server on the host the client used to
/// reach us, then the configured extra servers.
#[derive(Debug, Clone, Default)]
pub struct IcePlan {
    pub stun_port: Option<u16>,
    pub extra: Vec<IceServer>,
}

impl IcePlan {
    /// The list for a client whose request carried this `Host` header.
    pub fn for_host(&self, host_header: Option<&str>) -> Vec<IceServer> {
        let mut servers = Vec::new();
        if let (Some(port), Some(host)) = (self.stun_port, host_header.and_then(host_without_port))
        {
            servers.push(IceServer {
                urls: vec![format!("stun:{host}:{port}")],
                username: None,
                credential: None,
            });
        }
        servers.extend(self.extra.iter().cloned());
        servers
    }
}

/// `example.com:4000` → `example.com`, `[::1]:4000` → `[::1]`; rejects anything that is not a
/// plausible host name so a forged Host header cannot inject into the URL.
fn host_without_port(host: &str) -> Option<String> {
    let host = if let Some(rest) = host.strip_prefix('[') {
        let (inside, _) = rest.split_once(']')?;
        inside.parse::<std::net::Ipv6Addr>().ok()?;
        return Some(format!("[{inside}]"));
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    let valid = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'));
    valid.then(|| host.to_owned())
}

#[cfg(test)]
mod tests {
    use super::host_without_port;

    #[test]
    fn host_header_forms() {
        assert_eq!(
            host_without_port("localhost:4000").as_deref(),
            Some("localhost")
        );
        assert_eq!(host_without_port("10.1.2.3").as_deref(), Some("10.1.2.3"));
        assert_eq!(host_without_port("[::1]:4000").as_deref(), Some("[::1]"));
        assert_eq!(host_without_port("evil\"host"), None);
        assert_eq!(host_without_port("[nope]:1"), None);
        assert_eq!(host_without_port(""), None);
    }
}
