//! `omnicast`: the Omnicast desktop app.
//!
//! With no arguments it opens the window in the last used mode. `--kiosk --config FILE`
//! starts a configured mode unattended (`--headless`: no window). `broadcast --headless` and
//! `view --headless` run the media engine alone; `serve` hosts the signal server alone.

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
use omnicast::engine::session::SessionState;
use omnicast::engine::viewer::{self, FrameSlot, SharedStats, ViewSettings};
use omnicast::gui::{self, AppOptions, Mode};
use omnicast::kiosk::KioskConfig;
use omnicast::service::{BroadcastPlan, Command as ServiceCommand, Event, Service, ViewPlan};
use omnicast_signal::config::{DEFAULT_HTTP_PORT, DEFAULT_STUN_PORT};
use omnicast_signal::{ServerConfig, SignalServer};

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Omnicast: live video from one broadcaster to many viewers over WebRTC",
    long_about = "Omnicast: live video from one broadcaster to many viewers over WebRTC.\n\n\
        With no command it opens the window. --kiosk --config FILE runs a robot unattended."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Kiosk mode: start the mode in --config at once, full screen, no mode toggle, reconnecting
    /// for ever.
    #[arg(long, requires = "config")]
    kiosk: bool,
    /// Kiosk configuration (TOML; see assets/omnicast.example.toml).
    #[arg(long, requires = "kiosk")]
    config: Option<PathBuf>,
    /// With --kiosk: no window at all.
    #[arg(long, requires = "kiosk")]
    headless: bool,
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
    /// Host the signal server alone (as `omnicast-signal`).
    Serve,
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

fn main() -> anyhow::Result<()> {
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("omnicast-rt")
        .build()
        .context("starting the async runtime")?;
    let mut peer = PeerSettings::default();
    if let Some(addr) = cli.media_bind {
        peer.udp_addrs = vec![addr.to_string()];
    }
    match cli.command {
        None if cli.kiosk => {
            let path = cli.config.context("--kiosk needs --config FILE")?;
            let config = KioskConfig::load(&path)?;
            if let Some(addr) = config.media_bind {
                peer.udp_addrs = vec![addr.to_string()];
            }
            let options = AppOptions {
                kiosk: true,
                fullscreen: config.fullscreen,
                settings: Some(config.settings()),
                persist: false,
                host_bind: (config.broadcast.bind, config.broadcast.stun_bind),
                peer,
                ..AppOptions::default()
            };
            tracing::info!(
                "kiosk mode: {} from {}",
                mode_name(&options),
                path.display()
            );
            if cli.headless {
                runtime.block_on(kiosk_headless(options))
            } else {
                gui::run(options, runtime.handle()).map_err(|e| anyhow::anyhow!("window: {e}"))
            }
        }
        None => {
            let options = AppOptions {
                host_bind: (cli.bind, cli.stun_bind),
                peer,
                ..AppOptions::default()
            };
            gui::run(options, runtime.handle()).map_err(|e| anyhow::anyhow!("window: {e}"))
        }
        Some(Command::Serve) => runtime.block_on(host_server(cli.bind, cli.stun_bind)),
        Some(command) => runtime.block_on(headless(command, cli.bind, cli.stun_bind, peer)),
    }
}

fn mode_name(options: &AppOptions) -> &'static str {
    match options.settings.as_ref().map(|s| s.mode) {
        Some(Mode::Viewer) => "viewer",
        _ => "broadcaster",
    }
}

