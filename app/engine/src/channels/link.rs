//! The viewer's side of the data channels: takes the channels the broadcaster opens, says
//! `hello` (with the control key, if it has one), reports what the broadcaster says, and sends
//! the viewer's view and messages.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::Value;
use webrtc::data_channel::{DataChannel, DataChannelEvent, RTCDataChannelState};

use super::protocol::{
    BroadcasterMessage, CONTROL_LABEL, MAX_MESSAGE_BYTES, VIEWPORT_LABEL, ViewerMessage,
    ViewportSample, parse_broadcaster,
};
use super::room::unix_ms;
use crate::peer::ConnId;
use crate::values::ControlKey;

/// How long a viewer waits for `welcome` before saying `hello` again.
const HELLO_AGAIN: Duration = Duration::from_secs(1);
/// Hellos said at most on one channel.
const MAX_HELLOS: u32 = 5;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SendError {
    #[error("not connected to the broadcaster's data channels")]
    NotConnected,
    #[error("message of {0} bytes is over the limit of {MAX_MESSAGE_BYTES}")]
    TooLarge(usize),
    #[error("the data channel refused it: {0}")]
    Channel(String),
}

#[derive(Default)]
struct Open {
    control: Option<(ConnId, Arc<dyn DataChannel>)>,
    viewport: Option<(ConnId, Arc<dyn DataChannel>)>,
}

/// One viewer's data channels, for the connection in use.
pub struct Link {
    control_key: Option<ControlKey>,
    open: Mutex<Open>,
    /// Whether a channel is open to send viewport samples on.
    ready: tokio::sync::watch::Sender<bool>,
}

impl Link {
    pub fn new(control_key: Option<ControlKey>) -> Arc<Self> {
        Arc::new(Self {
            control_key,
            open: Mutex::default(),
            ready: tokio::sync::watch::Sender::new(false),
        })
    }

    /// Waits until a channel is open to send viewport samples on.
    pub async fn ready(&self) {
        let mut rx = self.ready.subscribe();
        let _ = rx.wait_for(|ready| *ready).await;
    }

    fn update_ready(&self, open: &Open) {
        let ready = open.control.is_some() || open.viewport.is_some();
        self.ready
            .send_if_modified(|r| std::mem::replace(r, ready) != ready);
    }

    /// Sends a viewport sample on `omnicast-viewport` (or, if the broadcaster opened none,
    /// `omnicast`). A sample with nowhere to go is dropped: the next one supersedes it.
    pub async fn send_viewport(&self, sample: &ViewportSample) -> Result<(), SendError> {
        let dc = {
            let open = self.open.lock();
            open.viewport
                .as_ref()
                .or(open.control.as_ref())
                .map(|(_, dc)| dc.clone())
        };
        send(dc, &sample.to_json()).await
    }

    /// Sends a message for the robot on `omnicast`.
    pub async fn send_message(&self, data: Value) -> Result<(), SendError> {
        let text = ViewerMessage::Message {
            t_ms: unix_ms(),
            data,
        }
        .to_json();
        let dc = self.open.lock().control.as_ref().map(|(_, dc)| dc.clone());
        send(dc, &text).await
    }

    /// Forgets the channels of connection `conn` (it was closed or replaced).
    pub fn forget(&self, conn: ConnId) {
        let mut open = self.open.lock();
        if open.control.as_ref().is_some_and(|(c, _)| *c == conn) {
            open.control = None;
        }
        if open.viewport.as_ref().is_some_and(|(c, _)| *c == conn) {
            open.viewport = None;
        }
        self.update_ready(&open);
    }

    /// Serves a channel the broadcaster opened on connection `conn` until it closes; what the
    /// broadcaster says goes to `said`, in order, tagged with `conn`.
    pub async fn serve(
        self: Arc<Self>,
        conn: ConnId,
        dc: Arc<dyn DataChannel>,
        said: tokio::sync::mpsc::Sender<(ConnId, BroadcasterMessage)>,
    ) {
        let label = dc.label().await.unwrap_or_default();
        let is_control = label == CONTROL_LABEL;
        if !is_control && label != VIEWPORT_LABEL {
            tracing::debug!(%conn, "ignoring data channel {label:?}");
            return;
        }
        let mut malformed = 0u64;
        // A channel the broadcaster made may arrive open already, with no open event to come.
        let mut opened = false;
        if dc.ready_state().await.ok() == Some(RTCDataChannelState::Open) {
            self.opened(conn, &dc, is_control).await;
            opened = true;
        }
        // Hello again each second until welcomed (a first message can go missing while a new
        // channel settles), at most five times.
        let (mut welcomed, mut hellos) = (false, u32::from(opened && is_control));
        let mut again = tokio::time::interval(HELLO_AGAIN);
        again.tick().await;
        loop {
            let event = tokio::select! {
                event = dc.poll() => event,
                _ = again.tick(), if is_control && opened && !welcomed && hellos < MAX_HELLOS => {
                    hellos += 1;
                    self.say_hello(conn, &dc).await;
                    continue;
                }
            };
            let Some(event) = event else { break };
            match event {
                DataChannelEvent::OnOpen if !opened => {
                    opened = true;
                    hellos = u32::from(is_control);
                    self.opened(conn, &dc, is_control).await;
                }
                DataChannelEvent::OnMessage(m) => match parse_broadcaster(&m.data, m.is_string) {
                    Ok(message) => {
                        match &message {
                            BroadcasterMessage::Welcome { .. } => welcomed = true,
                            BroadcasterMessage::Error { message } => {
                                tracing::warn!("the broadcaster says: {message}");
                            }
                            _ => {}
                        }
                        if said.send((conn, message)).await.is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        malformed += 1;
                        if malformed == 1 {
                            tracing::warn!(
                                "the broadcaster sent something unreadable ({e}); ignoring such messages"
                            );
                        }
                    }
                },
                DataChannelEvent::OnClose => break,
                _ => {}
            }
        }
        self.forget_channel(conn, is_control);
    }

