//! The app's async side, shared by the window and headless kiosk mode: typed commands in,
//! typed events out, on the tokio runtime. The UI never waits for any of it: it sends with
//! `try_send` and drains events in `logic`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::engine::broadcaster::{self, BroadcastSettings, BroadcastStats};
use crate::engine::capture::{CameraInfo, list_cameras};
use crate::engine::frame::{FrameSlot, VideoFrame};
use crate::engine::session::{self, SessionState, StopHandle};
use crate::engine::viewer::{self, SharedStats, ViewSettings, ViewState};
use omnicast_signal::{ServerConfig, SignalServer};

/// A broadcast to start; `stats` is the UI's window onto it.
pub struct BroadcastPlan {
    pub settings: BroadcastSettings,
    pub stats: Arc<BroadcastStats>,
    /// Host the signal server here, on these addresses (HTTP, STUN); `settings.server_url` is
    /// then replaced by the hosted server's.
    pub host: Option<(SocketAddr, SocketAddr)>,
}

pub struct ViewPlan {
    pub settings: ViewSettings,
    pub slot: Arc<FrameSlot>,
    pub stats: Arc<SharedStats>,
}

pub enum Command {
    StartBroadcast(Box<BroadcastPlan>),
    StopBroadcast,
    StartViewing(Box<ViewPlan>),
    StopViewing,
    ListCameras,
    SaveSnapshot(Box<VideoFrame>, PathBuf),
}

