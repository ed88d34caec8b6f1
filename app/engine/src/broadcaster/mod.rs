//! The broadcaster: its tracks' sources encode each frame once and hand it to their sinks (the
//! network fan-out among them); one peer connection per viewer, each fed the same packets.
//!
//! This module is the thin I/O loop: it turns what the signal server and the connections say
//! into [`fanout`](crate::fanout) inputs and carries out what the state machine decides.

pub mod connection;
pub mod network;
pub mod video;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::audio::AudioSource;
use crate::audio::send::{AudioFigures, AudioTrack};
use crate::capture::SourceSpec;
use crate::channels::protocol::Viewport;
use crate::channels::room::{DataRoom, DataSettings, DataStatus};
use crate::fanout::{ConnCommand, ConnId, Fanout, Input, Output, ViewerSummary};
use crate::figures::VideoFigures;
use crate::media::{H264, KeyframeRequest, MediaKind, OPUS, TrackId, TrackSink, TrackSpec};
use crate::peer::PeerSettings;
use crate::record::Recorder;
use crate::replay::{self, Replay, ReplaySinks};
use crate::session::{Reporter, SessionError, StopSignal};
use crate::signal::{SignalClient, SignalEvent};
use crate::values::Projection;
use connection::Connection;
use network::OutTrack;
use video::{PreviewTap, VideoSettings, VideoTrack};

#[derive(Debug, Clone)]
pub struct BroadcastSettings {
    pub server_url: String,
    pub room: String,
    pub key: Option<String>,
    pub video: VideoSettings,
    /// What is heard: nothing, a microphone or the test tone (its own track, Opus).
    pub audio: AudioSource,
    /// Start with the sound muted (silence goes out).
    pub audio_muted: bool,
    pub peer: PeerSettings,
    /// What happens to what viewers send on the data channels.
    pub data: DataSettings,
}

/// What a running broadcast can be told.
#[derive(Debug, Clone, PartialEq)]
pub enum BroadcastCommand {
    /// Fill the preview slot (a window shows it) or stop doing so.
    Preview(bool),
    /// Send this to every viewer as telemetry.
    Telemetry(Value),
    /// The picture is now this (viewers are told).
    Projection(Projection),
    /// Send silence instead of the microphone, or stop doing so.
    MuteAudio(bool),
}

/// What a broadcast reports.
#[derive(Debug, Clone, PartialEq)]
pub enum BroadcastEvent {
    /// The hosted signal server is up: where viewers find it.
    Hosting(crate::hosting::Hosted),
    /// Everything the broadcast knows about itself, every half second while it changes.
    Status(Box<BroadcastStatus>),
    /// Where each viewer looks now (those that say), every 100 ms while it changes.
    Views(BTreeMap<String, Viewport>),
    /// A viewer with control sent this (it went to the robot too, if bridged).
    Message { viewer: String, data: Value },
    /// Something the broadcast was told to do and could not.
    Refused(String),
}

/// A broadcast's state, in one place.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct BroadcastStatus {
    /// Connected to the signal server and announced as the broadcaster.
    pub signal_connected: bool,
    /// What goes out: the camera's name, or the test pattern and why.
    pub source: String,
    /// Viewers the signal server counts in the room (connected or not).
    pub viewers_in_room: u64,
    /// Every viewer with a connection, sorted by id.
    pub viewers: Vec<ViewerSummary>,
    pub frames_encoded: u64,
    /// Frames encoded per second over the last half second.
    pub fps: f64,
    pub keyframes: u64,
    pub frames_dropped_late: u64,
    pub encode_ms_avg: f64,
    /// Threads encoding the current picture size.
    pub encoder_threads: u64,
    /// The frames "encoded" are a recording's, sent as recorded.
    pub sent_as_recorded: bool,
    /// The data channels: samples, messages, the log, the bridge.
    pub data: DataStatus,
    /// What viewers are told the picture is.
    pub projection: Projection,
    /// The sound: its source and figures; `None` when the broadcast sends none.
    pub audio: Option<AudioStatus>,
}

/// What the broadcaster's sound is doing.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct AudioStatus {
    /// The microphone's name, the test tone, or why nothing is heard.
    pub source: String,
    pub muted: bool,
    /// Peak level of the source (0–1), shown even while muted.
    pub level: f32,
    pub frames_encoded: u64,
    /// Encoded once for every viewer: the Opus bitrate over the last half second.
    pub bitrate_kbps: f64,
    pub frames_skipped: u64,
}

impl BroadcastStatus {
    /// Viewers whose connection is up.
    pub fn connected_viewers(&self) -> usize {
        self.viewers.iter().filter(|v| v.connected).count()
    }
}

