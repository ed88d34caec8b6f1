//! The broadcaster's viewers as a pure state machine: no sockets, no tasks, no clock.
//!
//! The broadcaster's I/O loop ([`crate::broadcaster`]) feeds it what the signal server and each
//! peer connection report, with the current time, and carries out the [`Output`]s it returns:
//! announce ourselves, open a connection for a viewer, send an offer or a candidate, tell a
//! connection to apply an answer, start forwarding or close, ask the encoder for a keyframe.
//! Tests drive it with fake time.
//!
//! Every connection has its own [`ConnId`]. A viewer that asks again gets a new connection and
//! the old one is closed; whatever the old one still reports (its `Closed` included) is
//! ignored, so it can never remove or disturb its successor.
//!
//! Keyframes: a viewer that starts receiving, asks (PLI/FIR) or falls behind needs one; the
//! encoder is asked at most every [`KEYFRAME_MIN_INTERVAL`], and a request that comes sooner
//! is kept until then (fifty viewers joining at once cost two keyframes, not fifty).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

pub use crate::peer::ConnId;

/// A viewer's signalling id.
pub type ViewerId = String;

/// Keyframes are made at most this often, whoever asks.
pub const KEYFRAME_MIN_INTERVAL: Duration = Duration::from_millis(200);
/// A viewer whose answer has not come after this may ask again (and gets a new connection).
pub const OFFER_TIMEOUT: Duration = Duration::from_secs(5);
/// How often connected viewers' figures are gathered.
pub const STATS_INTERVAL: Duration = Duration::from_secs(1);

/// Something that happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// Connected (again) to the signal server.
    SignalUp,
    /// The signal server is unreachable for now (peer connections carry on).
    SignalDown,
    /// The broadcaster that had replaced us left: the room is ours again.
    RoomFree,
    /// A viewer asks to watch (`watcher`).
    Watcher(ViewerId),
    /// A viewer left (`disconnectPeer`/`bye`).
    ViewerLeft(ViewerId),
    /// A viewer's answer to our offer.
    Answer(ViewerId, Value),
    /// A viewer's ICE candidate.
    Candidate(ViewerId, Value),
    /// What one of our connections reported.
    Conn(ConnId, ConnReport),
}

/// What a viewer's connection reports.
#[derive(Debug, Clone, PartialEq)]
pub enum ConnReport {
    /// Set up, with this offer for the viewer.
    Offer(Value),
    /// Could not be set up, or the viewer's answer was unusable.
    Failed(String),
    /// A local ICE candidate for the viewer.
    LocalCandidate(Value),
    /// Media can flow.
    Connected,
    /// The connection failed or closed.
    Closed,
    /// The viewer asked for a keyframe (PLI/FIR).
    KeyframeRequest,
    /// The connection fell behind the encoder and skipped to the next keyframe.
    Lagged,
    /// Figures, when asked for them: bytes sent in all, the round-trip time.
    Stats {
        bytes_sent: u64,
        /// Of which the sound's RTP payloads and headers.
        audio_bytes_sent: u64,
        rtt_ms: Option<f64>,
    },
}

/// What a connection is told to do.
#[derive(Debug, Clone, PartialEq)]
pub enum ConnCommand {
    /// Apply the viewer's answer.
    Answer(Value),
    /// Add the viewer's ICE candidate.
    Candidate(Value),
    /// Connected: start sending the tracks, from a keyframe.
    Forward,
    /// Report [`ConnReport::Stats`].
    GatherStats,
    /// Close and end.
    Close,
}

impl ConnCommand {
    /// What it is, in a word (for logs: an answer's SDP is long).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Answer(_) => "answer",
            Self::Candidate(_) => "candidate",
            Self::Forward => "forward",
            Self::GatherStats => "gather stats",
            Self::Close => "close",
        }
    }
}

