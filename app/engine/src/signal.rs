//! The signalling client: rust_socketio speaking the classic broadcast protocol (plus Omnicast's
//! extensions) to the bundled server or any classic server. Events arrive as a typed enum on a
//! bounded channel.

use std::time::Duration;

use futures_util::FutureExt as _;
use rust_socketio::asynchronous::{Client, ClientBuilder};
use rust_socketio::{Event, Payload, TransportType};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// Something the server told us.
#[derive(Debug, Clone, PartialEq)]
pub enum SignalEvent {
    /// Connected (again): announce yourself.
    Connected,
    /// A viewer wants to watch (sent to the broadcaster).
    Watcher(String),
    Offer(String, Value),
    Answer(String, Value),
    Candidate(String, Value),
    /// A peer left (`disconnectPeer` / `bye`).
    PeerLeft(String),
    /// A broadcaster (re)appeared in the room.
    Broadcaster,
    BroadcasterLeft,
    NoBroadcaster,
    /// The broadcaster's viewer count.
    Viewers(u64),
    /// Another broadcaster took over our room.
    Replaced,
    /// The server refused something we sent, or the connection reported a problem.
    Error(String),
    /// The STUN/TURN servers the signal server wants peers to use.
    IceServers(Vec<super::peer::IceServerSpec>),
    /// The connection stopped carrying messages; rust_socketio is reconnecting (a `Connected`
    /// follows when it succeeds).
    Disconnected,
    /// Down for [`GIVE_UP`]: this client will not come back; start a new one.
    Lost,
}

#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    #[error("cannot reach the signal server at {url}: {source}")]
    Connect {
        url: String,
        source: rust_socketio::Error,
    },
    #[error("the signal server at {url} did not accept the connection within {secs} s")]
    Timeout { url: String, secs: u64 },
    #[error("lost the signal server at {url}: no connection for {secs} s")]
    Lost { url: String, secs: u64 },
    #[error("sending '{event}' to the signal server failed: {source}")]
    Emit {
        event: &'static str,
        source: rust_socketio::Error,
    },
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the connection is probed (a `keepalive` event, which servers ignore).
const KEEPALIVE: Duration = Duration::from_secs(5);
/// A connection down this long is given up on. rust_socketio's own reconnecting stops after a
/// while; a session that gets [`SignalEvent::Lost`] starts over with a new client.
pub const GIVE_UP: Duration = Duration::from_secs(60);

pub struct SignalClient {
    client: Client,
    url: String,
    watchdog: tokio::task::JoinHandle<()>,
}

impl Drop for SignalClient {
    fn drop(&mut self) {
        self.watchdog.abort();
    }
}

fn id_arg(args: &[Value]) -> Option<String> {
    args.first().and_then(Value::as_str).map(str::to_owned)
}

/// Maps one received Socket.IO event to ours; `None` for events we do not use.
fn parse(event: &str, args: Vec<Value>) -> Option<SignalEvent> {
    let payload = || args.get(1).cloned().unwrap_or(Value::Null);
    Some(match event {
        "watcher" => SignalEvent::Watcher(id_arg(&args)?),
        "offer" => SignalEvent::Offer(id_arg(&args)?, payload()),
        "answer" => SignalEvent::Answer(id_arg(&args)?, payload()),
        "candidate" => SignalEvent::Candidate(id_arg(&args)?, payload()),
        "disconnectPeer" | "bye" => SignalEvent::PeerLeft(id_arg(&args)?),
        "broadcaster" => SignalEvent::Broadcaster,
        "broadcasterLeft" => SignalEvent::BroadcasterLeft,
        "noBroadcaster" => SignalEvent::NoBroadcaster,
        "viewers" => SignalEvent::Viewers(args.first()?.as_u64()?),
        "replaced" => SignalEvent::Replaced,
        "iceServers" => SignalEvent::IceServers(
            serde_json::from_value(args.first()?.get("iceServers")?.clone()).ok()?,
        ),
        "error" => SignalEvent::Error(match args.first() {
            Some(Value::Object(o)) => o
                .get("message")
                .and_then(Value::as_str)
                .map_or_else(|| Value::Object(o.clone()).to_string(), str::to_owned),
            Some(Value::String(s)) => s.clone(),
            other => format!("{other:?}"),
        }),
        _ => return None,
    })
}

/// rust_socketio reports an event sent with no arguments (`["broadcaster"]`) as a `message`
/// whose only argument is the event name.
fn normalize(event: &Event, payload: Payload) -> (String, Vec<Value>) {
    let args = match payload {
        Payload::Text(args) => args,
        _ => Vec::new(),
    };
    match (event, args.as_slice()) {
        (Event::Message, [Value::String(name)]) => (name.clone(), Vec::new()),
        _ => (event.as_str().to_owned(), args),
    }
}

