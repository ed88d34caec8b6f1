//! The viewer: answers the broadcaster's offer and hands what arrives on each track to that
//! track's sinks ([`receive`]): the decoder and its latest-frame slot ([`display`]), later a
//! recorder or audio output. Which sinks a viewer has is chosen where it is planned (a
//! [`ViewSink`] each); with none, it only receives and counts (load generation).

pub mod display;
pub mod machine;
mod receive;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use webrtc::peer_connection::{
    PeerConnection, RTCPeerConnectionState, RTCStatsReportEntry, StatsSelector,
};

use crate::channels::link::Link;
use crate::channels::protocol::{BroadcasterMessage, Viewport, ViewportSample};
use crate::channels::room::unix_ms;
use crate::channels::trace::Trace;
use crate::lipsync::SyncClock;
use crate::media::{KeyframeRequest, TrackId};
use crate::peer::{self, ConnId, PeerEvent, PeerSettings};
use crate::session::{Reporter, SessionError, StopSignal};
use crate::signal::{SignalClient, SignalEvent};
use crate::values::{ControlKey, Projection};
use machine::{ConnReport, Input, Output, ViewerMachine};

pub use crate::figures::{AudioStats, Figures, MAX_LATENCY_SAMPLES, ViewerStats};
pub use crate::sink::{ViewContext, ViewSink};

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
    events: &Reporter<ViewEvent>,
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
                        Err(e) => events.offer(ViewEvent::Refused(e.to_string())),
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
                    events.offer(ViewEvent::Stats(Box::new(s.clone())));
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
    events.offer(ViewEvent::Stats(Box::new(io.figures.snapshot())));
    result
}

/// What the viewer's I/O loop holds: the connection, its data channels, the figures.
struct Io<'a> {
    started: Instant,
    figures: Arc<Figures>,
    link: Arc<Link>,
    events: &'a Reporter<ViewEvent>,
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
                self.events.send(event).await;
            }
            ViewEvent::Stats(_) | ViewEvent::Telemetry { .. } | ViewEvent::Refused(_) => {
                self.events.offer(event);
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
