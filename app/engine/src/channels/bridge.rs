//! The bridge to the robot software: a TCP connection to its local server, one JSON object per
//! line both ways, made again every second while the robot is away. Viewers' accepted messages
//! (and viewport samples, if asked) go to the robot; its `telemetry` lines go to every viewer.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::protocol::MAX_MESSAGE_BYTES;
use crate::values::BridgeAddr;

/// How long the robot may be away before the next attempt.
pub const RECONNECT_INTERVAL: Duration = Duration::from_secs(1);
/// Lines waiting to go to the robot.
const QUEUE: usize = 1024;
/// The longest line taken from the robot (a telemetry message plus its envelope).
const MAX_LINE_BYTES: usize = MAX_MESSAGE_BYTES + 256;

/// What the bridge has done, for the status.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct BridgeStatus {
    pub address: String,
    pub connected: bool,
    /// Lines sent to the robot.
    pub sent: u64,
    /// Lines that could not go (the robot away or not reading).
    pub dropped: u64,
    /// Telemetry lines from the robot.
    pub received: u64,
    /// Lines from the robot that were not telemetry.
    pub refused: u64,
    pub last_error: Option<String>,
}

#[derive(Default)]
struct Figures {
    connected: AtomicBool,
    sent: AtomicU64,
    dropped: AtomicU64,
    received: AtomicU64,
    refused: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// The bridge's handle; dropping it ends the connection.
pub struct Bridge {
    address: BridgeAddr,
    lines: mpsc::Sender<String>,
    figures: Arc<Figures>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Bridge {
    /// Starts connecting to `address`; the robot's telemetry (`data` of each `telemetry` line)
    /// goes to `telemetry`.
    pub fn start(address: BridgeAddr, telemetry: impl Fn(Value) + Send + Sync + 'static) -> Self {
        let (lines, rx) = mpsc::channel(QUEUE);
        let figures = Arc::new(Figures::default());
        let task = tokio::spawn(run(address.clone(), rx, figures.clone(), telemetry));
        Self {
            address,
            lines,
            figures,
            task,
        }
    }

    /// Queues a line (a JSON object, no newline) for the robot; never waits.
    pub fn send(&self, line: String) {
        if !self.figures.connected.load(Ordering::Relaxed) || self.lines.try_send(line).is_err() {
            self.figures.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn status(&self) -> BridgeStatus {
        let f = &self.figures;
        BridgeStatus {
            address: self.address.to_string(),
            connected: f.connected.load(Ordering::Relaxed),
            sent: f.sent.load(Ordering::Relaxed),
            dropped: f.dropped.load(Ordering::Relaxed),
            received: f.received.load(Ordering::Relaxed),
            refused: f.refused.load(Ordering::Relaxed),
            last_error: f.last_error.lock().clone(),
        }
    }
}

async fn run(
    address: BridgeAddr,
    mut lines: mpsc::Receiver<String>,
    figures: Arc<Figures>,
    telemetry: impl Fn(Value) + Send + Sync + 'static,
) {
    let mut said_away = false;
    loop {
        let attempt = tokio::time::timeout(
            RECONNECT_INTERVAL,
            TcpStream::connect((address.host(), address.port())),
        )
        .await;
        let stream = match attempt {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                away(&figures, &mut said_away, &address, e.to_string());
                tokio::time::sleep(RECONNECT_INTERVAL).await;
                continue;
            }
            Err(_) => {
                away(&figures, &mut said_away, &address, "timed out".to_owned());
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tracing::info!("bridge: connected to the robot at {address}");
        said_away = false;
        // Lines queued while the robot was away are stale: count them as dropped.
        while lines.try_recv().is_ok() {
            figures.dropped.fetch_add(1, Ordering::Relaxed);
        }
        figures.connected.store(true, Ordering::Relaxed);
        let ended = connected(stream, &mut lines, &figures, &telemetry).await;
        figures.connected.store(false, Ordering::Relaxed);
        tracing::warn!("bridge: the robot at {address} went away ({ended}); reconnecting");
        *figures.last_error.lock() = Some(ended);
        tokio::time::sleep(RECONNECT_INTERVAL).await;
    }
}

fn away(figures: &Figures, said: &mut bool, address: &BridgeAddr, why: String) {
    if !*said {
        tracing::warn!("bridge: cannot reach the robot at {address} ({why}); trying every second");
        *said = true;
    }
    *figures.last_error.lock() = Some(why);
}

/// Carries lines both ways until the robot goes away; says why it did.
async fn connected(
    stream: TcpStream,
    lines: &mut mpsc::Receiver<String>,
    figures: &Figures,
    telemetry: &(impl Fn(Value) + Send + Sync),
) -> String {
    let (read, mut write) = stream.into_split();
    // Pinned once and polled by reference: a line half read is never lost to the writer.
    let reading = read_all(BufReader::new(read), figures, telemetry);
    tokio::pin!(reading);
    loop {
        tokio::select! {
            why = &mut reading => return why,
            line = lines.recv() => {
                let Some(mut line) = line else { return "the broadcast ended".to_owned() };
                line.push('\n');
                if let Err(e) = write.write_all(line.as_bytes()).await {
                    figures.dropped.fetch_add(1, Ordering::Relaxed);
                    return e.to_string();
                }
                figures.sent.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Takes the robot's lines until it closes; says why it stopped.
async fn read_all(
    mut read: BufReader<tokio::net::tcp::OwnedReadHalf>,
    figures: &Figures,
    telemetry: &(impl Fn(Value) + Send + Sync),
) -> String {
    let mut buf = Vec::with_capacity(1024);
    loop {
        match read_line(&mut read, &mut buf).await {
            Ok(Line::Eof) => return "it closed the connection".to_owned(),
            Ok(Line::TooLong) => {
                figures.refused.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    "bridge: a line over {MAX_LINE_BYTES} bytes from the robot, ignored"
                );
            }
            Ok(Line::Complete) => match robot_line(&buf) {
                Ok(data) => {
                    figures.received.fetch_add(1, Ordering::Relaxed);
                    telemetry(data);
                }
                Err(e) => {
                    figures.refused.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!("bridge: from the robot, ignored: {e}");
                }
            },
            Err(e) => return e.to_string(),
        }
    }
}

enum Line {
    Complete,
    TooLong,
    Eof,
}

/// Reads one line into `buf` (without its newline), at most [`MAX_LINE_BYTES`]; a longer line
/// is skipped to its end.
async fn read_line(
    read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    buf: &mut Vec<u8>,
) -> std::io::Result<Line> {
    buf.clear();
    let n = (&mut *read)
        .take(MAX_LINE_BYTES as u64 + 1)
        .read_until(b'\n', buf)
        .await?;
    if n == 0 {
        return Ok(Line::Eof);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        return Ok(Line::Complete);
    }
    if buf.len() <= MAX_LINE_BYTES {
        // The robot closed mid-line: take what came.
        return Ok(Line::Complete);
    }
    // Skip the rest of the long line.
    loop {
        buf.clear();
        let n = (&mut *read).take(64 * 1024).read_until(b'\n', buf).await?;
        if n == 0 || buf.last() == Some(&b'\n') {
            return Ok(Line::TooLong);
        }
    }
}

/// A line from the robot: `{"type":"telemetry","data":…}` gives its data.
pub fn robot_line(line: &[u8]) -> Result<Value, String> {
    let v: Value = serde_json::from_slice(line).map_err(|e| format!("not JSON: {e}"))?;
    match v.get("type").and_then(Value::as_str) {
        Some("telemetry") => Ok(v.get("data").cloned().unwrap_or(Value::Null)),
        Some(other) => Err(format!("unknown type {other:?}")),
        None => Err("no \"type\"".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[test]
    fn robot_lines_are_telemetry_or_refused() {
        assert_eq!(
            robot_line(br#"{"type":"telemetry","data":{"battery":0.5}}"#),
            Ok(serde_json::json!({"battery":0.5}))
        );
        assert!(robot_line(b"hello").is_err());
        assert!(robot_line(br#"{"type":"drive"}"#).is_err());
    }

    #[tokio::test]
    async fn the_bridge_carries_lines_both_ways_and_comes_back_after_the_robot_restarts() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let addr: BridgeAddr = format!("tcp://127.0.0.1:{port}").parse().unwrap();
        let (tel_tx, mut tel_rx) = mpsc::channel(16);
        let bridge = Bridge::start(addr, move |v| {
            let _ = tel_tx.try_send(v);
        });
        for round in 0..2 {
            let (robot, _) = tokio::time::timeout(Duration::from_secs(5), listener.accept())
                .await
                .expect("the bridge connects within the reconnect interval")
                .unwrap();
            let (r, mut w) = robot.into_split();
            let mut r = BufReader::new(r).lines();
            // Wait until the bridge counts itself connected, then send a message through.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            while !bridge.status().connected {
                assert!(tokio::time::Instant::now() < deadline);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            bridge.send(format!("{{\"type\":\"message\",\"round\":{round}}}"));
            let line = tokio::time::timeout(Duration::from_secs(5), r.next_line())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            assert_eq!(line, format!("{{\"type\":\"message\",\"round\":{round}}}"));
            // Garbage and an over-long line are skipped; telemetry after them arrives.
            w.write_all(b"garbage\n").await.unwrap();
            w.write_all(&vec![b'x'; MAX_LINE_BYTES * 3]).await.unwrap();
            w.write_all(b"\n{\"type\":\"telemetry\",\"data\":{\"round\":")
                .await
                .unwrap();
            w.write_all(format!("{round}}}}}\n").as_bytes())
                .await
                .unwrap();
            let got = tokio::time::timeout(Duration::from_secs(5), tel_rx.recv())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(got, serde_json::json!({"round": round}));
            // The robot "restarts".
            drop(w);
            drop(r);
        }
        let status = bridge.status();
        assert_eq!((status.sent, status.received), (2, 2), "{status:?}");
        assert_eq!(status.refused, 4, "{status:?}");
    }

    #[tokio::test]
    async fn lines_while_the_robot_is_away_are_counted_as_dropped() {
        // A port nobody listens on.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let bridge = Bridge::start(format!("tcp://127.0.0.1:{port}").parse().unwrap(), |_| {});
        tokio::time::sleep(Duration::from_millis(100)).await;
        bridge.send("{}".to_owned());
        bridge.send("{}".to_owned());
        let status = bridge.status();
        assert!(!status.connected);
        assert_eq!(status.dropped, 2);
        assert!(status.last_error.is_some(), "{status:?}");
    }
}
