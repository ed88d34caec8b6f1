//! The broadcaster's side of the data channels: it opens `omnicast` and `omnicast-viewport` on
//! every viewer connection (before the offer, so pages that ignore them keep working), takes
//! what each viewer says, and sends every viewer the robot's telemetry.
//!
//! Viewport samples go to the log and, when asked, the bridge; messages from a viewer holding
//! the control key go to the bridge and the window; anything else gets an `error` back (at most
//! one a second for malformed messages) and is counted. Nothing a viewer sends closes its
//! connection or touches the video.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::broadcast;
use webrtc::data_channel::{
    DataChannel, DataChannelEvent, RTCDataChannelInit, RTCDataChannelState,
};
use webrtc::peer_connection::PeerConnection;

use super::bridge::{Bridge, BridgeStatus};
use super::protocol::{
    BroadcasterMessage, CONTROL_LABEL, ErrorKind, ErrorLimiter, MAX_MESSAGE_BYTES, VIEWPORT_LABEL,
    ViewerMessage, Viewport, parse_viewer, round3,
};
use super::viewport_log::{LogEntry, LogStatus, ViewportLog};
use crate::values::{BridgeAddr, ControlKey, Projection};

/// What the broadcaster does with what viewers send.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DataSettings {
    /// Viewers whose `hello` carries this key may send messages; with none, nobody may.
    pub control_key: Option<ControlKey>,
    /// Every viewport sample is appended here as a JSON line.
    pub viewport_log: Option<PathBuf>,
    /// The robot software's TCP server.
    pub bridge: Option<BridgeAddr>,
    /// Send viewport samples to the bridge too.
    pub bridge_viewport: bool,
    /// What the picture is, as announced to every viewer.
    pub projection: Projection,
}

/// What the data channels have done, for the status.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct DataStatus {
    /// Viewers that have sent at least one viewport sample on their current connection.
    pub viewers_sending_views: u64,
    pub viewport_samples: u64,
    pub messages_accepted: u64,
    /// Messages from viewers without control.
    pub messages_refused: u64,
    pub malformed: u64,
    pub too_large: u64,
    pub unknown_type: u64,
    pub telemetry_sent: u64,
    pub log: Option<LogStatus>,
    pub bridge: Option<BridgeStatus>,
}

/// One viewer as its data channels know it.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ViewerData {
    /// Where it looks now (its latest sample).
    pub viewport: Option<Viewport>,
    /// Its `hello` carried the control key.
    pub control: bool,
    pub samples: u64,
    /// Which of this viewer's connections the entry belongs to: a replaced connection's late
    /// end must not remove its successor's.
    #[serde(skip)]
    owner: u64,
}

#[derive(Default)]
struct Counters {
    samples: AtomicU64,
    accepted: AtomicU64,
    refused: AtomicU64,
    malformed: AtomicU64,
    too_large: AtomicU64,
    unknown: AtomicU64,
    telemetry: AtomicU64,
}

/// A message a viewer with control sent.
pub type OnMessage = Box<dyn Fn(&str, &Value) + Send + Sync>;

/// Shared by every viewer connection of one broadcast.
pub struct DataRoom {
    control_key: Option<ControlKey>,
    bridge_viewport: bool,
    log: Option<ViewportLog>,
    bridge: Mutex<Option<Bridge>>,
    telemetry: broadcast::Sender<Arc<str>>,
    projection: tokio::sync::watch::Sender<Projection>,
    viewers: Mutex<BTreeMap<String, ViewerData>>,
    counters: Counters,
    on_message: OnMessage,
    started: Instant,
    next_owner: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot open the viewport log {path}: {source}")]
    Log {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("telemetry of {0} bytes is over the limit of {MAX_MESSAGE_BYTES}")]
    TooLarge(usize),
}

/// Telemetry messages queued for each viewer before a slow one skips some.
const TELEMETRY_QUEUE: usize = 64;

