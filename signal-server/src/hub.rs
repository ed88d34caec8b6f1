//! The signalling protocol as a pure state machine: no sockets, no clocks, no locks.
//!
//! The transport glue ([`crate::relay`]) feeds it connects, messages and disconnects with the
//! current time, and delivers the [`Outgoing`] messages it returns. Tests drive it directly with
//! fake time.
//!
//! Classic protocol (the Node "broadcast server" every tutorial ships):
//! - `broadcaster` () → remember the sender as the room's broadcaster, `broadcaster` () to every
//!   other socket of the room;
//! - `watcher` () → `watcher` (watcherId) to the broadcaster;
//! - `offer` / `answer` / `candidate` (targetId, payload) → same event (senderId, payload) to target;
//! - a watcher that disconnects → `disconnectPeer` (id) and `bye` (id) to the broadcaster.
//!
//! Extensions (classic clients ignore events they do not know):
//! - rooms, chosen when connecting;
//! - a broadcaster key, configured per room or claimed by the first keyed broadcaster, so nobody
//!   can take over a broadcast;
//! - `broadcasterLeft` () to the room when its broadcaster goes (plus `disconnectPeer`/`bye` with
//!   the broadcaster's id to its watchers), `noBroadcaster` () to a watcher that asks too early;
//! - `viewers` (count) to the broadcaster whenever its viewer count changes;
//! - `replaced` (newBroadcasterId) to a broadcaster another one took over from;
//! - `error` ({code, event, message}) to a sender whose message was rejected.

use std::collections::{HashMap, HashSet};
use std::str::FromStr as _;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
pub use socketioxide::socket::Sid;

/// Longest room name accepted, in bytes.
pub const MAX_ROOM_NAME_BYTES: usize = 64;
/// Longest broadcaster key accepted, in bytes.
pub const MAX_KEY_BYTES: usize = 256;
/// The room a client lands in when it names none (the classic single-broadcast behaviour).
pub const DEFAULT_ROOM: &str = "";

/// Limits and keys the hub enforces.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Largest accepted message (the whole Socket.IO event, as JSON text), in bytes.
    pub max_payload_bytes: usize,
    /// Sustained messages per second one socket may send.
    pub max_events_per_sec: u32,
    /// Messages one socket may send in a burst above the sustained rate.
    pub max_event_burst: u32,
    /// Key required to broadcast in any room without a key of its own.
    pub broadcaster_key: Option<String>,
    /// Keys required to broadcast in particular rooms.
    pub room_keys: HashMap<String, String>,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            max_payload_bytes: 64 * 1024,
            max_events_per_sec: 200,
            max_event_burst: 400,
            broadcaster_key: None,
            room_keys: HashMap::new(),
        }
    }
}

/// Why a connection or message was refused. The code is what clients see in `error` events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rejection {
    BadArguments,
    UnknownEvent,
    UnknownTarget,
    PayloadTooLarge,
    RateLimited,
    BroadcasterKey,
    BinaryNotSupported,
    TargetBusy,
}

impl Rejection {
    pub const ALL: [Rejection; 8] = [
        Rejection::BadArguments,
        Rejection::UnknownEvent,
        Rejection::UnknownTarget,
        Rejection::PayloadTooLarge,
        Rejection::RateLimited,
        Rejection::BroadcasterKey,
        Rejection::BinaryNotSupported,
        Rejection::TargetBusy,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Rejection::BadArguments => "bad_arguments",
            Rejection::UnknownEvent => "unknown_event",
            Rejection::UnknownTarget => "unknown_target",
            Rejection::PayloadTooLarge => "payload_too_large",
            Rejection::RateLimited => "rate_limited",
            Rejection::BroadcasterKey => "broadcaster_key",
            Rejection::BinaryNotSupported => "binary_not_supported",
            Rejection::TargetBusy => "target_busy",
        }
    }
}

/// The relayed events, as counted in metrics.
pub const RELAY_EVENTS: [&str; 3] = ["offer", "answer", "candidate"];

