//! The display sink: video frames decoded on their own thread (`omnicast-decode`) into a
//! latest-frame slot that whoever shows them takes from (the window's texture, a snapshot).
//! Decoded pictures stay YUV (NV12): converting to RGB is the display's shader's work.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use crate::codec::H264Decoder;
use crate::figures::{Figures, MAX_LATENCY_SAMPLES};
use crate::frame::{FrameSlot, Nv12, VideoFrame};
use crate::lipsync::{SyncClock, unix_now_s};
use crate::media::{EncodedFrame, KeyframeRequest, MediaKind, TrackSink, TrackSpec};
use crate::sink::{ViewContext, ViewSink};
use crate::stamp;

/// A freeze: no new frame for this long while frames flow.
const FREEZE: Duration = Duration::from_millis(500);
/// Frames queued for the decoder; a fuller queue means it cannot keep up.
const DECODE_QUEUE: usize = 64;

/// Decodes the video track into `slot`.
pub struct Display {
    slot: Arc<FrameSlot>,
}

impl Display {
    pub fn new(slot: Arc<FrameSlot>) -> Self {
        Self { slot }
    }
}

impl ViewSink for Display {
    fn sink_for(&self, track: &TrackSpec, ctx: &ViewContext) -> Option<Box<dyn TrackSink>> {
        if track.kind() != MediaKind::Video {
            return None;
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(DECODE_QUEUE);
        let decoder = Decoding {
            slot: self.slot.clone(),
            figures: ctx.figures.clone(),
            keyframe: ctx.keyframe.clone(),
            started: ctx.started,
            is_keyframe: track.codec.is_keyframe,
            sync: ctx.sync.clone(),
        };
        let spawned = std::thread::Builder::new()
            .name("omnicast-decode".into())
            .spawn(move || decoder.run(rx));
        if let Err(e) = spawned {
            tracing::error!("cannot start the decoder thread: {e}");
            return None;
        }
        Some(Box::new(DecodeSink {
            frames: tx,
            keyframe: ctx.keyframe.clone(),
        }))
    }
}

/// Hands frames to the decoder thread; ends it when dropped.
struct DecodeSink {
    frames: SyncSender<EncodedFrame>,
    keyframe: KeyframeRequest,
}

impl TrackSink for DecodeSink {
    fn accept(&mut self, frame: &EncodedFrame) {
        if let Err(TrySendError::Full(_)) = self.frames.try_send(frame.clone()) {
            // The decoder cannot keep up: drop, and resync on a keyframe.
            self.keyframe.request();
        }
    }

    fn lost(&mut self, _packets: u32) {
        self.keyframe.request();
    }
}

struct Decoding {
    slot: Arc<FrameSlot>,
    figures: Arc<Figures>,
    keyframe: KeyframeRequest,
    started: Instant,
    is_keyframe: fn(&[u8]) -> bool,
    sync: Arc<SyncClock>,
}

impl Decoding {
    fn run(self, frames: Receiver<EncodedFrame>) {
        let mut decoder = match H264Decoder::new() {
            Ok(d) => d,
            Err(e) => {
                tracing::error!("{e}");
                return;
            }
        };
        let mut picture = Nv12::default();
        let mut shown = Shown::default();
        let mut synced = false;
        // Pictures waiting for the sound (lip sync), oldest first, each with when it is due.
        let mut waiting: VecDeque<(Instant, VideoFrame, u64)> = VecDeque::new();
        let mut decoded = 0u64;
        loop {
            let next = match waiting.front() {
                Some((due, ..)) => {
                    match frames.recv_timeout(due.saturating_duration_since(Instant::now())) {
                        Ok(f) => Some(f),
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
                None => match frames.recv() {
                    Ok(f) => Some(f),
                    Err(_) => break,
                },
            };
            while waiting
                .front()
                .is_some_and(|(due, ..)| *due <= Instant::now())
            {
                if let Some((_, frame, decode_us)) = waiting.pop_front() {
                    self.show(frame, decode_us, &mut shown);
                }
            }
            let Some(frame) = next else { continue };
            // A decoder can only start on a keyframe (SPS, PPS, IDR): skip what comes before.
            if !synced {
                if !(self.is_keyframe)(&frame.data) {
                    self.keyframe.request();
                    continue;
                }
                synced = true;
            }
            let t0 = Instant::now();
            match decoder.decode(&frame.data, &mut picture) {
                Ok(Some(d)) => {
                    let decode_us = t0.elapsed().as_micros() as u64;
                    decoded += 1;
                    // How long after capture this would show now, and how long to hold it so
                    // it shows with its sound.
                    let hold = match self.sync.capture_s(MediaKind::Video, frame.timestamp) {
                        Some(captured) => {
                            let delay_ms = (unix_now_s() - captured) * 1e3;
                            let hold = self.sync.hold_for(delay_ms);
                            let hold_ms = hold.as_secs_f64() * 1e3;
                            self.sync
                                .set_delay(MediaKind::Video, delay_ms + hold_ms, hold_ms);
                            hold
                        }
                        None => Duration::ZERO,
                    };
                    let frame = VideoFrame {
                        picture: std::mem::take(&mut picture),
                        stamp: d.stamp,
                        index: decoded,
                    };
                    if hold.is_zero() && waiting.is_empty() {
                        picture = self.show(frame, decode_us, &mut shown).unwrap_or_default();
                    } else {
                        // Never more pictures waiting than the hold allows at 60 fps.
                        if waiting.len() >= MAX_WAITING
                            && let Some((_, f, us)) = waiting.pop_front()
                        {
                            self.show(f, us, &mut shown);
                        }
                        waiting.push_back((Instant::now() + hold, frame, decode_us));
                        picture = self
                            .slot
                            .take_spare()
                            .map(|f| f.picture)
                            .unwrap_or_default();
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!("decode: {e}");
                    synced = false;
                    let index = decoded;
                    self.figures.update(|s| {
                        s.decode_errors += 1;
                        s.last_decode_error = Some(format!(
                            "{e} (access unit of {} bytes, frame {index})",
                            frame.data.len()
                        ));
                    });
                    self.keyframe.request();
                }
            }
        }
    }

    /// Puts a picture in the slot, counts it, and returns a buffer to decode the next one into
    /// (the one it replaced if nobody took that, or one the display handed back).
    fn show(&self, frame: VideoFrame, decode_us: u64, shown: &mut Shown) -> Option<Nv12> {
        let now_ms = stamp::unix_ms_wrapping();
        let now = Instant::now();
        shown.index += 1;
        let froze = shown.last.is_some_and(|t| now - t > FREEZE);
        shown.last = Some(now);
        let (width, height) = (frame.picture.width(), frame.picture.height());
        let started = self.started;
        let stamp = frame.stamp;
        self.figures.update(|s| {
            s.width = width;
            s.height = height;
            s.frames_decoded += 1;
            s.decode_us_total += decode_us;
            s.freezes += u64::from(froze);
            let at = started.elapsed().as_millis() as u64;
            s.first_frame_ms.get_or_insert(at);
            s.timeline_ms.entry("6 first frame").or_insert(at);
            if let Some(st) = stamp {
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
        if shown.index == 1 {
            self.figures.mark_live();
        }
        let replaced = self.slot.put(VideoFrame {
            index: shown.index,
            ..frame
        });
        self.slot.reuse(replaced).map(|f| f.picture)
    }
}

/// Pictures held for lip sync at most: 200 ms at 60 fps.
const MAX_WAITING: usize = 12;

/// What the display counts of the pictures it showed.
#[derive(Default)]
struct Shown {
    index: u64,
    last: Option<Instant>,
}
