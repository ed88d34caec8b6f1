//! Load benchmark for omnicast-signal (a program, not a timed test).
//!
//! Starts the release `omnicast-signal` binary on loopback, connects N Socket.IO clients into one
//! room (one of them the broadcaster), then every viewer does the classic exchange at a paced
//! rate: `watcher` → `offer` + `candidate` from the broadcaster → `answer` + `candidate` back.
//! Prints server RSS (total and per socket), the relay latency of every relayed message (the
//! sender's send → the receiver's read, one clock), and messages lost.
//!
//! The clients speak Engine.IO v4 / Socket.IO v5 text frames over tokio-tungstenite with
//! TCP_NODELAY, one task each. rust_socketio cannot turn Nagle's algorithm off on its websocket,
//! which delays back-to-back emits by the peer's delayed ACK (~40 ms) and would measure the
//! client instead of the server.
//!
//!   scripts/bench-signal.sh                                   # N = 10000, raises the fd limit
//!   OMNICAST_BENCH_SOCKETS=2000 cargo bench -p omnicast-signal --bench load
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _, stream};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::tungstenite::Message;

struct Shared {
    start: Instant,
    latencies_us: Mutex<Vec<u32>>,
    delivered: AtomicU64,
    errors: AtomicU64,
    done: Notify,
    expected: u64,
}

impl Shared {
    fn now_us(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// A relayed message arrived; its payload carries the sender's send time.
    fn arrived(&self, payload: Option<&Value>) {
        if let Some(sent) = payload.and_then(|p| p["t"].as_u64()) {
            let us = self.now_us().saturating_sub(sent);
            self.latencies_us
                .lock()
                .push(u32::try_from(us).unwrap_or(u32::MAX));
        }
        if self.delivered.fetch_add(1, Ordering::Relaxed) + 1 == self.expected {
            self.done.notify_one();
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Role {
    Broadcaster,
    Viewer,
}

fn event_frame(event: &str, args: &[Value]) -> Message {
    let mut all = vec![Value::String(event.to_owned())];
    all.extend_from_slice(args);
    Message::text(format!("42{}", Value::Array(all)))
}

/// Connects one Socket.IO client and runs it on its own task until `commands` closes.
/// Resolves once the server accepted the namespace connection.
async fn client(addr: SocketAddr, role: Role, shared: Arc<Shared>) -> mpsc::Sender<Message> {
    let tcp = TcpStream::connect(addr).await.expect("tcp connect");
    tcp.set_nodelay(true).unwrap();
    let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
    let (mut ws, _) = tokio_tungstenite::client_async(url, tcp)
        .await
        .expect("websocket handshake");
    // Engine.IO open packet, then the Socket.IO namespace connect with our room.
    let open = ws.next().await.expect("open packet").expect("frame");
    assert!(open.to_text().unwrap().starts_with('0'), "{open:?}");
    ws.send(Message::text(format!("40{}", json!({"room": "bench"}))))
        .await
        .unwrap();
    loop {
        let msg = ws.next().await.expect("connect reply").expect("frame");
        if msg.to_text().unwrap().starts_with("40") {
            break;
        }
    }
    let (tx, mut commands) = mpsc::channel::<Message>(4);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(m) => { if ws.send(m).await.is_err() { return; } }
                    None => return,
                },
                frame = ws.next() => {
                    let Some(Ok(frame)) = frame else { return };
                    let Ok(text) = frame.to_text() else { continue };
                    if text == "2" {
                        if ws.send(Message::text("3")).await.is_err() { return; }
                        continue;
                    }
                    let Some(body) = text.strip_prefix("42") else { continue };
                    let Ok(Value::Array(ev)) = serde_json::from_str::<Value>(body) else { continue };
                    let name = ev.first().and_then(Value::as_str).unwrap_or_default();
                    let (from, payload) = (ev.get(1).cloned(), ev.get(2));
                    let replies: &[(&str, &str)] = match (role, name) {
                        (Role::Broadcaster, "watcher") => {
                            shared.arrived(None);
                            &[("offer", "offer"), ("candidate", "b")]
                        }
                        (Role::Viewer, "offer") => {
                            shared.arrived(payload);
                            &[("answer", "answer"), ("candidate", "v")]
                        }
                        (Role::Broadcaster, "answer" | "candidate") | (Role::Viewer, "candidate") => {
                            shared.arrived(payload);
                            &[]
                        }
                        (_, "error") => {
                            eprintln!("error event: {body}");
                            shared.errors.fetch_add(1, Ordering::Relaxed);
                            &[]
                        }
                        _ => &[],
                    };
                    let Some(to) = from else { continue };
                    for (event, what) in replies {
                        let msg = event_frame(event, &[to.clone(), json!({"what": what, "t": shared.now_us()})]);
                        if ws.send(msg).await.is_err() { return; }
                    }
                }
            }
        }
    });
    tx
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn start_server() -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_omnicast-signal"))
        .args(["--bind", "127.0.0.1:0", "--no-stun"])
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "warn,omnicast_signal=info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("omnicast-signal starts");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines.next().expect("server output").expect("utf-8");
        if let Some(rest) = line.split("http=").nth(1) {
            break rest.split_whitespace().next().unwrap().parse().unwrap();
        }
    };
    // Keep draining the pipe so the server never blocks on logging.
    std::thread::Builder::new()
        .name("server-log".into())
        .spawn(move || lines.for_each(drop))
        .unwrap();
    (child, addr)
}

