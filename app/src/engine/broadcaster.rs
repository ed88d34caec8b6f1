//! The broadcaster: one capture, one encoder, one packetizer; one RTCPeerConnection per viewer,
//! each fed the same packets through its own RTP track (webrtc 0.21 cannot bind one local track
//! to several connections).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, watch};
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::peer_connection::{
    PeerConnection, RTCPeerConnectionState, RTCStatsReportEntry, StatsSelector,
};

use super::capture::{
    CAMERA_RETRY, CAMERA_STALL, CameraFeed, CameraSource, FeedState, OpenInput, SourceSpec,
    VideoInput,
};
use super::codec::{EncoderSettings, H264Encoder};
use super::feedback::is_keyframe_request;
use super::frame::{FrameSlot, I420, VideoFrame};
use super::pattern::TestPattern;
use super::peer::{self, PeerEvent, PeerSettings};
use super::rtp::{FramePacketizer, FramePackets, H264_PAYLOAD_TYPE};
use super::signal::{SignalClient, SignalEvent};
use super::stamp::Stamp;

#[derive(Debug, Clone)]
pub struct BroadcastSettings {
    pub server_url: String,
    pub room: String,
    pub key: Option<String>,
    pub source: SourceSpec,
    pub width: u32,
    pub height: u32,
    pub encoder: EncoderSettings,
    pub peer: PeerSettings,
}

/// Live figures, shared with whoever displays them.
#[derive(Debug, Default)]
pub struct BroadcastStats {
    /// What goes out: the camera's name, or the test pattern and why.
    pub source: Mutex<String>,
    /// Connected to the signal server (and announced as the broadcaster).
    pub signal_connected: AtomicBool,
    /// Each viewer's connection, refreshed every second.
    pub viewer_list: Mutex<Vec<ViewerSummary>>,
    /// Set by a display that shows a preview: the media thread then keeps [`Self::preview`]
    /// filled with a small RGBA copy of what goes out, up to 15 times a second.
    pub want_preview: AtomicBool,
    pub preview: FrameSlot,
    pub frames_encoded: AtomicU64,
    pub frames_dropped_late: AtomicU64,
    pub keyframes: AtomicU64,
    pub encode_us_total: AtomicU64,
    /// Threads encoding the current picture size.
    pub encoder_threads: AtomicU64,
    pub viewers: AtomicU64,
    pub connected_viewers: AtomicU64,
}

/// One viewer as the broadcaster sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ViewerSummary {
    /// The viewer's signalling id.
    pub id: String,
    /// Its peer connection is up (media flowing).
    pub connected: bool,
    pub connected_for_s: u64,
    pub rtt_ms: Option<f64>,
    /// Sent to this viewer over the last second.
    pub sent_kbps: f64,
}

/// The preview is at most this big (it is a thumbnail of what goes out).
const PREVIEW_MAX: (usize, usize) = (640, 640);
const PREVIEW_INTERVAL: Duration = Duration::from_millis(66);

