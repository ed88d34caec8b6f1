//! The test tone and the beep detector.
//!
//! The tone is a quiet 440 Hz sine (−30 dBFS) with a 100 ms, 1 kHz beep (−6 dBFS) that starts
//! exactly at each whole second of the capture clock: Unix time, the clock the test pattern
//! stamps into its frames. A viewer that finds a beep's onset in what it plays and a stamp in
//! what it shows knows how late each is, so their difference is the A/V offset.
//!
//! Both are pure: the tone is a function of time, the detector of the samples it is given.

use std::f64::consts::TAU;

/// The quiet tone between beeps.
const TONE_HZ: f64 = 440.0;
const TONE_AMPLITUDE: f64 = 0.0316; // −30 dBFS
const BEEP_HZ: f64 = 1000.0;
const BEEP_AMPLITUDE: f64 = 0.5; // −6 dBFS
/// How long each beep lasts.
pub const BEEP_MS: u64 = 100;
/// Fade in and out of a beep (no click), in nanoseconds.
const RAMP_NS: u64 = 1_000_000;

/// The tone's sample at `unix_ns` nanoseconds since the Unix epoch. Both frequencies complete
/// whole cycles each second, so the phase is the same at every second and never jumps.
pub fn sample_at(unix_ns: u64) -> f32 {
    let into_second_ns = unix_ns % 1_000_000_000;
    let t = into_second_ns as f64 / 1e9;
    let beep_ns = BEEP_MS * 1_000_000;
    if into_second_ns < beep_ns {
        let ramp = (into_second_ns.min(beep_ns - into_second_ns) as f64 / RAMP_NS as f64).min(1.0);
        (BEEP_AMPLITUDE * ramp * (TAU * BEEP_HZ * t).sin()) as f32
    } else {
        (TONE_AMPLITUDE * (TAU * TONE_HZ * t).sin()) as f32
    }
}

/// Fills `out` with the tone from `start_unix_ns` on, at `rate` samples a second (mono).
pub fn fill(out: &mut [f32], start_unix_ns: u64, rate: u32) {
    for (i, s) in out.iter_mut().enumerate() {
        *s = sample_at(start_unix_ns + i as u64 * 1_000_000_000 / u64::from(rate));
    }
}

/// Finds the onsets of beeps in a stream of samples: a sample louder than the threshold after
/// at least 150 ms below it. Loud enough for the test tone's beeps and Chromium's fake
/// microphone; the quiet tone and Opus's noise stay well below.
#[derive(Debug, Clone)]
pub struct BeepDetector {
    threshold: f32,
    /// Samples seen in all.
    position: u64,
    /// The last sample above the threshold.
    last_loud: Option<u64>,
    quiet_samples: u64,
}

impl BeepDetector {
    /// For a stream at `rate` samples a second.
    pub fn new(rate: u32) -> Self {
        Self {
            threshold: 0.15,
            position: 0,
            last_loud: None,
            quiet_samples: u64::from(rate) * 150 / 1000,
        }
    }

    /// Feeds the next samples (mono, or one channel); returns where in them beeps began.
    pub fn feed(&mut self, samples: &[f32]) -> Vec<usize> {
        let mut onsets = Vec::new();
        for (i, s) in samples.iter().enumerate() {
            if s.abs() > self.threshold {
                let at = self.position + i as u64;
                if self
                    .last_loud
                    .is_none_or(|l| at.saturating_sub(l) >= self.quiet_samples)
                {
                    onsets.push(i);
                }
                self.last_loud = Some(at);
            }
        }
        self.position += samples.len() as u64;
        onsets
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn the_beep_starts_at_each_whole_second_and_the_tone_is_quiet_between() {
        let mut buf = vec![0f32; 48_000 * 3];
        // Start half a second before a whole second.
        let start = 1_700_000_000 * S - S / 2;
        fill(&mut buf, start, 48_000);
        let mut d = BeepDetector::new(48_000);
        let onsets = d.feed(&buf);
        // Beeps at 0.5 s, 1.5 s and 2.5 s into the buffer, to within a millisecond (the fade-in).
        assert_eq!(onsets.len(), 3, "{onsets:?}");
        for (k, at) in onsets.iter().enumerate() {
            let expected = 24_000 + k * 48_000;
            assert!(
                at.abs_diff(expected) <= 48,
                "onset {k} at {at}, expected {expected}"
            );
        }
        // Between beeps, nothing louder than −30 dBFS.
        let quiet = &buf[48_000 * 2 / 10..48_000 * 4 / 10];
        assert!(quiet.iter().all(|s| s.abs() <= 0.032));
        assert!(quiet.iter().any(|s| s.abs() > 0.03), "the tone is there");
    }

    #[test]
    fn onsets_are_found_across_calls_and_a_long_beep_counts_once() {
        let mut d = BeepDetector::new(1000);
        let mut stream = vec![0.0f32; 500];
        stream.extend(std::iter::repeat_n(0.5, 300));
        stream.extend(std::iter::repeat_n(0.0, 100));
        stream.extend(std::iter::repeat_n(-0.5, 10)); // only 100 ms later: the same beep
        stream.extend(std::iter::repeat_n(0.0, 200));
        stream.extend(std::iter::repeat_n(0.5, 10));
        let mut found = Vec::new();
        for (n, chunk) in stream.chunks(7).enumerate() {
            found.extend(d.feed(chunk).into_iter().map(|i| n * 7 + i));
        }
        assert_eq!(found, vec![500, 1110]);
    }
}