/// What the glue could make of a message's arguments before handing it to the hub.
#[derive(Debug)]
pub enum Args {
    /// The decoded arguments, in order.
    Json(Vec<Value>),
    /// The message was larger than [`HubConfig::max_payload_bytes`]; it was not decoded.
    TooLarge { bytes: usize },
    /// The message carried binary attachments, which the protocol never uses.
    Binary,
    /// The arguments were not valid JSON.
    Malformed(String),
}

/// A message for one socket.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub to: Sid,
    pub event: &'static str,
    pub args: Vec<Value>,
}

/// Why a client may not join.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JoinError {
    #[error("room name is longer than {MAX_ROOM_NAME_BYTES} bytes")]
    RoomTooLong,
    #[error("room name may only contain letters, digits, '-', '_' and '.'")]
    RoomInvalid,
    #[error("broadcaster key is longer than {MAX_KEY_BYTES} bytes")]
    KeyTooLong,
}

/// Checks a room name given by a client; `None` or empty means the default room.
pub fn validate_room(room: Option<&str>) -> Result<String, JoinError> {
    let room = room.unwrap_or(DEFAULT_ROOM);
    if room.len() > MAX_ROOM_NAME_BYTES {
        return Err(JoinError::RoomTooLong);
    }
    if !room
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(JoinError::RoomInvalid);
    }
    Ok(room.to_owned())
}

/// Checks a broadcaster key given by a client.
pub fn validate_key(key: Option<&str>) -> Result<Option<String>, JoinError> {
    match key {
        Some(k) if k.len() > MAX_KEY_BYTES => Err(JoinError::KeyTooLong),
        Some("") | None => Ok(None),
        Some(k) => Ok(Some(k.to_owned())),
    }
}

#[derive(Debug)]
struct TokenBucket {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(now: Instant, burst: u32) -> Self {
        Self {
            tokens: f64::from(burst),
            last: now,
        }
    }

    fn take(&mut self, now: Instant, per_sec: u32, burst: u32) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now.max(self.last);
        self.tokens = (self.tokens + elapsed * f64::from(per_sec)).min(f64::from(burst));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// How often one socket is told that it is being rate limited.
const RATE_NOTICE_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Member {
    room: String,
    key: Option<String>,
    bucket: TokenBucket,
    last_rate_notice: Option<Instant>,
    /// Has asked to watch, or exchanged signalling with the broadcaster: it holds a peer
    /// connection the broadcaster must be told to close when it leaves.
    peer_of_broadcaster: bool,
}

#[derive(Debug, Default)]
struct Room {
    members: HashSet<Sid>,
    broadcaster: Option<Sid>,
    /// Key claimed by the current broadcaster when the room has no configured key.
    claimed_key: Option<String>,
    /// Sockets that asked to watch (the viewer count).
    watchers: HashSet<Sid>,
}

/// Counters since start, for metrics.
#[derive(Debug, Default, Clone)]
pub struct Counters {
    pub relayed: HashMap<&'static str, u64>,
    pub rejected: HashMap<Rejection, u64>,
}

/// A point-in-time view of the hub, for metrics and health.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub sockets: usize,
    pub rooms: usize,
    pub broadcasters: usize,
    pub viewers: usize,
    pub counters: Counters,
}

/// The signalling state of every room.
#[derive(Debug)]
pub struct Hub {
    config: HubConfig,
    members: HashMap<Sid, Member>,
    rooms: HashMap<String, Room>,
    counters: Counters,
}

impl Hub {
    pub fn new(config: HubConfig) -> Self {
        Self {
            config,
            members: HashMap::new(),
            rooms: HashMap::new(),
            counters: Counters::default(),
        }
    }

