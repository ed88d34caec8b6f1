//! The viewer: answers the broadcaster's offer and hands what arrives on each track to that
//! track's sinks ([`receive`]): the decoder and its latest-frame slot ([`display`]), later a
//! recorder or audio output. Which sinks a viewer has is chosen where it is planned (a
//! [`ViewSink`] each); with none, it only receives and counts (load generation).

pub mod display;
pub mod machine;
mod receive;

use std::collections::BTreeMap;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use webrtc::peer_connection::{
    PeerConnection, RTCPeerConnectionState, RTCStatsReportEntry, StatsSelector,
};

use crate::audio::sync::SyncClock;
use crate::channels::link::Link;
use crate::channels::protocol::{BroadcasterMessage, Viewport, ViewportSample};
use crate::channels::room::unix_ms;
use crate::channels::trace::Trace;
use crate::media::{KeyframeRequest, TrackId, TrackSink, TrackSpec};
use crate::peer::{self, ConnId, PeerEvent, PeerSettings};
use crate::service::{SessionEvent, SessionEvents};
use crate::session::{SessionError, StopSignal};
use crate::signal::{SignalClient, SignalEvent};
use crate::values::{ControlKey, Projection};
use machine::{ConnReport, Input, Output, ViewerMachine};

#[derive(Debug, Clone)]
pub struct ViewSettings {
    pub server_url: String,
    pub room: String,
    pub peer: PeerSettings,
    /// Said in `hello`: with the room's key, this viewer's messages reach the robot.
    pub control_key: Option<ControlKey>,
    /// A head-motion trace to send as viewport samples, from the first decoded frame on.
    pub viewport_trace: Option<Arc<Trace>>,
}

/// What a running viewer can be told.
#[derive(Debug, Clone, PartialEq)]
pub enum ViewCommand {
    /// The viewer looks here now (a 360° view): sent to the broadcaster as it changes, at most
    /// 30 times a second, and once a second while it does not.
    Look(Viewport),
    /// The viewer no longer looks around (a flat view): no more samples.
    StopLooking,
    /// Send this to the robot (it arrives only with the control key).
    Message(Value),
}

/// What the viewer is doing within an attempt (the session says when it is retrying).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ViewState {
    Connecting,
    WaitingForBroadcaster,
    /// An offer came and was answered; the connection is being made.
    Negotiating,
    /// Connected to the broadcaster: media flows.
    Live,
    BroadcasterLeft,
}

impl std::fmt::Display for ViewState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Connecting => "connecting to the signal server",
            Self::WaitingForBroadcaster => "waiting for the broadcaster",
            Self::Negotiating => "connecting to the broadcaster",
            Self::Live => "live",
            Self::BroadcasterLeft => "the broadcaster left",
        })
    }
}

/// What a viewer reports.
#[derive(Debug, Clone, PartialEq)]
pub enum ViewEvent {
    State(ViewState),
    /// Its figures, every half second while they change.
    Stats(Box<ViewerStats>),
    /// The broadcaster welcomed us on its data channel: `true` if our messages reach the robot.
    Control(bool),
    /// What the broadcaster's picture is: said when we join and whenever it changes.
    Projection(Projection),
    /// Telemetry from the broadcaster (the robot), sent at `t_ms` on its clock.
    Telemetry {
        t_ms: f64,
        data: Value,
    },
    /// Something sent was refused (by the broadcaster, or it could not go).
    Refused(String),
}

