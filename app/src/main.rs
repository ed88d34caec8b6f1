//! `omnicast`: the Omnicast desktop app.
//!
//! `omnicast broadcast --headless` and `omnicast view --headless` run the media engine without a
//! window; with no arguments it hosts the signal server (the window comes next, see
//! ARCHITECTURE.md).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use omnicast::engine::broadcaster::{self, BroadcastSettings, BroadcastStats};
use omnicast::engine::capture::SourceSpec;
use omnicast::engine::codec::{self, EncoderSettings};
use omnicast::engine::peer::PeerSettings;
use omnicast::engine::viewer::{self, FrameSlot, SharedStats, ViewSettings};
use omnicast_signal::config::{DEFAULT_HTTP_PORT, DEFAULT_STUN_PORT};
use omnicast_signal::{ServerConfig, SignalServer};

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Omnicast: live video from one broadcaster to many viewers over WebRTC"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Address of the signal server this app hosts.
    #[arg(long, global = true, default_value_t = SocketAddr::from(([0, 0, 0, 0], DEFAULT_HTTP_PORT)))]
    bind: SocketAddr,
    /// Address of its embedded STUN server.
    #[arg(long, global = true, default_value_t = SocketAddr::from(([0, 0, 0, 0], DEFAULT_STUN_PORT)))]
    stun_bind: SocketAddr,
    /// Local address for WebRTC media (host candidates), IP or IP:PORT. Default: every
    /// interface and loopback.
    #[arg(long, global = true, value_parser = parse_media_bind)]
    media_bind: Option<SocketAddr>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Broadcast a camera or the test pattern.
    Broadcast {
        /// No window (the only mode for now).
        #[arg(long)]
        headless: bool,
        /// Signal server URL; without it the bundled server is hosted here.
        #[arg(long)]
        server: Option<String>,
        #[arg(long, default_value = "")]
        room: String,
        /// Broadcaster key for the room.
        #[arg(long, env = "OMNICAST_KEY", hide_env_values = true)]
        key: Option<String>,
        /// test-pattern, camera, camera:INDEX or camera:NAME.
        #[arg(long, default_value = "camera")]
        source: SourceSpec,
        /// Frame size, WxH.
        #[arg(long, default_value = "1280x720", value_parser = parse_size)]
        size: (u32, u32),
        #[arg(long, default_value_t = 30.0)]
        fps: f32,
        #[arg(long, default_value_t = 2000)]
        bitrate_kbps: u32,
        /// Frames between scheduled keyframes.
        #[arg(long, default_value_t = 300)]
        keyframe_interval: u32,
        /// Encoder threads (1-4); 0 picks by size: one up to 720p, every core above.
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=4))]
        encode_threads: u16,
    },
    /// Watch a broadcast.
    View {
        #[arg(long)]
        headless: bool,
        /// Signal server URL.
        #[arg(long)]
        server: String,
        #[arg(long, default_value = "")]
        room: String,
        /// Exit after this many decoded frames.
        #[arg(long)]
        frames: Option<u64>,
        /// Write the receive statistics here (JSON) on exit.
        #[arg(long)]
        stats_json: Option<PathBuf>,
        /// Save the last decoded frame here (PNG) on exit.
        #[arg(long)]
        snapshot: Option<PathBuf>,
    },
}

/// An IP address, with a port or without (any free port).
fn parse_media_bind(s: &str) -> Result<SocketAddr, String> {
    s.parse::<SocketAddr>()
        .or_else(|_| {
            s.parse::<std::net::IpAddr>()
                .map(|ip| SocketAddr::new(ip, 0))
        })
        .map_err(|_| format!("{s:?}: expected an IP address such as 127.0.0.1 or 0.0.0.0:50000"))
}

fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("{s:?}: expected WIDTHxHEIGHT, e.g. 1280x720"))?;
    let (w, h): (u32, u32) = (
        w.parse().map_err(|_| format!("{s:?}: bad width"))?,
        h.parse().map_err(|_| format!("{s:?}: bad height"))?,
    );
    if w < 16 || h < 16 || !codec::size_supported(w as usize, h as usize) {
        return Err(format!(
            "{s:?}: from 16x16 up to 3840x2160 (or 2160x3840), the most H.264 level 5.2 allows"
        ));
    }
    Ok((w & !1, h & !1))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                // rtc's per-packet handlers warn about the ordinary races of every join (ICE
                // checks before the answer, RTP before DTLS): hundreds of lines for 20 viewers.
                concat!(
                    "warn,rtc_ice=error,rtc_dtls=error,rtc::peer_connection::handler=error,",
                    "omnicast=info,omnicast_signal=info"
                )
                .into()
            }),
        )
        .init();
    let cli = Cli::parse();
    let mut peer = PeerSettings::default();
    if let Some(addr) = cli.media_bind {
        peer.udp_addrs = vec![addr.to_string()];
    }
    match cli.command {
        None => host_server(cli.bind, cli.stun_bind).await,
        Some(Command::Broadcast {
            headless,
            server,
            room,
            key,
            source,
            size,
            fps,
            bitrate_kbps,
            keyframe_interval,
            encode_threads,
        }) => {
            if !headless {
                bail!("only --headless is available for now");
            }
            if !(1.0..=120.0).contains(&fps) {
                bail!("--fps {fps}: expected 1 to 120");
            }
            let hosted = match &server {
                Some(_) => None,
                None => Some(start_server(cli.bind, cli.stun_bind).await?),
            };
            let server_url = match (&server, &hosted) {
                (Some(url), _) => url.clone(),
                (None, Some(s)) => local_url(s.http_addr()),
                (None, None) => unreachable!("a server is hosted when none is given"),
            };
            if let Some(s) = &hosted {
                println!("viewers: omnicast view --headless --server {server_url}");
                println!(
                    "browsers: {}/  (broadcaster page {}/broadcast.html)",
                    s.local_url(),
                    s.local_url()
                );
            }
            let settings = BroadcastSettings {
                server_url,
                room,
                key,
                source,
                width: size.0,
                height: size.1,
                encoder: EncoderSettings {
                    fps,
                    bitrate_kbps,
                    keyframe_interval,
                    threads: encode_threads,
                },
                peer,
            };
            let stats = Arc::new(BroadcastStats::default());
            broadcaster::run(settings, stats, async {
                omnicast_signal::shutdown_signal().await;
            })
            .await?;
            if let Some(mut s) = hosted {
                s.shutdown().await;
            }
            Ok(())
        }
        Some(Command::View {
            headless,
            server,
            room,
            frames,
            stats_json,
            snapshot: snapshot_png,
        }) => {
            if !headless {
                bail!("only --headless is available for now");
            }
            let slot = Arc::new(FrameSlot::default());
            let stats = Arc::new(SharedStats::default());
            let enough = {
                let stats = stats.clone();
                async move {
                    loop {
                        if let Some(n) = frames
                            && stats
                                .frames_decoded
                                .load(std::sync::atomic::Ordering::Relaxed)
                                >= n
                        {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            };
            let settings = ViewSettings {
                server_url: server,
                room,
                peer,
                decode: true,
            };
            viewer::run(settings, slot.clone(), stats.clone(), async {
                tokio::select! {
                    () = omnicast_signal::shutdown_signal() => {}
                    () = enough => {}
                }
            })
            .await?;
            let snapshot = stats.snapshot();
            if let Some(path) = stats_json {
                let json = serde_json::to_string_pretty(&snapshot)?;
                std::fs::write(&path, json)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            if let Some(path) = snapshot_png {
                let frame = slot
                    .peek()
                    .context("no frame was decoded, so there is no snapshot to save")?;
                image::save_buffer(
                    &path,
                    &frame.rgba,
                    u32::try_from(frame.width)?,
                    u32::try_from(frame.height)?,
                    image::ExtendedColorType::Rgba8,
                )
                .with_context(|| format!("writing {}", path.display()))?;
            }
            println!(
                "decoded {} frames ({}x{}), {} lost",
                snapshot.frames_decoded, snapshot.width, snapshot.height, snapshot.frames_lost
            );
            Ok(())
        }
    }
}

fn local_url(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("http://127.0.0.1:{}", addr.port())
    } else {
        format!("http://{addr}")
    }
}

async fn start_server(bind: SocketAddr, stun_bind: SocketAddr) -> anyhow::Result<SignalServer> {
    Ok(SignalServer::start(ServerConfig {
        http_bind: bind,
        stun_bind: Some(stun_bind),
        ..ServerConfig::default()
    })
    .await?)
}

async fn host_server(bind: SocketAddr, stun_bind: SocketAddr) -> anyhow::Result<()> {
    let server = start_server(bind, stun_bind).await?;
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