impl SignalClient {
    /// Connects to `url` in `room` (empty: the default room), presenting `key` if any, and waits
    /// until the server accepted us. Events go to `events`; when the connection drops,
    /// rust_socketio reconnects and a new [`SignalEvent::Connected`] follows.
    pub async fn connect(
        url: &str,
        room: &str,
        key: Option<&str>,
        events: mpsc::Sender<SignalEvent>,
    ) -> Result<Self, SignalError> {
        let (opened_tx, mut opened) = mpsc::channel::<()>(1);
        let events_for_watchdog = events.clone();
        let on_any = {
            let events = events.clone();
            move |event: Event, payload: Payload, _: Client| {
                let events = events.clone();
                async move {
                    let (name, args) = normalize(&event, payload);
                    if let Some(e) = parse(&name, args) {
                        let _ = events.send(e).await;
                    }
                }
                .boxed()
            }
        };
        let on_error = {
            let events = events.clone();
            move |payload: Payload, _: Client| {
                let events = events.clone();
                async move {
                    let (_, args) = normalize(&Event::Error, payload);
                    if let Some(e) = parse("error", args) {
                        let _ = events.send(e).await;
                    }
                }
                .boxed()
            }
        };
        let on_open = move |_: Payload, _: Client| {
            let events = events.clone();
            let opened_tx = opened_tx.clone();
            async move {
                let _ = opened_tx.try_send(());
                let _ = events.send(SignalEvent::Connected).await;
            }
            .boxed()
        };
        let client = ClientBuilder::new(url)
            .transport_type(TransportType::Websocket)
            .auth(json!({ "room": room, "key": key.unwrap_or("") }))
            .reconnect(true)
            .reconnect_on_disconnect(true)
            .reconnect_delay(500, 5_000)
            .max_reconnect_attempts(u8::MAX)
            .on_any(on_any)
            .on("error", on_error)
            .on("open", on_open)
            .connect()
            .await
            .map_err(|source| SignalError::Connect {
                url: url.to_owned(),
                source,
            })?;
        // Emits before the `open` callback are lost.
        if tokio::time::timeout(CONNECT_TIMEOUT, opened.recv())
            .await
            .is_err()
        {
            // Stop its reconnecting too, or it would go on in the background.
            let _ = client.disconnect().await;
            return Err(SignalError::Timeout {
                url: url.to_owned(),
                secs: CONNECT_TIMEOUT.as_secs(),
            });
        }
        let watchdog = tokio::spawn(watchdog(client.clone(), events_for_watchdog));
        Ok(Self {
            client,
            url: url.to_owned(),
            watchdog,
        })
    }

    /// The error a session ends with after [`SignalEvent::Lost`].
    pub fn lost(&self) -> SignalError {
        SignalError::Lost {
            url: self.url.clone(),
            secs: GIVE_UP.as_secs(),
        }
    }

    pub async fn emit(&self, event: &'static str, args: Vec<Value>) -> Result<(), SignalError> {
        self.client
            .emit(event, Payload::Text(args))
            .await
            .map_err(|source| SignalError::Emit { event, source })
    }

    /// Emits, logging a failure instead of returning it: while the connection is down the
    /// message is lost, and the reconnect that follows (`Connected`) starts the exchange again.
    pub async fn send(&self, event: &'static str, args: Vec<Value>) {
        if let Err(e) = self.emit(event, args).await {
            tracing::warn!("{e}");
        }
    }

    pub async fn disconnect(&self) {
        self.watchdog.abort();
        let _ = self.client.disconnect().await;
    }
}

/// Probes the connection every [`KEEPALIVE`]: an emit fails while it is down. Says
/// `Disconnected` when it goes down and `Lost` (then stops) after [`GIVE_UP`] without it.
async fn watchdog(client: Client, events: mpsc::Sender<SignalEvent>) {
    let mut down_since: Option<std::time::Instant> = None;
    loop {
        tokio::time::sleep(KEEPALIVE).await;
        match client.emit("keepalive", Payload::Text(Vec::new())).await {
            Ok(()) => down_since = None,
            Err(e) => {
                let since = *down_since.get_or_insert_with(|| {
                    tracing::warn!("the signal server is unreachable ({e}); reconnecting");
                    let _ = events.try_send(SignalEvent::Disconnected);
                    std::time::Instant::now()
                });
                if since.elapsed() >= GIVE_UP {
                    let _ = events.send(SignalEvent::Lost).await;
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_events_parse_and_junk_is_ignored() {
        assert_eq!(
            parse("watcher", vec![json!("abc")]),
            Some(SignalEvent::Watcher("abc".into()))
        );
        assert_eq!(
            parse(
                "offer",
                vec![json!("b"), json!({"type": "offer", "sdp": "x"})]
            ),
            Some(SignalEvent::Offer(
                "b".into(),
                json!({"type": "offer", "sdp": "x"})
            ))
        );
        assert_eq!(
            parse("bye", vec![json!("z")]),
            Some(SignalEvent::PeerLeft("z".into()))
        );
        assert_eq!(
            parse("viewers", vec![json!(3)]),
            Some(SignalEvent::Viewers(3))
        );
        assert_eq!(
            parse("error", vec![json!({"code": "x", "message": "nope"})]),
            Some(SignalEvent::Error("nope".into()))
        );
        // Malformed: missing or wrong-typed ids are dropped, not panicked on.
        assert_eq!(parse("watcher", vec![]), None);
        assert_eq!(parse("offer", vec![json!(5)]), None);
        assert_eq!(parse("viewers", vec![json!("many")]), None);
        assert_eq!(parse("somethingElse", vec![]), None);
        assert_eq!(
            parse(
                "iceServers",
                vec![json!({"iceServers": [{"urls": ["stun:10.0.0.1:3478"]},
                    {"urls": ["turn:t:3478"], "username": "u", "credential": "p"}]})]
            ),
            Some(SignalEvent::IceServers(vec![
                crate::peer::IceServerSpec {
                    urls: vec!["stun:10.0.0.1:3478".into()],
                    ..Default::default()
                },
                crate::peer::IceServerSpec {
                    urls: vec!["turn:t:3478".into()],
                    username: "u".into(),
                    credential: "p".into(),
                },
            ]))
        );
        assert_eq!(
            parse("iceServers", vec![json!({"iceServers": "nope"})]),
            None
        );
    }

    #[test]
    fn zero_argument_events_are_recovered_from_rust_socketio_messages() {
        let (name, args) = normalize(&Event::Message, Payload::Text(vec![json!("broadcaster")]));
        assert_eq!((name.as_str(), args.len()), ("broadcaster", 0));
    }
}
