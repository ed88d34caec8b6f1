//! Socket.IO glue between socketioxide and the pure [`Hub`].
//!
//! Ordering matters for WebRTC signalling (an `offer` must reach its peer before the
//! `candidate`s that follow it). socketioxide spawns a tokio task per message handler, so two
//! messages of one socket could be handled out of order. The work is therefore done in the
//! [`Relayed`] extractor, which socketioxide runs synchronously on the connection's receive path,
//! in arrival order; delivery happens under the hub lock, so every socket sees events in the order
//! the hub decided them. Emitting never blocks (it reserves a slot in the target's bounded queue).
//!
//! Handlers are registered in the connect middleware, before the client learns it is connected,
//! so no early event is lost.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use serde::ser::{Serialize, SerializeTuple, Serializer};
use serde_json::Value;
use socketioxide::extract::{Event, SocketRef, State, TryData};
use socketioxide::handler::Value as RawValue;
use socketioxide::handler::{ConnectHandler as _, FromMessageParts};
use socketioxide::socket::Socket;
use socketioxide::{SocketError, SocketIo};

use crate::config::IcePlan;
use crate::hub::{Args, Hub, JoinError, Outgoing, Sid, validate_key, validate_room};

/// State shared by every socket of one server.
pub(crate) struct Shared {
    pub(crate) hub: Mutex<Hub>,
    /// Copy of the hub's limit, so arguments are measured and parsed before taking the lock.
    pub(crate) max_payload_bytes: usize,
    pub(crate) ice: IcePlan,
}

/// Who a socket said it is when it connected; kept in the socket's extensions.
#[derive(Clone)]
struct Membership {
    room: String,
    key: Option<String>,
}

/// Registers the default namespace.
pub(crate) fn attach(io: &SocketIo) {
    io.ns("/", on_connect.with(admit));
}

/// Connect middleware: validates the room and key, registers the handlers.
async fn admit(s: SocketRef, TryData(auth): TryData<Value>) -> Result<(), JoinError> {
    let membership = membership(&s, auth.ok())?;
    s.extensions.insert(membership);
    s.on_fallback(async |_: Relayed| {});
    s.on_disconnect(
        async |s: SocketRef, State(shared): State<Arc<Shared>>, io: SocketIo| {
            let mut hub = shared.hub.lock();
            let out = hub.disconnect(s.id);
            deliver(&io, &mut hub, None, out);
        },
    );
    Ok(())
}

/// Reads the room and key from the Socket.IO v5 `auth` object, else from the query string
/// (`?room=…&key=…`, the only way older clients can pass them).
fn membership(s: &SocketRef, auth: Option<Value>) -> Result<Membership, JoinError> {
    let auth_field = |name: &str| {
        auth.as_ref()
            .and_then(|a| a.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let query_field = |name: &str| {
        s.req_parts().uri.query().and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find_map(|(k, v)| (k == name).then(|| v.into_owned()))
        })
    };
    let room = auth_field("room").or_else(|| query_field("room"));
    let key = auth_field("key").or_else(|| query_field("key"));
    Ok(Membership {
        room: validate_room(room.as_deref())?,
        key: validate_key(key.as_deref())?,
    })
}

/// Connect handler: the socket is now in the namespace and can receive. It is told which ICE
/// servers to use (`iceServers`, as `GET /ice-servers` answers; classic clients ignore it).
async fn on_connect(s: SocketRef, State(shared): State<Arc<Shared>>) {
    let host = s
        .req_parts()
        .headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok());
    let servers = shared.ice.for_host(host);
    if let Err(e) = s.emit("iceServers", &serde_json::json!({ "iceServers": servers })) {
        tracing::debug!(sid = %s.id, "iceServers not sent: {e}");
    }
    let mut hub = shared.hub.lock();
    // Checked under the lock: a disconnect that already happened must not be undone.
    if s.connected() {
        register(&mut hub, &s);
    }
}

fn register(hub: &mut Hub, s: &Socket) {
    if hub.contains(s.id) {
        return;
    }
    if let Some(m) = s.extensions.get::<Membership>() {
        hub.connect(Instant::now(), s.id, m.room, m.key);
    }
}

/// Does the relaying while being extracted; see the module docs for why.
struct Relayed;

impl FromMessageParts<socketioxide::adapter::LocalAdapter> for Relayed {
    type Error = Infallible;

    fn from_message_parts(
        s: &Arc<Socket>,
        v: &mut RawValue,
        ack: &Option<i64>,
    ) -> Result<Self, Infallible> {
        let (Ok(State(shared)), Ok(io)) = (
            State::<Arc<Shared>>::from_message_parts(s, v, ack),
            SocketIo::from_message_parts(s, v, ack),
        ) else {
            tracing::error!("relay state missing; message dropped");
            return Ok(Relayed);
        };
        let Ok(Event(event)) = Event::from_message_parts(s, v, ack) else {
            return Ok(Relayed);
        };
        let args = decode_args(v, shared.max_payload_bytes);
        let mut hub = shared.hub.lock();
        register(&mut hub, s);
        let out = hub.message(Instant::now(), s.id, &event, args);
        deliver(&io, &mut hub, Some((s.id, &event)), out);
        Ok(Relayed)
    }
}

fn decode_args(v: &RawValue, max_payload_bytes: usize) -> Args {
    let (text, binaries) = match v {
        RawValue::Str(text, binaries) => (text.as_str(), binaries),
        RawValue::Bytes(_) => return Args::Binary,
    };
    if binaries.as_ref().is_some_and(|b| !b.is_empty()) {
        return Args::Binary;
    }
    if text.len() > max_payload_bytes {
        return Args::TooLarge { bytes: text.len() };
    }
    match serde_json::from_str::<Vec<Value>>(text) {
        Ok(mut all) if !all.is_empty() => {
            all.remove(0); // the event name
            Args::Json(all)
        }
        Ok(_) => Args::Malformed("empty event".to_owned()),
        Err(e) => Args::Malformed(e.to_string()),
    }
}

/// Emits `out`; a target whose queue is full makes the sender (if any) get an error instead.
fn deliver(io: &SocketIo, hub: &mut Hub, sender: Option<(Sid, &str)>, out: Vec<Outgoing>) {
    for o in out {
        let Some(socket) = io.get_socket(o.to) else {
            // Gone: its disconnect handler is about to clean up.
            continue;
        };
        match socket.emit(o.event, &MultiArgs(&o.args)) {
            Ok(()) => {}
            Err(socketioxide::SendError::Socket(SocketError::InternalChannelFull)) => {
                let Some((from, event)) = sender.filter(|(from, _)| *from != o.to) else {
                    tracing::warn!(to = %o.to, event = o.event, "outgoing queue full; dropped");
                    continue;
                };
                let notice = hub.target_busy(from, event, o.to);
                if let Some(from_socket) = io.get_socket(from)
                    && from_socket
                        .emit(notice.event, &MultiArgs(&notice.args))
                        .is_err()
                {
                    tracing::warn!(%from, "outgoing queue full; error notice dropped");
                }
            }
            Err(e) => tracing::debug!(to = %o.to, event = o.event, "not delivered: {e}"),
        }
    }
}

/// Serializes as a tuple so socketioxide sends each value as its own Socket.IO argument
/// (zero values: an event with no arguments).
struct MultiArgs<'a>(&'a [Value]);

impl Serialize for MultiArgs<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut t = serializer.serialize_tuple(self.0.len())?;
        for v in self.0 {
            t.serialize_element(v)?;
        }
        t.end()
    }
}
