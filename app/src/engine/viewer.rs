//! The viewer: answers the broadcaster's offer, depacketizes and decodes on its own thread, and
//! keeps only the latest frame (a slot that is overwritten, never a queue).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, RTCPeerConnectionState, RTCStatsReportEntry, StatsSelector,
};

use super::codec::H264Decoder;
pub use super::frame::{FrameSlot, VideoFrame};
use super::peer::{self, PeerEvent, PeerSettings};
use super::rtp::FrameAssembler;
use super::signal::{SignalClient, SignalEvent};
use super::stamp;

#[derive(Debug, Clone)]
pub struct ViewSettings {
    pub server_url: String,
    pub room: String,
    pub peer: PeerSettings,
    /// Decode the video (normally). Off, the viewer only receives and counts RTP: load
    /// generation for benchmarks, where dozens of decoders would not fit the machine.
    pub decode: bool,
}

/// What the viewer is doing, for status displays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ViewState {
    Connecting,
    WaitingForBroadcaster,
    Negotiating,
    Live,
    BroadcasterLeft,
    /// The viewer failed (the signal server unreachable, say) and will try again.
    Reconnecting,
}

/// Receive-side figures.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ViewerStats {
    pub state: Option<ViewState>,
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
    pub timeline_ms: std::collections::BTreeMap<&'static str, u64>,
    /// Stamp sequence numbers of the first and last frames decoded.
    pub first_seq: Option<u32>,
    pub last_seq: Option<u32>,
    pub latency_ms: std::collections::VecDeque<u32>,
    pub decode_us_total: u64,
    pub freezes: u64,
    /// Round-trip time of the connection (ICE candidate pair), milliseconds.
    pub rtt_ms: Option<f64>,
    /// Over the time since the first decoded frame.
    pub fps_decoded: f64,
    pub fps_received: f64,
    pub bitrate_kbps: f64,
    pub decode_ms_avg: f64,
}

#[derive(Default)]
pub struct SharedStats {
    inner: Mutex<ViewerStats>,
    /// When the first frame was decoded (rates are measured from there).
    live_since: Mutex<Option<(Instant, u64, u64)>>,
    pub frames_decoded: AtomicU64,
}

impl SharedStats {
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
        if s.frames_decoded > 0 {
            s.decode_ms_avg = s.decode_us_total as f64 / s.frames_decoded as f64 / 1000.0;
        }
        s
    }

    /// What the viewer is doing (cheaper than a whole [`snapshot`](Self::snapshot)).
    pub fn state(&self) -> Option<ViewState> {
        self.inner.lock().state
    }

    /// Says what the viewer is doing (its supervisor says when it is reconnecting).
    pub fn set_state(&self, state: ViewState) {
        self.update(|s| s.state = Some(state));
    }

    fn update(&self, f: impl FnOnce(&mut ViewerStats)) {
        f(&mut self.inner.lock());
    }
}

/// Records when a step of the first connection happened (later repeats are ignored).
fn mark(stats: &SharedStats, step: &'static str, started: Instant) {
    let at = started.elapsed().as_millis() as u64;
    stats.update(|s| {
        s.timeline_ms.entry(step).or_insert(at);
    });
}

/// A freeze: no new frame for this long while live.
const FREEZE: Duration = Duration::from_millis(500);
/// Latency samples kept (the most recent).
const MAX_LATENCY_SAMPLES: usize = 10_000;