/// Receive-side figures.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct ViewerStats {
    pub width: usize,
    pub height: usize,
    pub frames_decoded: u64,
    pub frames_with_stamp: u64,
    /// Frames missing between consecutive stamps (lost or skipped before us).
    pub frames_lost: u64,
    pub frames_out_of_order: u64,
    pub packets_received: u64,
    /// Frames completed (RTP marker bit), counted without decoding.
    pub frames_received: u64,
    pub packets_lost: u64,
    pub bytes_received: u64,
    pub decode_errors: u64,
    pub last_decode_error: Option<String>,
    pub keyframe_requests: u64,
    pub first_frame_ms: Option<u64>,
    /// When each step of the first connection happened, ms after start: where a slow start
    /// spent its time.
    pub timeline_ms: BTreeMap<&'static str, u64>,
    /// Stamp sequence numbers of the first and last frames decoded.
    pub first_seq: Option<u32>,
    pub last_seq: Option<u32>,
    /// Glass-to-glass latency of the most recent stamped frames, oldest first.
    pub latency_ms: VecDeque<u32>,
    pub decode_us_total: u64,
    pub freezes: u64,
    /// Round-trip time of the connection (ICE candidate pair), milliseconds.
    pub rtt_ms: Option<f64>,
    /// Over the time since the first decoded frame.
    pub fps_decoded: f64,
    pub fps_received: f64,
    pub bitrate_kbps: f64,
    pub decode_ms_avg: f64,
    /// Viewport samples sent to the broadcaster.
    pub viewport_samples_sent: u64,
    pub messages_sent: u64,
    pub telemetry_received: u64,
    /// What the broadcaster said its picture is.
    pub projection: Option<Projection>,
    /// The sound, when the broadcast has some.
    pub audio: AudioStats,
}

/// Receive-side figures of the sound.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct AudioStats {
    /// Where it plays: the device's name, or "none: why" (decoded anyway).
    pub output: Option<String>,
    pub packets_received: u64,
    pub packets_lost: u64,
    pub bytes_received: u64,
    pub bitrate_kbps: f64,
    pub frames_played: u64,
    /// Frames filled in by Opus (loss concealment, FEC, or to lengthen the delay).
    pub frames_concealed: u64,
    /// Packets that came after their turn.
    pub packets_late: u64,
    pub underruns: u64,
    /// Packets dropped because the audio thread was behind.
    pub dropped_queue_full: u64,
    pub decode_errors: u64,
    /// How long the last frame played waited in the jitter buffer, and what it aims at.
    pub jitter_buffer_ms: f64,
    pub jitter_target_ms: f64,
    /// Interarrival jitter (RFC 3550).
    pub jitter_ms: f64,
    /// How much later the sound is heard than the picture shows what was captured with it
    /// (from the sender's reports); positive: sound late.
    pub av_offset_ms: Option<f64>,
    /// Peak level of what plays (0–1).
    pub level: f32,
    /// Beeps heard (the test tone: one a second).
    pub beeps: u64,
    /// Each beep's glass-to-glass latency (it left at a whole second), oldest first.
    pub beep_latency_ms: VecDeque<f64>,
    /// Each beep's latency less the latest picture's stamp latency: the A/V offset as heard
    /// and seen.
    pub beep_av_offset_ms: VecDeque<Option<f64>>,
}

/// Latency samples kept (the most recent: 20 s at 30 fps).
pub const MAX_LATENCY_SAMPLES: usize = 600;

/// The viewer's figures as its tasks and threads write them.
#[derive(Default)]
pub struct Figures {
    inner: Mutex<ViewerStats>,
    /// When the first frame was decoded, with the frames and bytes received by then (rates are
    /// measured from there).
    live_since: Mutex<Option<(Instant, u64, u64)>>,
    /// Told when the first frame is decoded.
    first_frame: tokio::sync::Notify,
    /// Told when the first frame has arrived whole (decoded or not).
    first_received: tokio::sync::Notify,
    received_any: std::sync::atomic::AtomicBool,
    /// When the first audio packet came (its bitrate is measured from there).
    audio_since: Mutex<Option<Instant>>,
}

impl Figures {
    pub fn update(&self, f: impl FnOnce(&mut ViewerStats)) {
        f(&mut self.inner.lock());
    }

    /// Records that the first frame was decoded now.
    pub fn mark_live(&self) {
        let s = self.inner.lock();
        let mut live = self.live_since.lock();
        if live.is_none() {
            *live = Some((Instant::now(), s.frames_received, s.bytes_received));
            self.first_frame.notify_one();
        }
    }

