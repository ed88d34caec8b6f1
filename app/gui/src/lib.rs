//! The desktop app's window (eframe/egui on wgpu): one window that is either the broadcaster or
//! a viewer, switched by a toggle. `logic` drains the service's events and uploads new frames
//! (it runs even while the window is hidden); `ui` only draws. Sessions run in the engine's
//! [`Service`] on the tokio runtime and its threads, which wake the UI when something changes.

mod broadcaster_ui;
mod recording_ui;
pub mod video;
mod viewer_ui;

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eframe::egui;
use omnicast_engine::audio::playout::AudioControls;
use omnicast_engine::broadcaster::{BroadcastCommand, BroadcastEvent, BroadcastStatus};
use omnicast_engine::capture::CameraInfo;
use omnicast_engine::channels::protocol::Viewport;
use omnicast_engine::channels::views::Heatmap;
use omnicast_engine::frame::{FrameSlot, VideoFrame, save_png};
use omnicast_engine::hosting::Hosted;
use omnicast_engine::peer::PeerSettings;
use omnicast_engine::service::{Event, Service, SessionCommand, SessionEvent};
use omnicast_engine::session::{SessionId, SessionState};
pub use omnicast_engine::settings::{Mode, Settings, SettingsPatch};
use omnicast_engine::values::{Look, Projection};
use omnicast_engine::viewer::{ViewEvent, ViewState, ViewerStats};
use video::{SphereView, VideoPipeline, VideoTexture};

/// How the app is started.
#[derive(Debug, Clone)]
pub struct AppOptions {
    /// Kiosk: start the configured mode at once, no mode toggle, no dialogs.
    pub kiosk: bool,
    /// Start the settings' mode at once (kiosk mode, `omnicast view`, `omnicast broadcast`).
    pub start: bool,
    /// Start full screen (kiosk mode).
    pub fullscreen: bool,
    /// Use these instead of the settings remembered from the last run (kiosk, tests).
    pub settings: Option<Settings>,
    /// Then change these (`omnicast view --server …`).
    pub patch: SettingsPatch,
    /// Remember the settings for the next run.
    pub persist: bool,
    /// Where a hosted signal server listens (HTTP, STUN).
    pub host_bind: (SocketAddr, SocketAddr),
    pub peer: PeerSettings,
    /// Where snapshots are saved.
    pub snapshot_dir: PathBuf,
    /// What the viewer reports when the window closes (`omnicast view --frames …`).
    pub report: Report,
    /// Where the 360° view starts looking (`omnicast view --yaw --pitch --fov`).
    pub look: Look,
}

/// `omnicast view --frames N --stats-json F --snapshot P` in a window.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Close the window once this many frames have been shown.
    pub frames: Option<u64>,
    /// When the window closes, write the viewer's statistics here (JSON), with the frames it
    /// showed.
    pub stats_json: Option<PathBuf>,
    /// When the window closes, save the last frame shown here (PNG).
    pub snapshot: Option<PathBuf>,
}

impl Default for AppOptions {
    fn default() -> Self {
        use omnicast_signal::config::{DEFAULT_HTTP_PORT, DEFAULT_STUN_PORT};
        Self {
            kiosk: false,
            start: false,
            fullscreen: false,
            settings: None,
            patch: SettingsPatch::default(),
            persist: true,
            host_bind: (
                SocketAddr::from(([0, 0, 0, 0], DEFAULT_HTTP_PORT)),
                SocketAddr::from(([0, 0, 0, 0], DEFAULT_STUN_PORT)),
            ),
            peer: PeerSettings::default(),
            snapshot_dir: std::env::var_os("HOME")
                .map_or_else(|| PathBuf::from("."), PathBuf::from),
            report: Report::default(),
            look: Look::default(),
        }
    }
}

/// A running broadcast as the UI sees it: what its events said last.
struct Broadcasting {
    id: SessionId,
    state: SessionState,
    hosted: Option<Hosted>,
    status: Option<Box<BroadcastStatus>>,
    preview_slot: Arc<FrameSlot>,
    preview: Option<VideoTexture>,
    /// Whether the session was last told to fill the preview.
    preview_on: bool,
    /// Where each viewer looks now, and where viewers looked over the last minute.
    views: BTreeMap<String, Viewport>,
    heatmap: Heatmap,
    started: Instant,
    /// The latest messages from viewers with control, newest last.
    messages: VecDeque<(String, serde_json::Value)>,
    /// Telemetry being typed.
    telemetry_draft: String,
    /// Recording what is sent.
    recording: recording_ui::Recording,
}