/// Decodes packets from `packets` into `slot` until the channel closes.
fn decode_loop(
    packets: std::sync::mpsc::Receiver<rtc::rtp::Packet>,
    slot: Arc<FrameSlot>,
    stats: Arc<SharedStats>,
    want_keyframe: Arc<AtomicBool>,
    started: Instant,
) {
    let mut decoder = match H264Decoder::new() {
        Ok(d) => d,
        Err(e) => {
            tracing::error!("{e}");
            return;
        }
    };
    let mut assembler = FrameAssembler::default();
    let mut rgba = Vec::new();
    let mut index = 0u64;
    let mut last_frame: Option<Instant> = None;
    let mut synced = false;
    while let Ok(packet) = packets.recv() {
        let size = packet.payload.len() as u64;
        let marker = packet.header.marker;
        let at = started.elapsed().as_millis() as u64;
        stats.update(|s| {
            s.timeline_ms.entry("5 first packet").or_insert(at);
            s.packets_received += 1;
            s.bytes_received += size;
            s.frames_received += u64::from(marker);
        });
        assembler.push(packet);
        while let Some((access_unit, lost)) = assembler.pop(Instant::now()) {
            if lost > 0 {
                stats.update(|s| s.packets_lost += u64::from(lost));
                want_keyframe.store(true, Ordering::Relaxed);
            }
            // A decoder can only start on a keyframe (SPS, PPS, IDR): skip what comes before.
            if !synced {
                if !is_keyframe(&access_unit) {
                    want_keyframe.store(true, Ordering::Relaxed);
                    continue;
                }
                synced = true;
            }
            let t0 = Instant::now();
            match decoder.decode(&access_unit, &mut rgba) {
                Ok(Some(d)) => {
                    let decode_us = t0.elapsed().as_micros() as u64;
                    let now_ms = stamp::unix_ms_wrapping();
                    index += 1;
                    let now = Instant::now();
                    let froze = last_frame.is_some_and(|t| now - t > FREEZE);
                    last_frame = Some(now);
                    stats.update(|s| {
                        s.state = Some(ViewState::Live);
                        s.width = d.width;
                        s.height = d.height;
                        s.frames_decoded += 1;
                        s.decode_us_total += decode_us;
                        s.freezes += u64::from(froze);
                        let at = started.elapsed().as_millis() as u64;
                        s.first_frame_ms.get_or_insert(at);
                        s.timeline_ms.entry("6 first frame").or_insert(at);
                        if let Some(st) = d.stamp {
                            s.frames_with_stamp += 1;
                            if let Some(prev) = s.last_seq {
                                let gap = st.seq.wrapping_sub(prev);
                                if gap == 0 || gap > u32::MAX / 2 {
                                    s.frames_out_of_order += 1;
                                } else {
                                    s.frames_lost += u64::from(gap - 1);
                                }
                            }
                            s.first_seq.get_or_insert(st.seq);
                            s.last_seq = Some(st.seq);
                            if s.latency_ms.len() >= MAX_LATENCY_SAMPLES {
                                s.latency_ms.pop_front();
                            }
                            s.latency_ms.push_back(st.age_ms(now_ms));
                        }
                    });
                    if stats.frames_decoded.fetch_add(1, Ordering::Relaxed) == 0 {
                        let s = stats.inner.lock();
                        *stats.live_since.lock() =
                            Some((Instant::now(), s.frames_received, s.bytes_received));
                    }
                    // Hand the pixels over without copying; decode the next frame into the
                    // buffer of the one it replaces if nobody took that, else into one the
                    // display handed back.
                    let replaced = slot.put(VideoFrame {
                        width: d.width,
                        height: d.height,
                        rgba: std::mem::take(&mut rgba),
                        stamp: d.stamp,
                        index,
                    });
                    rgba = slot.reuse(replaced).map(|f| f.rgba).unwrap_or_default();
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!("decode: {e}");
                    synced = false;
                    stats.update(|s| {
                        s.decode_errors += 1;
                        s.last_decode_error = Some(format!(
                            "{e} (access unit of {} bytes, frame {index})",
                            access_unit.len()
                        ));
                    });
                    want_keyframe.store(true, Ordering::Relaxed);
                }
            }
        }
    }
}

/// Can decoding start at this Annex B access unit: does it carry a sequence parameter set (NAL
/// type 7) and an IDR slice (type 5)? (Every IDR from openh264 and browsers carries SPS/PPS; an
/// IDR whose first packet went missing does not, and would not decode.)
fn is_keyframe(access_unit: &[u8]) -> bool {
    let types = || {
        access_unit
            .windows(4)
            .filter(|w| w[..3] == [0, 0, 1])
            .map(|w| w[3] & 0x1F)
    };
    types().any(|t| t == 7) && types().any(|t| t == 5)
}