    /// `dc` is open: it is the one to send on, and the control channel says hello.
    async fn opened(&self, conn: ConnId, dc: &Arc<dyn DataChannel>, is_control: bool) {
        {
            let mut open = self.open.lock();
            let slot = if is_control {
                &mut open.control
            } else {
                &mut open.viewport
            };
            *slot = Some((conn, dc.clone()));
            self.update_ready(&open);
        }
        if is_control {
            self.say_hello(conn, dc).await;
        }
    }

    async fn say_hello(&self, conn: ConnId, dc: &Arc<dyn DataChannel>) {
        let hello = ViewerMessage::Hello {
            control: self.control_key.as_ref().map(|k| k.as_str().to_owned()),
        };
        if let Err(e) = dc.send_text(&hello.to_json()).await {
            tracing::debug!(%conn, "hello not sent: {e}");
        }
    }

    fn forget_channel(&self, conn: ConnId, is_control: bool) {
        let mut open = self.open.lock();
        let slot = if is_control {
            &mut open.control
        } else {
            &mut open.viewport
        };
        if slot.as_ref().is_some_and(|(c, _)| *c == conn) {
            *slot = None;
        }
        self.update_ready(&open);
    }
}

async fn send(dc: Option<Arc<dyn DataChannel>>, text: &str) -> Result<(), SendError> {
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(SendError::TooLarge(text.len()));
    }
    let dc = dc.ok_or(SendError::NotConnected)?;
    dc.send_text(text)
        .await
        .map_err(|e| SendError::Channel(e.to_string()))
}

/// When a viewer's view goes out: as it changes, at most every [`MIN_INTERVAL`], and every
/// [`KEEPALIVE`] while it does not. Pure: time is passed in.
#[derive(Debug, Default, Clone)]
pub struct ViewportPacer {
    latest: Option<super::protocol::Viewport>,
    changed: bool,
    last_sent: Option<Instant>,
}

/// At most ~30 samples a second.
pub const MIN_INTERVAL: Duration = Duration::from_millis(33);
/// One a second while the view stands still.
pub const KEEPALIVE: Duration = Duration::from_secs(1);

impl ViewportPacer {
    /// The view now.
    pub fn update(&mut self, view: super::protocol::Viewport) {
        if self.latest != Some(view) {
            self.latest = Some(view);
            self.changed = true;
        }
    }

    /// Nothing to send any more (the view is no longer a 360° one).
    pub fn clear(&mut self) {
        *self = Self::default();
    }

    /// Send the next sample as soon as possible (a new connection).
    pub fn reset(&mut self) {
        self.last_sent = None;
        self.changed = self.latest.is_some();
    }

    /// When [`ViewportPacer::poll`] will next have something, if ever (`now` if at once).
    pub fn next_at(&self, now: Instant) -> Option<Instant> {
        self.latest?;
        match self.last_sent {
            None => Some(now),
            Some(at) if self.changed => Some(at + MIN_INTERVAL),
            Some(at) => Some(at + KEEPALIVE),
        }
    }

    /// The view to send at `now`, if one is due.
    pub fn poll(&mut self, now: Instant) -> Option<super::protocol::Viewport> {
        let latest = self.latest?;
        let due = match self.last_sent {
            None => true,
            Some(at) => {
                let since = now.saturating_duration_since(at);
                (self.changed && since >= MIN_INTERVAL) || since >= KEEPALIVE
            }
        };
        if !due {
            return None;
        }
        self.last_sent = Some(now);
        self.changed = false;
        Some(latest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::protocol::Viewport;

    #[test]
    fn views_go_out_as_they_change_at_most_30_a_second_and_once_a_second_when_still() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut p = ViewportPacer::default();
        assert_eq!(p.poll(t0), None, "nothing to say yet");
        assert_eq!(p.next_at(ms(0)), None);
        let view = |yaw: f64| Viewport::new(yaw, 0.0, 0.0, Some(90.0));
        p.update(view(1.0));
        assert_eq!(p.poll(ms(0)), Some(view(1.0)), "the first goes at once");
        // Moving every 5 ms for a second: about 30 go out, each the latest.
        let mut sent = vec![(0, view(1.0))];
        for n in 1..=200 {
            p.update(view(1.0 + n as f64));
            if let Some(v) = p.poll(ms(n * 5)) {
                sent.push((n * 5, v));
            }
        }
        assert!((28..=31).contains(&sent.len()), "{}", sent.len());
        assert!(sent.windows(2).all(|w| w[1].0 - w[0].0 >= 33));
        assert_eq!(
            sent.last().unwrap().1,
            view(1.0 + (sent.last().unwrap().0 / 5) as f64)
        );
        // Standing still: one a second, the same view.
        let last = sent.last().unwrap().0;
        let mut still = 0;
        for n in (last + 1)..(last + 5_001) {
            if let Some(v) = p.poll(ms(n)) {
                still += 1;
                assert_eq!(v, view(201.0));
            }
        }
        assert_eq!(still, 5);
        // The same view again is no change.
        p.update(view(201.0));
        assert_eq!(p.poll(ms(last + 5_010)), None);
        // A new connection hears at once.
        p.reset();
        assert_eq!(p.poll(ms(last + 5_011)), Some(view(201.0)));
        // A view that is no longer 360° sends nothing more.
        p.clear();
        assert_eq!(p.next_at(ms(0)), None);
        assert_eq!(p.poll(ms(last + 9_000)), None);
    }
}