/// Asked for a keyframe; honoured at most every [`KEYFRAME_MIN_INTERVAL`].
const KEYFRAME_MIN_INTERVAL: Duration = Duration::from_millis(200);
/// A viewer whose answer has not come after this may ask again.
const OFFER_TIMEOUT: Duration = Duration::from_secs(5);
/// Encoded frames buffered for viewers that fall behind, before they skip to a keyframe.
const FRAME_BUFFER: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum BroadcastError {
    #[error(transparent)]
    Signal(#[from] super::signal::SignalError),
    #[error("cannot start the media thread: {0}")]
    Thread(std::io::Error),
}

/// Starts reading the configured camera, if any; the capture thread says why when there is none.
fn start_camera(
    spec: &SourceSpec,
    width: u32,
    height: u32,
    fps: u32,
) -> std::io::Result<Option<CameraFeed>> {
    let SourceSpec::Camera(selector) = spec else {
        return Ok(None);
    };
    let selector = selector.clone();
    let open: OpenInput = Box::new(move || {
        CameraSource::open(&selector, width, height, fps)
            .map(|c| Box::new(c) as Box<dyn VideoInput>)
    });
    CameraFeed::start(open, CAMERA_RETRY).map(Some)
}

/// Lets frames through at most `fps` a second, whatever rate a camera delivers at; a frame up
/// to a quarter of an interval early still counts as on time (camera clocks jitter).
struct Pacer {
    interval: Duration,
    next: Option<Instant>,
}

impl Pacer {
    fn new(interval: Duration) -> Self {
        Self {
            interval,
            next: None,
        }
    }

    fn admit(&mut self, at: Instant) -> bool {
        let slack = self.interval / 4;
        if self.next.is_some_and(|next| at + slack < next) {
            return false;
        }
        let on_schedule = self.next.map(|n| n + self.interval);
        let from_now = at + self.interval - slack;
        self.next = Some(on_schedule.map_or(from_now, |n| n.max(from_now)));
        true
    }
}

/// What the media thread shares with the network side.
struct MediaLinks {
    frames: broadcast::Sender<Arc<FramePackets>>,
    keyframe: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    stats: Arc<BroadcastStats>,
}

/// Encodes and packetizes on its own thread until `stop`: the camera's frames as they arrive
/// while it delivers, else the test pattern on a clock.
fn media_loop(
    camera: Option<CameraFeed>,
    mut pattern: TestPattern,
    mut encoder: H264Encoder,
    fps: f32,
    links: MediaLinks,
) {
    let MediaLinks {
        frames,
        keyframe,
        stop,
        stats,
    } = links;
    let interval = Duration::from_secs_f32(1.0 / fps.max(1.0));
    let mut pacer = Pacer::new(interval);
    let mut packetizer = FramePacketizer::default();
    let mut bits = Vec::new();
    // Stamped (test pattern) frames only, so a viewer counts no losses across a camera spell.
    let mut seq = 0u32;
    let mut next = Instant::now();
    let mut late_ticks = 0u64;
    let mut last_state = None;
    let mut last_forced: Option<Instant> = None;
    let mut failing: Option<String> = None;
    let mut preview = Preview::default();
    while !stop.load(Ordering::Relaxed) {
        let state = camera
            .as_ref()
            .map_or(FeedState::NoCamera, CameraFeed::state);
        if last_state != Some(state) {
            match state {
                FeedState::Stalled => tracing::warn!(
                    "the camera has sent nothing for {CAMERA_STALL:?}: sending the test pattern until it does"
                ),
                FeedState::Live if last_state == Some(FeedState::Stalled) => {
                    tracing::info!("the camera delivers again");
                }
                _ => {}
            }
            *stats.source.lock() = match (&camera, state) {
                (None, _) => "test pattern".to_owned(),
                (Some(feed), FeedState::Live) => {
                    format!("camera {}", feed.camera_name().unwrap_or_default())
                }
                (Some(_), FeedState::NoCamera) => {
                    "test pattern: no camera works (retrying every 5 s)".to_owned()
                }
                (Some(_), FeedState::Stalled) => {
                    "test pattern: the camera sends nothing".to_owned()
                }
            };
            // The pattern's clock starts afresh; missed ticks were not its fault.
            (last_state, next) = (Some(state), Instant::now());
        }
        let live = state == FeedState::Live;
        let from_camera = match &camera {
            Some(feed) if live => feed.next_frame(interval.max(Duration::from_millis(100))),
            _ => None,
        };
        let captured;
        let mut camera_frame = None;
        let (frame, stamped) = match (from_camera, &camera) {
            (Some(f), Some(feed)) => {
                if !pacer.admit(f.captured) {
                    feed.recycle(f.image);
                    continue;
                }
                captured = f.captured;
                (&*camera_frame.insert(f.image), false)
            }
            // The camera's next frame is not in yet.
            _ if live => continue,
            _ => {
                let now = Instant::now();
                if now < next {
                    std::thread::sleep(next - now);
                } else if now > next + interval {
                    // Behind (slow encoder or a stall): drop the stale ticks, never queue them.
                    late_ticks += ((now - next).as_secs_f64() / interval.as_secs_f64()) as u64;
                    next = now;
                }
                next += interval;
                captured = Instant::now();
                (pattern.render(Stamp::now(seq)), true)
            }
        };
        if keyframe.load(Ordering::Relaxed)
            && last_forced.is_none_or(|t| t.elapsed() >= KEYFRAME_MIN_INTERVAL)
        {
            keyframe.store(false, Ordering::Relaxed);
            last_forced = Some(Instant::now());
            encoder.request_keyframe();
        }
        if stats.want_preview.load(Ordering::Relaxed) {
            preview.offer(frame, &stats.preview);
        }
        let started = Instant::now();
        let result = encoder.encode(frame, &mut bits);
        let encode_us = started.elapsed().as_micros() as u64;
        if let (Some(image), Some(feed)) = (camera_frame.take(), &camera) {
            feed.recycle(image);
        }
        stats.frames_dropped_late.store(
            late_ticks + camera.as_ref().map_or(0, CameraFeed::overwritten),
            Ordering::Relaxed,
        );
        let key = match result {
            Ok(Some(key)) => key,
            Ok(None) => continue, // rate control skipped it; the stamp's seq is reused
            Err(e) => {
                // Said once, not thirty times a second.
                let e = e.to_string();
                if failing.as_ref() != Some(&e) {
                    tracing::error!("{e}");
                    failing = Some(e);
                }
                continue;
            }
        };
        failing = None;
        stats
            .encode_us_total
            .fetch_add(encode_us, Ordering::Relaxed);
        stats.frames_encoded.fetch_add(1, Ordering::Relaxed);
        if let Some(t) = encoder.threads() {
            stats.encoder_threads.store(u64::from(t), Ordering::Relaxed);
        }
        if key {
            stats.keyframes.fetch_add(1, Ordering::Relaxed);
        }
        if stamped {
            seq = seq.wrapping_add(1);
        }
        match packetizer.packetize(Bytes::copy_from_slice(&bits), captured, key) {
            // No receivers is fine: nobody is watching yet.
            Ok(packets) => drop(frames.send(Arc::new(packets))),
            Err(e) => tracing::error!("packetizing: {e}"),
        }
    }
}

/// Small RGBA copies of outgoing frames for a local preview, at most every
/// [`PREVIEW_INTERVAL`], reusing the buffer of a copy nobody took.
#[derive(Default)]
struct Preview {
    last: Option<Instant>,
    spare: Vec<u8>,
    index: u64,
}

impl Preview {
    fn offer(&mut self, frame: &I420, slot: &FrameSlot) {
        if self.last.is_some_and(|t| t.elapsed() < PREVIEW_INTERVAL) {
            return;
        }
        self.last = Some(Instant::now());
        let mut rgba = std::mem::take(&mut self.spare);
        let (width, height) = frame.to_rgba_within(PREVIEW_MAX.0, PREVIEW_MAX.1, &mut rgba);
        self.index += 1;
        let replaced = slot.put(VideoFrame {
            width,
            height,
            rgba,
            stamp: None,
            index: self.index,
        });
        self.spare = slot.reuse(replaced).map(|f| f.rgba).unwrap_or_default();
    }
}

struct Viewer {
    pc: Arc<dyn PeerConnection>,
    /// When its connection came up.
    connected_at: Option<Instant>,
    /// Bytes sent to it at the last stats refresh.
    bytes_sent: u64,
    /// When the offer went out, until its answer arrives.
    offered: Option<Instant>,
    connected: watch::Sender<bool>,
    forward: tokio::task::JoinHandle<()>,
}

impl Viewer {
    async fn close(self) {
        self.forward.abort();
        if let Err(e) = self.pc.close().await {
            tracing::debug!("closing a viewer connection: {e}");
        }
    }
}

/// Copies every encoded frame to one viewer's track, starting at a keyframe once connected.
async fn forward(
    track: Arc<TrackLocalStaticRTP>,
    ssrc: u32,
    mut frames: broadcast::Receiver<Arc<FramePackets>>,
    mut connected: watch::Receiver<bool>,
    keyframe: Arc<AtomicBool>,
) {
    if connected.wait_for(|c| *c).await.is_err() {
        return;
    }
    keyframe.store(true, Ordering::Relaxed);
    // Keyframe requests (PLI/FIR) from this viewer.
    let feedback = {
        let (track, keyframe) = (track.clone(), keyframe.clone());
        tokio::spawn(async move {
            while let Some(event) = track.poll().await {
                let TrackLocalEvent::OnRtcpPacket(packets) = event else {
                    continue;
                };
                if packets.iter().any(|p| is_keyframe_request(p.as_ref())) {
                    tracing::debug!(ssrc, "viewer asked for a keyframe");
                    keyframe.store(true, Ordering::Relaxed);
                }
            }
        })
    };
    let _abort_feedback = AbortOnDrop(feedback);
    let mut synced = false;
    loop {
        let frame = match frames.recv().await {
            Ok(f) => f,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::debug!(
                    ssrc,
                    "viewer fell {n} frames behind; resyncing on a keyframe"
                );
                synced = false;
                keyframe.store(true, Ordering::Relaxed);
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if !synced {
            if !frame.keyframe {
                continue;
            }
            synced = true;
        }
        for p in &frame.packets {
            let mut p = p.clone();
            p.header.ssrc = ssrc;
            p.header.payload_type = H264_PAYLOAD_TYPE;
            if let Err(e) = track.write_rtp(p).await {
                tracing::debug!(ssrc, "viewer track closed: {e}");
                return;
            }
        }
    }
}

/// Runs a broadcast until `shutdown` completes.
pub async fn run(
    settings: BroadcastSettings,
    stats: Arc<BroadcastStats>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), BroadcastError> {
    let (w, h, fps) = (settings.width, settings.height, settings.encoder.fps);
    let camera =
        start_camera(&settings.source, w, h, fps as u32).map_err(BroadcastError::Thread)?;
    let encoder = H264Encoder::new(settings.encoder);
    let (frames_tx, _) = broadcast::channel::<Arc<FramePackets>>(FRAME_BUFFER);
    let keyframe = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let media = {
        let links = MediaLinks {
            frames: frames_tx.clone(),
            keyframe: keyframe.clone(),
            stop: stop.clone(),
            stats: stats.clone(),
        };
        std::thread::Builder::new()
            .name("omnicast-media".into())
            .spawn(move || {
                let pattern = TestPattern::new(w as usize, h as usize);
                media_loop(camera, pattern, encoder, fps, links);
            })
            .map_err(BroadcastError::Thread)?
    };

    let result = signalling(&settings, &stats, &frames_tx, &keyframe, shutdown).await;
    stop.store(true, Ordering::Relaxed);
    let _ = tokio::task::spawn_blocking(move || media.join()).await;
    result
}

async fn signalling(
    settings: &BroadcastSettings,
    stats: &BroadcastStats,
    frames: &broadcast::Sender<Arc<FramePackets>>,
    keyframe: &Arc<AtomicBool>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), BroadcastError> {
    let (sig_tx, mut sig_rx) = mpsc::channel(256);
    let signal = SignalClient::connect(
        &settings.server_url,
        &settings.room,
        settings.key.as_deref(),
        sig_tx,
    )
    .await?;
    let (peer_tx, mut peer_rx) = mpsc::channel::<(String, PeerEvent)>(256);
    let mut viewers: HashMap<String, Viewer> = HashMap::new();
    let mut peer_settings = settings.peer.clone();
    let mut result = Ok(());
    let mut refresh = tokio::time::interval(VIEWER_REFRESH);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = refresh.tick() => refresh_viewers(&mut viewers, stats).await,
            Some(event) = sig_rx.recv() => match event {
                SignalEvent::Connected => {
                    stats.signal_connected.store(true, Ordering::Relaxed);
                    signal.send("broadcaster", vec![]).await;
                }
                SignalEvent::Watcher(id) => {
                    // A viewer asks on connect and again when it hears `broadcaster`; answer
                    // the first request only, or its answer would land on the second offer.
                    if viewers
                        .get(&id)
                        .and_then(|v| v.offered)
                        .is_some_and(|t| t.elapsed() < OFFER_TIMEOUT)
                    {
                        continue;
                    }
                    if let Some(old) = viewers.remove(&id) {
                        old.close().await;
                    }
                    match add_viewer(&peer_settings, &signal, &id, frames, keyframe, &peer_tx).await {
                        Ok(v) => {
                            viewers.insert(id, v);
                        }
                        Err(e) => tracing::warn!(viewer = %id, "cannot offer to viewer: {e}"),
                    }
                }
                SignalEvent::Answer(id, desc) => {
                    if let Some(v) = viewers.get_mut(&id) {
                        v.offered = None;
                        let r = match peer::description(desc) {
                            Ok(d) => v.pc.set_remote_description(d).await.map_err(Into::into),
                            Err(e) => Err(e),
                        };
                        if let Err(e) = r {
                            tracing::warn!(viewer = %id, "bad answer: {e}");
                        }
                    }
                }
                SignalEvent::Candidate(id, c) => {
                    if let Some(v) = viewers.get(&id) {
                        let r = match peer::candidate(c) {
                            Ok(c) => v.pc.add_ice_candidate(c).await.map_err(Into::into),
                            Err(e) => Err(e),
                        };
                        if let Err(e) = r {
                            tracing::debug!(viewer = %id, "unusable candidate: {e}");
                        }
                    }
                }
                SignalEvent::PeerLeft(id) => {
                    if let Some(v) = viewers.remove(&id) {
                        tracing::info!(viewer = %id, "viewer left");
                        v.close().await;
                    }
                }
                SignalEvent::Viewers(n) => stats.viewers.store(n, Ordering::Relaxed),
                SignalEvent::Replaced => {
                    tracing::warn!("another broadcaster took over this room; resuming when it leaves");
                }
                // The broadcaster that replaced us left: take the room back.
                SignalEvent::BroadcasterLeft => signal.send("broadcaster", vec![]).await,
                SignalEvent::Error(e) => tracing::warn!("signal server: {e}"),
                SignalEvent::IceServers(servers) => peer_settings.ice_servers = servers,
                SignalEvent::Disconnected => stats.signal_connected.store(false, Ordering::Relaxed),
                SignalEvent::Lost => {
                    result = Err(signal.lost().into());
                    break;
                }
                SignalEvent::Offer(..) | SignalEvent::Broadcaster | SignalEvent::NoBroadcaster => {}
            },
            Some((id, event)) = peer_rx.recv() => match event {
                PeerEvent::Candidate(c) => {
                    if viewers.contains_key(&id) {
                        signal.send("candidate", vec![json!(id), c]).await;
                    }
                }
                PeerEvent::State(state) => {
                    tracing::debug!(viewer = %id, "connection {state}");
                    match state {
                        RTCPeerConnectionState::Connected => {
                            if let Some(v) = viewers.get_mut(&id) {
                                let _ = v.connected.send(true);
                                v.connected_at.get_or_insert_with(Instant::now);
                            }
                        }
                        RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                            if let Some(v) = viewers.remove(&id) {
                                tracing::info!(viewer = %id, "viewer connection {state}");
                                v.close().await;
                            }
                        }
                        _ => {}
                    }
                }
                PeerEvent::Track(_) | PeerEvent::IceConnected => {}
            },
        }
        // Whatever happened, the count of live connections follows.
        let connected = viewers.values().filter(|v| *v.connected.borrow()).count();
        stats
            .connected_viewers
            .store(connected as u64, Ordering::Relaxed);
    }
    stats.connected_viewers.store(0, Ordering::Relaxed);
    stats.signal_connected.store(false, Ordering::Relaxed);
    stats.viewer_list.lock().clear();
    for (_, v) in viewers.drain() {
        v.close().await;
    }
    signal.disconnect().await;
    result
}