    /// A socket joined `room` (already validated), optionally presenting a broadcaster key.
    pub fn connect(&mut self, now: Instant, sid: Sid, room: String, key: Option<String>) {
        if self.members.contains_key(&sid) {
            return;
        }
        self.rooms
            .entry(room.clone())
            .or_default()
            .members
            .insert(sid);
        self.members.insert(
            sid,
            Member {
                room,
                key,
                bucket: TokenBucket::new(now, self.config.max_event_burst),
                last_rate_notice: None,
                peer_of_broadcaster: false,
            },
        );
    }

    /// Is this socket known (connected and not yet disconnected)?
    pub fn contains(&self, sid: Sid) -> bool {
        self.members.contains_key(&sid)
    }

    /// The room a socket is in.
    pub fn room_of(&self, sid: Sid) -> Option<&str> {
        self.members.get(&sid).map(|m| m.room.as_str())
    }

    /// A socket left; tells whoever needs to know.
    pub fn disconnect(&mut self, sid: Sid) -> Vec<Outgoing> {
        let mut out = Vec::new();
        let Some(member) = self.members.remove(&sid) else {
            return out;
        };
        let Some(room) = self.rooms.get_mut(&member.room) else {
            return out;
        };
        room.members.remove(&sid);
        let was_watcher = room.watchers.remove(&sid);
        if room.broadcaster == Some(sid) {
            room.broadcaster = None;
            room.claimed_key = None;
            let id = Value::String(sid.to_string());
            for &other in &room.members {
                out.push(Outgoing::new(other, "broadcasterLeft", vec![]));
                let is_peer = self
                    .members
                    .get(&other)
                    .is_some_and(|m| m.peer_of_broadcaster);
                if is_peer {
                    out.push(Outgoing::new(other, "disconnectPeer", vec![id.clone()]));
                    out.push(Outgoing::new(other, "bye", vec![id.clone()]));
                }
            }
            for &other in &room.members {
                if let Some(m) = self.members.get_mut(&other) {
                    m.peer_of_broadcaster = false;
                }
            }
        } else if let Some(b) = room.broadcaster
            && member.peer_of_broadcaster
        {
            let id = Value::String(sid.to_string());
            out.push(Outgoing::new(b, "disconnectPeer", vec![id.clone()]));
            out.push(Outgoing::new(b, "bye", vec![id]));
            if was_watcher {
                out.push(viewer_count(b, room));
            }
        }
        if room.members.is_empty() {
            self.rooms.remove(&member.room);
        }
        out
    }

    /// A message from a socket. Returns what to deliver; a rejected message yields exactly one
    /// `error` event for the sender (or nothing while a flood is being dropped).
    pub fn message(&mut self, now: Instant, sid: Sid, event: &str, args: Args) -> Vec<Outgoing> {
        match self.process(now, sid, event, args) {
            Ok(out) => out,
            Err((rejection, message)) => {
                *self.counters.rejected.entry(rejection).or_default() += 1;
                if rejection == Rejection::RateLimited {
                    let Some(m) = self.members.get_mut(&sid) else {
                        return vec![];
                    };
                    let due = m
                        .last_rate_notice
                        .is_none_or(|t| now.saturating_duration_since(t) >= RATE_NOTICE_INTERVAL);
                    if !due {
                        return vec![];
                    }
                    m.last_rate_notice = Some(now);
                }
                vec![error_event(sid, rejection, event, &message)]
            }
        }
    }

    /// A delivery to `to` failed because its outgoing buffer is full: tell the sender.
    pub fn target_busy(&mut self, sender: Sid, event: &str, to: Sid) -> Outgoing {
        *self
            .counters
            .rejected
            .entry(Rejection::TargetBusy)
            .or_default() += 1;
        error_event(
            sender,
            Rejection::TargetBusy,
            event,
            &format!("socket {to} is not reading its messages; '{event}' was dropped"),
        )
    }

