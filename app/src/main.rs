//! `omnicast`: the Omnicast desktop app.
//!
//! With no command it opens the window in the last used mode. `broadcast` and `view` open it
//! already broadcasting or watching (`--headless`: no window); `--kiosk --config FILE` starts a
//! configured mode unattended; `serve` hosts the signal server alone. Built without the `gui`
//! feature, everything runs headless only.

mod headless;
mod kiosk;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use omnicast_engine::audio::AudioSource;
use omnicast_engine::audio::playout::AudioOut;
use omnicast_engine::capture::SourceSpec;
use omnicast_engine::channels::trace::Trace;
use omnicast_engine::file_source;
use omnicast_engine::frame::{FrameSlot, save_png};
use omnicast_engine::hosting::Hosted;
use omnicast_engine::peer::PeerSettings;
use omnicast_engine::record::{RecordRole, RecordStatus, RecordView, Recorder};
use omnicast_engine::service::{BroadcastPlan, Plan, ViewPlan};
use omnicast_engine::session::Retry;
use omnicast_engine::settings::{Mode, Settings, SettingsPatch};
use omnicast_engine::values::{
    BitrateKbps, BridgeAddr, ControlKey, EncodeThreads, FovDeg, Fps, FrameSize, KeyframeInterval,
    Look, MinFreeMb, PitchDeg, Projection, RecordSegment, ServerUrl, YawDeg,
};
use omnicast_engine::viewer::ViewSink;
use omnicast_engine::viewer::display::Display;
use omnicast_signal::config::{DEFAULT_HTTP_PORT, DEFAULT_STUN_PORT};
use omnicast_signal::{ServerConfig, SignalServer};

use kiosk::KioskConfig;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Omnicast: live video from one broadcaster to many viewers over WebRTC",
    long_about = "Omnicast: live video from one broadcaster to many viewers over WebRTC.\n\n\
        With no command it opens the window as last used. --kiosk --config FILE runs a robot \
        unattended."
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
    #[command(flatten)]
    host: HostArgs,
    #[command(flatten)]
    media: MediaArgs,
}

/// Where a signal server hosted here listens.
#[derive(Debug, Clone, Args)]
struct HostArgs {
    /// Address of the signal server hosted here (HTTP, Socket.IO and the browser pages).
    #[arg(long, default_value_t = SocketAddr::from(([0, 0, 0, 0], DEFAULT_HTTP_PORT)))]
    bind: SocketAddr,
    /// Address of its embedded STUN server (UDP).
    #[arg(long, default_value_t = SocketAddr::from(([0, 0, 0, 0], DEFAULT_STUN_PORT)))]
    stun_bind: SocketAddr,
}

#[derive(Debug, Clone, Args)]
struct MediaArgs {
    /// Local address for WebRTC media (host candidates), IP or IP:PORT [default: every
    /// interface and loopback].
    #[arg(long, value_parser = parse_media_bind)]
    media_bind: Option<SocketAddr>,
}

