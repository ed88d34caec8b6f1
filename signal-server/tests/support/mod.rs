//! A Socket.IO test client on rust_socketio that records every event it receives, in order.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures_util::FutureExt as _;
use omnicast_signal::{ServerConfig, SignalServer};
use rust_socketio::asynchronous::{Client, ClientBuilder};
use rust_socketio::{Event, Payload, TransportType};
use serde_json::{Value, json};
use tokio::sync::mpsc;

pub const WAIT: Duration = Duration::from_secs(10);

pub async fn server(config: ServerConfig) -> SignalServer {
    SignalServer::start(config).await.expect("server starts")
}

pub async fn loopback_server() -> SignalServer {
    server(ServerConfig::loopback_ephemeral()).await
}

pub struct TestClient {
    client: Client,
    events: mpsc::Receiver<(String, Vec<Value>)>,
    /// What the server sent in its `iceServers` event on connect.
    pub ice_servers: Value,
}

/// rust_socketio reports an event sent with no arguments (`["broadcaster"]`) as a `message`
/// whose only argument is the event name; undo that.
fn normalize(event: Event, payload: Payload) -> (String, Vec<Value>) {
    let args = match payload {
        Payload::Text(args) => args,
        Payload::Binary(b) => vec![json!(b.to_vec())],
        #[allow(deprecated)]
        Payload::String(s) => vec![Value::String(s)],
    };
    match (event, args.as_slice()) {
        (Event::Message, [Value::String(name)]) => (name.clone(), vec![]),
        (event, _) => (event.as_str().to_owned(), args),
    }
}

impl TestClient {
    /// Connects to `server` with a Socket.IO `auth` object and waits until the server said yes.
    pub async fn connect(server: &SignalServer, auth: Value) -> Self {
        Self::connect_url(&server.local_url(), Some(auth)).await
    }

    pub async fn connect_url(url: &str, auth: Option<Value>) -> Self {
        let (tx, events) = mpsc::channel(4096);
        let record = |tx: mpsc::Sender<(String, Vec<Value>)>| {
            move |event: Event, payload: Payload, _: Client| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(normalize(event, payload)).await;
                }
                .boxed()
            }
        };
        let on_any = record(tx.clone());
        let on_error = record(tx.clone());
        let on_open = record(tx.clone());
        let mut builder = ClientBuilder::new(url)
            .transport_type(TransportType::Websocket)
            .reconnect(false)
            .on_any(on_any)
            .on("error", move |p, c| on_error(Event::Error, p, c))
            .on("open", move |p, c| on_open(Event::Connect, p, c));
        if let Some(auth) = auth {
            builder = builder.auth(auth);
        }
        let client = builder.connect().await.expect("socket.io connect");
        let mut me = Self {
            client,
            events,
            ice_servers: Value::Null,
        };
        // Emits before the `open` callback are lost: wait for it.
        let (event, args) = me.next().await;
        assert_eq!(
            event, "connect",
            "first event should be the connection: {args:?}"
        );
        // Then the server says which ICE servers to use.
        let args = me.expect("iceServers").await;
        me.ice_servers = args[0]["iceServers"].clone();
        me
    }

    pub async fn emit(&self, event: &str, args: Vec<Value>) {
        self.client
            .emit(event, Payload::Text(args))
            .await
            .expect("emit");
    }

    /// The next event received, failing the test after [`WAIT`].
    pub async fn next(&mut self) -> (String, Vec<Value>) {
        tokio::time::timeout(WAIT, self.events.recv())
            .await
            .expect("an event within the timeout")
            .expect("client still open")
    }

    /// The next event, which must be `event`; returns its arguments.
    pub async fn expect(&mut self, event: &str) -> Vec<Value> {
        let (got, args) = self.next().await;
        assert_eq!(got, event, "expected '{event}', got '{got}' with {args:?}");
        args
    }

    /// The next `error` event's code.
    pub async fn expect_error(&mut self, code: &str) -> Value {
        let args = self.expect("error").await;
        assert_eq!(args.len(), 1, "{args:?}");
        assert_eq!(args[0]["code"], code, "{args:?}");
        assert!(
            args[0]["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{args:?}"
        );
        args[0].clone()
    }

    /// Nothing arrives for `quiet`.
    pub async fn assert_quiet(&mut self, quiet: Duration) {
        if let Ok(Some(e)) = tokio::time::timeout(quiet, self.events.recv()).await {
            panic!("unexpected event {e:?}");
        }
    }

    pub async fn disconnect(self) {
        self.client.disconnect().await.expect("disconnect");
    }
}

pub fn room(name: &str) -> Value {
    json!({ "room": name })
}

pub fn id(v: &Value) -> String {
    v.as_str().expect("an id string").to_owned()
}

/// A client that connected with `auth` and is now the broadcaster of its room.
pub async fn broadcaster(server: &SignalServer, auth: Value) -> TestClient {
    let mut c = TestClient::connect(server, auth).await;
    c.emit("broadcaster", vec![]).await;
    c.expect("viewers").await;
    c
}

/// A client in `room_name` that asked to watch `caster`; returns it with the id `caster` saw.
pub async fn watcher(
    server: &SignalServer,
    room_name: &str,
    caster: &mut TestClient,
) -> (TestClient, String) {
    let w = TestClient::connect(server, room(room_name)).await;
    w.emit("watcher", vec![]).await;
    let watcher_id = id(&caster.expect("watcher").await[0]);
    caster.expect("viewers").await;
    (w, watcher_id)
}