    /// Records that a whole frame arrived (the first one tells who waits for it).
    pub fn mark_frame_received(&self) {
        if !self
            .received_any
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            self.first_received.notify_one();
        }
    }

    /// Waits for the first frame decoded (`decodes`), or else received whole.
    async fn first_frame(self: Arc<Self>, decodes: bool) {
        if decodes {
            self.first_frame.notified().await;
        } else {
            self.first_received.notified().await;
        }
    }

    /// Records an audio packet of `bytes` and `lost` packets missing before it.
    pub fn audio_packet(&self, bytes: u64, lost: u64) {
        self.audio_since.lock().get_or_insert_with(Instant::now);
        self.update(|s| {
            s.audio.packets_received += 1;
            s.audio.bytes_received += bytes;
            s.audio.packets_lost += lost;
        });
    }

    /// Records when a step of the first connection happened (later repeats are ignored).
    pub fn mark(&self, step: &'static str, started: Instant) {
        let at = started.elapsed().as_millis() as u64;
        self.update(|s| {
            s.timeline_ms.entry(step).or_insert(at);
        });
    }

    /// The figures now, rates included.
    pub fn snapshot(&self) -> ViewerStats {
        let mut s = self.inner.lock().clone();
        if let Some((since, frames0, bytes0)) = *self.live_since.lock() {
            let secs = since.elapsed().as_secs_f64();
            if secs > 0.0 {
                s.fps_decoded = (s.frames_decoded.saturating_sub(1)) as f64 / secs;
                s.fps_received = s.frames_received.saturating_sub(frames0) as f64 / secs;
                s.bitrate_kbps =
                    s.bytes_received.saturating_sub(bytes0) as f64 * 8.0 / 1000.0 / secs;
            }
        }
        if let Some(since) = *self.audio_since.lock() {
            let secs = since.elapsed().as_secs_f64();
            if secs > 0.5 {
                s.audio.bitrate_kbps = s.audio.bytes_received as f64 * 8.0 / 1000.0 / secs;
            }
        }
        if s.frames_decoded > 0 {
            s.decode_ms_avg = s.decode_us_total as f64 / s.frames_decoded as f64 / 1000.0;
        }
        s
    }
}

/// What a viewer's sinks get to work with.
#[derive(Clone)]
pub struct ViewContext {
    pub figures: Arc<Figures>,
    /// When the viewer started (timelines count from here).
    pub started: Instant,
    /// Set to ask the sender for a keyframe (a PLI goes out, at most every half second).
    pub keyframe: KeyframeRequest,
    /// The connection's sender clock and the tracks' delays (lip sync).
    pub sync: Arc<SyncClock>,
}

/// A kind of sink a viewer hands its tracks to: makes one for each track it wants.
pub trait ViewSink: Send + Sync {
    fn sink_for(&self, track: &TrackSpec, ctx: &ViewContext) -> Option<Box<dyn TrackSink>>;
}

/// How often the figures are sent while they change, and the round trip is measured.
pub const STATS_INTERVAL: Duration = Duration::from_millis(500);

/// The connection to the broadcaster being made or in use, as the I/O loop holds it.
struct Current {
    conn: ConnId,
    pc: Arc<dyn PeerConnection>,
    sync: Arc<SyncClock>,
    /// Measuring its round trip, once connected; ends with it.
    rtt: Option<tokio::task::JoinHandle<()>>,
}