#[derive(Debug)]
pub enum Event {
    /// The hosted signal server is up: where viewers find it.
    Hosting(Hosted),
    Broadcast(SessionState),
    View(SessionState),
    Cameras(Vec<CameraInfo>),
    Snapshot(Result<PathBuf, String>),
    /// Something failed that the user should see.
    Problem(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Hosted {
    /// The URL this app's broadcaster uses (loopback).
    pub local_url: String,
    /// Pages a browser on another machine can open, one per network address.
    pub viewer_links: Vec<String>,
}

/// The UI's handle on the service.
pub struct Service {
    commands: mpsc::Sender<Command>,
    events: mpsc::Receiver<Event>,
}

const QUEUE: usize = 64;

impl Service {
    /// Starts the service on `runtime`; `wake` is called after each event (egui's
    /// `request_repaint`, so `logic` runs and drains it).
    pub fn start(
        runtime: &tokio::runtime::Handle,
        wake: impl Fn() + Send + Sync + 'static,
    ) -> Self {
        let (commands, commands_rx) = mpsc::channel(QUEUE);
        let (events_tx, events) = mpsc::channel(QUEUE);
        let out = Outbox {
            events: events_tx,
            wake: Arc::new(wake),
        };
        runtime.spawn(serve(commands_rx, out));
        Self { commands, events }
    }

    /// Sends a command without waiting; says so if the service cannot take it.
    pub fn send(&self, command: Command) {
        if let Err(e) = self.commands.try_send(command) {
            tracing::error!("the app's service did not take a command: {e}");
        }
    }

    /// The next event, if any (never waits).
    pub fn poll(&mut self) -> Option<Event> {
        self.events.try_recv().ok()
    }
}

#[derive(Clone)]
struct Outbox {
    events: mpsc::Sender<Event>,
    wake: Arc<dyn Fn() + Send + Sync>,
}

impl Outbox {
    fn emit(&self, event: Event) {
        if self.events.try_send(event).is_err() {
            tracing::debug!("the UI is not draining events; one dropped");
        }
        (self.wake)();
    }
}

struct Running {
    stop: StopHandle,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn end(self) {
        self.stop.stop();
        if let Err(e) = self.task.await {
            tracing::error!("a session ended badly: {e}");
        }
    }
}

async fn serve(mut commands: mpsc::Receiver<Command>, out: Outbox) {
    let mut broadcast: Option<Running> = None;
    let mut viewing: Option<Running> = None;
    while let Some(command) = commands.recv().await {
        match command {
            Command::StartBroadcast(plan) => {
                if let Some(b) = broadcast.take() {
                    b.end().await;
                }
                broadcast = Some(start_broadcast(*plan, out.clone()));
            }
            Command::StopBroadcast => {
                if let Some(b) = broadcast.take() {
                    b.end().await;
                }
            }
            Command::StartViewing(plan) => {
                if let Some(v) = viewing.take() {
                    v.end().await;
                }
                viewing = Some(start_viewing(*plan, out.clone()));
            }
            Command::StopViewing => {
                if let Some(v) = viewing.take() {
                    v.end().await;
                }
            }
            Command::ListCameras => {
                let out = out.clone();
                tokio::task::spawn_blocking(move || out.emit(Event::Cameras(list_cameras())));
            }
            Command::SaveSnapshot(frame, path) => {
                let out = out.clone();
                tokio::task::spawn_blocking(move || {
                    out.emit(Event::Snapshot(save_png(&frame, &path).map(|()| path)));
                });
            }
        }
    }
    // The UI is gone: end what runs.
    for running in [broadcast, viewing].into_iter().flatten() {
        running.end().await;
    }
}

fn save_png(frame: &VideoFrame, path: &std::path::Path) -> Result<(), String> {
    let (w, h) = (
        u32::try_from(frame.width).map_err(|e| e.to_string())?,
        u32::try_from(frame.height).map_err(|e| e.to_string())?,
    );
    image::save_buffer(path, &frame.rgba, w, h, image::ExtendedColorType::Rgba8)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn start_broadcast(plan: BroadcastPlan, out: Outbox) -> Running {
    let (stop, stop_signal) = session::stop_signal();
    let task = tokio::spawn(async move {
        let BroadcastPlan {
            mut settings,
            stats,
            host,
        } = plan;
        let mut hosted = None;
        if let Some((http, stun)) = host {
            match host_server(http, stun).await {
                Ok((server, info)) => {
                    settings.server_url = info.local_url.clone();
                    out.emit(Event::Hosting(info));
                    hosted = Some(server);
                }
                Err(e) => {
                    out.emit(Event::Problem(format!(
                        "cannot host the signal server: {e}"
                    )));
                    out.emit(Event::Broadcast(SessionState::Stopped));
                    return;
                }
            }
        }
        let states = out.clone();
        session::supervise(
            "broadcast",
            |stop| broadcaster::run(settings.clone(), stats.clone(), stop.stopped()),
            stop_signal,
            move |s| states.emit(Event::Broadcast(s)),
        )
        .await;
        if let Some(mut server) = hosted {
            server.shutdown().await;
        }
    });
    Running { stop, task }
}

fn start_viewing(plan: ViewPlan, out: Outbox) -> Running {
    let (stop, stop_signal) = session::stop_signal();
    let task = tokio::spawn(async move {
        let ViewPlan {
            settings,
            slot,
            stats,
        } = plan;
        let states = stats.clone();
        session::supervise(
            "viewer",
            |stop| {
                viewer::run(
                    settings.clone(),
                    slot.clone(),
                    stats.clone(),
                    stop.stopped(),
                )
            },
            stop_signal,
            move |s| {
                if matches!(s, SessionState::Retrying { .. }) {
                    states.set_state(ViewState::Reconnecting);
                }
                out.emit(Event::View(s));
            },
        )
        .await;
    });
    Running { stop, task }
}

/// Hosts the signal server on `http` and `stun`; if `http`'s port is taken (another Omnicast
/// here, say), on any free port instead.
async fn host_server(
    http: SocketAddr,
    stun: SocketAddr,
) -> Result<(SignalServer, Hosted), omnicast_signal::StartError> {
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
    let addr = server.http_addr();
    let port = addr.port();
    let local_url = if addr.ip().is_unspecified() || addr.ip().is_loopback() {
        format!("http://127.0.0.1:{port}")
    } else {
        format!("http://{addr}")
    };
    let mut viewer_links = vec![format!("http://localhost:{port}/")];
    if addr.ip().is_unspecified() {
        viewer_links.extend(
            network_addresses()
                .into_iter()
                .map(|ip| format!("http://{}/", SocketAddr::new(ip, port))),
        );
    }
    Ok((
        server,
        Hosted {
            local_url,
            viewer_links,
        },
    ))
}

/// This machine's addresses other machines may reach it on (not loopback, not link-local).
pub fn network_addresses() -> Vec<std::net::IpAddr> {
    let Ok(interfaces) = rtc::shared::ifaces::ifaces() else {
        return Vec::new();
    };
    let mut ips: Vec<_> = interfaces
        .into_iter()
        .filter_map(|i| i.addr.map(|a| a.ip()))
        .filter(|ip| match ip {
            std::net::IpAddr::V4(v4) => !v4.is_loopback() && !v4.is_link_local(),
            std::net::IpAddr::V6(_) => false,
        })
        .collect();
    ips.sort();
    ips.dedup();
    ips
}
