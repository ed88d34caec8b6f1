//! Hosting the bundled signal server in this process, and the one place that says where it can
//! be found: the URL this machine's apps use, the pages a browser opens, the command a viewer
//! types.

use std::net::{IpAddr, SocketAddr};

use omnicast_signal::{ServerConfig, SignalServer, StartError};

/// Where a hosted signal server can be reached.
#[derive(Debug, Clone, PartialEq)]
pub struct Hosted {
    /// For apps on this machine (`omnicast view --server …`): loopback by number, which works
    /// whether or not `localhost` resolves to IPv6 first.
    pub local_url: String,
    /// Viewer pages: `localhost` first (browsers allow cameras there), then one per network
    /// address for other machines.
    pub viewer_links: Vec<String>,
    /// The browser broadcaster page on this machine.
    pub broadcaster_page: String,
}

impl Hosted {
    /// The addresses of a server listening on `http` (an unspecified address means every
    /// interface: each network address then gets a link), reached over `scheme`.
    pub fn new(http: SocketAddr, tls: bool) -> Self {
        let scheme = if tls { "https" } else { "http" };
        let port = http.port();
        let local_url = if http.ip().is_unspecified() || http.ip().is_loopback() {
            format!("{scheme}://127.0.0.1:{port}")
        } else {
            format!("{scheme}://{http}")
        };
        let browser = if http.ip().is_unspecified() || http.ip().is_loopback() {
            format!("{scheme}://localhost:{port}")
        } else {
            local_url.clone()
        };
        let mut viewer_links = vec![format!("{browser}/")];
        if http.ip().is_unspecified() {
            viewer_links.extend(
                network_addresses()
                    .into_iter()
                    .map(|ip| format!("{scheme}://{}/", SocketAddr::new(ip, port))),
            );
        }
        Self {
            broadcaster_page: format!("{browser}/broadcast.html"),
            local_url,
            viewer_links,
        }
    }

    /// What a viewer on this machine types to watch.
    pub fn view_command(&self) -> String {
        format!("omnicast view --server {}", self.local_url)
    }
}

/// Hosts the signal server on `http` and `stun`; if `http`'s port is taken (another Omnicast
/// here, say), on any free port instead.
pub async fn host_server(
    http: SocketAddr,
    stun: SocketAddr,
) -> Result<(SignalServer, Hosted), StartError> {
    let config = |http_bind, stun_bind| ServerConfig {
        http_bind,
        stun_bind: Some(stun_bind),
        ..ServerConfig::default()
    };
    let server = match SignalServer::start(config(http, stun)).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("{e}; hosting on a free port instead");
            let any = |a: SocketAddr| SocketAddr::new(a.ip(), 0);
            SignalServer::start(config(any(http), any(stun))).await?
        }
    };
    let hosted = Hosted::new(server.http_addr(), false);
    Ok((server, hosted))
}

/// This machine's addresses other machines may reach it on (IPv4, not loopback, not
/// link-local).
pub fn network_addresses() -> Vec<IpAddr> {
    let Ok(interfaces) = rtc::shared::ifaces::ifaces() else {
        return Vec::new();
    };
    let mut ips: Vec<_> = interfaces
        .into_iter()
        .filter_map(|i| i.addr.map(|a| a.ip()))
        .filter(|ip| match ip {
            IpAddr::V4(v4) => !v4.is_loopback() && !v4.is_link_local(),
            IpAddr::V6(_) => false,
        })
        .collect();
    ips.sort();
    ips.dedup();
    ips
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_on_every_interface_is_found_on_loopback_and_each_network_address() {
        let h = Hosted::new(SocketAddr::from(([0, 0, 0, 0], 4000)), false);
        assert_eq!(h.local_url, "http://127.0.0.1:4000");
        assert_eq!(h.viewer_links[0], "http://localhost:4000/");
        assert_eq!(h.broadcaster_page, "http://localhost:4000/broadcast.html");
        assert_eq!(
            h.view_command(),
            "omnicast view --server http://127.0.0.1:4000"
        );
        for (link, ip) in h.viewer_links[1..].iter().zip(network_addresses()) {
            assert_eq!(*link, format!("http://{ip}:4000/"));
        }
    }

    #[test]
    fn a_server_on_one_address_is_found_there() {
        let h = Hosted::new(SocketAddr::from(([10, 1, 2, 3], 4443)), true);
        assert_eq!(h.local_url, "https://10.1.2.3:4443");
        assert_eq!(h.viewer_links, ["https://10.1.2.3:4443/"]);
        let h = Hosted::new(SocketAddr::from(([127, 0, 0, 1], 5000)), false);
        assert_eq!(h.viewer_links, ["http://localhost:5000/"]);
    }
}