    fn process(
        &mut self,
        now: Instant,
        sid: Sid,
        event: &str,
        args: Args,
    ) -> Result<Vec<Outgoing>, (Rejection, String)> {
        let per_sec = self.config.max_events_per_sec;
        let burst = self.config.max_event_burst;
        let member = self.members.get_mut(&sid).ok_or_else(not_registered)?;
        // A broadcaster legitimately sends a few messages per viewer (offer, candidates): its
        // budget grows with its audience, so a big room is not throttled, while a socket
        // with no audience keeps the plain limit.
        let scale = self
            .rooms
            .get(&member.room)
            .filter(|r| r.broadcaster == Some(sid))
            .map_or(1, |r| {
                u32::try_from(r.watchers.len())
                    .unwrap_or(u32::MAX)
                    .saturating_add(1)
            });
        let (per_sec, burst) = (per_sec.saturating_mul(scale), burst.saturating_mul(scale));
        if !member.bucket.take(now, per_sec, burst) {
            return Err((
                Rejection::RateLimited,
                format!(
                    "more than {per_sec} messages per second (burst {burst}); messages are being dropped"
                ),
            ));
        }
        let args = match args {
            Args::Json(args) => args,
            Args::TooLarge { bytes } => {
                return Err((
                    Rejection::PayloadTooLarge,
                    format!(
                        "message of {bytes} bytes exceeds the limit of {} bytes",
                        self.config.max_payload_bytes
                    ),
                ));
            }
            Args::Binary => {
                return Err((
                    Rejection::BinaryNotSupported,
                    "binary attachments are not part of the signalling protocol".to_owned(),
                ));
            }
            Args::Malformed(why) => {
                return Err((
                    Rejection::BadArguments,
                    format!("malformed arguments: {why}"),
                ));
            }
        };
        match event {
            "broadcaster" => self.on_broadcaster(sid, &args),
            "watcher" => self.on_watcher(sid, &args),
            "offer" | "answer" | "candidate" => self.on_relay(sid, event, args),
            // A client checking that its connection still carries messages: nothing to do.
            "keepalive" => Ok(Vec::new()),
            _ => Err((
                Rejection::UnknownEvent,
                format!(
                    "unknown event '{}'; expected broadcaster, watcher, offer, answer or candidate",
                    truncate(event, 64)
                ),
            )),
        }
    }

    fn on_broadcaster(
        &mut self,
        sid: Sid,
        args: &[Value],
    ) -> Result<Vec<Outgoing>, (Rejection, String)> {
        let offered_key = match args {
            [] => None,
            [Value::String(k)] => Some(k.clone()),
            [Value::Object(o)] => match o.get("key") {
                None | Some(Value::Null) => None,
                Some(Value::String(k)) => Some(k.clone()),
                Some(_) => return Err(bad_args("broadcaster", "'key' must be a string")),
            },
            _ => {
                return Err(bad_args(
                    "broadcaster",
                    "expected no arguments, a key string or {key}",
                ));
            }
        };
        let member = self.members.get(&sid).ok_or_else(not_registered)?;
        let room_name = member.room.clone();
        let key = validate_key(offered_key.as_deref())
            .map_err(|e| bad_args("broadcaster", &e.to_string()))?
            .or_else(|| member.key.clone());
        let configured = self
            .config
            .room_keys
            .get(&room_name)
            .or(self.config.broadcaster_key.as_ref())
            .cloned();
        let room = self.rooms.entry(room_name).or_default();
        if let Some(required) = configured.as_ref().or(room.claimed_key.as_ref())
            && room.broadcaster != Some(sid)
            && !constant_time_eq(required.as_bytes(), key.as_deref().unwrap_or("").as_bytes())
        {
            return Err((
                Rejection::BroadcasterKey,
                "this room's broadcast is protected by a key and the key given is missing or wrong"
                    .to_owned(),
            ));
        }
        let mut out = Vec::new();
        if let Some(previous) = room.broadcaster
            && previous != sid
        {
            out.push(Outgoing::new(
                previous,
                "replaced",
                vec![Value::String(sid.to_string())],
            ));
        }
        room.broadcaster = Some(sid);
        room.claimed_key = if configured.is_none() { key } else { None };
        room.watchers.remove(&sid);
        for &other in &room.members {
            if other != sid {
                out.push(Outgoing::new(other, "broadcaster", vec![]));
            }
        }
        out.push(viewer_count(sid, room));
        // Peer connections belonged to the previous broadcaster; watchers re-ask on `broadcaster`.
        for other in &room.members {
            if let Some(m) = self.members.get_mut(other) {
                m.peer_of_broadcaster = false;
            }
        }
        Ok(out)
    }