/// How often each viewer's figures are refreshed.
const VIEWER_REFRESH: Duration = Duration::from_secs(1);

/// Refreshes [`BroadcastStats::viewer_list`] from each connection's statistics.
async fn refresh_viewers(viewers: &mut HashMap<String, Viewer>, stats: &BroadcastStats) {
    let mut list = Vec::with_capacity(viewers.len());
    for (id, v) in viewers.iter_mut() {
        let (mut rtt_ms, mut sent_kbps) = (None, 0.0);
        if v.connected_at.is_some() {
            let report = v.pc.get_stats(Instant::now(), StatsSelector::None).await;
            let pair = report.iter().find_map(|e| match e {
                RTCStatsReportEntry::IceCandidatePair(p) if p.bytes_sent > 0 => Some(p),
                _ => None,
            });
            if let Some(p) = pair {
                rtt_ms =
                    (p.current_round_trip_time > 0.0).then_some(p.current_round_trip_time * 1e3);
                let sent = p.bytes_sent.saturating_sub(v.bytes_sent);
                sent_kbps = sent as f64 * 8.0 / 1000.0 / VIEWER_REFRESH.as_secs_f64();
                v.bytes_sent = p.bytes_sent;
            }
        }
        list.push(ViewerSummary {
            id: id.clone(),
            connected: v.connected_at.is_some(),
            connected_for_s: v.connected_at.map_or(0, |t| t.elapsed().as_secs()),
            rtt_ms,
            sent_kbps,
        });
    }
    list.sort_by(|a, b| a.id.cmp(&b.id));
    *stats.viewer_list.lock() = list;
}

