//! Sessions run through the real [`Service`] for tests and benchmarks, each in a service of its
//! own whose events a task drains into [`Seen`]: what a window would show.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::sync::Arc;
use std::time::Duration;

use omnicast_engine::audio::AudioSource;
use omnicast_engine::broadcaster::video::VideoSettings;
use omnicast_engine::broadcaster::{BroadcastEvent, BroadcastSettings, BroadcastStatus};
use omnicast_engine::capture::SourceSpec;
use omnicast_engine::channels::protocol::Viewport;
use omnicast_engine::channels::room::DataSettings;
use omnicast_engine::codec::EncoderSettings;
use omnicast_engine::frame::FrameSlot;
use omnicast_engine::hosting::Hosted;
use omnicast_engine::peer::PeerSettings;
use omnicast_engine::service::{
    BroadcastPlan, Event, Plan, Service, SessionCommand, SessionEvent, ViewPlan,
};
use omnicast_engine::session::{Retry, SessionId, SessionState};
use omnicast_engine::viewer::display::Display;
use omnicast_engine::viewer::{ViewEvent, ViewSettings, ViewSink, ViewState, ViewerStats};
use parking_lot::Mutex;
use tokio::sync::mpsc;

/// What a session has said so far: every state, the latest figures.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    pub states: Vec<SessionState>,
    pub hosted: Option<Hosted>,
    pub status: Option<BroadcastStatus>,
    pub view_states: Vec<ViewState>,
    pub stats: Option<ViewerStats>,
    /// Broadcaster: where viewers look (the latest), messages from viewers with control.
    pub views: std::collections::BTreeMap<String, Viewport>,
    pub messages: Vec<(String, serde_json::Value)>,
    /// Both: what was refused, in order.
    pub refused: Vec<String>,
    /// Viewer: whether the broadcaster gave it control (the latest welcome), telemetry.
    pub control: Option<bool>,
    pub telemetry: Vec<serde_json::Value>,
    /// Viewer: what the broadcaster said its picture is, every time it said so.
    pub projections: Vec<omnicast_engine::values::Projection>,
    /// Events of any other session (there should be none).
    pub strays: usize,
}

impl Seen {
    pub fn status(&self) -> BroadcastStatus {
        self.status.clone().unwrap_or_default()
    }

    pub fn stats(&self) -> ViewerStats {
        self.stats.clone().unwrap_or_default()
    }

    pub fn stopped(&self) -> bool {
        matches!(self.states.last(), Some(SessionState::Stopped { .. }))
    }
}

enum Control {
    Stop,
    Command(SessionCommand),
}

pub struct Session {
    pub id: SessionId,
    seen: Arc<Mutex<Seen>>,
    control: mpsc::Sender<Control>,
    task: tokio::task::JoinHandle<()>,
}