/// Counts packets, frames and sequence gaps without decoding.
async fn count_only(track: Arc<dyn TrackRemote>, stats: Arc<SharedStats>) {
    let mut last_seq: Option<u16> = None;
    while let Some(event) = track.poll().await {
        let TrackRemoteEvent::OnRtpPacket(packet) = event else {
            continue;
        };
        let seq = packet.header.sequence_number;
        let gap = last_seq.map_or(0, |l| seq.wrapping_sub(l).wrapping_sub(1));
        last_seq = Some(seq);
        let marker = packet.header.marker;
        let bytes = packet.payload.len() as u64;
        stats.update(|s| {
            s.packets_received += 1;
            s.bytes_received += bytes;
            if gap < u16::MAX / 2 {
                s.packets_lost += u64::from(gap);
            }
            if marker {
                s.frames_received += 1;
            }
        });
    }
}

/// Reads a remote track into the decoder thread; asks for a keyframe (PLI) when it has to.
async fn receive(
    track: Arc<dyn TrackRemote>,
    slot: Arc<FrameSlot>,
    stats: Arc<SharedStats>,
    started: Instant,
    decode: bool,
) {
    if !decode {
        count_only(track, stats).await;
        return;
    }
    let (tx, rx) = std::sync::mpsc::sync_channel::<rtc::rtp::Packet>(2048);
    let want_keyframe = Arc::new(AtomicBool::new(false));
    let decoder = {
        let (slot, stats, want) = (slot, stats.clone(), want_keyframe.clone());
        std::thread::Builder::new()
            .name("omnicast-decode".into())
            .spawn(move || decode_loop(rx, slot, stats, want, started))
    };
    if let Err(e) = decoder {
        tracing::error!("cannot start the decoder thread: {e}");
        return;
    }
    let mut last_pli: Option<Instant> = None;
    while let Some(event) = track.poll().await {
        let TrackRemoteEvent::OnRtpPacket(packet) = event else {
            continue;
        };
        let media_ssrc = packet.header.ssrc;
        // A full queue means the decoder cannot keep up: drop, and resync on a keyframe.
        if tx.try_send(packet).is_err() {
            want_keyframe.store(true, Ordering::Relaxed);
        }
        if want_keyframe.load(Ordering::Relaxed)
            && last_pli.is_none_or(|t| t.elapsed() > Duration::from_millis(500))
        {
            want_keyframe.store(false, Ordering::Relaxed);
            last_pli = Some(Instant::now());
            stats.update(|s| s.keyframe_requests += 1);
            let pli = PictureLossIndication {
                sender_ssrc: 0,
                media_ssrc,
            };
            if let Err(e) = track.write_rtcp(vec![Box::new(pli)]).await {
                tracing::debug!("PLI: {e}");
            }
        }
    }
}