/// Something to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Tell the signal server we are the broadcaster (`broadcaster`).
    Announce,
    /// Set up connection `conn` for `viewer`: tracks, then an offer ([`ConnReport::Offer`]).
    Open { conn: ConnId, viewer: ViewerId },
    /// Send the viewer our offer.
    SendOffer { viewer: ViewerId, offer: Value },
    /// Send the viewer one of our ICE candidates.
    SendCandidate { viewer: ViewerId, candidate: Value },
    /// Tell a connection what to do.
    Conn(ConnId, ConnCommand),
    /// Make the next frame a keyframe.
    Keyframe,
}

/// One viewer as the broadcaster sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ViewerSummary {
    /// The viewer's signalling id.
    pub id: ViewerId,
    /// Its peer connection is up (media flowing).
    pub connected: bool,
    pub connected_for_s: u64,
    pub rtt_ms: Option<f64>,
    /// Sent to this viewer over the last figures interval.
    pub sent_kbps: f64,
    /// Of which sound.
    pub audio_sent_kbps: f64,
    /// What its data channels said (the broadcaster fills this in; the fan-out knows nothing
    /// of it).
    pub data: Option<crate::channels::room::ViewerData>,
}

#[derive(Debug)]
struct Viewer {
    conn: ConnId,
    /// When our offer went out, until the answer arrives.
    offered: Option<Instant>,
    connected_at: Option<Instant>,
    /// The last figures: bytes sent in all and when.
    sent: Option<(u64, u64, Instant)>,
    rtt_ms: Option<f64>,
    sent_kbps: f64,
    audio_sent_kbps: f64,
}

/// The state machine.
#[derive(Debug)]
pub struct Fanout {
    viewers: HashMap<ViewerId, Viewer>,
    /// Which viewer each current connection serves.
    conns: HashMap<ConnId, ViewerId>,
    next_conn: u64,
    signal_up: bool,
    last_keyframe: Option<Instant>,
    keyframe_pending: bool,
    next_stats: Instant,
    outputs: VecDeque<Output>,
}

impl Fanout {
    pub fn new(now: Instant) -> Self {
        Self {
            viewers: HashMap::new(),
            conns: HashMap::new(),
            next_conn: 1,
            signal_up: false,
            last_keyframe: None,
            keyframe_pending: false,
            next_stats: now + STATS_INTERVAL,
            outputs: VecDeque::new(),
        }
    }

    /// Takes in what happened at `now`; what to do then comes from [`poll_output`].
    ///
    /// [`poll_output`]: Self::poll_output
    pub fn handle_input(&mut self, now: Instant, input: Input) {
        match input {
            Input::SignalUp => {
                self.signal_up = true;
                self.outputs.push_back(Output::Announce);
            }
            Input::SignalDown => self.signal_up = false,
            Input::RoomFree => self.outputs.push_back(Output::Announce),
            Input::Watcher(viewer) => self.watcher(now, viewer),
            Input::ViewerLeft(viewer) => {
                if self.remove(&viewer).is_some() {
                    tracing::info!(viewer = %viewer, "viewer left");
                }
            }
            Input::Answer(viewer, answer) => match self.viewers.get_mut(&viewer) {
                Some(v) => {
                    v.offered = None;
                    let conn = v.conn;
                    self.command(conn, ConnCommand::Answer(answer));
                }
                None => tracing::debug!(viewer = %viewer, "an answer from nobody we offered to"),
            },
            Input::Candidate(viewer, candidate) => match self.viewers.get(&viewer) {
                Some(v) => {
                    let conn = v.conn;
                    self.command(conn, ConnCommand::Candidate(candidate));
                }
                None => tracing::debug!(viewer = %viewer, "a candidate from an unknown viewer"),
            },
            Input::Conn(conn, report) => self.conn_report(now, conn, report),
        }
    }

    fn watcher(&mut self, now: Instant, viewer: ViewerId) {
        // A viewer asks on connect and again when it hears `broadcaster`: answer the first
        // request only, or its answer would land on the second offer.
        let pending = self
            .viewers
            .get(&viewer)
            .and_then(|v| v.offered)
            .is_some_and(|t| now.saturating_duration_since(t) < OFFER_TIMEOUT);
        if pending {
            return;
        }
        self.remove(&viewer);
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        self.conns.insert(conn, viewer.clone());
        self.viewers.insert(
            viewer.clone(),
            Viewer {
                conn,
                offered: Some(now),
                connected_at: None,
                sent: None,
                rtt_ms: None,
                sent_kbps: 0.0,
                audio_sent_kbps: 0.0,
            },
        );
        self.outputs.push_back(Output::Open { conn, viewer });
    }