impl Session {
    /// Starts `plan` in a service of its own (on the current runtime).
    pub fn start(plan: Plan) -> Self {
        let mut service = Service::start(&tokio::runtime::Handle::current(), || {});
        let id = service.start_session(plan).unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (control, mut control_rx) = mpsc::channel(16);
        let task = {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut stopping = false;
                loop {
                    tokio::select! {
                        c = control_rx.recv(), if !stopping => match c {
                            // Asked to stop, or the handle was dropped: stop once, then wait
                            // for the session's end.
                            Some(Control::Stop) | None => {
                                stopping = true;
                                service.stop_session(id).unwrap();
                            }
                            Some(Control::Command(c)) => service.command(id, c).unwrap(),
                        },
                        e = service.next_event() => {
                            let Some(Event::Session { id: from, event }) = e else { continue };
                            let mut s = seen.lock();
                            if from != id {
                                s.strays += 1;
                                continue;
                            }
                            match event {
                                SessionEvent::State(state) => {
                                    let end = matches!(state, SessionState::Stopped { .. });
                                    s.states.push(state);
                                    if end {
                                        return;
                                    }
                                }
                                SessionEvent::Broadcast(BroadcastEvent::Hosting(h)) => s.hosted = Some(h),
                                SessionEvent::Broadcast(BroadcastEvent::Status(st)) => s.status = Some(*st),
                                SessionEvent::View(ViewEvent::State(v)) => s.view_states.push(v),
                                SessionEvent::View(ViewEvent::Stats(st)) => s.stats = Some(*st),
                                SessionEvent::Broadcast(BroadcastEvent::Views(v)) => s.views = v,
                                SessionEvent::Broadcast(BroadcastEvent::Message { viewer, data }) => {
                                    s.messages.push((viewer, data));
                                }
                                SessionEvent::Broadcast(BroadcastEvent::Refused(r))
                                | SessionEvent::View(ViewEvent::Refused(r)) => s.refused.push(r),
                                SessionEvent::View(ViewEvent::Control(c)) => s.control = Some(c),
                                SessionEvent::View(ViewEvent::Projection(p)) => s.projections.push(p),
                                SessionEvent::View(ViewEvent::Telemetry { data, .. }) => {
                                    s.telemetry.push(data);
                                }
                            }
                        }
                    }
                }
            })
        };
        Self {
            id,
            seen,
            control,
            task,
        }
    }

    pub fn seen(&self) -> Seen {
        self.seen.lock().clone()
    }

    pub fn command(&self, c: SessionCommand) {
        self.control.try_send(Control::Command(c)).unwrap();
    }

    /// Waits (polling every 20 ms) until `done` holds for what the session said, or panics
    /// after `within` saying `what` and what was seen.
    pub async fn until(&self, within: Duration, what: &str, done: impl Fn(&Seen) -> bool) -> Seen {
        let waited = tokio::time::timeout(within, async {
            loop {
                let seen = self.seen();
                if done(&seen) {
                    return seen;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        waited.unwrap_or_else(|_| panic!("{what}: not within {within:?}: {:?}", self.seen()))
    }

    /// Waits for the viewer's `n`th decoded frame (30 s at most).
    pub async fn until_frames(&self, n: u64, what: &str) -> ViewerStats {
        self.until(Duration::from_secs(30), what, |s| {
            s.stats().frames_decoded >= n
        })
        .await
        .stats()
    }

    /// Stops the session and waits (10 s at most) for its `Stopped`.
    pub async fn stop(self) -> Seen {
        let _ = self.control.send(Control::Stop).await;
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("stops promptly")
            .unwrap();
        let seen = self.seen.lock().clone();
        assert!(seen.stopped(), "{seen:?}");
        seen
    }
}

/// A small, cheap encoding for tests: 30 fps at 400 kbit/s.
pub fn small_encoder() -> EncoderSettings {
    EncoderSettings {
        fps: 30.0,
        bitrate_kbps: 400,
        ..EncoderSettings::default()
    }
}

/// The signal server on loopback, ports chosen by the OS.
pub async fn loopback_server() -> omnicast_signal::SignalServer {
    omnicast_signal::SignalServer::start(omnicast_signal::ServerConfig::loopback_ephemeral())
        .await
        .unwrap()
}

pub fn broadcast_settings(
    url: &str,
    room: &str,
    (width, height): (u32, u32),
    encoder: EncoderSettings,
) -> BroadcastSettings {
    BroadcastSettings {
        server_url: url.to_owned(),
        room: room.to_owned(),
        key: None,
        video: VideoSettings {
            source: SourceSpec::TestPattern,
            width,
            height,
            encoder,
        },
        peer: PeerSettings::loopback(),
        data: DataSettings::default(),
        audio: AudioSource::None,
        audio_muted: false,
    }
}

/// A test-pattern broadcast through the server at `url`; its preview goes to `preview`.
pub fn broadcast(settings: BroadcastSettings, preview: Option<Arc<FrameSlot>>) -> Session {
    Session::start(Plan::Broadcast(Box::new(BroadcastPlan {
        settings,
        host: None,
        preview,
        recorder: None,
        retry: Retry::Forever,
    })))
}

/// A viewer's settings: loopback, no key, no trace.
pub fn view_settings(url: &str, room: &str) -> ViewSettings {
    ViewSettings {
        server_url: url.to_owned(),
        room: room.to_owned(),
        peer: PeerSettings::loopback(),
        control_key: None,
        viewport_trace: None,
    }
}

/// A viewer that decodes into a slot (`decode`), or only receives and counts.
pub fn watch(url: &str, room: &str, decode: bool) -> (Session, Arc<FrameSlot>) {
    watch_with(view_settings(url, room), decode)
}

/// A viewer with these settings.
pub fn watch_with(settings: ViewSettings, decode: bool) -> (Session, Arc<FrameSlot>) {
    let slot = Arc::new(FrameSlot::default());
    let sinks: Vec<Arc<dyn ViewSink>> = if decode {
        vec![Arc::new(Display::new(slot.clone()))]
    } else {
        Vec::new()
    };
    let session = Session::start(Plan::View(Box::new(ViewPlan {
        settings,
        sinks,
        retry: Retry::Forever,
    })));
    (session, slot)
}