/// Messages from viewers kept on the broadcaster screen.
const MESSAGES_SHOWN: usize = 5;

/// A running viewer as the UI sees it: what its events said last.
struct Viewing {
    id: SessionId,
    state: SessionState,
    view: Option<ViewState>,
    stats: Option<Box<ViewerStats>>,
    slot: Arc<FrameSlot>,
    /// Whether the broadcaster lets our messages reach the robot (its last welcome).
    control: Option<bool>,
    /// The latest telemetry and when it came.
    telemetry: Option<(serde_json::Value, Instant)>,
    /// The view last sent to the session.
    looked: Option<Viewport>,
    /// A message being typed.
    message_draft: String,
    /// The level of the sound playing.
    level: Arc<omnicast_engine::audio::Level>,
    /// Recording what is received.
    recording: recording_ui::Recording,
}

/// Frames the window showed, for `--frames` and the statistics.
#[derive(Debug, Default, Clone, Copy)]
pub struct Shown {
    pub frames: u64,
    /// When the first frame was shown.
    pub since: Option<Instant>,
}

impl Shown {
    /// Frames shown per second since the first.
    pub fn fps(&self) -> f64 {
        self.since.map_or(0.0, |t| {
            let secs = t.elapsed().as_secs_f64();
            if secs > 0.0 {
                self.frames.saturating_sub(1) as f64 / secs
            } else {
                0.0
            }
        })
    }
}

pub struct OmnicastApp {
    pub settings: Settings,
    options: AppOptions,
    service: Service,
    cameras: Vec<CameraInfo>,
    /// Microphone names, the default first (empty until listed, or when there are none).
    microphones: Vec<String>,
    /// The viewer's volume and mute, read by its sound thread as it plays.
    playback: Arc<AudioControls>,
    broadcasting: Option<Broadcasting>,
    viewing: Option<Viewing>,
    video: Option<VideoTexture>,
    /// The frame on screen (kept for snapshots).
    latest: Option<VideoFrame>,
    /// Frames shown since the app started.
    pub shown: Shown,
    sphere: SphereView,
    has_gpu: bool,
    fullscreen: bool,
    /// A message for the user, and when it was said.
    notice: Option<(String, Instant)>,
    ctx: egui::Context,
}

impl OmnicastApp {
    /// Makes the app; `runtime` runs its network and media side.
    pub fn new(
        cc: &eframe::CreationContext<'_>,
        runtime: &tokio::runtime::Handle,
        options: AppOptions,
    ) -> Self {
        let mut settings = options
            .settings
            .clone()
            .or_else(|| {
                options
                    .persist
                    .then(|| {
                        cc.storage
                            .and_then(|s| eframe::get_value(s, eframe::APP_KEY))
                    })
                    .flatten()
            })
            .unwrap_or_default();
        options.patch.apply(&mut settings);
        let has_gpu = cc.wgpu_render_state.as_ref().is_some_and(|rs| {
            VideoPipeline::install(rs);
            true
        });
        let look = options.look;
        let ctx = cc.egui_ctx.clone();
        let wake = ctx.clone();
        let service = Service::start(runtime, move || wake.request_repaint());
        let mut app = Self {
            settings,
            options,
            service,
            cameras: Vec::new(),
            microphones: Vec::new(),
            playback: Arc::default(),
            broadcasting: None,
            viewing: None,
            video: None,
            latest: None,
            shown: Shown::default(),
            sphere: SphereView::from(look),
            has_gpu,
            fullscreen: false,
            notice: None,
            ctx,
        };
        if let Err(e) = app
            .service
            .list_cameras()
            .and_then(|()| app.service.list_microphones())
        {
            app.say(e.to_string());
        }
        app.playback.set_volume(app.settings.volume);
        app.playback.set_muted(app.settings.playback_muted);
        app.fullscreen = app.options.fullscreen;
        if app.options.kiosk || app.options.start {
            match app.settings.mode {
                Mode::Broadcaster => app.start_broadcast(),
                Mode::Viewer => app.start_viewing(),
            }
        }
        app
    }

    /// Is a broadcast running (or retrying)?
    pub fn is_broadcasting(&self) -> bool {
        self.broadcasting.is_some()
    }

    pub fn is_viewing(&self) -> bool {
        self.viewing.is_some()
    }

    pub fn is_fullscreen(&self) -> bool {
        self.fullscreen
    }