impl MediaArgs {
    fn peer(&self) -> PeerSettings {
        let mut peer = PeerSettings::default();
        if let Some(addr) = self.media_bind {
            peer.udp_addrs = vec![addr.to_string()];
        }
        peer
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Broadcast a camera or the test pattern: opens the broadcaster window, already
    /// broadcasting (options not given are as last used there).
    Broadcast(BroadcastArgs),
    /// Watch a broadcast: opens the viewer window, already connected (options not given are as
    /// last used there).
    View(ViewArgs),
    /// Host the signal server alone (as `omnicast-signal` does).
    Serve(HostArgs),
}

#[derive(Debug, Args)]
struct BroadcastArgs {
    /// No window: log to stdout until Ctrl-C (a robot with no screen). Options not given take
    /// their defaults.
    #[arg(long)]
    headless: bool,
    /// The signal server to broadcast through [default: host the bundled one here].
    #[arg(long)]
    server: Option<ServerUrl>,
    /// Room on the signal server [default: the classic single room].
    #[arg(long)]
    room: Option<String>,
    /// Broadcaster key for the room.
    #[arg(long, env = "OMNICAST_KEY", hide_env_values = true)]
    key: Option<String>,
    /// What to send: test-pattern, camera (the first), camera:INDEX, camera:NAME,
    /// image:FILE (PNG or JPEG, scaled to --size), y4m:FILE (YUV4MPEG2 video, looped) or
    /// mp4:FILE (a recording, looped: sent as recorded when its H.264 is Constrained Baseline,
    /// as Omnicast's are, with its Opus sound; else re-encoded); the test pattern stands in
    /// while no camera works [default: camera].
    #[arg(long)]
    source: Option<SourceSpec>,
    /// Picture size, WIDTHxHEIGHT, up to 3840x2160; 2:1 for a 360° camera [default: 1280x720].
    #[arg(long)]
    size: Option<FrameSize>,
    /// Frames per second, 1 to 60 [default: 30].
    #[arg(long)]
    fps: Option<Fps>,
    /// Encoder bitrate, kbit/s, 100 to 50000 [default: 2000].
    #[arg(long)]
    bitrate_kbps: Option<BitrateKbps>,
    /// Frames between scheduled keyframes, 1 to 3600; viewers that join or ask get one sooner
    /// [default: 300].
    #[arg(long)]
    keyframe_interval: Option<KeyframeInterval>,
    /// Encoder threads, 1 to 4, or 0 to choose by size: one up to 720p, every core above
    /// [default: 0].
    #[arg(long)]
    encode_threads: Option<EncodeThreads>,
    /// What the picture is, as viewers are told: flat, or equirect (a 360° camera's 2:1
    /// panorama, which viewers show as a view to look around in) [default: equirect for 2:1
    /// sizes, else flat].
    #[arg(long, value_name = "flat|equirect")]
    projection: Option<Projection>,
    /// What is heard, Opus on its own track: none, default (the default microphone), a
    /// microphone's name (or part of it), or test-tone (a quiet tone with a beep at each whole
    /// second, for measuring A/V sync). A missing microphone is said and retried every 5 s;
    /// the picture goes on [default: none with --headless, else as last used].
    #[arg(long, value_name = "none|default|NAME|test-tone")]
    audio: Option<AudioSource>,
    /// Append every viewer's viewport samples to FILE, one JSON object a line (flushed every
    /// second).
    #[arg(long, value_name = "FILE")]
    viewport_log: Option<PathBuf>,
    /// The robot software's TCP server: viewers' accepted messages go to it, its telemetry
    /// lines go to every viewer; reconnected every second while it is away.
    #[arg(long, value_name = "tcp://HOST:PORT")]
    bridge: Option<BridgeAddr>,
    /// Send viewers' viewport samples to the bridge too.
    #[arg(long, requires = "bridge")]
    bridge_viewport: bool,
    /// Viewers whose hello carries this key may send messages to the robot; without one,
    /// nobody may.
    #[arg(
        long,
        value_name = "KEY",
        env = "OMNICAST_CONTROL_KEY",
        hide_env_values = true
    )]
    control_key: Option<ControlKey>,
    #[command(flatten)]
    record: RecordArgs,
    #[command(flatten)]
    host: HostArgs,
    #[command(flatten)]
    media: MediaArgs,
}

/// Recording, in both modes.
#[derive(Debug, Args)]
struct RecordArgs {
    /// Record from the start into DIR: what is sent (broadcast) or received (view), H.264 and
    /// Opus as they are (not re-encoded) in fragmented MP4 synced to disk every second, so a
    /// power cut loses at most the last second. NAME.json beside each file gives its start time.
    #[arg(long, value_name = "DIR")]
    record: Option<PathBuf>,
    /// A new recording file every DURATION (30s, 10m, 1h) [default: one file].
    #[arg(long, value_name = "DURATION", requires = "record")]
    record_segment: Option<RecordSegment>,
    /// Stop recording, saying so, before the disk's free space would fall below MB [default: 500].
    #[arg(long, value_name = "MB", requires = "record")]
    record_min_free_mb: Option<MinFreeMb>,
}

impl RecordArgs {
    fn patch(&self, p: &mut SettingsPatch) {
        p.record_dir.clone_from(&self.record);
        p.record_segment = self.record_segment;
        p.record_min_free_mb = self.record_min_free_mb;
    }
}