/// How often the status is sent while it changes.
pub const STATUS_INTERVAL: Duration = Duration::from_millis(500);
/// How often where viewers look is sent while it changes.
pub const VIEWS_INTERVAL: Duration = Duration::from_millis(100);

/// What a broadcast keeps across its attempts (reconnections).
#[derive(Clone)]
pub struct Lasting {
    /// The data channels' room: the viewport log and the robot bridge.
    pub room: Arc<DataRoom>,
    pub preview: Option<PreviewTap>,
    /// The sound's figures (and mute).
    pub audio: Arc<AudioFigures>,
    /// Records what is sent while told to.
    pub recorder: Option<Recorder>,
}

/// Runs one attempt at a broadcast until `stop`: its tracks, the signalling, a connection per
/// viewer. Commands come from `commands`, the status goes to `events`.
pub async fn run(
    settings: BroadcastSettings,
    lasting: Lasting,
    commands: &mut mpsc::Receiver<BroadcastCommand>,
    events: &Reporter<BroadcastEvent>,
    stop: StopSignal,
) -> Result<(), SessionError> {
    let Lasting {
        room,
        preview,
        audio,
        recorder,
    } = lasting;
    // The tracks: video, and sound when there is a source for it. Each is encoded once.
    let keyframe = KeyframeRequest::default();
    let video_spec = TrackSpec {
        id: TrackId(0),
        codec: &H264,
    };
    let audio_spec = TrackSpec {
        id: TrackId(1),
        codec: &OPUS,
    };
    // A recording whose H.264 viewers can take as it is goes out as recorded, its sound too.
    // Probing it is file I/O: off the async threads.
    let replay = match &settings.video.source {
        SourceSpec::Mp4(path) => {
            let file = path.clone();
            match tokio::task::spawn_blocking(move || replay::probe(&file)).await {
                Ok(Ok(info)) if info.sendable_as_is => Some((path.clone(), info)),
                Ok(Ok(info)) => {
                    tracing::info!(
                        "{}: H.264 profile {} is not Constrained Baseline: re-encoding it",
                        path.display(),
                        info.profile
                    );
                    None
                }
                // Said, and retried, by the capture thread as for any file.
                _ => None,
            }
        }
        _ => None,
    };
    let sound = match &replay {
        Some((_, info)) => info.opus,
        None => !settings.audio.is_none(),
    };
    let mut out = vec![OutTrack::new(video_spec)];
    if sound {
        out.push(OutTrack::new(audio_spec));
    }
    let tracks: Arc<[OutTrack]> = out.into();
    // Each track's frames go to the network and, while it records, the recorder.
    let sinks_for = |track: &OutTrack, kind: MediaKind| {
        let mut sinks: Vec<Box<dyn TrackSink>> = vec![Box::new(track.sink())];
        if let Some(r) = &recorder {
            sinks.push(Box::new(r.sink(kind, Some(keyframe.clone()))));
        }
        sinks
    };
    let sinks = sinks_for(&tracks[0], MediaKind::Video);
    let thread_error = |what| move |source| SessionError::Thread { what, source };
    let (picture, audio_track) = if let Some((path, _)) = replay {
        let figures = Arc::new(VideoFigures::default());
        let sinks = ReplaySinks {
            video: (video_spec.id, sinks),
            audio: tracks
                .get(1)
                .map(|t| (audio_spec.id, sinks_for(t, MediaKind::Audio))),
        };
        let replay = Replay::start(path, sinks, keyframe.clone(), figures.clone())
            .map_err(thread_error("replay"))?;
        (Picture::Replayed(replay, figures), None)
    } else {
        let audio_track = match tracks.get(1) {
            Some(track) => Some(
                AudioTrack::start(
                    audio_spec,
                    settings.audio.clone(),
                    sinks_for(track, MediaKind::Audio),
                    audio.clone(),
                )
                .map_err(thread_error("audio"))?,
            ),
            None => None,
        };
        let video = VideoTrack::start(
            video_spec,
            &settings.video,
            sinks,
            keyframe.clone(),
            preview.clone(),
        )
        .map_err(thread_error("media"))?;
        (Picture::Encoded(video), audio_track)
    };
    let result = Broadcast {
        settings: &settings,
        room,
        tracks,
        keyframe,
        preview,
        figures: picture.figures(),
        audio: audio_track.is_some().then_some(&*audio),
        events,
    }
    .signalling(commands, stop)
    .await;
    picture.stop().await;
    if let Some(a) = audio_track {
        a.stop().await;
    }
    result
}

/// Where the picture comes from: encoded here, or a recording sent as recorded.
enum Picture {
    Encoded(VideoTrack),
    Replayed(Replay, Arc<VideoFigures>),
}

impl Picture {
    fn figures(&self) -> &VideoFigures {
        match self {
            Self::Encoded(v) => v.figures(),
            Self::Replayed(_, f) => f,
        }
    }

