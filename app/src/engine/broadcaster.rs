//! The broadcaster: one capture, one encoder, one packetizer; one RTCPeerConnection per viewer,
//! each fed the same packets through its own RTP track (webrtc 0.21 cannot bind one local track
//! to several connections).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, watch};
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::peer_connection::{PeerConnection, RTCPeerConnectionState};

use super::capture::{CameraSource, CaptureError, Source, SourceSpec};
use super::codec::{EncoderSettings, H264Encoder};
use super::feedback::is_keyframe_request;
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
    pub frames_encoded: AtomicU64,
    pub frames_dropped_late: AtomicU64,
    pub keyframes: AtomicU64,
    pub encode_us_total: AtomicU64,
    pub viewers: AtomicU64,
    pub connected_viewers: AtomicU64,
}

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
    #[error(transparent)]
    Codec(#[from] super::codec::CodecError),
    #[error("cannot start the media thread: {0}")]
    Thread(std::io::Error),
}

/// Opens the configured source; a camera that is missing or fails gives the test pattern with a
/// clear message, and is retried by the media loop.
fn open_source(
    spec: &SourceSpec,
    w: u32,
    h: u32,
    fps: u32,
) -> (Source, Option<(SourceSpec, u32, u32, u32)>) {
    match spec {
        SourceSpec::TestPattern => (Source::test_pattern(w, h), None),
        SourceSpec::Camera(sel) => {
            let retry = Some((spec.clone(), w, h, fps));
            match CameraSource::open(sel, w, h, fps) {
                Ok(cam) => {
                    tracing::info!("broadcasting camera {}", cam.name());
                    (Source::camera(cam, w, h), retry)
                }
                Err(e) => {
                    let what = if matches!(e, CaptureError::NoCamera) {
                        "no camera found".to_owned()
                    } else {
                        e.to_string()
                    };
                    tracing::warn!(
                        "{what}: broadcasting the test pattern instead (retrying the camera every 5 s)"
                    );
                    (Source::test_pattern(w, h), retry)
                }
            }
        }
    }
}

/// What the media thread shares with the network side.
struct MediaLinks {
    frames: broadcast::Sender<Arc<FramePackets>>,
    keyframe: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    stats: Arc<BroadcastStats>,
}

/// Runs the capture → encode → packetize loop on its own thread until `stop`.
fn media_loop(
    mut source: Source,
    retry_camera: Option<(SourceSpec, u32, u32, u32)>,
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
    let mut packetizer = FramePacketizer::default();
    let mut bits = Vec::new();
    let mut seq = 0u32;
    let mut next = Instant::now();
    let mut last_forced: Option<Instant> = None;
    let mut last_camera_try = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now < next {
            std::thread::sleep(next - now);
        } else if now > next + interval {
            // Behind (slow encoder or a stall): drop the stale ticks, never queue them.
            let missed = ((now - next).as_secs_f64() / interval.as_secs_f64()) as u64;
            stats
                .frames_dropped_late
                .fetch_add(missed, Ordering::Relaxed);
            next = now;
        }
        next += interval;

        if let Some((SourceSpec::Camera(sel), w, h, f)) = &retry_camera
            && !source.is_camera()
            && last_camera_try.elapsed() > Duration::from_secs(5)
        {
            last_camera_try = Instant::now();
            if let Ok(camera) = CameraSource::open(sel, *w, *h, *f) {
                tracing::info!("camera {} is back", camera.name());
                source = Source::camera(camera, *w, *h);
            }
        }

        if keyframe.load(Ordering::Relaxed)
            && last_forced.is_none_or(|t| t.elapsed() >= KEYFRAME_MIN_INTERVAL)
        {
            keyframe.store(false, Ordering::Relaxed);
            last_forced = Some(Instant::now());
            encoder.request_keyframe();
        }
        let captured = Instant::now();
        let frame = match source.frame(Stamp::now(seq)) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!("{e}; sending the test pattern and retrying the camera");
                last_camera_try = Instant::now();
                continue;
            }
        };
        let started = Instant::now();
        let encoded = match encoder.encode(&frame, &mut bits) {
            Ok(Some(key)) => key,
            Ok(None) => continue, // rate control skipped it; the stamp's seq is reused
            Err(e) => {
                tracing::error!("{e}");
                continue;
            }
        };
        stats
            .encode_us_total
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        stats.frames_encoded.fetch_add(1, Ordering::Relaxed);
        if encoded {
            stats.keyframes.fetch_add(1, Ordering::Relaxed);
        }
        seq = seq.wrapping_add(1);
        match packetizer.packetize(Bytes::copy_from_slice(&bits), captured, encoded) {
            // No receivers is fine: nobody is watching yet.
            Ok(packets) => drop(frames.send(Arc::new(packets))),
            Err(e) => tracing::error!("packetizing: {e}"),
        }
    }
}

struct Viewer {
    pc: Arc<dyn PeerConnection>,
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
    let spec = settings.source.clone();
    let encoder = H264Encoder::new(settings.encoder)?;
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
                // Cameras are not Send: open it on the thread that reads it.
                let (source, retry) = open_source(&spec, w, h, fps as u32);
                media_loop(source, retry, encoder, fps, links);
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
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(event) = sig_rx.recv() => match event {
                SignalEvent::Connected => signal.send("broadcaster", vec![]).await,
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
                            if let Some(v) = viewers.get(&id) {
                                let _ = v.connected.send(true);
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
    for (_, v) in viewers.drain() {
        v.close().await;
    }
    signal.disconnect().await;
    Ok(())
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