    /// Where snapshots go.
    pub fn snapshot_dir(&self) -> &std::path::Path {
        &self.options.snapshot_dir
    }

    /// The hosted server's links, once it is up.
    pub fn hosted(&self) -> Option<&Hosted> {
        self.broadcasting.as_ref().and_then(|b| b.hosted.as_ref())
    }

    /// The viewer's latest statistics, while viewing.
    pub fn viewer_stats(&self) -> Option<&ViewerStats> {
        self.viewing.as_ref().and_then(|v| v.stats.as_deref())
    }

    /// The broadcast's latest status, while broadcasting.
    pub fn broadcast_status(&self) -> Option<&BroadcastStatus> {
        self.broadcasting.as_ref().and_then(|b| b.status.as_deref())
    }

    /// Where each viewer looks, as the broadcast last said (while broadcasting).
    pub fn viewer_views(&self) -> Option<&BTreeMap<String, Viewport>> {
        self.broadcasting.as_ref().map(|b| &b.views)
    }

    /// The viewer's latest telemetry (while viewing).
    pub fn telemetry(&self) -> Option<&serde_json::Value> {
        self.viewing
            .as_ref()
            .and_then(|v| v.telemetry.as_ref().map(|(t, _)| t))
    }

    /// Bytes the last video frame put on the GPU.
    pub fn bytes_uploaded(&self) -> Option<usize> {
        self.video.as_ref().map(|v| v.bytes_uploaded)
    }

    /// Takes each recorder's figures; says why a recording stopped by itself.
    fn refresh_recordings(&mut self) {
        let stopped = [
            self.broadcasting
                .as_mut()
                .and_then(|b| b.recording.refresh()),
            self.viewing.as_mut().and_then(|v| v.recording.refresh()),
        ];
        for why in stopped.into_iter().flatten() {
            self.say(why);
        }
    }

    fn say(&mut self, message: impl Into<String>) {
        let message = message.into();
        tracing::info!("{message}");
        self.notice = Some((message, Instant::now()));
    }

    fn set_mode(&mut self, mode: Mode) {
        if self.settings.mode != mode {
            // One thing at a time: leaving a screen stops what it was doing.
            self.stop_broadcast();
            self.stop_viewing();
            self.settings.mode = mode;
        }
    }

    /// Stops session `id` (ours until now), saying so if the service cannot take it.
    fn stop_session(&mut self, id: SessionId) {
        if let Err(e) = self.service.stop_session(id) {
            self.say(e.to_string());
        }
    }

    fn drain_events(&mut self) {
        while let Some(event) = self.service.poll() {
            match event {
                Event::Session { id, event } => self.session_event(id, event),
                Event::Cameras(list) => self.cameras = list,
                Event::Microphones(Ok(list)) => self.microphones = list,
                Event::Microphones(Err(e)) => {
                    self.microphones.clear();
                    tracing::info!("no microphones: {e}");
                }
                Event::Snapshot(Ok(path)) => {
                    self.say(format!("Snapshot saved: {}", path.display()));
                }
                Event::Snapshot(Err(e)) => self.say(format!("Snapshot not saved: {e}")),
            }
        }
    }

