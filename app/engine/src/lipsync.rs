//! Lip sync: what a connection's sender reports (RTCP SR: an RTP timestamp and the sender's
//! wall clock at that moment) turned into capture times, and the delays each track is played
//! with, shared between the picture's decoder thread and the sound's output thread.
//!
//! Both tracks' capture times are on the sender's one clock, so "how long after capture is this
//! played" is comparable between them whatever the two machines' clocks say: their difference
//! is the A/V offset. Which track waits is decided from each one's own delay, before any
//! waiting for the other (so the two never push each other up): a picture that would show
//! before its sound waits for it (up to [`MAX_HOLD`]); sound that would play before its picture
//! asks its jitter buffer for more delay.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

use crate::media::MediaKind;

/// Longest a picture is held back for the sound.
pub const MAX_HOLD: Duration = Duration::from_millis(200);
/// Seconds between the NTP epoch (1900) and the Unix epoch.
const NTP_UNIX_OFFSET_S: f64 = 2_208_988_800.0;

#[derive(Debug, Clone, Copy)]
struct Report {
    /// The sender's clock, Unix seconds.
    unix_s: f64,
    rtp: u32,
    clock_rate: u32,
}

/// One connection's sender clock and the tracks' delays.
#[derive(Debug, Default)]
pub struct SyncClock {
    video: Mutex<Option<Report>>,
    audio: Mutex<Option<Report>>,
    /// Milliseconds from capture to play/show (f64 bits; 0 = not known): as played and
    /// shown, and what they would be without waiting for the other track.
    audio_delay_ms: AtomicU64,
    video_delay_ms: AtomicU64,
    audio_own_ms: AtomicU64,
    video_own_ms: AtomicU64,
}

/// Now on this machine's clock, Unix seconds.
pub fn unix_now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl SyncClock {
    fn slot(&self, kind: MediaKind) -> &Mutex<Option<Report>> {
        match kind {
            MediaKind::Video => &self.video,
            MediaKind::Audio => &self.audio,
        }
    }

    /// A sender report for the `kind` track: NTP time (64-bit fixed point) and RTP time.
    pub fn sender_report(&self, kind: MediaKind, ntp: u64, rtp: u32, clock_rate: u32) {
        let unix_s =
            (ntp >> 32) as f64 + (ntp & 0xFFFF_FFFF) as f64 / 4_294_967_296.0 - NTP_UNIX_OFFSET_S;
        *self.slot(kind).lock() = Some(Report {
            unix_s,
            rtp,
            clock_rate,
        });
    }

    /// When media timestamp `ts` (unwrapped RTP) of the `kind` track was captured, on the
    /// sender's clock; `None` before its first report.
    pub fn capture_s(&self, kind: MediaKind, ts: u64) -> Option<f64> {
        let r = (*self.slot(kind).lock())?;
        let diff = (ts as u32).wrapping_sub(r.rtp) as i32;
        Some(r.unix_s + f64::from(diff) / f64::from(r.clock_rate))
    }

    /// The `kind` track was played or shown `delay_ms` after capture, of which `waited_ms` was
    /// spent waiting for the other track.
    pub fn set_delay(&self, kind: MediaKind, delay_ms: f64, waited_ms: f64) {
        let (slot, own) = match kind {
            MediaKind::Video => (&self.video_delay_ms, &self.video_own_ms),
            MediaKind::Audio => (&self.audio_delay_ms, &self.audio_own_ms),
        };
        slot.store(delay_ms.to_bits(), Ordering::Relaxed);
        own.store((delay_ms - waited_ms).to_bits(), Ordering::Relaxed);
    }

    fn load(slot: &AtomicU64) -> Option<f64> {
        let v = f64::from_bits(slot.load(Ordering::Relaxed));
        (v != 0.0).then_some(v)
    }

    /// Capture-to-play delay of the `kind` track, if known.
    pub fn delay_ms(&self, kind: MediaKind) -> Option<f64> {
        Self::load(match kind {
            MediaKind::Video => &self.video_delay_ms,
            MediaKind::Audio => &self.audio_delay_ms,
        })
    }

    /// How long a picture whose own delay is `video_own_ms` should wait for the sound.
    pub fn hold_for(&self, video_own_ms: f64) -> Duration {
        match Self::load(&self.audio_own_ms) {
            Some(audio) if audio > video_own_ms + 5.0 => {
                Duration::from_secs_f64((audio - video_own_ms) / 1e3).min(MAX_HOLD)
            }
            _ => Duration::ZERO,
        }
    }

    /// How much longer sound whose own delay is `audio_own_ms` should wait for the picture.
    pub fn audio_wait_for(&self, audio_own_ms: f64) -> Duration {
        match Self::load(&self.video_own_ms) {
            Some(video) if video > audio_own_ms + 5.0 => {
                Duration::from_secs_f64((video - audio_own_ms) / 1e3)
            }
            _ => Duration::ZERO,
        }
    }

    /// A/V offset: how much later the sound plays than the picture shows what was captured
    /// together (positive: the sound is late).
    pub fn av_offset_ms(&self) -> Option<f64> {
        Some(self.delay_ms(MediaKind::Audio)? - self.delay_ms(MediaKind::Video)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sender_report_maps_rtp_time_to_the_senders_clock_across_wraps() {
        let s = SyncClock::default();
        assert!(s.capture_s(MediaKind::Audio, 0).is_none());
        // 2025-01-01T00:00:00Z plus half a second, in NTP.
        let unix = 1_735_689_600u64;
        let ntp = ((unix + 2_208_988_800) << 32) | (1 << 31);
        s.sender_report(MediaKind::Audio, ntp, u32::MAX - 47_999, 48_000);
        let at = |ts: u64| s.capture_s(MediaKind::Audio, ts).unwrap() - unix as f64;
        assert!((at(u64::from(u32::MAX) - 47_999) - 0.5).abs() < 1e-6);
        // One second later, across the 32-bit wrap (unwrapped timestamps).
        assert!((at(u64::from(u32::MAX) + 1) - 1.5).abs() < 1e-6);
        assert!((at(u64::from(u32::MAX) - 95_999) + 0.5).abs() < 1e-6);
    }

    #[test]
    fn the_later_track_sets_the_pace_and_the_picture_never_waits_long() {
        let s = SyncClock::default();
        assert_eq!(s.hold_for(30.0), Duration::ZERO, "no sound: no wait");
        s.set_delay(MediaKind::Audio, 90.0, 0.0);
        assert_eq!(s.hold_for(30.0), Duration::from_millis(60));
        assert_eq!(s.hold_for(88.0), Duration::ZERO);
        // The picture waiting does not make the sound wait for it in turn.
        s.set_delay(MediaKind::Video, 90.0, 60.0);
        assert_eq!(s.audio_wait_for(90.0), Duration::ZERO);
        assert_eq!(s.av_offset_ms(), Some(0.0));
        s.set_delay(MediaKind::Audio, 900.0, 0.0);
        assert_eq!(s.hold_for(30.0), MAX_HOLD);
        // A slow picture: the sound waits instead.
        s.set_delay(MediaKind::Audio, 40.0, 0.0);
        s.set_delay(MediaKind::Video, 100.0, 0.0);
        assert_eq!(s.hold_for(100.0), Duration::ZERO);
        assert_eq!(s.audio_wait_for(40.0), Duration::from_millis(60));
        assert_eq!(s.av_offset_ms(), Some(-60.0));
    }
}