/// Kiosk mode with no window: the same service the window uses, its events logged.
async fn kiosk_headless(options: AppOptions) -> anyhow::Result<()> {
    let settings = options.settings.clone().unwrap_or_default();
    let woken = Arc::new(tokio::sync::Notify::new());
    let mut service = {
        let woken = woken.clone();
        Service::start(&tokio::runtime::Handle::current(), move || {
            woken.notify_one()
        })
    };
    let broadcast_stats = Arc::new(BroadcastStats::default());
    let view_stats = Arc::new(SharedStats::default());
    match settings.mode {
        Mode::Broadcaster => {
            service.send(ServiceCommand::StartBroadcast(Box::new(BroadcastPlan {
                settings: settings
                    .broadcast(&options.peer)
                    .map_err(anyhow::Error::msg)?,
                stats: broadcast_stats.clone(),
                host: settings.host_server.then_some(options.host_bind),
            })))
        }
        Mode::Viewer => service.send(ServiceCommand::StartViewing(Box::new(ViewPlan {
            settings: settings.view(&options.peer),
            slot: Arc::new(FrameSlot::default()),
            stats: view_stats.clone(),
        }))),
    }
    let shutdown = omnicast_signal::shutdown_signal();
    tokio::pin!(shutdown);
    let mut status = tokio::time::interval(omnicast::kiosk::STATUS_EVERY);
    status.tick().await;
    // Changes are logged as they happen (checked every second), figures every STATUS_EVERY.
    let mut check = tokio::time::interval(Duration::from_secs(1));
    let mut said = (None, None, None);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = check.tick() => {
                let now = match settings.mode {
                    Mode::Broadcaster => (
                        Some(broadcast_stats.signal_connected.load(std::sync::atomic::Ordering::Relaxed)),
                        Some(broadcast_stats.viewer_list.lock().iter().filter(|v| v.connected).count()),
                        None,
                    ),
                    Mode::Viewer => (None, None, view_stats.snapshot().state),
                };
                if now != said {
                    match now {
                        (Some(up), Some(n), _) => tracing::info!(
                            "broadcaster: {}, {n} viewer(s)",
                            if up { "connected to the signal server" } else { "reconnecting to the signal server" }
                        ),
                        (_, _, Some(state)) => tracing::info!("viewer: {state:?}"),
                        _ => {}
                    }
                    said = now;
                }
            }
            () = woken.notified() => {
                while let Some(event) = service.poll() {
                    match event {
                        Event::Hosting(h) => {
                            println!("viewers: omnicast view --headless --server {}", h.local_url);
                            println!("browsers: {}", h.viewer_links.join("  "));
                        }
                        Event::Problem(p) => tracing::error!("{p}"),
                        Event::Broadcast(SessionState::Stopped) | Event::View(SessionState::Stopped) => {
                            bail!("the session stopped by itself");
                        }
                        _ => {}
                    }
                }
            }
            _ = status.tick() => match settings.mode {
                Mode::Broadcaster => tracing::info!(
                    "sending {} to {} viewer(s), {} frames so far",
                    broadcast_stats.source.lock(),
                    broadcast_stats.viewer_list.lock().iter().filter(|v| v.connected).count(),
                    broadcast_stats.frames_encoded.load(std::sync::atomic::Ordering::Relaxed),
                ),
                Mode::Viewer => {
                    let s = view_stats.snapshot();
                    tracing::info!(
                        "viewer {:?}: {}x{}, {:.1} fps, {} frames, {} lost",
                        s.state, s.width, s.height, s.fps_decoded, s.frames_decoded, s.frames_lost
                    );
                }
            },
        }
    }
    service.send(ServiceCommand::StopBroadcast);
    service.send(ServiceCommand::StopViewing);
    // Let the sessions close their connections (a few hundred milliseconds).
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            woken.notified().await;
            while let Some(event) = service.poll() {
                if matches!(
                    event,
                    Event::Broadcast(SessionState::Stopped) | Event::View(SessionState::Stopped)
                ) {
                    return;
                }
            }
        }
    })
    .await;
    Ok(())
}

/// `broadcast --headless` and `view --headless`.
async fn headless(
    command: Command,
    bind: SocketAddr,
    stun_bind: SocketAddr,
    peer: PeerSettings,
) -> anyhow::Result<()> {
    match command {
        Command::Broadcast {
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
        } => {
            if !headless {
                bail!("broadcast: add --headless (or run `omnicast` alone for the window)");
            }
            if !(1.0..=120.0).contains(&fps) {
                bail!("--fps {fps}: expected 1 to 120");
            }
            let hosted = match &server {
                Some(_) => None,
                None => Some(start_server(bind, stun_bind).await?),
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
        Command::View {
            headless,
            server,
            room,
            frames,
            stats_json,
            snapshot: snapshot_png,
        } => {
            if !headless {
                bail!("view: add --headless (or run `omnicast` alone for the window)");
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
        Command::Serve => host_server(bind, stun_bind).await,
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