/// Now, ms since the Unix epoch: the protocol's clock.
pub fn unix_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

impl DataRoom {
    /// Opens the log and starts the bridge (on the current tokio runtime).
    pub fn start(settings: &DataSettings, on_message: OnMessage) -> Result<Arc<Self>, DataError> {
        let log = match &settings.viewport_log {
            Some(path) => Some(ViewportLog::open(path).map_err(|source| DataError::Log {
                path: path.clone(),
                source,
            })?),
            None => None,
        };
        let (telemetry, _) = broadcast::channel(TELEMETRY_QUEUE);
        let room = Arc::new(Self {
            control_key: settings.control_key.clone(),
            bridge_viewport: settings.bridge_viewport,
            log,
            bridge: Mutex::new(None),
            telemetry,
            projection: tokio::sync::watch::Sender::new(settings.projection),
            viewers: Mutex::default(),
            counters: Counters::default(),
            on_message,
            started: Instant::now(),
            next_owner: AtomicU64::new(1),
        });
        if let Some(address) = &settings.bridge {
            let weak = Arc::downgrade(&room);
            let bridge = Bridge::start(address.clone(), move |data| {
                if let Some(room) = weak.upgrade()
                    && let Err(e) = room.send_telemetry(data)
                {
                    tracing::debug!("bridge: {e}");
                }
            });
            *room.bridge.lock() = Some(bridge);
        }
        Ok(room)
    }

    /// Sends `data` as telemetry to every viewer whose channel is open.
    pub fn send_telemetry(&self, data: Value) -> Result<(), DataError> {
        let text = BroadcasterMessage::Telemetry {
            t_ms: unix_ms(),
            data,
        }
        .to_json();
        if text.len() > MAX_MESSAGE_BYTES {
            return Err(DataError::TooLarge(text.len()));
        }
        self.counters.telemetry.fetch_add(1, Ordering::Relaxed);
        let _ = self.telemetry.send(text.into());
        Ok(())
    }

    /// Tells every viewer the picture is now `projection`.
    pub fn set_projection(&self, projection: Projection) {
        self.projection
            .send_if_modified(|p| std::mem::replace(p, projection) != projection);
    }

    pub fn projection(&self) -> Projection {
        *self.projection.borrow()
    }

    pub fn status(&self) -> DataStatus {
        let c = &self.counters;
        DataStatus {
            viewers_sending_views: self
                .viewers
                .lock()
                .values()
                .filter(|v| v.samples > 0)
                .count() as u64,
            viewport_samples: c.samples.load(Ordering::Relaxed),
            messages_accepted: c.accepted.load(Ordering::Relaxed),
            messages_refused: c.refused.load(Ordering::Relaxed),
            malformed: c.malformed.load(Ordering::Relaxed),
            too_large: c.too_large.load(Ordering::Relaxed),
            unknown_type: c.unknown.load(Ordering::Relaxed),
            telemetry_sent: c.telemetry.load(Ordering::Relaxed),
            log: self.log.as_ref().map(ViewportLog::status),
            bridge: self.bridge.lock().as_ref().map(Bridge::status),
        }
    }

    /// Each viewer with open channels, by id.
    pub fn viewers(&self) -> BTreeMap<String, ViewerData> {
        self.viewers.lock().clone()
    }