    fn on_watcher(
        &mut self,
        sid: Sid,
        args: &[Value],
    ) -> Result<Vec<Outgoing>, (Rejection, String)> {
        if !args.is_empty() {
            return Err(bad_args("watcher", "expected no arguments"));
        }
        let member = self.members.get_mut(&sid).ok_or_else(not_registered)?;
        let room = self
            .rooms
            .get_mut(&member.room)
            .ok_or_else(not_registered)?;
        if room.broadcaster == Some(sid) {
            return Err(bad_args("watcher", "the broadcaster cannot watch itself"));
        }
        let newly = room.watchers.insert(sid);
        let Some(b) = room.broadcaster else {
            return Ok(vec![Outgoing::new(sid, "noBroadcaster", vec![])]);
        };
        member.peer_of_broadcaster = true;
        let mut out = vec![Outgoing::new(
            b,
            "watcher",
            vec![Value::String(sid.to_string())],
        )];
        if newly {
            out.push(viewer_count(b, room));
        }
        Ok(out)
    }

    fn on_relay(
        &mut self,
        sid: Sid,
        event: &str,
        args: Vec<Value>,
    ) -> Result<Vec<Outgoing>, (Rejection, String)> {
        let event = relay_event(event);
        let [target, payload]: [Value; 2] = args.try_into().map_err(|args: Vec<Value>| {
            bad_args(
                event,
                &format!(
                    "expected 2 arguments (targetId, payload), got {}",
                    args.len()
                ),
            )
        })?;
        let Value::String(target) = target else {
            return Err(bad_args(event, "targetId must be a string"));
        };
        let unknown = || {
            (
                Rejection::UnknownTarget,
                format!(
                    "no socket '{}' in this room; it may have left",
                    truncate(&target, 64)
                ),
            )
        };
        let target_sid = Sid::from_str(&target).map_err(|_| unknown())?;
        if target_sid == sid {
            return Err(bad_args(event, "a socket cannot send to itself"));
        }
        let sender_room = &self.members.get(&sid).ok_or_else(not_registered)?.room;
        let same_room = self
            .members
            .get(&target_sid)
            .is_some_and(|t| &t.room == sender_room);
        if !same_room {
            return Err(unknown());
        }
        let broadcaster = self.rooms.get(sender_room).and_then(|r| r.broadcaster);
        if broadcaster == Some(target_sid) {
            if let Some(m) = self.members.get_mut(&sid) {
                m.peer_of_broadcaster = true;
            }
        } else if broadcaster == Some(sid)
            && let Some(m) = self.members.get_mut(&target_sid)
        {
            m.peer_of_broadcaster = true;
        }
        *self.counters.relayed.entry(event).or_default() += 1;
        Ok(vec![Outgoing::new(
            target_sid,
            event,
            vec![Value::String(sid.to_string()), payload],
        )])
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            sockets: self.members.len(),
            rooms: self.rooms.len(),
            broadcasters: self
                .rooms
                .values()
                .filter(|r| r.broadcaster.is_some())
                .count(),
            viewers: self.rooms.values().map(|r| r.watchers.len()).sum(),
            counters: self.counters.clone(),
        }
    }
}

impl Outgoing {
    fn new(to: Sid, event: &'static str, args: Vec<Value>) -> Self {
        Self { to, event, args }
    }
}

fn relay_event(event: &str) -> &'static str {
    match event {
        "offer" => "offer",
        "answer" => "answer",
        _ => "candidate",
    }
}