    fn conn_report(&mut self, now: Instant, conn: ConnId, report: ConnReport) {
        let Some(viewer) = self.conns.get(&conn).cloned() else {
            // A connection that was replaced or removed: whatever it says is stale.
            tracing::debug!(%conn, "stale report ignored: {report:?}");
            return;
        };
        match report {
            ConnReport::Offer(offer) => self.outputs.push_back(Output::SendOffer { viewer, offer }),
            ConnReport::LocalCandidate(candidate) => {
                self.outputs
                    .push_back(Output::SendCandidate { viewer, candidate });
            }
            ConnReport::Failed(e) => {
                tracing::warn!(viewer = %viewer, "viewer connection: {e}");
                self.remove(&viewer);
            }
            ConnReport::Closed => {
                tracing::info!(viewer = %viewer, "viewer connection closed");
                self.remove(&viewer);
            }
            ConnReport::Connected => {
                if let Some(v) = self.viewers.get_mut(&viewer) {
                    v.connected_at.get_or_insert(now);
                }
                self.command(conn, ConnCommand::Forward);
                self.want_keyframe(now);
            }
            ConnReport::KeyframeRequest | ConnReport::Lagged => self.want_keyframe(now),
            ConnReport::Stats {
                bytes_sent,
                audio_bytes_sent,
                rtt_ms,
            } => {
                if let Some(v) = self.viewers.get_mut(&viewer) {
                    if let Some((before, audio_before, at)) = v.sent {
                        let secs = now.saturating_duration_since(at).as_secs_f64();
                        if secs > 0.0 {
                            let kbps =
                                |b: u64, a: u64| b.saturating_sub(a) as f64 * 8.0 / 1000.0 / secs;
                            v.sent_kbps = kbps(bytes_sent, before);
                            v.audio_sent_kbps = kbps(audio_bytes_sent, audio_before);
                        }
                    }
                    v.sent = Some((bytes_sent, audio_bytes_sent, now));
                    v.rtt_ms = rtt_ms.or(v.rtt_ms);
                }
            }
        }
    }

    fn command(&mut self, conn: ConnId, command: ConnCommand) {
        self.outputs.push_back(Output::Conn(conn, command));
    }

    /// Removes a viewer and closes its connection.
    fn remove(&mut self, viewer: &str) -> Option<ConnId> {
        let v = self.viewers.remove(viewer)?;
        self.conns.remove(&v.conn);
        self.command(v.conn, ConnCommand::Close);
        Some(v.conn)
    }