/// Runs one attempt at watching until `stop`; each track's frames go to `sinks`. The
/// decisions are [`machine::ViewerMachine`]'s; this loop feeds it and carries them out.
pub async fn run(
    settings: ViewSettings,
    sinks: Arc<[Arc<dyn ViewSink>]>,
    commands: &mut mpsc::Receiver<ViewCommand>,
    events: &SessionEvents,
    stop: StopSignal,
) -> Result<(), SessionError> {
    let mut machine = ViewerMachine::new(settings.viewport_trace.is_some());
    let (peer_tx, mut peer_rx) = mpsc::channel::<(ConnId, PeerEvent)>(64);
    let (said_tx, mut said_rx) = mpsc::channel::<(ConnId, BroadcasterMessage)>(64);
    let mut io = Io {
        started: Instant::now(),
        figures: Arc::new(Figures::default()),
        link: Link::new(settings.control_key.clone()),
        events,
        peer: settings.peer.clone(),
        peer_tx,
        current: None,
        trace: settings.viewport_trace.clone(),
        replay: None,
    };
    io.carry_out(&mut machine, None).await;
    let (sig_tx, mut sig_rx) = mpsc::channel(256);
    let signal = SignalClient::connect(&settings.server_url, &settings.room, None, sig_tx)
        .await
        .map_err(SessionError::Unreachable)?;
    let mut next_track = 0;
    let mut stats_tick = tokio::time::interval(STATS_INTERVAL);
    stats_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_stats = None;
    // A viewer that only receives (load generation) counts its first frame received whole.
    let first_frame = io.figures.clone().first_frame(!sinks.is_empty());
    tokio::pin!(first_frame);
    let mut first_frame_seen = false;
    let stopped = stop.stopped();
    tokio::pin!(stopped);
    let mut result = Ok(());
    loop {
        let pace_at = machine
            .poll_timeout(Instant::now())
            .map(tokio::time::Instant::from_std);
        let input = tokio::select! {
            () = &mut stopped => break,
            Some(command) = commands.recv() => match command {
                ViewCommand::Look(view) => Input::Look(view),
                ViewCommand::StopLooking => Input::StopLooking,
                ViewCommand::Message(data) => {
                    match io.link.send_message(data).await {
                        Ok(()) => io.figures.update(|s| s.messages_sent += 1),
                        Err(e) => events.offer(SessionEvent::View(ViewEvent::Refused(e.to_string()))),
                    }
                    continue;
                }
            },
            () = sleep_until_some(pace_at) => {
                machine.handle_timeout(Instant::now());
                io.carry_out(&mut machine, Some(&signal)).await;
                continue;
            }
            _ = stats_tick.tick() => {
                let s = io.figures.snapshot();
                if last_stats.as_ref() != Some(&s) {
                    events.offer(SessionEvent::View(ViewEvent::Stats(Box::new(s.clone()))));
                    last_stats = Some(s);
                }
                continue;
            }
            () = &mut first_frame, if !first_frame_seen => {
                first_frame_seen = true;
                Input::FirstFrame
            }
            Some(event) = sig_rx.recv() => match event {
                SignalEvent::Connected => Input::SignalUp,
                SignalEvent::Broadcaster => Input::BroadcasterArrived,
                // The picture keeps coming peer to peer; the signalling reconnects by itself.
                SignalEvent::Disconnected => continue,
                SignalEvent::Lost => {
                    result = Err(SessionError::Signal(signal.lost()));
                    break;
                }
                SignalEvent::NoBroadcaster => Input::NoBroadcaster,
                SignalEvent::BroadcasterLeft => Input::BroadcasterLeft,
                SignalEvent::PeerLeft(id) => Input::PeerLeft(id),
                SignalEvent::Offer(from, offer) => Input::Offer { from, offer },
                SignalEvent::Candidate(from, candidate) => Input::Candidate { from, candidate },
                SignalEvent::Error(e) => {
                    tracing::warn!("signal server: {e}");
                    continue;
                }
                SignalEvent::IceServers(servers) => {
                    io.peer.ice_servers = servers;
                    continue;
                }
                SignalEvent::Watcher(_)
                | SignalEvent::Answer(..)
                | SignalEvent::Viewers(_)
                | SignalEvent::Replaced => continue,
            },
            Some((conn, event)) = peer_rx.recv() => match event {
                PeerEvent::Candidate(c) => Input::Conn(conn, ConnReport::LocalCandidate(c)),
                PeerEvent::IceConnected => Input::Conn(conn, ConnReport::IceConnected),
                PeerEvent::State(s) => {
                    tracing::debug!(%conn, "connection {s}");
                    match s {
                        RTCPeerConnectionState::Connected => Input::Conn(conn, ConnReport::Connected),
                        RTCPeerConnectionState::Failed => Input::Conn(conn, ConnReport::Lost),
                        _ => continue,
                    }
                }
                // A connection that was replaced has nothing more to give.
                PeerEvent::DataChannel(dc) => {
                    if machine.conn() == Some(conn) {
                        tokio::spawn(io.link.clone().serve(conn, dc, said_tx.clone()));
                    }
                    continue;
                }
                PeerEvent::Track(track) => {
                    if let Some(cur) = io.current.as_ref().filter(|c| c.conn == conn) {
                        let ctx = ViewContext {
                            figures: io.figures.clone(),
                            started: io.started,
                            keyframe: KeyframeRequest::default(),
                            sync: cur.sync.clone(),
                        };
                        let id = TrackId(next_track);
                        next_track += 1;
                        tokio::spawn(receive::receive(track, id, sinks.clone(), ctx));
                    }
                    continue;
                }
            },
            Some((conn, message)) = said_rx.recv() => Input::Said(conn, message),
        };
        machine.handle_input(Instant::now(), input);
        io.carry_out(&mut machine, Some(&signal)).await;
    }
    machine.close_all();
    io.carry_out(&mut machine, Some(&signal)).await;
    drop(io.replay.take());
    signal.disconnect().await;
    // The last figures, so a caller that stops after N frames sees them.
    events.offer(SessionEvent::View(ViewEvent::Stats(Box::new(
        io.figures.snapshot(),
    ))));
    result
}