    /// Takes in what session `id` said, if it is one of ours (a session that was stopped
    /// may still be ending: its events are not about what runs now).
    fn session_event(&mut self, id: SessionId, event: SessionEvent) {
        if let Some(b) = self.broadcasting.as_mut().filter(|b| b.id == id) {
            match event {
                SessionEvent::State(SessionState::Stopped { error }) => {
                    self.broadcasting = None;
                    if let Some(e) = error {
                        self.say(e);
                    }
                }
                SessionEvent::State(state) => b.state = state,
                SessionEvent::Broadcast(BroadcastEvent::Hosting(h)) => {
                    tracing::info!(
                        "hosting the signal server: browsers open {}; apps: {}",
                        h.viewer_links.join(" "),
                        h.view_command()
                    );
                    b.hosted = Some(h);
                }
                SessionEvent::Broadcast(BroadcastEvent::Status(s)) => b.status = Some(s),
                SessionEvent::Broadcast(BroadcastEvent::Views(views)) => {
                    let now_s = b.started.elapsed().as_secs();
                    for v in views.values() {
                        b.heatmap.add(now_s, v);
                    }
                    b.views = views;
                }
                SessionEvent::Broadcast(BroadcastEvent::Message { viewer, data }) => {
                    if b.messages.len() == MESSAGES_SHOWN {
                        b.messages.pop_front();
                    }
                    b.messages.push_back((viewer, data));
                }
                SessionEvent::Broadcast(BroadcastEvent::Refused(why)) => self.say(why),
                SessionEvent::View(_) => {}
            }
        } else if let Some(v) = self.viewing.as_mut().filter(|v| v.id == id) {
            match event {
                SessionEvent::State(SessionState::Stopped { error }) => {
                    self.viewing = None;
                    if let Some(e) = error {
                        self.say(e);
                    }
                }
                SessionEvent::State(state) => v.state = state,
                SessionEvent::View(ViewEvent::State(s)) => v.view = Some(s),
                SessionEvent::View(ViewEvent::Stats(s)) => v.stats = Some(s),
                SessionEvent::View(ViewEvent::Control(c)) => v.control = Some(c),
                SessionEvent::View(ViewEvent::Projection(p)) => {
                    // The broadcaster says what its picture is: show it that way.
                    let sphere = p == Projection::Equirect && self.has_gpu;
                    if self.settings.sphere != sphere {
                        self.settings.sphere = sphere;
                        self.say(if sphere {
                            "A 360° picture: drag to look around"
                        } else {
                            "A flat picture"
                        });
                    }
                }
                SessionEvent::View(ViewEvent::Telemetry { data, .. }) => {
                    v.telemetry = Some((data, Instant::now()));
                }
                SessionEvent::View(ViewEvent::Refused(why)) => self.say(why),
                SessionEvent::Broadcast(_) => {}
            }
        }
    }

    /// Moves new pictures to the GPU: the viewer's frame, the broadcaster's preview.
    fn upload_frames(&mut self, frame: &eframe::Frame) {
        let render_state = frame.wgpu_render_state();
        if let Some(v) = &self.viewing
            && let Some(new) = v.slot.take()
        {
            if let Some(rs) = render_state {
                VideoTexture::upload(rs, &mut self.video, &new);
            }
            self.shown.frames += 1;
            self.shown.since.get_or_insert_with(Instant::now);
            if let Some(old) = self.latest.replace(new) {
                v.slot.recycle(old);
            }
        }
        if let Some(b) = &mut self.broadcasting
            && let Some(new) = b.preview_slot.take()
        {
            if let Some(rs) = render_state {
                VideoTexture::upload(rs, &mut b.preview, &new);
            }
            b.preview_slot.recycle(new);
        }
    }

    /// The preview is made only while the broadcaster screen shows it.
    fn want_preview(&mut self) {
        let wanted = self.settings.mode == Mode::Broadcaster;
        if let Some(b) = &mut self.broadcasting
            && b.preview_on != wanted
        {
            let command = SessionCommand::Broadcast(BroadcastCommand::Preview(wanted));
            match self.service.command(b.id, command) {
                Ok(()) => b.preview_on = wanted,
                Err(e) => tracing::debug!("preview: {e}"),
            }
        }
    }

    /// `--frames` shown: close (the report is written on the way out).
    fn check_exit(&self) {
        if self
            .options
            .report
            .frames
            .is_some_and(|n| self.shown.frames >= n)
        {
            self.ctx.send_viewport_cmd(egui::ViewportCommand::Close);
        }
    }

    /// Writes what `--stats-json` and `--snapshot` asked for. Blocking, but only as the window
    /// closes.
    fn write_report(&self) {
        let report = &self.options.report;
        if let Some(path) = &report.stats_json {
            let mut stats = serde_json::to_value(self.viewer_stats().cloned().unwrap_or_default())
                .unwrap_or_default();
            stats["frames_shown"] = self.shown.frames.into();
            stats["fps_shown"] = self.shown.fps().into();
            let written = serde_json::to_string_pretty(&stats)
                .map_err(std::io::Error::other)
                .and_then(|json| std::fs::write(path, json));
            if let Err(e) = written {
                tracing::error!("cannot write {}: {e}", path.display());
            }
        }
        if let Some(path) = &report.snapshot {
            match &self.latest {
                Some(frame) => {
                    if let Err(e) = save_png(frame, path) {
                        tracing::error!("{e}");
                    }
                }
                None => tracing::error!("no frame was shown, so there is no snapshot to save"),
            }
        }
    }

    fn toggle_fullscreen(&mut self, ctx: &egui::Context) {
        self.fullscreen = !self.fullscreen;
        ctx.send_viewport_cmd(egui::ViewportCommand::Fullscreen(self.fullscreen));
    }