    /// Updates `viewer`'s entry, if it is still `state`'s connection's.
    fn update_viewer(&self, viewer: &str, state: &PerViewer, f: impl FnOnce(&mut ViewerData)) {
        if let Some(v) = self.viewers.lock().get_mut(viewer)
            && v.owner == state.owner
        {
            f(v);
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// What `viewer` said; what goes back to it, if anything.
    fn handle(
        &self,
        viewer: &Arc<str>,
        state: &mut PerViewer,
        data: &[u8],
        is_text: bool,
    ) -> Vec<String> {
        let mut replies = Vec::new();
        let message = match parse_viewer(data, is_text) {
            Ok(m) => m,
            Err(e) => {
                let counter = match e.kind() {
                    ErrorKind::TooLarge => &self.counters.too_large,
                    ErrorKind::Unknown => &self.counters.unknown,
                    ErrorKind::Malformed => &self.counters.malformed,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(viewer = %viewer, "data channel: {e}");
                if state.errors.allow(self.now_ms()) {
                    replies.push(error(e.to_string()));
                }
                return replies;
            }
        };
        match message {
            ViewerMessage::Viewport(sample) => {
                self.counters.samples.fetch_add(1, Ordering::Relaxed);
                let t_received_ms = unix_ms();
                self.update_viewer(viewer, state, |v| {
                    v.viewport = Some(sample.view);
                    v.samples += 1;
                });
                if self.bridge_viewport
                    && let Some(bridge) = &*self.bridge.lock()
                {
                    let s = &sample.view;
                    bridge.send(
                        json!({"type": "viewport", "viewer": &**viewer, "t": sample.t_ms,
                            "yaw": round3(s.yaw_deg), "pitch": round3(s.pitch_deg),
                            "roll": round3(s.roll_deg), "fov": s.fov_deg.map(round3)})
                        .to_string(),
                    );
                }
                if let Some(log) = &self.log {
                    log.record(LogEntry {
                        viewer: viewer.clone(),
                        t_received_ms,
                        sample,
                    });
                }
            }
            ViewerMessage::Hello { control } => {
                let granted = match (&self.control_key, &control) {
                    (Some(key), Some(given)) => key.matches(given),
                    _ => false,
                };
                state.control = granted;
                self.update_viewer(viewer, state, |v| v.control = granted);
                replies.push(BroadcasterMessage::Welcome { control: granted }.to_json());
                if control.is_some() && !granted {
                    replies.push(error(if self.control_key.is_some() {
                        "the control key does not match".to_owned()
                    } else {
                        "this broadcast has no control key: nobody may send messages".to_owned()
                    }));
                }
            }
            ViewerMessage::Message { t_ms, data } => {
                if state.control {
                    self.counters.accepted.fetch_add(1, Ordering::Relaxed);
                    if let Some(bridge) = &*self.bridge.lock() {
                        bridge.send(
                            json!({"type": "message", "viewer": &**viewer, "t": t_ms, "data": &data})
                                .to_string(),
                        );
                    }
                    (self.on_message)(viewer, &data);
                } else {
                    self.counters.refused.fetch_add(1, Ordering::Relaxed);
                    replies.push(error(
                        "message refused: send hello with the room's control key first".to_owned(),
                    ));
                }
            }
        }
        replies
    }
}

fn error(message: String) -> String {
    BroadcasterMessage::Error { message }.to_json()
}

/// A viewer connection's two channels.
pub struct Channels {
    pub control: Arc<dyn DataChannel>,
    pub viewport: Arc<dyn DataChannel>,
}

/// Opens both channels on `pc`; call before making the offer.
pub async fn open(pc: &dyn PeerConnection) -> webrtc::error::Result<Channels> {
    let control = pc
        .create_data_channel(
            CONTROL_LABEL,
            Some(RTCDataChannelInit {
                ordered: true,
                ..Default::default()
            }),
        )
        .await?;
    let viewport = pc
        .create_data_channel(
            VIEWPORT_LABEL,
            Some(RTCDataChannelInit {
                ordered: false,
                max_retransmits: Some(0),
                ..Default::default()
            }),
        )
        .await?;
    Ok(Channels { control, viewport })
}

struct PerViewer {
    /// This connection's mark on the viewer's entry.
    owner: u64,
    control: bool,
    errors: ErrorLimiter,
}

/// Removes the viewer from the room when its channels end (unless a newer connection of the
/// same viewer has taken the entry over).
struct Listed {
    room: Arc<DataRoom>,
    viewer: Arc<str>,
    owner: u64,
}

impl Drop for Listed {
    fn drop(&mut self) {
        let mut viewers = self.room.viewers.lock();
        if viewers
            .get(&*self.viewer)
            .is_some_and(|v| v.owner == self.owner)
        {
            viewers.remove(&*self.viewer);
        }
    }
}

/// Serves one viewer's channels until both close (or the future is dropped, which ends its
/// tasks). Each channel is read by a task of its own, woken only by its own messages: viewport
/// samples arrive thousands of times a second across viewers.
pub async fn serve(room: Arc<DataRoom>, viewer: String, channels: Channels) {
    let viewer: Arc<str> = viewer.into();
    let owner = room.next_owner.fetch_add(1, Ordering::Relaxed);
    room.viewers.lock().insert(
        viewer.to_string(),
        ViewerData {
            owner,
            ..ViewerData::default()
        },
    );
    let _listed = Listed {
        room: room.clone(),
        viewer: viewer.clone(),
        owner,
    };
    let state = Arc::new(Mutex::new(PerViewer {
        owner,
        control: false,
        errors: ErrorLimiter::default(),
    }));
    let open = tokio::sync::watch::Sender::new(false);
    let Channels { control, viewport } = channels;
    let reader = |dc: Arc<dyn DataChannel>, is_control: bool| Reader {
        room: room.clone(),
        viewer: viewer.clone(),
        state: state.clone(),
        dc,
        control: control.clone(),
        open: open.clone(),
        is_control,
    };
    let mut readers = tokio::task::JoinSet::new();
    readers.spawn(reader(control.clone(), true).run());
    readers.spawn(reader(viewport, false).run());
    let mut telemetry = tokio::task::JoinSet::new();
    telemetry.spawn(forward(
        room.telemetry.subscribe(),
        room.projection.subscribe(),
        open.subscribe(),
        control.clone(),
        viewer.clone(),
    ));
    while readers.join_next().await.is_some() {}
}

/// One channel's reader.
struct Reader {
    room: Arc<DataRoom>,
    viewer: Arc<str>,
    state: Arc<Mutex<PerViewer>>,
    dc: Arc<dyn DataChannel>,
    /// Where replies go.
    control: Arc<dyn DataChannel>,
    /// Whether the control channel is open (the control channel's reader says).
    open: tokio::sync::watch::Sender<bool>,
    is_control: bool,
}

impl Reader {
    async fn run(self) {
        // The control channel is open when it says so, when it already was, or as soon as a
        // message comes on it, whichever is first: replies and telemetry wait for it.
        if self.is_control && self.dc.ready_state().await.ok() == Some(RTCDataChannelState::Open) {
            self.open.send_replace(true);
        }
        while let Some(event) = self.dc.poll().await {
            match event {
                DataChannelEvent::OnOpen if self.is_control => {
                    self.open.send_replace(true);
                }
                DataChannelEvent::OnMessage(m) => {
                    if self.is_control && !*self.open.borrow() {
                        self.open.send_replace(true);
                    }
                    let replies = self.room.handle(
                        &self.viewer,
                        &mut self.state.lock(),
                        &m.data,
                        m.is_string,
                    );
                    for reply in replies {
                        if !*self.open.borrow() {
                            break;
                        }
                        if let Err(e) = self.control.send_text(&reply).await {
                            tracing::debug!(viewer = %self.viewer, "reply not sent: {e}");
                        }
                    }
                }
                DataChannelEvent::OnClose => break,
                _ => {}
            }
        }
        if self.is_control {
            self.open.send_replace(false);
        }
    }
}

/// Sends one viewer what the room says to everyone while its control channel is open: the
/// projection when it opens and whenever it changes, and all telemetry.
async fn forward(
    mut telemetry: broadcast::Receiver<Arc<str>>,
    mut projection: tokio::sync::watch::Receiver<Projection>,
    mut open: tokio::sync::watch::Receiver<bool>,
    control: Arc<dyn DataChannel>,
    viewer: Arc<str>,
) {
    let send = |text: String| {
        let control = control.clone();
        async move { control.send_text(&text).await }
    };
    loop {
        if open.wait_for(|o| *o).await.is_err() {
            return;
        }
        // Just opened (or opened again): what the picture is comes first.
        let now = *projection.borrow_and_update();
        if let Err(e) = send(BroadcasterMessage::Projection(now).to_json()).await {
            tracing::debug!(viewer = %viewer, "projection not sent: {e}");
        }
        loop {
            tokio::select! {
                changed = open.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    if !*open.borrow() {
                        break;
                    }
                }
                changed = projection.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let now = *projection.borrow_and_update();
                    if let Err(e) = send(BroadcasterMessage::Projection(now).to_json()).await {
                        tracing::debug!(viewer = %viewer, "projection not sent: {e}");
                    }
                }
                t = telemetry.recv() => match t {
                    Ok(text) => {
                        if let Err(e) = control.send_text(&text).await {
                            tracing::debug!(viewer = %viewer, "telemetry not sent: {e}");
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::debug!(viewer = %viewer, "{n} telemetry messages skipped (slow viewer)");
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::protocol::parse_broadcaster;

    /// Messages that reached the robot's side, by viewer.
    type Got = Arc<Mutex<Vec<(String, Value)>>>;

    fn room(key: Option<&str>) -> (Arc<DataRoom>, Got) {
        let got = Arc::new(Mutex::new(Vec::new()));
        let settings = DataSettings {
            control_key: key.map(|k| k.parse().unwrap()),
            ..Default::default()
        };
        let sink = got.clone();
        let room = DataRoom::start(
            &settings,
            Box::new(move |v, d| sink.lock().push((v.to_owned(), d.clone()))),
        )
        .unwrap();
        (room, got)
    }

    fn say(
        room: &DataRoom,
        viewer: &str,
        state: &mut PerViewer,
        v: Value,
    ) -> Vec<BroadcasterMessage> {
        room.viewers.lock().entry(viewer.to_owned()).or_default();
        room.handle(&viewer.into(), state, v.to_string().as_bytes(), true)
            .iter()
            .map(|r| parse_broadcaster(r.as_bytes(), true).unwrap())
            .collect()
    }

    fn fresh() -> PerViewer {
        PerViewer {
            owner: 0,
            control: false,
            errors: ErrorLimiter::default(),
        }
    }

    #[test]
    fn a_replaced_connections_late_end_leaves_its_successors_entry() {
        let (room, _) = room(None);
        let (old, new) = (
            PerViewer {
                owner: 1,
                ..fresh()
            },
            PerViewer {
                owner: 2,
                ..fresh()
            },
        );
        room.viewers.lock().insert(
            "v".into(),
            ViewerData {
                owner: 1,
                ..Default::default()
            },
        );
        // The viewer reconnects: its new connection takes the entry over…
        room.viewers.lock().insert(
            "v".into(),
            ViewerData {
                owner: 2,
                ..Default::default()
            },
        );
        // …before the old one's channels end.
        drop(Listed {
            room: room.clone(),
            viewer: "v".into(),
            owner: 1,
        });
        assert!(room.viewers().contains_key("v"));
        // Late samples of the old connection change nothing; the new one's count.
        let sample = json!({"type":"viewport","t":1,"yaw":10,"pitch":0}).to_string();
        room.handle(&"v".into(), &mut { old }, sample.as_bytes(), true);
        assert_eq!(room.viewers()["v"].samples, 0);
        room.handle(&"v".into(), &mut { new }, sample.as_bytes(), true);
        assert_eq!(room.viewers()["v"].samples, 1);
        drop(Listed {
            room: room.clone(),
            viewer: "v".into(),
            owner: 2,
        });
        assert!(room.viewers().is_empty());
    }

    #[test]
    fn only_a_viewer_with_the_key_reaches_the_robot() {
        let (room, got) = room(Some("k"));
        let (mut a, mut b) = (fresh(), fresh());
        let msg = json!({"type":"message","t":1,"data":{"go":1}});
        // b never said hello: refused, with an error each time.
        for _ in 0..2 {
            let r = say(&room, "b", &mut b, msg.clone());
            assert!(
                matches!(&r[..], [BroadcasterMessage::Error { message }] if message.contains("control key")),
                "{r:?}"
            );
        }
        // A wrong key: no control, and told why.
        let r = say(&room, "b", &mut b, json!({"type":"hello","control":"nope"}));
        assert_eq!(r[0], BroadcasterMessage::Welcome { control: false });
        assert!(
            matches!(&r[1], BroadcasterMessage::Error { message } if message.contains("does not match"))
        );
        // a has the key.
        let r = say(&room, "a", &mut a, json!({"type":"hello","control":"k"}));
        assert_eq!(r, [BroadcasterMessage::Welcome { control: true }]);
        assert!(say(&room, "a", &mut a, msg.clone()).is_empty());
        assert_eq!(*got.lock(), [("a".to_owned(), json!({"go":1}))]);
        let s = room.status();
        assert_eq!((s.messages_accepted, s.messages_refused), (1, 2));
        assert!(room.viewers()["a"].control && !room.viewers()["b"].control);
    }

    #[test]
    fn without_a_key_nobody_has_control() {
        let (room, got) = room(None);
        let mut a = fresh();
        let r = say(
            &room,
            "a",
            &mut a,
            json!({"type":"hello","control":"anything"}),
        );
        assert_eq!(r[0], BroadcasterMessage::Welcome { control: false });
        say(&room, "a", &mut a, json!({"type":"message","t":1,"data":1}));
        assert!(got.lock().is_empty());
        // A hello with no key is simply welcomed.
        let r = say(&room, "a", &mut a, json!({"type":"hello"}));
        assert_eq!(r, [BroadcasterMessage::Welcome { control: false }]);
    }

    #[test]
    fn garbage_is_counted_and_answered_at_most_once_a_second() {
        let (room, _) = room(None);
        let mut a = fresh();
        let viewer: Arc<str> = "a".into();
        room.viewers
            .lock()
            .insert("a".into(), ViewerData::default());
        let mut replies = 0;
        for data in [
            &b"nonsense"[..],
            b"{\"type\":\"x\"}",
            &vec![b' '; MAX_MESSAGE_BYTES + 1],
        ] {
            replies += room.handle(&viewer, &mut a, data, true).len();
        }
        assert_eq!(replies, 1, "one error a second");
        let s = room.status();
        assert_eq!((s.malformed, s.unknown_type, s.too_large), (1, 1, 1));
        // A good sample still counts, and is where the viewer looks now.
        say(
            &room,
            "a",
            &mut a,
            json!({"type":"viewport","t":1,"yaw":190,"pitch":5}),
        );
        let v = room.viewers()["a"].viewport.unwrap();
        assert!((v.yaw_deg - -170.0).abs() < 1e-9, "{v:?}");
        assert_eq!(room.status().viewers_sending_views, 1);
    }

    #[test]
    fn telemetry_over_the_limit_is_refused() {
        let (room, _) = room(None);
        let mut rx = room.telemetry.subscribe();
        room.send_telemetry(json!({"battery": 0.5})).unwrap();
        let text = rx.try_recv().unwrap();
        assert!(matches!(
            parse_broadcaster(text.as_bytes(), true),
            Ok(BroadcasterMessage::Telemetry { data, .. }) if data == json!({"battery": 0.5})
        ));
        assert!(
            room.send_telemetry(json!("x".repeat(MAX_MESSAGE_BYTES)))
                .is_err()
        );
    }
}