async fn add_viewer(
    peer_settings: &PeerSettings,
    signal: &SignalClient,
    id: &str,
    frames: &broadcast::Sender<Arc<FramePackets>>,
    keyframe: &Arc<AtomicBool>,
    peer_tx: &mpsc::Sender<(String, PeerEvent)>,
) -> Result<Viewer, BroadcastError> {
    let (events_tx, mut events_rx) = mpsc::channel(64);
    let pc = peer::build(peer_settings, false, events_tx)
        .await
        .map_err(|e| super::signal::SignalError::Peer(e.to_string()))?;
    // Tag this connection's events with the viewer id.
    let (tagged, vid) = (peer_tx.clone(), id.to_owned());
    tokio::spawn(async move {
        while let Some(e) = events_rx.recv().await {
            if tagged.send((vid.clone(), e)).await.is_err() {
                return;
            }
        }
    });
    let ssrc: u32 = rand_ssrc();
    let codec = rtc::rtp_transceiver::rtp_sender::RTCRtpCodec {
        mime_type: "video/H264".to_owned(),
        clock_rate: super::rtp::H264_CLOCK_RATE,
        channels: 0,
        sdp_fmtp_line: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
            .to_owned(),
        rtcp_feedback: vec![],
    };
    let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        "omnicast".to_owned(),
        format!("omnicast-video-{ssrc}"),
        "omnicast video".to_owned(),
        RtpCodecKind::Video,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec,
            ..Default::default()
        }],
    )));
    let fail = |e: webrtc::error::Error| super::signal::SignalError::Peer(e.to_string());
    pc.add_track(track.clone() as Arc<dyn TrackLocal>)
        .await
        .map_err(fail)?;
    let offer = pc.create_offer(None).await.map_err(fail)?;
    pc.set_local_description(offer.clone())
        .await
        .map_err(fail)?;
    signal
        .emit("offer", vec![json!(id), description_json(&offer)])
        .await?;
    let (connected, connected_rx) = watch::channel(false);
    let forward = tokio::spawn(forward(
        track,
        ssrc,
        frames.subscribe(),
        connected_rx,
        keyframe.clone(),
    ));
    Ok(Viewer {
        pc,
        connected_at: None,
        bytes_sent: 0,
        offered: Some(Instant::now()),
        connected,
        forward,
    })
}

