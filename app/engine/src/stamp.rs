//! A machine-readable stamp drawn into the luma of each test-pattern frame: frame sequence number
//! and capture time, as big black/white blocks that survive H.264 compression. A viewer reads it
//! back to measure glass-to-glass latency and to count lost or reordered frames.
//!
//! Layout: three rows of 32 blocks at the top-left corner: the sequence number, the capture time
//! (Unix milliseconds modulo 2³²), and a check word, each most significant bit first.

use std::time::{SystemTime, UNIX_EPOCH};

const BITS: usize = 32;
const ROWS: usize = 3;
const CHECK_MAGIC: u32 = 0xA5C3_5A3C;
/// Luma of a 1 and a 0 bit (studio range, as encoders expect).
const ONE: u8 = 235;
const ZERO: u8 = 16;

/// What a stamped frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub seq: u32,
    /// Unix time in milliseconds, modulo 2³².
    pub capture_ms: u32,
}

impl Stamp {
    pub fn now(seq: u32) -> Self {
        Self {
            seq,
            capture_ms: unix_ms_wrapping(),
        }
    }

    /// Milliseconds from capture to `now_ms` (both Unix ms modulo 2³²), robust to wrap-around.
    pub fn age_ms(&self, now_ms: u32) -> u32 {
        now_ms.wrapping_sub(self.capture_ms)
    }

    fn words(&self) -> [u32; ROWS] {
        [
            self.seq,
            self.capture_ms,
            self.seq ^ self.capture_ms ^ CHECK_MAGIC,
        ]
    }
}

/// The current Unix time in milliseconds, modulo 2³².
pub fn unix_ms_wrapping() -> u32 {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    (ms & u128::from(u32::MAX)) as u32
}

/// Side of one bit's square in pixels for a frame `width` wide (a multiple of 4, 4 to 32).
pub fn block_size(width: usize) -> usize {
    (width / 40).clamp(4, 32) & !3
}

/// Can a frame of this size carry a stamp?
pub fn fits(width: usize, height: usize) -> bool {
    let b = block_size(width);
    width >= BITS * b && height >= ROWS * b
}

/// Draws `stamp` into a luma plane.
pub fn write(y: &mut [u8], stride: usize, width: usize, height: usize, stamp: Stamp) {
    if !fits(width, height) {
        return;
    }
    let b = block_size(width);
    for (row, word) in stamp.words().into_iter().enumerate() {
        for bit in 0..BITS {
            let value = if word >> (BITS - 1 - bit) & 1 == 1 {
                ONE
            } else {
                ZERO
            };
            for line in row * b..(row + 1) * b {
                let start = line * stride + bit * b;
                if let Some(px) = y.get_mut(start..start + b) {
                    px.fill(value);
                }
            }
        }
    }
}

/// Reads a stamp from a luma plane, or `None` if there is none (or it was damaged).
pub fn read(y: &[u8], stride: usize, width: usize, height: usize) -> Option<Stamp> {
    if !fits(width, height) {
        return None;
    }
    let b = block_size(width);
    let mut words = [0u32; ROWS];
    for (row, word) in words.iter_mut().enumerate() {
        for bit in 0..BITS {
            // The middle half of the block, away from edges the encoder may blur.
            let (mut sum, mut n) = (0u32, 0u32);
            for line in row * b + b / 4..row * b + 3 * b / 4 {
                let start = line * stride + bit * b + b / 4;
                for &v in y.get(start..start + b / 2)? {
                    sum += u32::from(v);
                    n += 1;
                }
            }
            *word = (*word << 1) | u32::from(sum > n * 128);
        }
    }
    let stamp = Stamp {
        seq: words[0],
        capture_ms: words[1],
    };
    (words[2] == stamp.words()[2]).then_some(stamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_at_many_sizes() {
        for (w, h) in [(160, 120), (640, 480), (1280, 720), (3840, 1920)] {
            let mut y = vec![90u8; w * h];
            let stamp = Stamp {
                seq: 0xDEAD_0001,
                capture_ms: 123_456_789,
            };
            write(&mut y, w, w, h, stamp);
            assert_eq!(read(&y, w, w, h), Some(stamp), "{w}x{h}");
        }
    }

    #[test]
    fn survives_noise_but_not_damage() {
        let (w, h) = (640, 480);
        let mut y = vec![128u8; w * h];
        let stamp = Stamp::now(42);
        write(&mut y, w, w, h, stamp);
        // ±40 of noise everywhere still reads.
        let noisy: Vec<u8> = y
            .iter()
            .enumerate()
            .map(|(i, &v)| v.saturating_add((i % 41) as u8).saturating_sub(20))
            .collect();
        assert_eq!(read(&noisy, w, w, h), Some(stamp));
        // A frame without a stamp, or with a flipped block, is rejected by the check word.
        assert_eq!(read(&vec![128u8; w * h], w, w, h), None);
        let b = block_size(w);
        for line in 0..b {
            for px in &mut y[line * w..line * w + b] {
                *px = 255 - *px;
            }
        }
        assert_eq!(read(&y, w, w, h), None);
    }

    #[test]
    fn too_small_frames_carry_no_stamp() {
        assert!(!fits(64, 64));
        let mut y = vec![0u8; 64 * 64];
        write(&mut y, 64, 64, 64, Stamp::now(1));
        assert!(y.iter().all(|&v| v == 0));
        assert_eq!(read(&y, 64, 64, 64), None);
    }

    #[test]
    fn age_wraps() {
        let s = Stamp {
            seq: 0,
            capture_ms: u32::MAX - 5,
        };
        assert_eq!(s.age_ms(10), 16);
    }
}