#[derive(Debug, Args)]
struct ViewArgs {
    /// No window: decode and log to stdout until Ctrl-C or --frames.
    #[arg(long)]
    headless: bool,
    /// The signal server to watch through [default: http://127.0.0.1:4000].
    #[arg(long)]
    server: Option<ServerUrl>,
    /// Room on the signal server [default: the classic single room].
    #[arg(long)]
    room: Option<String>,
    /// How the window shows the picture: flat, or 360 (an equirectangular picture as a view
    /// to look around in) [default: as last used].
    #[arg(long, value_enum)]
    view: Option<ViewMode>,
    /// Where the 360° view starts looking: degrees right of the picture's centre (implies
    /// --view 360 unless --view flat is given).
    #[arg(long, allow_hyphen_values = true)]
    yaw: Option<YawDeg>,
    /// Where the 360° view starts looking: degrees up, -89 to 89.
    #[arg(long, allow_hyphen_values = true)]
    pitch: Option<PitchDeg>,
    /// The 360° view's vertical field of view, 30 to 120 degrees [default: 90].
    #[arg(long)]
    fov: Option<FovDeg>,
    /// Exit after this many frames (decoded; in the window, shown).
    #[arg(long)]
    frames: Option<u64>,
    /// On exit, write the receive statistics here (JSON).
    #[arg(long)]
    stats_json: Option<PathBuf>,
    /// On exit, save the last frame here (PNG).
    #[arg(long)]
    snapshot: Option<PathBuf>,
    /// Write the sound as it would be played (jitter buffer, concealment and lip sync
    /// included) to FILE: 16-bit PCM WAV, 48 kHz stereo, its header updated every second.
    #[arg(long, value_name = "FILE", requires = "headless")]
    audio_wav: Option<PathBuf>,
    /// The broadcast's control key: lets this viewer send messages to the robot.
    #[arg(
        long,
        value_name = "KEY",
        env = "OMNICAST_CONTROL_KEY",
        hide_env_values = true
    )]
    control_key: Option<ControlKey>,
    /// Replay a head-motion trace as viewport samples, at its own timing from the first
    /// decoded frame: CSV with a header naming t,yaw,pitch,roll (seconds, degrees; other
    /// columns ignored) or JSON lines of viewport messages.
    #[arg(long, value_name = "FILE", requires = "headless")]
    viewport_trace: Option<PathBuf>,
    #[command(flatten)]
    record: RecordArgs,
    #[command(flatten)]
    media: MediaArgs,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ViewMode {
    Flat,
    #[value(name = "360")]
    Sphere,
}

impl BroadcastArgs {
    fn patch(&self) -> SettingsPatch {
        let mut p = SettingsPatch {
            mode: Some(Mode::Broadcaster),
            source: self.source.clone(),
            size: self.size,
            fps: self.fps,
            bitrate_kbps: self.bitrate_kbps,
            keyframe_interval: self.keyframe_interval,
            encode_threads: self.encode_threads,
            // A server given means not hosting one; none given leaves the choice as it was.
            host_server: self.server.as_ref().map(|_| false),
            server_url: self.server.clone(),
            room: self.room.clone(),
            key: self.key.clone(),
            sphere: None,
            control_key: self.control_key.clone(),
            viewport_log: self.viewport_log.clone(),
            bridge: self.bridge.clone(),
            bridge_viewport: self.bridge_viewport.then_some(true),
            projection: self.projection,
            audio: self.audio.clone(),
            ..SettingsPatch::default()
        };
        self.record.patch(&mut p);
        p
    }
}

impl ViewArgs {
    /// Where the 360° view starts, if any of --yaw, --pitch, --fov was given.
    fn look(&self) -> Option<Look> {
        if self.yaw.is_none() && self.pitch.is_none() && self.fov.is_none() {
            return None;
        }
        let d = Look::default();
        Some(Look {
            yaw_deg: self.yaw.map_or(d.yaw_deg, |y| y.0),
            pitch_deg: self.pitch.map_or(d.pitch_deg, |p| p.0),
            fov_deg: self.fov.map_or(d.fov_deg, |f| f.0),
        })
    }

