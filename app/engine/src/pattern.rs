//! The built-in test pattern: moving content (so the encoder does real work and a frozen stream
//! is visible) with a machine-readable [`Stamp`](super::stamp::Stamp) in the corner.

use super::frame::I420;
use super::stamp::{self, Stamp};

pub struct TestPattern {
    frame: I420,
    /// One luma row of the background gradient, twice as wide so any shift is one copy.
    gradient: Vec<u8>,
    tick: usize,
}

impl TestPattern {
    pub fn new(width: usize, height: usize) -> Self {
        let mut frame = I420::new(width, height);
        let (w, h) = (frame.width(), frame.height());
        let gradient = (0..2 * w)
            .map(|x| 16 + ((x % w) * 219 / w.max(1)) as u8)
            .collect();
        // Static colour bands in chroma: eight vertical bars.
        let (_, u, v) = frame.planes_mut();
        let cw = w / 2;
        for row in 0..h / 2 {
            for x in 0..cw {
                let band = x * 8 / cw.max(1);
                u[row * cw + x] = [128, 44, 156, 72, 184, 100, 212, 128][band];
                v[row * cw + x] = [128, 142, 44, 58, 198, 212, 114, 128][band];
            }
        }
        // Neutral chroma under the stamp, so its blocks read as plain black and white.
        if stamp::fits(w, h) {
            let b = stamp::block_size(w);
            for row in 0..(3 * b).div_ceil(2) {
                let start = row * cw;
                u[start..start + 16 * b].fill(128);
                v[start..start + 16 * b].fill(128);
            }
        }
        Self {
            frame,
            gradient,
            tick: 0,
        }
    }

    /// Draws the next frame, stamped with `stamp`.
    pub fn render(&mut self, stamp: Stamp) -> &I420 {
        let (w, h) = (self.frame.width(), self.frame.height());
        let shift = (self.tick * 4) % w.max(1);
        let square = (h / 4).max(8);
        // A square that travels diagonally and bounces.
        let period_x = (w - square.min(w)).max(1);
        let period_y = (h - square.min(h)).max(1);
        let pos = |t: usize, p: usize| {
            let t = t % (2 * p);
            if t < p { t } else { 2 * p - t }
        };
        let (sx, sy) = (pos(self.tick * 6, period_x), pos(self.tick * 4, period_y));
        let (y, _, _) = self.frame.planes_mut();
        for (row, line) in y.chunks_exact_mut(w).enumerate() {
            line.copy_from_slice(&self.gradient[shift..shift + w]);
            if (sy..sy + square).contains(&row) {
                line[sx..(sx + square).min(w)].fill(235);
            }
        }
        stamp::write(y, w, w, h, stamp);
        self.tick += 1;
        &self.frame
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openh264::formats::YUVSource as _;

    #[test]
    fn frames_move_and_carry_their_stamp() {
        let mut p = TestPattern::new(640, 360);
        let a = p
            .render(Stamp {
                seq: 1,
                capture_ms: 10,
            })
            .y()
            .to_vec();
        let f = p.render(Stamp {
            seq: 2,
            capture_ms: 43,
        });
        assert_ne!(a, f.y(), "consecutive frames differ");
        let read = stamp::read(f.y(), 640, 640, 360);
        assert_eq!(
            read,
            Some(Stamp {
                seq: 2,
                capture_ms: 43
            })
        );
    }

    #[test]
    fn odd_and_tiny_sizes_do_not_panic() {
        for (w, h) in [(2, 2), (17, 9), (100, 3), (3840, 1920)] {
            let mut p = TestPattern::new(w, h);
            for seq in 0..3 {
                p.render(Stamp::now(seq));
            }
        }
    }
}