/// What the viewer's I/O loop holds: the connection, its data channels, the figures.
struct Io<'a> {
    started: Instant,
    figures: Arc<Figures>,
    link: Arc<Link>,
    events: &'a SessionEvents,
    peer: PeerSettings,
    peer_tx: mpsc::Sender<(ConnId, PeerEvent)>,
    current: Option<Current>,
    trace: Option<Arc<Trace>>,
    replay: Option<Replay>,
}

impl Io<'_> {
    /// Carries out what `machine` decided, in order (what doing so reports goes back in).
    async fn carry_out(&mut self, machine: &mut ViewerMachine, signal: Option<&SignalClient>) {
        while let Some(output) = machine.poll_output() {
            match output {
                Output::Watch => {
                    if let Some(signal) = signal {
                        signal.send("watcher", vec![]).await;
                    }
                }
                Output::Answer { conn, offer } => {
                    let report = match answer(&self.peer, conn, offer, &self.peer_tx).await {
                        Ok((pc, answer)) => {
                            self.current = Some(Current {
                                conn,
                                pc,
                                sync: Arc::default(),
                                rtt: None,
                            });
                            ConnReport::Answered(answer)
                        }
                        Err(e) => ConnReport::Failed(e.to_string()),
                    };
                    machine.handle_input(Instant::now(), Input::Conn(conn, report));
                }
                Output::SendAnswer { to, answer } => {
                    if let Some(signal) = signal {
                        signal.send("answer", vec![json!(to), answer]).await;
                    }
                }
                Output::SendCandidate { to, candidate } => {
                    if let Some(signal) = signal {
                        signal.send("candidate", vec![json!(to), candidate]).await;
                    }
                }
                Output::AddCandidate { conn, candidate } => {
                    if let Some(cur) = self.current.as_ref().filter(|c| c.conn == conn) {
                        match peer::candidate(candidate) {
                            Ok(c) => {
                                if let Err(e) = cur.pc.add_ice_candidate(c).await {
                                    tracing::debug!("unusable candidate: {e}");
                                }
                            }
                            Err(e) => tracing::debug!("{e}"),
                        }
                    }
                }
                Output::Close(conn) => {
                    self.link.forget(conn);
                    if let Some(c) = self.current.take_if(|c| c.conn == conn) {
                        if let Some(rtt) = c.rtt {
                            rtt.abort();
                        }
                        tokio::spawn(async move {
                            let _ = c.pc.close().await;
                        });
                    }
                }
                Output::MeasureRtt(conn) => {
                    if let Some(cur) = self.current.as_mut().filter(|c| c.conn == conn) {
                        cur.rtt = Some(tokio::spawn(measure_rtt(
                            cur.pc.clone(),
                            self.figures.clone(),
                        )));
                    }
                }
                Output::SendView(view) => {
                    let sample = ViewportSample {
                        t_ms: unix_ms(),
                        view,
                    };
                    if self.link.send_viewport(&sample).await.is_ok() {
                        self.figures.update(|s| s.viewport_samples_sent += 1);
                    }
                }
                Output::StartTrace => {
                    if let Some(trace) = self.trace.clone() {
                        self.replay = Some(Replay(tokio::spawn(replay(
                            trace,
                            self.link.clone(),
                            self.figures.clone(),
                        ))));
                    }
                }
                Output::Mark(step) => self.figures.mark(step, self.started),
                Output::Event(event) => self.report(event).await,
            }
        }
    }

    /// Reports `event`: changes of state are never dropped, figures and telemetry may be.
    async fn report(&self, event: ViewEvent) {
        match &event {
            ViewEvent::Projection(p) => {
                let p = *p;
                self.figures.update(|s| s.projection = Some(p));
            }
            ViewEvent::Telemetry { .. } => self.figures.update(|s| s.telemetry_received += 1),
            _ => {}
        }
        match event {
            ViewEvent::State(_) | ViewEvent::Control(_) | ViewEvent::Projection(_) => {
                self.events.send(SessionEvent::View(event)).await;
            }
            ViewEvent::Stats(_) | ViewEvent::Telemetry { .. } | ViewEvent::Refused(_) => {
                self.events.offer(SessionEvent::View(event));
            }
        }
    }
}