    fn patch(&self) -> SettingsPatch {
        let mut p = SettingsPatch {
            mode: Some(Mode::Viewer),
            server_url: self.server.clone(),
            room: self.room.clone(),
            sphere: self
                .view
                .map(|v| matches!(v, ViewMode::Sphere))
                .or(self.look().is_some().then_some(true)),
            control_key: self.control_key.clone(),
            ..SettingsPatch::default()
        };
        self.record.patch(&mut p);
        p
    }
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

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                // rtc's per-packet handlers warn about the ordinary races of every join (ICE
                // checks before the answer, RTP before DTLS): hundreds of lines for 20 viewers.
                concat!(
                    "warn,rtc_ice=error,rtc_dtls=error,rtc::peer_connection::handler=error,",
                    "omnicast=info,omnicast_engine=info,omnicast_gui=info,omnicast_signal=info"
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
    match cli.command {
        None if cli.kiosk => {
            let path = cli.config.context("--kiosk needs --config FILE")?;
            let config = KioskConfig::load(&path)?;
            let mut peer = cli.media.peer();
            if let Some(addr) = config.media_bind {
                peer.udp_addrs = vec![addr.to_string()];
            }
            let settings = config.settings();
            let host = (config.broadcast.bind, config.broadcast.stun_bind);
            tracing::info!(
                "kiosk mode: {} from {}",
                match settings.mode {
                    Mode::Broadcaster => "broadcaster",
                    Mode::Viewer => "viewer",
                },
                path.display()
            );
            if cli.headless {
                let (plan, recorder) = plan(&settings, &peer, host, Retry::Forever)?;
                let ran = runtime.block_on(headless::run(plan, std::future::pending()));
                finish_recording(recorder);
                ran.map(drop)
            } else {
                window(
                    &runtime,
                    Window {
                        kiosk: true,
                        fullscreen: config.fullscreen,
                        settings: Some(settings),
                        patch: SettingsPatch::default(),
                        host,
                        peer,
                        look: None,
                        report: None,
                    },
                )
            }
        }
        None => window(
            &runtime,
            Window {
                kiosk: false,
                fullscreen: false,
                settings: None,
                patch: SettingsPatch::default(),
                host: (cli.host.bind, cli.host.stun_bind),
                peer: cli.media.peer(),
                look: None,
                report: None,
            },
        ),
        Some(Command::Serve(host)) => runtime.block_on(serve(host)),
        Some(Command::Broadcast(args)) => {
            let (host, peer) = ((args.host.bind, args.host.stun_bind), args.media.peer());
            if args.headless {
                // A robot sends sound only when told to.
                let mut settings = Settings {
                    audio: AudioSource::None.to_string(),
                    ..Settings::default()
                };
                args.patch().apply(&mut settings);
                let (plan, recorder) = plan(&settings, &peer, host, Retry::UnlessFirstUnreachable)?;
                let ran = runtime.block_on(headless::run(plan, std::future::pending()));
                finish_recording(recorder);
                return ran.map(drop);
            }
            window(
                &runtime,
                Window {
                    kiosk: false,
                    fullscreen: false,
                    settings: None,
                    patch: args.patch(),
                    host,
                    peer,
                    look: None,
                    report: None,
                },
            )
        }
        Some(Command::View(args)) => {
            let peer = args.media.peer();
            if args.headless {
                return runtime.block_on(view_headless(&args, &peer));
            }
            window(
                &runtime,
                Window {
                    kiosk: false,
                    fullscreen: false,
                    settings: None,
                    patch: args.patch(),
                    host: (cli.host.bind, cli.host.stun_bind),
                    peer,
                    look: args.look(),
                    report: Some(Report {
                        frames: args.frames,
                        stats_json: args.stats_json,
                        snapshot: args.snapshot,
                    }),
                },
            )
        }
    }
}

/// What a session with no window runs: the settings' mode (a viewer that only receives: a
/// kiosk with no screen shows nothing), and its recorder, recording, when the settings say so.
fn plan(
    settings: &Settings,
    peer: &PeerSettings,
    host: (SocketAddr, SocketAddr),
    retry: Retry,
) -> anyhow::Result<(Plan, Option<Recorder>)> {
    Ok(match settings.mode {
        Mode::Broadcaster => {
            let broadcast = settings.broadcast(peer).map_err(anyhow::Error::msg)?;
            // A bad picture or video file is said now, not as the test pattern's excuse.
            let video = &broadcast.video;
            file_source::check(&video.source, video.width, video.height, video.encoder.fps)?;
            let recorder = recording(settings, RecordRole::Broadcast)?;
            let plan = Plan::Broadcast(Box::new(BroadcastPlan {
                settings: broadcast,
                host: settings.host_server.then_some(host),
                preview: None,
                recorder: recorder.clone(),
                retry,
            }));
            (plan, recorder)
        }
        Mode::Viewer => {
            let recorder = recording(settings, RecordRole::View)?;
            let sinks: Vec<Arc<dyn ViewSink>> = recorder
                .iter()
                .map(|r| Arc::new(RecordView(r.clone())) as Arc<dyn ViewSink>)
                .collect();
            let plan = Plan::View(Box::new(view_plan(settings, peer, retry, sinks)?));
            (plan, recorder)
        }
    })
}

/// A recorder already recording, when the settings ask to record from the start.
fn recording(settings: &Settings, role: RecordRole) -> anyhow::Result<Option<Recorder>> {
    if !settings.record_on_start {
        return Ok(None);
    }
    let recorder = Recorder::new(role);
    recorder.start(settings.record().map_err(anyhow::Error::msg)?)?;
    Ok(Some(recorder))
}

/// Lets a recording write its last fragment and index before the process exits; says how
/// it went.
fn finish_recording(recorder: Option<Recorder>) -> Option<RecordStatus> {
    let r = recorder?;
    if !r.stop_and_wait(std::time::Duration::from_secs(10)) {
        tracing::warn!("the recording did not finish within 10 s");
    }
    Some(r.status())
}

fn view_plan(
    settings: &Settings,
    peer: &PeerSettings,
    retry: Retry,
    sinks: Vec<Arc<dyn ViewSink>>,
) -> anyhow::Result<ViewPlan> {
    Ok(ViewPlan {
        settings: settings.view(peer).map_err(anyhow::Error::msg)?,
        sinks,
        retry,
    })
}

/// `view --headless`: decodes until Ctrl-C or `--frames`, then says what it saw.
async fn view_headless(args: &ViewArgs, peer: &PeerSettings) -> anyhow::Result<()> {
    let mut settings = Settings::default();
    args.patch().apply(&mut settings);
    let slot = Arc::new(FrameSlot::default());
    // No sound device: the sound is decoded and timed as if played (and written, if asked).
    let audio = Arc::new(AudioOut::new(
        false,
        Arc::default(),
        args.audio_wav.as_deref(),
    )?);
    let mut sinks: Vec<Arc<dyn ViewSink>> =
        vec![Arc::new(Display::new(slot.clone())), audio.clone()];
    let recorder = recording(&settings, RecordRole::View)?;
    if let Some(r) = &recorder {
        sinks.push(Arc::new(RecordView(r.clone())));
    }
    let mut view = view_plan(&settings, peer, Retry::UnlessFirstUnreachable, sinks)?;
    if let Some(path) = &args.viewport_trace {
        // File I/O: off the async threads.
        let trace = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || Trace::load(&path)).await??
        };
        tracing::info!(
            "viewport trace {}: {} samples over {:.1} s",
            path.display(),
            trace.points.len(),
            trace.duration().as_secs_f64()
        );
        view.settings.viewport_trace = Some(Arc::new(trace));
    }
    // Every decoded frame goes through the slot: count them there, to stop at exactly N.
    let enough = Arc::new(tokio::sync::Notify::new());
    if let Some(n) = args.frames {
        let (decoded, enough) = (AtomicU64::new(0), enough.clone());
        slot.set_waker(move || {
            if decoded.fetch_add(1, Ordering::Relaxed) + 1 == n {
                enough.notify_one();
            }
        });
    }
    let until = async {
        if args.frames.is_some() {
            enough.notified().await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    let outcome = headless::run(Plan::View(Box::new(view)), until).await;
    audio.finish();
    let recorded = tokio::task::spawn_blocking(move || finish_recording(recorder)).await?;
    let outcome = outcome?;
    let stats = outcome.stats.unwrap_or_default();
    if let Some(path) = &args.stats_json {
        let mut json = serde_json::to_value(&stats)?;
        if let Some(r) = &recorded {
            json["record"] = serde_json::to_value(r)?;
        }
        let json = serde_json::to_string_pretty(&json)?;
        let path = path.clone();
        tokio::task::spawn_blocking(move || {
            std::fs::write(&path, json).with_context(|| format!("writing {}", path.display()))
        })
        .await??;
    }
    if let Some(path) = args.snapshot.clone() {
        let frame = slot
            .peek()
            .context("no frame was decoded, so there is no snapshot to save")?;
        tokio::task::spawn_blocking(move || save_png(&frame, &path)).await??;
    }
    println!(
        "decoded {} frames ({}x{}), {} lost",
        stats.frames_decoded, stats.width, stats.height, stats.frames_lost
    );
    let a = &stats.audio;
    if a.packets_received > 0 {
        println!(
            "sound: {} frames played, {} concealed, {} packets lost, {} beeps",
            a.frames_played, a.frames_concealed, a.packets_lost, a.beeps
        );
    }
    Ok(())
}

async fn serve(host: HostArgs) -> anyhow::Result<()> {
    let server = SignalServer::start(ServerConfig {
        http_bind: host.bind,
        stun_bind: Some(host.stun_bind),
        ..ServerConfig::default()
    })
    .await?;
    let hosted = Hosted::new(server.http_addr(), false);
    println!("Omnicast signal server running (Ctrl-C to stop)");
    println!("  broadcast from a browser: {}", hosted.broadcaster_page);
    println!(
        "  watch in a browser:       {}",
        hosted.viewer_links.join("  ")
    );
    println!("  watch from this machine:  {}", hosted.view_command());
    if let Some(stun) = server.stun_addr() {
        println!("  STUN (udp):               {stun}");
    }
    server
        .serve_until(omnicast_signal::shutdown_signal())
        .await?;
    Ok(())
}

/// How the window starts.
#[cfg_attr(not(feature = "gui"), allow(dead_code))]
struct Window {
    kiosk: bool,
    fullscreen: bool,
    settings: Option<Settings>,
    patch: SettingsPatch,
    host: (SocketAddr, SocketAddr),
    peer: PeerSettings,
    /// Where a 360° view starts looking.
    look: Option<Look>,
    report: Option<Report>,
}

/// `view --frames/--stats-json/--snapshot` in the window.
#[cfg_attr(not(feature = "gui"), allow(dead_code))]
struct Report {
    frames: Option<u64>,
    stats_json: Option<PathBuf>,
    snapshot: Option<PathBuf>,
}

#[cfg(feature = "gui")]
fn window(runtime: &tokio::runtime::Runtime, w: Window) -> anyhow::Result<()> {
    // The command line starts what it names; the window alone waits for a click.
    let start = w.kiosk || w.patch.mode.is_some();
    let report = w.report.map(|r| omnicast_gui::Report {
        frames: r.frames,
        stats_json: r.stats_json,
        snapshot: r.snapshot,
    });
    let options = omnicast_gui::AppOptions {
        kiosk: w.kiosk,
        start,
        fullscreen: w.fullscreen,
        persist: !w.kiosk,
        settings: w.settings,
        patch: w.patch,
        host_bind: w.host,
        peer: w.peer,
        report: report.unwrap_or_default(),
        look: w.look.unwrap_or_default(),
        ..omnicast_gui::AppOptions::default()
    };
    omnicast_gui::run(options, runtime.handle()).map_err(|e| anyhow::anyhow!("window: {e}"))
}

#[cfg(not(feature = "gui"))]
fn window(_runtime: &tokio::runtime::Runtime, _w: Window) -> anyhow::Result<()> {
    anyhow::bail!(
        "this omnicast was built without a window (--no-default-features): \
         use --headless (broadcast, view, --kiosk) or serve"
    )
}