    async fn stop(self) {
        match self {
            Self::Encoded(v) => v.stop().await,
            Self::Replayed(r, _) => r.stop().await,
        }
    }
}

struct Broadcast<'a> {
    settings: &'a BroadcastSettings,
    room: Arc<DataRoom>,
    tracks: Arc<[OutTrack]>,
    keyframe: KeyframeRequest,
    preview: Option<PreviewTap>,
    figures: &'a VideoFigures,
    audio: Option<&'a AudioFigures>,
    events: &'a Reporter<BroadcastEvent>,
}

/// Reports from every connection, queued for the loop.
const REPORTS: usize = 1024;

impl Broadcast<'_> {
    async fn signalling(
        &self,
        commands: &mut mpsc::Receiver<BroadcastCommand>,
        stop: StopSignal,
    ) -> Result<(), SessionError> {
        let settings = self.settings;
        let (sig_tx, mut sig_rx) = mpsc::channel(256);
        let signal = SignalClient::connect(
            &settings.server_url,
            &settings.room,
            settings.key.as_deref(),
            sig_tx,
        )
        .await
        .map_err(SessionError::Unreachable)?;
        let (reports_tx, mut reports) = mpsc::channel(REPORTS);
        let mut fanout = Fanout::new(Instant::now());
        let mut conns: HashMap<ConnId, Connection> = HashMap::new();
        let mut peer = settings.peer.clone();
        let mut status = StatusKeeper::default();
        let mut status_tick = tokio::time::interval(STATUS_INTERVAL);
        status_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut views_tick = tokio::time::interval(VIEWS_INTERVAL);
        views_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_views = BTreeMap::new();
        let stopped = stop.stopped();
        tokio::pin!(stopped);
        let mut result = Ok(());
        loop {
            let deadline = tokio::time::Instant::from_std(fanout.poll_timeout());
            tokio::select! {
                () = &mut stopped => break,
                Some(command) = commands.recv() => match command {
                    BroadcastCommand::Preview(on) => {
                        if let Some(p) = &self.preview {
                            p.set(on);
                        }
                    }
                    BroadcastCommand::Projection(p) => self.room.set_projection(p),
                    BroadcastCommand::MuteAudio(on) => {
                        if let Some(a) = self.audio {
                            a.muted.store(on, Ordering::Relaxed);
                        }
                    }
                    BroadcastCommand::Telemetry(data) => {
                        if let Err(e) = self.room.send_telemetry(data) {
                            self.events.offer(BroadcastEvent::Refused(e.to_string()));
                        }
                    }
                },
                Some(event) = sig_rx.recv() => {
                    let input = match event {
                        SignalEvent::Connected => Some(Input::SignalUp),
                        SignalEvent::Disconnected => Some(Input::SignalDown),
                        SignalEvent::Watcher(id) => Some(Input::Watcher(id)),
                        SignalEvent::Answer(id, d) => Some(Input::Answer(id, d)),
                        SignalEvent::Candidate(id, c) => Some(Input::Candidate(id, c)),
                        SignalEvent::PeerLeft(id) => Some(Input::ViewerLeft(id)),
                        // The broadcaster that replaced us left: take the room back.
                        SignalEvent::BroadcasterLeft => Some(Input::RoomFree),
                        SignalEvent::Viewers(n) => {
                            status.viewers_in_room = n;
                            None
                        }
                        SignalEvent::Replaced => {
                            tracing::warn!("another broadcaster took over this room; resuming when it leaves");
                            None
                        }
                        SignalEvent::Error(e) => {
                            tracing::warn!("signal server: {e}");
                            None
                        }
                        SignalEvent::IceServers(servers) => {
                            peer.ice_servers = servers;
                            None
                        }
                        SignalEvent::Lost => {
                            result = Err(SessionError::Signal(signal.lost()));
                            break;
                        }
                        SignalEvent::Offer(..) | SignalEvent::Broadcaster | SignalEvent::NoBroadcaster => None,
                    };
                    if let Some(input) = input {
                        fanout.handle_input(Instant::now(), input);
                    }
                }
                Some((conn, report)) = reports.recv() => {
                    fanout.handle_input(Instant::now(), Input::Conn(conn, report));
                }
                () = tokio::time::sleep_until(deadline) => fanout.handle_timeout(Instant::now()),
                _ = status_tick.tick() => {
                    status.offer(self.events, &fanout, self.figures, self.audio, &self.room);
                }
                _ = views_tick.tick() => {
                    let views: BTreeMap<String, Viewport> = self
                        .room
                        .viewers()
                        .into_iter()
                        .filter_map(|(id, v)| Some((id, v.viewport?)))
                        .collect();
                    if views != last_views {
                        self.events.offer(BroadcastEvent::Views(views.clone()));
                        last_views = views;
                    }
                }
            }
            self.act(&mut fanout, &mut conns, &signal, &peer, &reports_tx)
                .await;
        }
        fanout.close_all();
        self.act(&mut fanout, &mut conns, &signal, &peer, &reports_tx)
            .await;
        signal.disconnect().await;
        result
    }

    /// Carries out what the fan-out decided.
    async fn act(
        &self,
        fanout: &mut Fanout,
        conns: &mut HashMap<ConnId, Connection>,
        signal: &SignalClient,
        peer: &PeerSettings,
        reports: &connection::Reports,
    ) {
        while let Some(output) = fanout.poll_output() {
            match output {
                Output::Announce => signal.send("broadcaster", vec![]).await,
                Output::Open { conn, viewer } => {
                    tracing::debug!(%conn, viewer = %viewer, "offering");
                    let c = Connection::open(
                        conn,
                        viewer,
                        peer.clone(),
                        self.tracks.clone(),
                        self.room.clone(),
                        reports.clone(),
                    );
                    conns.insert(conn, c);
                }
                Output::SendOffer { viewer, offer } => {
                    signal.send("offer", vec![json!(viewer), offer]).await;
                }
                Output::SendCandidate { viewer, candidate } => {
                    signal
                        .send("candidate", vec![json!(viewer), candidate])
                        .await;
                }
                Output::Conn(conn, ConnCommand::Close) => {
                    if let Some(mut c) = conns.remove(&conn) {
                        c.send(conn, ConnCommand::Close);
                    }
                }
                Output::Conn(conn, command) => {
                    if let Some(c) = conns.get_mut(&conn) {
                        c.send(conn, command);
                    }
                }
                Output::Keyframe => self.keyframe.request(),
            }
        }
    }
}

