//! What sessions count, as the threads and tasks that do the work write it and the loops read
//! it: a viewer's receive-side figures ([`Figures`], read as a [`ViewerStats`] snapshot) and a
//! broadcaster's video figures ([`VideoFigures`]). Low in the crate: the sinks and sources that
//! write them, and the loops that read them, all stand above.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::Instant;

use parking_lot::Mutex;
use serde::Serialize;

use crate::values::Projection;

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
    pub(crate) async fn first_frame(self: Arc<Self>, decodes: bool) {
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

/// Figures a broadcaster's video track keeps (its thread, encoding or replaying, is their only
/// writer); the broadcast reads them for its status.
#[derive(Debug, Default)]
pub struct VideoFigures {
    /// What goes out: the camera's name, or the test pattern and why.
    pub source: Mutex<String>,
    pub frames_encoded: AtomicU64,
    /// Ticks or camera frames dropped because the encoder was behind.
    pub frames_dropped_late: AtomicU64,
    pub keyframes: AtomicU64,
    pub encode_us_total: AtomicU64,
    /// Threads encoding the current picture size.
    pub encoder_threads: AtomicU64,
    /// The frames are a recording's, sent as recorded (nothing is encoded).
    pub sent_as_recorded: AtomicBool,
}