fn viewer_count(broadcaster: Sid, room: &Room) -> Outgoing {
    Outgoing::new(broadcaster, "viewers", vec![json!(room.watchers.len())])
}

fn error_event(to: Sid, rejection: Rejection, event: &str, message: &str) -> Outgoing {
    Outgoing::new(
        to,
        "error",
        vec![json!({
            "code": rejection.code(),
            "event": truncate(event, 64),
            "message": message,
        })],
    )
}

fn bad_args(event: &str, why: &str) -> (Rejection, String) {
    (Rejection::BadArguments, format!("'{event}': {why}"))
}

fn not_registered() -> (Rejection, String) {
    (
        Rejection::UnknownTarget,
        "this socket is not registered".to_owned(),
    )
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub(config: HubConfig) -> (Hub, Instant) {
        (Hub::new(config), Instant::now())
    }

    fn events(out: &[Outgoing]) -> Vec<(Sid, &'static str)> {
        out.iter().map(|o| (o.to, o.event)).collect()
    }

    #[test]
    fn rate_limit_refills_with_time_and_notices_once_per_second() {
        let (mut hub, t0) = hub(HubConfig {
            max_events_per_sec: 10,
            max_event_burst: 5,
            ..HubConfig::default()
        });
        let a = Sid::new();
        hub.connect(t0, a, String::new(), None);
        let watch = |hub: &mut Hub, t| hub.message(t, a, "watcher", Args::Json(vec![]));
        for _ in 0..5 {
            assert_eq!(events(&watch(&mut hub, t0)), vec![(a, "noBroadcaster")]);
        }
        assert_eq!(events(&watch(&mut hub, t0)), vec![(a, "error")]);
        // Dropped silently until the next notice is due.
        assert!(watch(&mut hub, t0 + Duration::from_millis(50)).is_empty());
        // 100 ms later one token came back (10/s).
        let t = t0 + Duration::from_millis(160);
        assert_eq!(events(&watch(&mut hub, t)), vec![(a, "noBroadcaster")]);
        assert!(watch(&mut hub, t).is_empty());
        // A second later the bucket is full again (capped at the burst).
        let t = t0 + Duration::from_secs(5);
        for _ in 0..5 {
            assert_eq!(events(&watch(&mut hub, t)), vec![(a, "noBroadcaster")]);
        }
        assert_eq!(events(&watch(&mut hub, t)), vec![(a, "error")]);
        assert_eq!(hub.snapshot().counters.rejected[&Rejection::RateLimited], 4);
    }

    #[test]
    fn a_broadcasters_budget_grows_with_its_viewers() {
        let (mut hub, t) = hub(HubConfig {
            max_events_per_sec: 1,
            max_event_burst: 2,
            ..HubConfig::default()
        });
        let b = Sid::new();
        hub.connect(t, b, String::new(), None);
        let viewers: Vec<_> = (0..3).map(|_| Sid::new()).collect();
        for &v in &viewers {
            hub.connect(t, v, String::new(), None);
        }
        hub.message(t, b, "broadcaster", Args::Json(vec![]));
        for &v in &viewers {
            hub.message(t, v, "watcher", Args::Json(vec![]));
        }
        let offer = |hub: &mut Hub, t| {
            let args = vec![json!(viewers[0].to_string()), json!({})];
            hub.message(t, b, "offer", Args::Json(args))[0].event
        };
        // 1 token left after `broadcaster`; it spends it, then is out.
        assert_eq!(offer(&mut hub, t), "offer");
        assert_eq!(offer(&mut hub, t), "error");
        // One second later it refilled at 1/s × (1 + 3 viewers) = 4 tokens, not 1.
        let t = t + Duration::from_secs(1);
        for _ in 0..4 {
            assert_eq!(offer(&mut hub, t), "offer");
        }
        assert_eq!(offer(&mut hub, t), "error");
        // The bucket holds up to 2 × 4 = 8.
        let t = t + Duration::from_secs(60);
        for _ in 0..8 {
            assert_eq!(offer(&mut hub, t), "offer");
        }
        assert_eq!(offer(&mut hub, t), "error");
    }

    #[test]
    fn viewer_count_and_departures() {
        let (mut hub, t) = hub(HubConfig::default());
        let (b, v1, v2) = (Sid::new(), Sid::new(), Sid::new());
        for s in [b, v1, v2] {
            hub.connect(t, s, "r".into(), None);
        }
        let out = hub.message(t, b, "broadcaster", Args::Json(vec![]));
        let got: HashSet<_> = events(&out).into_iter().collect();
        assert_eq!(
            got,
            HashSet::from([(v1, "broadcaster"), (v2, "broadcaster"), (b, "viewers")])
        );
        let out = hub.message(t, v1, "watcher", Args::Json(vec![]));
        assert_eq!(out[0].args, vec![json!(v1.to_string())]);
        assert_eq!(out[1].args, vec![json!(1)]);
        // Asking twice does not count twice.
        let out = hub.message(t, v1, "watcher", Args::Json(vec![]));
        assert_eq!(events(&out), vec![(b, "watcher")]);
        let snap = hub.snapshot();
        assert_eq!(
            (snap.sockets, snap.rooms, snap.broadcasters, snap.viewers),
            (3, 1, 1, 1)
        );

        let out = hub.disconnect(v1);
        assert_eq!(
            events(&out),
            vec![(b, "disconnectPeer"), (b, "bye"), (b, "viewers")]
        );
        assert_eq!(out[2].args, vec![json!(0)]);
        // v2 never watched: the broadcaster is not told about it.
        assert!(hub.disconnect(v2).is_empty());
        assert!(hub.disconnect(b).is_empty());
        let snap = hub.snapshot();
        assert_eq!((snap.sockets, snap.rooms, snap.broadcasters), (0, 0, 0));
        // Disconnecting twice or an unknown socket is harmless.
        assert!(hub.disconnect(b).is_empty());
    }

    #[test]
    fn messages_from_unregistered_sockets_are_refused() {
        let (mut hub, t) = hub(HubConfig::default());
        let out = hub.message(t, Sid::new(), "watcher", Args::Json(vec![]));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].args[0]["code"], "unknown_target");
    }

    #[test]
    fn binary_and_malformed_arguments_are_refused_clearly() {
        let (mut hub, t) = hub(HubConfig::default());
        let a = Sid::new();
        hub.connect(t, a, String::new(), None);
        let out = hub.message(t, a, "offer", Args::Binary);
        assert_eq!(out[0].args[0]["code"], "binary_not_supported");
        let out = hub.message(t, a, "offer", Args::Malformed("eof".into()));
        assert_eq!(out[0].args[0]["code"], "bad_arguments");
        let out = hub.message(t, a, "offer", Args::TooLarge { bytes: 1 << 20 });
        assert_eq!(out[0].args[0]["code"], "payload_too_large");
        assert!(
            out[0].args[0]["message"]
                .as_str()
                .unwrap()
                .contains("1048576")
        );
    }

    #[test]
    fn room_and_key_validation() {
        assert_eq!(validate_room(None).unwrap(), "");
        assert_eq!(validate_room(Some("lab-1.a_b")).unwrap(), "lab-1.a_b");
        assert_eq!(validate_room(Some("a b")), Err(JoinError::RoomInvalid));
        assert_eq!(
            validate_room(Some(&"x".repeat(65))),
            Err(JoinError::RoomTooLong)
        );
        assert_eq!(validate_key(Some("")).unwrap(), None);
        assert_eq!(
            validate_key(Some(&"k".repeat(257))),
            Err(JoinError::KeyTooLong)
        );
        // Long event names are cut in error messages, on a character boundary.
        assert_eq!(truncate(&"é".repeat(100), 64).chars().count(), 64);
    }
}