/// Builds the status from the fan-out and the video figures, and sends it when it changed.
#[derive(Default)]
struct StatusKeeper {
    viewers_in_room: u64,
    last: Option<BroadcastStatus>,
    last_frames: Option<(u64, Instant)>,
    last_audio_bytes: Option<(u64, Instant)>,
}

impl StatusKeeper {
    fn offer(
        &mut self,
        events: &Reporter<BroadcastEvent>,
        fanout: &Fanout,
        figures: &VideoFigures,
        audio: Option<&AudioFigures>,
        room: &DataRoom,
    ) {
        let now = Instant::now();
        let frames_encoded = figures.frames_encoded.load(Ordering::Relaxed);
        let fps = self.last_frames.map_or(0.0, |(n, at)| {
            let secs = now.saturating_duration_since(at).as_secs_f64();
            if secs > 0.0 {
                frames_encoded.saturating_sub(n) as f64 / secs
            } else {
                0.0
            }
        });
        self.last_frames = Some((frames_encoded, now));
        let audio = audio.map(|a| {
            let bytes = a.bytes_encoded.load(Ordering::Relaxed);
            let bitrate_kbps = self.last_audio_bytes.map_or(0.0, |(b, at)| {
                let secs = now.saturating_duration_since(at).as_secs_f64();
                if secs > 0.0 {
                    bytes.saturating_sub(b) as f64 * 8.0 / 1000.0 / secs
                } else {
                    0.0
                }
            });
            self.last_audio_bytes = Some((bytes, now));
            AudioStatus {
                source: a.source.lock().clone(),
                muted: a.muted.load(Ordering::Relaxed),
                level: a.level.get(),
                frames_encoded: a.frames_encoded.load(Ordering::Relaxed),
                bitrate_kbps,
                frames_skipped: a.frames_skipped.load(Ordering::Relaxed),
            }
        });
        let status = BroadcastStatus {
            signal_connected: fanout.signal_up(),
            source: figures.source.lock().clone(),
            viewers_in_room: self.viewers_in_room,
            viewers: {
                let mut data = room.viewers();
                let mut viewers = fanout.viewers(now);
                for v in &mut viewers {
                    v.data = data.remove(&v.id);
                }
                viewers
            },
            frames_encoded,
            fps,
            keyframes: figures.keyframes.load(Ordering::Relaxed),
            frames_dropped_late: figures.frames_dropped_late.load(Ordering::Relaxed),
            encode_ms_avg: figures.encode_us_total.load(Ordering::Relaxed) as f64
                / frames_encoded.max(1) as f64
                / 1e3,
            encoder_threads: figures.encoder_threads.load(Ordering::Relaxed),
            sent_as_recorded: figures.sent_as_recorded.load(Ordering::Relaxed),
            data: room.status(),
            projection: room.projection(),
            audio,
        };
        if self.last.as_ref() != Some(&status) {
            events.offer(BroadcastEvent::Status(Box::new(status.clone())));
            self.last = Some(status);
        }
    }
}
