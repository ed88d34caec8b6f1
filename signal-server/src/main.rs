//! `omnicast-signal`: the signalling server on its own.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::Parser;
use omnicast_signal::config::{DEFAULT_HTTP_PORT, DEFAULT_STUN_PORT};
use omnicast_signal::{HubConfig, IceServer, ServerConfig, SignalServer, TlsFiles};

/// Omnicast signalling server: drop-in replacement for the classic Socket.IO WebRTC broadcast
/// server, with rooms, broadcaster keys, STUN and browser pages.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// HTTP and Socket.IO address.
    #[arg(long, default_value_t = SocketAddr::from(([0, 0, 0, 0], DEFAULT_HTTP_PORT)))]
    bind: SocketAddr,
    /// Embedded STUN server address (UDP).
    #[arg(long, default_value_t = SocketAddr::from(([0, 0, 0, 0], DEFAULT_STUN_PORT)))]
    stun_bind: SocketAddr,
    /// Turn the embedded STUN server off.
    #[arg(long)]
    no_stun: bool,
    /// Serve this directory (for example your existing classic pages) instead of the built-in pages.
    #[arg(long)]
    web_root: Option<PathBuf>,
    /// Key required to broadcast in every room without a key of its own.
    #[arg(long, env = "OMNICAST_BROADCASTER_KEY", hide_env_values = true)]
    broadcaster_key: Option<String>,
    /// Key required to broadcast in one room, as ROOM=KEY (repeatable).
    #[arg(long = "room-key", value_name = "ROOM=KEY")]
    room_keys: Vec<String>,
    /// Extra STUN/TURN server URL handed to clients (repeatable), e.g. turn:turn.example.org:3478.
    #[arg(long = "ice-server", value_name = "URL")]
    ice_servers: Vec<String>,
    /// Username for the --ice-server TURN URLs.
    #[arg(long, requires = "ice_credential")]
    ice_username: Option<String>,
    /// Credential for the --ice-server TURN URLs.
    #[arg(
        long,
        env = "OMNICAST_ICE_CREDENTIAL",
        hide_env_values = true,
        requires = "ice_username"
    )]
    ice_credential: Option<String>,
    /// Certificate chain (PEM) for HTTPS; browsers only allow cameras on https or localhost.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Private key (PEM) for HTTPS.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Largest signalling message accepted, in bytes.
    #[arg(long, default_value_t = HubConfig::default().max_payload_bytes)]
    max_payload_bytes: usize,
    /// Messages per second one socket may send (sustained).
    #[arg(long, default_value_t = HubConfig::default().max_events_per_sec)]
    max_events_per_sec: u32,
    /// Messages one socket may send in a burst.
    #[arg(long, default_value_t = HubConfig::default().max_event_burst)]
    max_event_burst: u32,
}

impl Cli {
    fn into_config(self) -> anyhow::Result<ServerConfig> {
        let mut room_keys = HashMap::new();
        for pair in &self.room_keys {
            let Some((room, key)) = pair.split_once('=') else {
                bail!("--room-key {pair:?}: expected ROOM=KEY");
            };
            let room = omnicast_signal::hub::validate_room(Some(room))
                .with_context(|| format!("--room-key {pair:?}"))?;
            if key.is_empty() {
                bail!("--room-key {pair:?}: the key is empty");
            }
            room_keys.insert(room, key.to_owned());
        }
        if self.max_events_per_sec == 0 || self.max_event_burst == 0 {
            bail!("--max-events-per-sec and --max-event-burst must be at least 1");
        }
        let extra_ice_servers = self
            .ice_servers
            .iter()
            .map(|url| {
                let is_turn = url.starts_with("turn:") || url.starts_with("turns:");
                if !(is_turn || url.starts_with("stun:") || url.starts_with("stuns:")) {
                    bail!("--ice-server {url:?}: expected a stun:, stuns:, turn: or turns: URL");
                }
                Ok(IceServer {
                    urls: vec![url.clone()],
                    username: is_turn.then(|| self.ice_username.clone()).flatten(),
                    credential: is_turn.then(|| self.ice_credential.clone()).flatten(),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        if let Some(dir) = &self.web_root
            && !dir.is_dir()
        {
            bail!("--web-root {}: not a directory", dir.display());
        }
        Ok(ServerConfig {
            http_bind: self.bind,
            stun_bind: (!self.no_stun).then_some(self.stun_bind),
            web_root: self.web_root,
            tls: self
                .tls_cert
                .zip(self.tls_key)
                .map(|(cert, key)| TlsFiles { cert, key }),
            extra_ice_servers,
            hub: HubConfig {
                max_payload_bytes: self.max_payload_bytes,
                max_events_per_sec: self.max_events_per_sec,
                max_event_burst: self.max_event_burst,
                broadcaster_key: self.broadcaster_key.filter(|k| !k.is_empty()),
                room_keys,
            },
        })
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let config = Cli::parse().into_config()?;
    let server = SignalServer::start(config).await?;
    let url = server.local_url();
    tracing::info!(
        http = %server.http_addr(),
        stun = ?server.stun_addr(),
        "omnicast-signal listening: broadcaster page {url}/broadcast.html, viewer page {url}/"
    );
    server
        .serve_until(omnicast_signal::shutdown_signal())
        .await?;
    tracing::info!("stopped");
    Ok(())
}
