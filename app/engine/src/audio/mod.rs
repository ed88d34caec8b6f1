//! Sound: the broadcaster's microphone (or the test tone) encoded once as Opus and sent on its
//! own track; the viewer's jitter buffer, decoder and output, kept in step with the picture.
//!
//! - [`source`]: what the broadcaster sends (`--audio none|default|NAME|test-tone`), parsed.
//! - [`tone`]: the test tone (a beep at each whole second of the capture clock) and the beep
//!   detector viewers and tests measure with; pure.
//! - [`microphone`]: cpal capture, resampled to 48 kHz, on the audio thread.
//! - [`send`]: the broadcaster's audio track on `omnicast-audio`: source, level, mute, Opus.
//! - [`jitter`]: the viewer's adaptive jitter buffer; pure, driven by tests with fake time.
//! - [`output`]: where decoded sound goes: the default output device (cpal) or a clock alone.
//! - [`playout`]: the viewer's audio sink on `omnicast-audio-out`: jitter buffer, Opus decoder,
//!   volume, the WAV file, A/V sync figures.
//! - Lip sync (sender reports turned into capture times) serves both tracks: [`crate::lipsync`].

pub mod jitter;
pub mod microphone;
pub mod output;
pub mod playout;
pub mod send;
pub mod source;
pub mod tone;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

pub use source::AudioSource;

/// Opus's clock and what every track is resampled to.
pub const SAMPLE_RATE: u32 = 48_000;
/// One Opus frame: 20 ms.
pub const FRAME: Duration = Duration::from_millis(20);
/// Samples per channel in one frame.
pub const FRAME_SAMPLES: usize = 960;
/// What the encoder aims at (Opus is transparent for speech well below this).
pub const BITRATE_BPS: i32 = 48_000;

/// A level meter: the peak of the last stretch of sound, written by the audio thread and read by
/// a window (0.0–1.0, as f32 bits).
#[derive(Debug, Default)]
pub struct Level(AtomicU32);

impl Level {
    /// Records the peak of `samples` (decays, so a meter falls back smoothly).
    pub fn observe(&self, samples: &[f32]) {
        let peak = samples.iter().fold(0f32, |m, s| m.max(s.abs())).min(1.0);
        let before = self.get();
        let next = peak.max(before * 0.8);
        self.0.store(next.to_bits(), Ordering::Relaxed);
    }

    pub fn get(&self) -> f32 {
        f32::from_bits(self.0.load(Ordering::Relaxed))
    }

    pub fn clear(&self) {
        self.0.store(0, Ordering::Relaxed);
    }
}

/// Peak level in dBFS, for people (−∞ shown as −90).
pub fn dbfs(level: f32) -> f32 {
    if level <= 0.0 {
        -90.0
    } else {
        (20.0 * level.log10()).max(-90.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_level_meter_holds_a_peak_and_falls_back() {
        let l = Level::default();
        l.observe(&[0.1, -0.5, 0.2]);
        assert_eq!(l.get(), 0.5);
        l.observe(&[0.0; 4]);
        assert!((l.get() - 0.4).abs() < 1e-6);
        assert_eq!(dbfs(1.0), 0.0);
        assert_eq!(dbfs(0.0), -90.0);
        assert!((dbfs(0.5) + 6.02).abs() < 0.01);
    }
}