    fn want_keyframe(&mut self, now: Instant) {
        let due = self.last_keyframe.map(|t| t + KEYFRAME_MIN_INTERVAL);
        if due.is_none_or(|d| now >= d) {
            self.last_keyframe = Some(now);
            self.keyframe_pending = false;
            self.outputs.push_back(Output::Keyframe);
        } else {
            self.keyframe_pending = true;
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) wants to run next.
    pub fn poll_timeout(&self) -> Instant {
        let keyframe = self
            .keyframe_pending
            .then(|| self.last_keyframe.map(|t| t + KEYFRAME_MIN_INTERVAL))
            .flatten();
        keyframe.map_or(self.next_stats, |k| k.min(self.next_stats))
    }

    /// Time passed: a deferred keyframe falls due, connected viewers' figures are gathered.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.keyframe_pending {
            self.want_keyframe(now);
        }
        if now >= self.next_stats {
            self.next_stats = now + STATS_INTERVAL;
            let mut connected: Vec<ConnId> = self
                .viewers
                .values()
                .filter(|v| v.connected_at.is_some())
                .map(|v| v.conn)
                .collect();
            connected.sort();
            for conn in connected {
                self.command(conn, ConnCommand::GatherStats);
            }
        }
    }

    /// The next thing to do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Closes every connection (the broadcast ends); their commands come from
    /// [`poll_output`](Self::poll_output).
    pub fn close_all(&mut self) {
        let viewers: Vec<ViewerId> = self.viewers.keys().cloned().collect();
        for v in viewers {
            self.remove(&v);
        }
    }

    pub fn signal_up(&self) -> bool {
        self.signal_up
    }

    /// Viewers whose connection is up.
    pub fn connected(&self) -> usize {
        self.viewers
            .values()
            .filter(|v| v.connected_at.is_some())
            .count()
    }

    /// Every viewer, sorted by id.
    pub fn viewers(&self, now: Instant) -> Vec<ViewerSummary> {
        let mut list: Vec<_> = self
            .viewers
            .iter()
            .map(|(id, v)| ViewerSummary {
                id: id.clone(),
                connected: v.connected_at.is_some(),
                connected_for_s: v
                    .connected_at
                    .map_or(0, |t| now.saturating_duration_since(t).as_secs()),
                rtt_ms: v.rtt_ms,
                sent_kbps: v.sent_kbps,
                audio_sent_kbps: v.audio_sent_kbps,
                data: None,
            })
            .collect();
        list.sort_by(|a, b| a.id.cmp(&b.id));
        list
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Test {
        fanout: Fanout,
        t0: Instant,
        now: Instant,
    }

    impl Test {
        fn new() -> Self {
            let t0 = Instant::now();
            Self {
                fanout: Fanout::new(t0),
                t0,
                now: t0,
            }
        }

        fn at_ms(&mut self, ms: u64) -> &mut Self {
            self.now = self.t0 + Duration::from_millis(ms);
            self
        }

        fn input(&mut self, input: Input) -> Vec<Output> {
            self.fanout.handle_input(self.now, input);
            self.drain()
        }

        fn timeout(&mut self) -> Vec<Output> {
            self.fanout.handle_timeout(self.now);
            self.drain()
        }

        fn drain(&mut self) -> Vec<Output> {
            std::iter::from_fn(|| self.fanout.poll_output()).collect()
        }

        /// A viewer asks to watch; returns its connection.
        fn join(&mut self, viewer: &str) -> ConnId {
            let out = self.input(Input::Watcher(viewer.into()));
            match out.as_slice() {
                [.., Output::Open { conn, viewer: v }] if v == viewer => *conn,
                other => panic!("no Open for {viewer}: {other:?}"),
            }
        }
    }

    fn keyframes(out: &[Output]) -> usize {
        out.iter().filter(|o| **o == Output::Keyframe).count()
    }

    #[test]
    fn a_viewer_is_offered_answered_connected_and_sent_a_keyframe() {
        let mut t = Test::new();
        assert_eq!(t.input(Input::SignalUp), [Output::Announce]);
        let c = t.join("v1");
        assert_eq!(
            t.input(Input::Conn(c, ConnReport::Offer(json!({"sdp": "o"})))),
            [Output::SendOffer {
                viewer: "v1".into(),
                offer: json!({"sdp": "o"})
            }]
        );
        // Signalling arrives in order and goes to this connection in order.
        assert_eq!(
            t.input(Input::Answer("v1".into(), json!("a"))),
            [Output::Conn(c, ConnCommand::Answer(json!("a")))]
        );
        assert_eq!(
            t.input(Input::Candidate("v1".into(), json!("c"))),
            [Output::Conn(c, ConnCommand::Candidate(json!("c")))]
        );
        assert_eq!(
            t.input(Input::Conn(c, ConnReport::LocalCandidate(json!("l")))),
            [Output::SendCandidate {
                viewer: "v1".into(),
                candidate: json!("l")
            }]
        );
        assert!(!t.fanout.viewers(t.now)[0].connected);
        t.at_ms(300);
        assert_eq!(
            t.input(Input::Conn(c, ConnReport::Connected)),
            [Output::Conn(c, ConnCommand::Forward), Output::Keyframe]
        );
        assert_eq!(t.fanout.connected(), 1);
        // It leaves: its connection is closed and it is no longer listed.
        assert_eq!(
            t.input(Input::ViewerLeft("v1".into())),
            [Output::Conn(c, ConnCommand::Close)]
        );
        assert!(t.fanout.viewers(t.now).is_empty());
    }

    #[test]
    fn a_replaced_connections_late_closed_leaves_its_successor_alone() {
        let mut t = Test::new();
        let first = t.join("v1");
        t.input(Input::Conn(first, ConnReport::Offer(json!("o1"))));
        // No answer within the offer timeout: the viewer asks again and gets a new connection;
        // the first is told to close.
        t.at_ms(OFFER_TIMEOUT.as_millis() as u64 + 100);
        let out = t.input(Input::Watcher("v1".into()));
        let second = match out.as_slice() {
            [
                Output::Conn(old, ConnCommand::Close),
                Output::Open { conn, .. },
            ] if *old == first => *conn,
            other => panic!("{other:?}"),
        };
        assert_ne!(first, second);
        t.input(Input::Conn(second, ConnReport::Connected));
        // The first connection's late reports, `Closed` among them, change nothing.
        for late in [
            ConnReport::Closed,
            ConnReport::Connected,
            ConnReport::Offer(json!("stale")),
            ConnReport::LocalCandidate(json!("stale")),
            ConnReport::Failed("gone".into()),
        ] {
            assert_eq!(t.input(Input::Conn(first, late)), []);
        }
        let list = t.fanout.viewers(t.now);
        assert_eq!(list.len(), 1);
        assert!(list[0].connected, "{list:?}");
        // Its successor's own Closed does remove it.
        assert_eq!(
            t.input(Input::Conn(second, ConnReport::Closed)),
            [Output::Conn(second, ConnCommand::Close)]
        );
        assert!(t.fanout.viewers(t.now).is_empty());
    }

    #[test]
    fn a_second_watcher_request_while_the_offer_is_pending_is_ignored() {
        let mut t = Test::new();
        t.join("v1");
        t.at_ms(1_000);
        assert_eq!(t.input(Input::Watcher("v1".into())), []);
        // After the answer, a new request is a new connection (the viewer reloaded, say).
        t.input(Input::Answer("v1".into(), json!("a")));
        t.join("v1");
    }

    #[test]
    fn signalling_for_unknown_viewers_is_ignored() {
        let mut t = Test::new();
        assert_eq!(t.input(Input::Answer("ghost".into(), json!("a"))), []);
        assert_eq!(t.input(Input::Candidate("ghost".into(), json!("c"))), []);
        assert_eq!(t.input(Input::ViewerLeft("ghost".into())), []);
        assert_eq!(t.input(Input::Conn(ConnId(99), ConnReport::Connected)), []);
    }

    #[test]
    fn keyframes_are_asked_for_at_most_every_200_ms_and_none_is_forgotten() {
        let mut t = Test::new();
        let c = t.join("v1");
        t.input(Input::Conn(c, ConnReport::Connected));
        // PLIs 50 ms apart: the first waits for the interval, the rest ride along.
        let mut asked = 0;
        for ms in [50, 100, 150] {
            asked += keyframes(
                &t.at_ms(ms)
                    .input(Input::Conn(c, ConnReport::KeyframeRequest)),
            );
        }
        assert_eq!(asked, 0);
        assert_eq!(t.fanout.poll_timeout(), t.t0 + KEYFRAME_MIN_INTERVAL);
        assert_eq!(keyframes(&t.at_ms(199).timeout()), 0);
        assert_eq!(keyframes(&t.at_ms(200).timeout()), 1);
        assert_eq!(keyframes(&t.at_ms(400).timeout()), 0, "nothing pending");
        // Falling behind asks too; long after the last one it is asked at once.
        assert_eq!(
            keyframes(&t.at_ms(1_000).input(Input::Conn(c, ConnReport::Lagged))),
            1
        );
    }

    #[test]
    fn fifty_viewers_joining_at_once_are_all_served_with_two_keyframes() {
        let mut t = Test::new();
        t.input(Input::SignalUp);
        let conns: Vec<ConnId> = (0..50).map(|i| t.join(&format!("v{i:02}"))).collect();
        let mut unique = conns.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 50, "a connection each");
        let mut offers = 0;
        for (i, c) in conns.iter().enumerate() {
            let out = t.input(Input::Conn(*c, ConnReport::Offer(json!(i))));
            offers += out
                .iter()
                .filter(|o| matches!(o, Output::SendOffer { viewer, offer } if *viewer == format!("v{i:02}") && *offer == json!(i)))
                .count();
            t.input(Input::Answer(format!("v{i:02}"), json!("a")));
        }
        assert_eq!(offers, 50, "each offer to its own viewer");
        // All connect within 100 ms.
        let mut forwards = 0;
        let mut asked = 0;
        for (i, c) in conns.iter().enumerate() {
            let out = t
                .at_ms(10 + i as u64 * 2)
                .input(Input::Conn(*c, ConnReport::Connected));
            forwards += out
                .iter()
                .filter(|o| **o == Output::Conn(*c, ConnCommand::Forward))
                .count();
            asked += keyframes(&out);
        }
        asked += keyframes(&t.at_ms(210).timeout());
        assert_eq!(forwards, 50);
        assert_eq!(
            asked, 2,
            "one at once, one for those that came within 200 ms"
        );
        assert_eq!(t.fanout.connected(), 50);
        // Figures are gathered from every connected viewer once a second.
        let out = t.at_ms(1_000).timeout();
        let gathered = out
            .iter()
            .filter(|o| matches!(o, Output::Conn(_, ConnCommand::GatherStats)))
            .count();
        assert_eq!(gathered, 50);
        // The broadcast ends: every connection is closed.
        t.fanout.close_all();
        let closes = t
            .drain()
            .iter()
            .filter(|o| matches!(o, Output::Conn(_, ConnCommand::Close)))
            .count();
        assert_eq!(closes, 50);
        assert!(t.fanout.viewers(t.now).is_empty());
    }

    #[test]
    fn figures_give_each_viewers_rate_and_round_trip() {
        let mut t = Test::new();
        let c = t.join("v1");
        t.input(Input::Conn(c, ConnReport::Connected));
        let stats = |bytes, rtt| {
            Input::Conn(
                c,
                ConnReport::Stats {
                    bytes_sent: bytes,
                    audio_bytes_sent: bytes / 50,
                    rtt_ms: rtt,
                },
            )
        };
        t.at_ms(1_000).input(stats(50_000, None));
        t.at_ms(2_000).input(stats(300_000, Some(1.5)));
        let v = &t.fanout.viewers(t.now)[0];
        assert_eq!(v.sent_kbps, 2_000.0, "250,000 bytes in a second");
        assert_eq!(v.audio_sent_kbps, 40.0, "5,000 of them sound");
        assert_eq!(v.rtt_ms, Some(1.5));
        assert_eq!(v.connected_for_s, 2);
        // A report without a round trip keeps the last one.
        t.at_ms(3_000).input(stats(300_000, None));
        let v = &t.fanout.viewers(t.now)[0];
        assert_eq!((v.sent_kbps, v.rtt_ms), (0.0, Some(1.5)));
    }

    #[test]
    fn a_connection_that_cannot_be_set_up_removes_its_viewer() {
        let mut t = Test::new();
        let c = t.join("v1");
        assert_eq!(
            t.input(Input::Conn(c, ConnReport::Failed("bad answer".into()))),
            [Output::Conn(c, ConnCommand::Close)]
        );
        assert!(t.fanout.viewers(t.now).is_empty());
        // It may ask again at once.
        t.join("v1");
    }

    #[test]
    fn the_broadcaster_announces_itself_whenever_the_room_is_its_own_again() {
        let mut t = Test::new();
        assert!(!t.fanout.signal_up());
        assert_eq!(t.input(Input::SignalUp), [Output::Announce]);
        assert_eq!(t.input(Input::SignalDown), []);
        assert!(!t.fanout.signal_up());
        assert_eq!(t.input(Input::SignalUp), [Output::Announce]);
        assert_eq!(t.input(Input::RoomFree), [Output::Announce]);
    }
}