    fn top_bar_ui(&mut self, ui: &mut egui::Ui) {
        egui::Panel::top("top").show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.heading("Omnicast");
                if !self.options.kiosk {
                    ui.separator();
                    let mut mode = self.settings.mode;
                    ui.selectable_value(&mut mode, Mode::Broadcaster, "Broadcaster");
                    ui.selectable_value(&mut mode, Mode::Viewer, "Viewer");
                    self.set_mode(mode);
                }
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    let label = if self.fullscreen {
                        "Leave full screen"
                    } else {
                        "Full screen"
                    };
                    if ui.button(label).on_hover_text("F11").clicked() {
                        self.toggle_fullscreen(ui.ctx());
                    }
                    if let Some((notice, _)) = &self.notice {
                        ui.label(notice);
                    }
                });
            });
        });
    }
}

impl eframe::App for OmnicastApp {
    fn logic(&mut self, ctx: &egui::Context, frame: &mut eframe::Frame) {
        self.drain_events();
        self.refresh_recordings();
        self.upload_frames(frame);
        self.want_preview();
        self.check_exit();
        if self
            .notice
            .as_ref()
            .is_some_and(|(_, at)| at.elapsed() > NOTICE_FOR)
        {
            self.notice = None;
        }
        // Figures arrive as events, which wake the UI; the notice fades by itself.
        if self.notice.is_some() {
            ctx.request_repaint_after(NOTICE_FOR);
        }
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let (f11, escape) = ui.input(|i| {
            (
                i.key_pressed(egui::Key::F11),
                i.key_pressed(egui::Key::Escape),
            )
        });
        if f11 || (escape && self.fullscreen && !self.options.kiosk) {
            self.toggle_fullscreen(ui.ctx());
        }
        // Full screen shows only the picture (but a kiosk broadcaster shows its status).
        let bare = self.fullscreen && self.settings.mode == Mode::Viewer;
        if !bare {
            self.top_bar_ui(ui);
        }
        match self.settings.mode {
            Mode::Broadcaster => self.broadcaster_ui(ui),
            Mode::Viewer => self.viewer_ui(ui, bare),
        }
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        if self.options.persist {
            eframe::set_value(storage, eframe::APP_KEY, &self.settings);
        }
    }

    fn on_exit(&mut self) {
        self.write_report();
        // A recording's last fragment and index (a fraction of a second; at most 3 s).
        let recordings = [
            self.broadcasting.as_ref().map(|b| &b.recording),
            self.viewing.as_ref().map(|v| &v.recording),
        ];
        for r in recordings.into_iter().flatten() {
            r.recorder.stop_and_wait(Duration::from_secs(3));
        }
        self.stop_broadcast();
        self.stop_viewing();
    }
}

const NOTICE_FOR: Duration = Duration::from_secs(6);

/// A short, human description of a session state.
fn describe(state: &SessionState) -> String {
    match state {
        SessionState::Running => "running".to_owned(),
        SessionState::Retrying { error, retry_in } => {
            format!(
                "{error} — trying again in {:.0} s",
                retry_in.as_secs_f32().ceil()
            )
        }
        SessionState::Stopped { error: None } => "stopped".to_owned(),
        SessionState::Stopped { error: Some(e) } => format!("stopped: {e}"),
    }
}

/// Runs the app in a window until it is closed.
pub fn run(options: AppOptions, runtime: &tokio::runtime::Handle) -> eframe::Result {
    let fullscreen = options.fullscreen;
    let native = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("Omnicast")
            .with_inner_size([1280.0, 800.0])
            .with_min_inner_size([640.0, 400.0])
            .with_fullscreen(fullscreen),
        persist_window: options.persist,
        ..Default::default()
    };
    let runtime = runtime.clone();
    eframe::run_native(
        "omnicast",
        native,
        Box::new(move |cc| {
            // Ctrl-C or SIGTERM (systemd stopping a kiosk) closes the window as its close
            // button would: sessions end and a recording writes its last fragment and index.
            let ctx = cc.egui_ctx.clone();
            runtime.spawn(async move {
                omnicast_signal::shutdown_signal().await;
                tracing::info!("asked to stop: closing the window");
                ctx.send_viewport_cmd(egui::ViewportCommand::Close);
                ctx.request_repaint();
            });
            Ok(Box::new(OmnicastApp::new(cc, &runtime, options)))
        }),
    )
}
