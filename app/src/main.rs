//! `omnicast`: the Omnicast desktop app.
//!
//! For now it hosts the bundled signal server in-process, so a browser can broadcast and watch
//! through it; the media engine and the egui window build on this (see ARCHITECTURE.md).

use std::net::SocketAddr;

use clap::Parser;
use omnicast_signal::config::{DEFAULT_HTTP_PORT, DEFAULT_STUN_PORT};
use omnicast_signal::{ServerConfig, SignalServer};

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Omnicast: live video from one broadcaster to many viewers over WebRTC"
)]
struct Cli {
    /// Address of the signal server this app hosts.
    #[arg(long, default_value_t = SocketAddr::from(([0, 0, 0, 0], DEFAULT_HTTP_PORT)))]
    bind: SocketAddr,
    /// Address of its embedded STUN server.
    #[arg(long, default_value_t = SocketAddr::from(([0, 0, 0, 0], DEFAULT_STUN_PORT)))]
    stun_bind: SocketAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    let server = SignalServer::start(ServerConfig {
        http_bind: cli.bind,
        stun_bind: Some(cli.stun_bind),
        ..ServerConfig::default()
    })
    .await?;
    let url = server.local_url();
    println!("Omnicast signal server running (Ctrl-C to stop)");
    println!("  broadcast from a browser: {url}/broadcast.html");
    println!("  watch in a browser:       {url}/");
    if let Some(stun) = server.stun_addr() {
        println!("  STUN (udp):               {stun}");
    }
    server
        .serve_until(omnicast_signal::shutdown_signal())
        .await?;
    Ok(())
}