/// Watches until `shutdown` completes; frames go to `slot`.
pub async fn run(
    settings: ViewSettings,
    slot: Arc<FrameSlot>,
    stats: Arc<SharedStats>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), super::signal::SignalError> {
    let started = Instant::now();
    stats.update(|s| s.state = Some(ViewState::Connecting));
    let (sig_tx, mut sig_rx) = mpsc::channel(256);
    let signal = SignalClient::connect(&settings.server_url, &settings.room, None, sig_tx).await?;
    let (peer_tx, mut peer_rx) = mpsc::channel::<PeerEvent>(64);
    let mut pc: Option<(String, Arc<dyn PeerConnection>)> = None;
    let close = |pc: &mut Option<(String, Arc<dyn PeerConnection>)>| {
        if let Some((_, old)) = pc.take() {
            tokio::spawn(async move {
                let _ = old.close().await;
            });
        }
    };
    tokio::pin!(shutdown);
    let mut rtt_tick = tokio::time::interval(Duration::from_secs(1));
    let mut peer_settings = settings.peer.clone();
    let mut result = Ok(());
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = rtt_tick.tick() => {
                if let Some((_, conn)) = &pc {
                    let report = conn.get_stats(Instant::now(), StatsSelector::None).await;
                    let rtt = report.iter().find_map(|e| match e {
                        RTCStatsReportEntry::IceCandidatePair(p) if p.current_round_trip_time > 0.0 => {
                            Some(p.current_round_trip_time * 1000.0)
                        }
                        _ => None,
                    });
                    if rtt.is_some() {
                        stats.update(|s| s.rtt_ms = rtt);
                    }
                }
            }
            Some(event) = sig_rx.recv() => match event {
                SignalEvent::Connected => {
                    mark(&stats, "1 signalling", started);
                    stats.update(|s| s.state = Some(ViewState::WaitingForBroadcaster));
                    signal.send("watcher", vec![]).await;
                }
                SignalEvent::Broadcaster => {
                    close(&mut pc);
                    signal.send("watcher", vec![]).await;
                }
                // The picture keeps coming peer to peer; the signalling reconnects by itself.
                SignalEvent::Disconnected => {}
                SignalEvent::Lost => {
                    result = Err(signal.lost());
                    break;
                }
                SignalEvent::NoBroadcaster => {
                    stats.update(|s| s.state = Some(ViewState::WaitingForBroadcaster));
                }
                SignalEvent::BroadcasterLeft => {
                    close(&mut pc);
                    stats.update(|s| s.state = Some(ViewState::BroadcasterLeft));
                }
                SignalEvent::PeerLeft(id) => {
                    if pc.as_ref().is_some_and(|(p, _)| *p == id) {
                        close(&mut pc);
                        stats.update(|s| s.state = Some(ViewState::BroadcasterLeft));
                    }
                }
                SignalEvent::Offer(from, desc) => {
                    close(&mut pc);
                    mark(&stats, "2 offer", started);
                    stats.update(|s| s.state = Some(ViewState::Negotiating));
                    match answer(&peer_settings, &from, desc, &peer_tx).await {
                        Ok((conn, answer)) => {
                            signal.send("answer", vec![json!(from), answer]).await;
                            mark(&stats, "3 answered", started);
                            pc = Some((from, conn));
                        }
                        Err(e) => tracing::warn!("cannot answer the broadcaster's offer: {e}"),
                    }
                }
                SignalEvent::Candidate(from, c) => {
                    if let Some((id, conn)) = &pc
                        && *id == from
                    {
                        match peer::candidate(c) {
                            Ok(c) => {
                                if let Err(e) = conn.add_ice_candidate(c).await {
                                    tracing::debug!("unusable candidate: {e}");
                                }
                            }
                            Err(e) => tracing::debug!("{e}"),
                        }
                    }
                }
                SignalEvent::Error(e) => tracing::warn!("signal server: {e}"),
                SignalEvent::IceServers(servers) => peer_settings.ice_servers = servers,
                SignalEvent::Watcher(_)
                | SignalEvent::Answer(..)
                | SignalEvent::Viewers(_)
                | SignalEvent::Replaced => {}
            },
            Some(event) = peer_rx.recv() => match event {
                PeerEvent::Candidate(c) => {
                    if let Some((id, _)) = &pc {
                        signal.send("candidate", vec![json!(id), c]).await;
                    }
                }
                PeerEvent::State(state) => {
                    tracing::debug!("connection {state}");
                    if state == RTCPeerConnectionState::Connected {
                        mark(&stats, "4b connected (DTLS)", started);
                        if let Some((id, _)) = &pc {
                            tracing::info!("connected to the broadcaster ({id})");
                        }
                    }
                    if state == RTCPeerConnectionState::Failed && pc.is_some() {
                        // Ask again: the broadcaster offers a fresh connection.
                        close(&mut pc);
                        signal.send("watcher", vec![]).await;
                    }
                }
                PeerEvent::IceConnected => mark(&stats, "4a ICE connected", started),
                PeerEvent::Track(track) => {
                    tokio::spawn(receive(track, slot.clone(), stats.clone(), started, settings.decode));
                }
            },
        }
    }
    close(&mut pc);
    signal.disconnect().await;
    result
}

async fn answer(
    settings: &PeerSettings,
    from: &str,
    offer: Value,
    events: &mpsc::Sender<PeerEvent>,
) -> Result<(Arc<dyn PeerConnection>, Value), peer::PeerError> {
    let offer = peer::description(offer)?;
    let conn = peer::build(settings, true, events.clone()).await?;
    let result = async {
        conn.set_remote_description(offer).await?;
        let answer = conn.create_answer(None).await?;
        conn.set_local_description(answer.clone()).await?;
        Ok::<_, webrtc::error::Error>(answer)
    }
    .await;
    match result {
        Ok(answer) => {
            tracing::debug!(broadcaster = from, "answered");
            Ok((
                conn,
                json!({ "type": answer.sdp_type.to_string(), "sdp": answer.sdp }),
            ))
        }
        Err(e) => {
            let _ = conn.close().await;
            Err(e.into())
        }
    }
}