fn percentile_ms(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let n: usize = env_or("OMNICAST_BENCH_SOCKETS", 10_000);
    let rate: f64 = env_or("OMNICAST_BENCH_JOINS_PER_SEC", 1000.0);
    let viewers = n - 1;
    let (mut server, addr) = start_server();
    let pid = server.id();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_idle = rss_kib(pid);

    // 5 deliveries per viewer: watcher, offer, candidate, answer, candidate.
    let shared = Arc::new(Shared {
        start: Instant::now(),
        latencies_us: Mutex::new(Vec::with_capacity(viewers * 4)),
        delivered: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        done: Notify::new(),
        expected: viewers as u64 * 5,
    });

    let caster = client(addr, Role::Broadcaster, shared.clone()).await;
    caster.send(event_frame("broadcaster", &[])).await.unwrap();

    let connect_started = Instant::now();
    let clients: Vec<_> = stream::iter(0..viewers)
        .map(|_| client(addr, Role::Viewer, shared.clone()))
        .buffer_unordered(64)
        .collect()
        .await;
    let connect_secs = connect_started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_connected = rss_kib(pid);

    // Paced joins: viewer k asks to watch at k / rate seconds.
    let exchange_started = Instant::now();
    for (k, c) in clients.iter().enumerate() {
        let due = exchange_started + Duration::from_secs_f64(k as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        c.send(event_frame("watcher", &[])).await.unwrap();
    }
    let finished = tokio::time::timeout(Duration::from_secs(60), shared.done.notified()).await;
    let exchange_secs = exchange_started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_after = rss_kib(pid);

    let mut lat = std::mem::take(&mut *shared.latencies_us.lock());
    lat.sort_unstable();
    let delivered = shared.delivered.load(Ordering::Relaxed);
    let lost = shared.expected.saturating_sub(delivered);
    let mb = |kib: u64| kib as f64 / 1024.0;
    let per_socket_kb = |kib: u64| kib as f64 / n as f64;
    println!("omnicast-signal load benchmark");
    println!("  sockets                {n} (1 broadcaster, {viewers} viewers, one room)");
    println!(
        "  connect                {connect_secs:.1} s ({:.0} sockets/s)",
        n as f64 / connect_secs
    );
    println!(
        "  exchange               {viewers} viewers joining at {rate:.0}/s, {exchange_secs:.1} s{}",
        if finished.is_err() {
            " (timed out)"
        } else {
            ""
        }
    );
    println!("  server RSS idle        {:.1} MB", mb(rss_idle));
    println!(
        "  server RSS connected   {:.1} MB ({:.1} KB per socket)",
        mb(rss_connected),
        per_socket_kb(rss_connected)
    );
    println!(
        "  server RSS after relay {:.1} MB ({:.1} KB per socket)",
        mb(rss_after),
        per_socket_kb(rss_after)
    );
    println!(
        "  relayed                {delivered} of {} messages",
        shared.expected
    );
    println!(
        "  relay latency          p50 {:.2} ms  p95 {:.2} ms  p99 {:.2} ms  max {:.2} ms ({} samples)",
        percentile_ms(&lat, 0.50),
        percentile_ms(&lat, 0.95),
        percentile_ms(&lat, 0.99),
        percentile_ms(&lat, 1.0),
        lat.len()
    );
    println!("  lost                   {lost}");
    println!(
        "  error events           {}",
        shared.errors.load(Ordering::Relaxed)
    );

    drop(clients);
    drop(caster);
    let _ = server.kill();
    let _ = server.wait();
}