/// Sleeps until `at`, or for ever when there is nothing to wait for.
async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A trace being replayed; dropping it ends the replay.
struct Replay(tokio::task::JoinHandle<()>);

impl Drop for Replay {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Sends `trace` as viewport samples at its own timing (it starts at the first frame), once
/// the data channels are open: they may come up a moment after the picture.
async fn replay(trace: Arc<Trace>, link: Arc<Link>, figures: Arc<Figures>) {
    if tokio::time::timeout(Duration::from_secs(5), link.ready())
        .await
        .is_err()
    {
        tracing::warn!(
            "the broadcaster has opened no data channel (a classic page?): the trace waits for one"
        );
        link.ready().await;
    }
    let start = tokio::time::Instant::now();
    tracing::info!(
        "replaying a trace of {} samples over {:.1} s",
        trace.points.len(),
        trace.duration().as_secs_f64()
    );
    let mut unsent = 0u64;
    for point in &trace.points {
        tokio::time::sleep_until(start + point.at).await;
        let sample = ViewportSample {
            t_ms: unix_ms(),
            view: point.view,
        };
        match link.send_viewport(&sample).await {
            Ok(()) => figures.update(|s| s.viewport_samples_sent += 1),
            Err(_) => unsent += 1,
        }
    }
    tracing::info!(
        "trace replayed: {} samples sent, {unsent} with no channel open",
        trace.points.len() as u64 - unsent
    );
}

/// Measures the connection's round trip every [`STATS_INTERVAL`] (off the event loop).
async fn measure_rtt(pc: Arc<dyn PeerConnection>, figures: Arc<Figures>) {
    let mut tick = tokio::time::interval(STATS_INTERVAL);
    loop {
        tick.tick().await;
        let report = pc.get_stats(Instant::now(), StatsSelector::None).await;
        let rtt = report.iter().find_map(|e| match e {
            RTCStatsReportEntry::IceCandidatePair(p) if p.current_round_trip_time > 0.0 => {
                Some(p.current_round_trip_time * 1000.0)
            }
            _ => None,
        });
        if rtt.is_some() {
            figures.update(|s| s.rtt_ms = rtt);
        }
    }
}

async fn answer(
    settings: &PeerSettings,
    conn: ConnId,
    offer: Value,
    events: &mpsc::Sender<(ConnId, PeerEvent)>,
) -> Result<(Arc<dyn PeerConnection>, Value), peer::PeerError> {
    let offer = peer::description(offer)?;
    let pc = peer::build(settings, true, conn, events.clone()).await?;
    let result = async {
        pc.set_remote_description(offer).await?;
        let answer = pc.create_answer(None).await?;
        pc.set_local_description(answer.clone()).await?;
        Ok::<_, webrtc::error::Error>(answer)
    }
    .await;
    match result {
        Ok(answer) => {
            tracing::debug!(%conn, "answered");
            Ok((pc, peer::description_json(&answer)))
        }
        Err(e) => {
            let _ = pc.close().await;
            Err(e.into())
        }
    }
}