fn description_json(d: &webrtc::peer_connection::RTCSessionDescription) -> Value {
    json!({ "type": d.sdp_type.to_string(), "sdp": d.sdp })
}

fn rand_ssrc() -> u32 {
    use std::hash::{BuildHasher as _, RandomState};
    (RandomState::new().hash_one(Instant::now()) as u32).max(1)
}

/// Aborts a task when dropped (when its owner returns or is aborted).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::capture::fake::{FakeCamera, opener};
    use crate::engine::codec::H264Decoder;
    use crate::engine::rtp::FrameAssembler;

    #[test]
    fn the_pacer_holds_a_fast_camera_to_the_frame_rate_and_lets_a_slow_one_through() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        // 60 fps camera, 30 fps wanted: every other frame.
        let mut p = Pacer::new(Duration::from_millis(33));
        let admitted = (0..60).filter(|i| p.admit(ms(i * 50 / 3))).count();
        assert!((29..=31).contains(&admitted), "{admitted} of 60");
        // 30 fps with ±5 ms of jitter: all of them.
        let mut p = Pacer::new(Duration::from_millis(33));
        let jitter = [0, 5, -5, 3, -4, 5, 0, -5];
        let admitted = (0..80)
            .filter(|i| p.admit(ms((100 + i * 33 + jitter[*i as usize % 8]) as u64)))
            .count();
        assert_eq!(admitted, 80);
        // A camera slower than asked: all of them, and no catching up after a stall.
        let mut p = Pacer::new(Duration::from_millis(33));
        assert!((0..20).all(|i| p.admit(ms(i * 50))));
        assert!(p.admit(ms(5000)));
        assert!(
            !p.admit(ms(5010)),
            "a burst after a stall is not let through"
        );
    }

    /// Runs the media thread with `camera` until `enough` holds for the decoded stamps, or
    /// 30 s, and returns the stamp sequence numbers in the order they were decoded.
    fn run_media(camera: CameraFeed, enough: impl Fn(&[u32]) -> bool) -> (Vec<u32>, u64) {
        let (frames_tx, mut frames_rx) = broadcast::channel(FRAME_BUFFER);
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(BroadcastStats::default());
        let links = MediaLinks {
            frames: frames_tx,
            keyframe: Arc::new(AtomicBool::new(false)),
            stop: stop.clone(),
            stats: stats.clone(),
        };
        let (w, h) = (160, 96);
        let media = std::thread::Builder::new()
            .name("media-test".into())
            .spawn(move || {
                let encoder = H264Encoder::new(EncoderSettings::default());
                media_loop(Some(camera), TestPattern::new(w, h), encoder, 30.0, links);
            })
            .unwrap();
        let mut assembler = FrameAssembler::default();
        let mut decoder = H264Decoder::new().unwrap();
        let (mut rgba, mut seqs, mut errors) = (Vec::new(), Vec::new(), 0);
        let until = Instant::now() + Duration::from_secs(30);
        while !enough(&seqs) && Instant::now() < until {
            let Ok(frame) = frames_rx.try_recv() else {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            for p in &frame.packets {
                assembler.push(p.clone());
            }
            while let Some((au, _)) = assembler.pop(Instant::now()) {
                match decoder.decode(&au, &mut rgba) {
                    Ok(Some(d)) => seqs.push(d.stamp.expect("stamped").seq),
                    Ok(None) => {}
                    Err(_) => errors += 1,
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        media.join().unwrap();
        (seqs, errors)
    }

    #[test]
    fn when_the_camera_goes_away_the_pattern_fills_in_and_the_camera_comes_back() {
        let cam = |frames, first_seq| FakeCamera {
            size: (160, 96),
            frames,
            first_seq,
            period: Duration::from_millis(33),
            sent: 0,
            bad_every: 0,
            pause: None,
        };
        // Camera frames are stamped from 1000 (first camera) and 2000 (after it came back); the
        // pattern's own stamps count from 0.
        let script = vec![Some(cam(15, 1000)), None, Some(cam(u32::MAX, 2000))];
        let feed = CameraFeed::start(
            opener(script, Arc::new(AtomicU64::new(0))),
            Duration::from_millis(300),
        )
        .unwrap();
        let (seqs, errors) = run_media(feed, |s| s.iter().filter(|q| **q >= 2010).count() > 0);
        assert_eq!(errors, 0, "{seqs:?}");
        let first_cam: Vec<_> = seqs.iter().filter(|s| (1000..2000).contains(*s)).collect();
        let pattern: Vec<_> = seqs.iter().copied().filter(|s| *s < 1000).collect();
        assert!(
            first_cam.len() >= 10,
            "the camera's frames went out: {seqs:?}"
        );
        assert!(
            seqs.iter().any(|s| *s >= 2010),
            "the camera came back: {seqs:?}"
        );
        // Between the two camera spells the pattern was sent, its stamps without a gap, so
        // viewers count nothing lost.
        let gone = seqs
            .iter()
            .position(|s| *s == 1014)
            .expect("last frame of camera 1");
        let back = seqs.iter().position(|s| *s >= 2000).expect("camera 2");
        assert!(back - gone > 10, "pattern frames in between: {seqs:?}");
        assert!(seqs[gone + 1..back].iter().all(|s| *s < 1000), "{seqs:?}");
        assert!(
            pattern.windows(2).all(|w| w[1] == w[0] + 1),
            "pattern stamps in sequence: {pattern:?}"
        );
    }

    #[test]
    fn a_camera_that_hangs_is_covered_by_the_pattern_until_it_delivers_again() {
        let hanging = FakeCamera {
            size: (160, 96),
            frames: u32::MAX,
            first_seq: 1000,
            period: Duration::from_millis(33),
            sent: 0,
            bad_every: 0,
            // After ten frames it sends nothing for 3.5 s, then carries on.
            pause: Some((10, Duration::from_millis(3500))),
        };
        let opened = Arc::new(AtomicU64::new(0));
        let feed = CameraFeed::start(
            opener(vec![Some(hanging)], opened.clone()),
            Duration::from_secs(60),
        )
        .unwrap();
        let (seqs, errors) = run_media(feed, |s| s.iter().any(|q| *q >= 1015));
        assert_eq!(errors, 0);
        let hung = seqs.iter().position(|s| *s == 1009).expect("frames before");
        let back = seqs.iter().position(|s| *s >= 1010).expect("frames after");
        let covered = &seqs[hung + 1..back];
        // 2 s of nothing, then the pattern for the remaining 1.5 s (about 45 frames).
        assert!(covered.len() >= 20, "{seqs:?}");
        assert!(covered.iter().all(|s| *s < 1000), "{seqs:?}");
        assert_eq!(
            opened.load(Ordering::Relaxed),
            1,
            "the same camera, not reopened"
        );
    }
}
