//! The desktop app (eframe/egui): one window that is either the broadcaster or a viewer,
//! switched by a toggle. `logic` drains the service's events and uploads new frames (it runs
//! even while the window is hidden); `ui` only draws. Network and media run on the tokio
//! runtime and the engine's own threads, which wake the UI when something changes.

mod broadcaster_ui;
pub mod video;
mod viewer_ui;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eframe::egui;

use crate::engine::broadcaster::BroadcastStats;
use crate::engine::capture::CameraInfo;
use crate::engine::frame::{FrameSlot, VideoFrame};
use crate::engine::peer::PeerSettings;
use crate::engine::session::SessionState;
use crate::engine::viewer::SharedStats;
use crate::service::{Command, Event, Hosted, Service};
pub use crate::settings::{Mode, Settings};
use video::{SphereResources, SphereView, VideoTexture};

/// How the app is started.
#[derive(Debug, Clone)]
pub struct AppOptions {
    /// Kiosk: start the configured mode at once, no mode toggle, no dialogs.
    pub kiosk: bool,
    /// Start full screen (kiosk mode).
    pub fullscreen: bool,
    /// Use these instead of the settings remembered from the last run (kiosk, tests).
    pub settings: Option<Settings>,
    /// Remember the settings for the next run.
    pub persist: bool,
    /// Where a hosted signal server listens (HTTP, STUN).
    pub host_bind: (SocketAddr, SocketAddr),
    pub peer: PeerSettings,
    /// Where snapshots are saved.
    pub snapshot_dir: PathBuf,
}

impl Default for AppOptions {
    fn default() -> Self {
        use omnicast_signal::config::{DEFAULT_HTTP_PORT, DEFAULT_STUN_PORT};
        Self {
            kiosk: false,
            fullscreen: false,
            settings: None,
            persist: true,
            host_bind: (
                SocketAddr::from(([0, 0, 0, 0], DEFAULT_HTTP_PORT)),
                SocketAddr::from(([0, 0, 0, 0], DEFAULT_STUN_PORT)),
            ),
            peer: PeerSettings::default(),
            snapshot_dir: std::env::var_os("HOME")
                .map_or_else(|| PathBuf::from("."), PathBuf::from),
        }
    }
}

/// A running broadcast as the UI sees it.
struct Broadcasting {
    stats: Arc<BroadcastStats>,
    state: SessionState,
    hosted: Option<Hosted>,
    preview: Option<VideoTexture>,
    started: Instant,
}

/// A running viewer as the UI sees it.
struct Viewing {
    stats: Arc<SharedStats>,
    slot: Arc<FrameSlot>,
    state: SessionState,
}

pub struct OmnicastApp {
    pub settings: Settings,
    options: AppOptions,
    service: Service,
    cameras: Vec<CameraInfo>,
    broadcasting: Option<Broadcasting>,
    viewing: Option<Viewing>,
    video: Option<VideoTexture>,
    /// The frame on screen (kept for snapshots).
    latest: Option<VideoFrame>,
    /// Frames shown since the app started.
    pub frames_shown: u64,
    sphere: SphereView,
    has_sphere: bool,
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
        let settings = options
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
        let has_sphere = cc.wgpu_render_state.as_ref().is_some_and(|rs| {
            SphereResources::install(rs);
            true
        });
        let ctx = cc.egui_ctx.clone();
        let wake = ctx.clone();
        let service = Service::start(runtime, move || wake.request_repaint());
        let mut app = Self {
            settings,
            options,
            service,
            cameras: Vec::new(),
            broadcasting: None,
            viewing: None,
            video: None,
            latest: None,
            frames_shown: 0,
            sphere: SphereView::default(),
            has_sphere,
            fullscreen: false,
            notice: None,
            ctx,
        };
        app.service.send(Command::ListCameras);
        app.fullscreen = app.options.fullscreen;
        if app.options.kiosk {
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

    /// The live viewer statistics, while viewing.
    pub fn viewer_stats(&self) -> Option<&SharedStats> {
        self.viewing.as_ref().map(|v| &*v.stats)
    }

    /// The broadcast's statistics, while broadcasting.
    pub fn broadcast_stats(&self) -> Option<&BroadcastStats> {
        self.broadcasting.as_ref().map(|b| &*b.stats)
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

    fn drain_events(&mut self) {
        while let Some(event) = self.service.poll() {
            match event {
                Event::Hosting(h) => {
                    tracing::info!(
                        "hosting the signal server: viewers use --server {}, browsers {}",
                        h.local_url,
                        h.viewer_links.join(" ")
                    );
                    if let Some(b) = &mut self.broadcasting {
                        b.hosted = Some(h);
                    }
                }
                Event::Broadcast(state) => {
                    if state == SessionState::Stopped {
                        self.broadcasting = None;
                    } else if let Some(b) = &mut self.broadcasting {
                        b.state = state;
                    }
                }
                Event::View(state) => {
                    if state == SessionState::Stopped {
                        self.viewing = None;
                    } else if let Some(v) = &mut self.viewing {
                        v.state = state;
                    }
                }
                Event::Cameras(list) => self.cameras = list,
                Event::Snapshot(Ok(path)) => {
                    self.say(format!("Snapshot saved: {}", path.display()))
                }
                Event::Snapshot(Err(e)) => self.say(format!("Snapshot not saved: {e}")),
                Event::Problem(p) => self.say(p),
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
            self.frames_shown += 1;
            if let Some(old) = self.latest.replace(new) {
                v.slot.recycle(old);
            }
        }
        if let Some(b) = &mut self.broadcasting
            && let Some(new) = b.stats.preview.take()
        {
            if let Some(rs) = render_state {
                VideoTexture::upload(rs, &mut b.preview, &new);
            }
            b.stats.preview.recycle(new);
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
        self.upload_frames(frame);
        if self
            .notice
            .as_ref()
            .is_some_and(|(_, at)| at.elapsed() > NOTICE_FOR)
        {
            self.notice = None;
        }
        if let Some(b) = &self.broadcasting {
            b.stats.want_preview.store(
                self.settings.mode == Mode::Broadcaster,
                std::sync::atomic::Ordering::Relaxed,
            );
        }
        // Figures change without new frames (viewer lists, rates): refresh them now and then.
        if self.broadcasting.is_some() || self.viewing.is_some() || self.notice.is_some() {
            ctx.request_repaint_after(Duration::from_millis(500));
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
        self.service.send(Command::StopBroadcast);
        self.service.send(Command::StopViewing);
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
        SessionState::Stopped => "stopped".to_owned(),
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
        Box::new(move |cc| Ok(Box::new(OmnicastApp::new(cc, &runtime, options)))),
    )
}
