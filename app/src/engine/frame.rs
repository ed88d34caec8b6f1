//! Raw video frames: planar I420, the encoder's input and the decoder's output; RGBA pictures for
//! display, handed over in a latest-frame slot.

use openh264::formats::YUVSource;

use super::slot::LatestSlot;
use super::stamp::Stamp;

/// A picture to display: RGBA, 8 bits a channel, rows packed.
#[derive(Clone)]
pub struct VideoFrame {
    pub width: usize,
    pub height: usize,
    pub rgba: Vec<u8>,
    pub stamp: Option<Stamp>,
    /// Counts frames since the producer started.
    pub index: u64,
}

/// The newest picture only, plus who to wake when it changes.
pub type FrameSlot = LatestSlot<VideoFrame>;

/// A planar 4:2:0 frame: `width × height` luma, then the quarter-size U and V planes.
#[derive(Clone)]
pub struct I420 {
    width: usize,
    height: usize,
    data: Vec<u8>,
}

impl I420 {
    /// A black frame; sizes are rounded down to even numbers (4:2:0), at least 2×2.
    pub fn new(width: usize, height: usize) -> Self {
        let (width, height) = ((width & !1).max(2), (height & !1).max(2));
        let luma = width * height;
        let mut data = vec![128u8; luma + luma / 2];
        data[..luma].fill(16);
        Self {
            width,
            height,
            data,
        }
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn height(&self) -> usize {
        self.height
    }

    /// The Y, U and V planes, writable.
    pub fn planes_mut(&mut self) -> (&mut [u8], &mut [u8], &mut [u8]) {
        let luma = self.width * self.height;
        let (y, uv) = self.data.split_at_mut(luma);
        let (u, v) = uv.split_at_mut(luma / 4);
        (y, u, v)
    }
}

impl I420 {
    /// Writes the picture as RGBA into `rgba` (resized), scaled down by a whole factor until it
    /// fits `max_width × max_height` (nearest sample: a preview, not a master). BT.601 studio
    /// range, as the encoder takes it. Returns the size written.
    pub fn to_rgba_within(
        &self,
        max_width: usize,
        max_height: usize,
        rgba: &mut Vec<u8>,
    ) -> (usize, usize) {
        let step = self
            .width
            .div_ceil(max_width.max(1))
            .max(self.height.div_ceil(max_height.max(1)))
            .max(1);
        let (w, h) = (self.width / step, self.height / step);
        rgba.resize(w * h * 4, 255);
        let (y_plane, u_plane, v_plane) = (self.y(), self.u(), self.v());
        let cw = self.width / 2;
        for (row, out) in rgba.chunks_exact_mut(w * 4).enumerate() {
            let sy = row * step;
            for (col, px) in out.chunks_exact_mut(4).enumerate() {
                let sx = col * step;
                let c = (sy / 2) * cw + sx / 2;
                let y = (i32::from(y_plane[sy * self.width + sx]) - 16) * 298;
                let (u, v) = (i32::from(u_plane[c]) - 128, i32::from(v_plane[c]) - 128);
                let to_u8 = |x: i32| ((x + 128) >> 8).clamp(0, 255) as u8;
                px[0] = to_u8(y + 409 * v);
                px[1] = to_u8(y - 100 * u - 208 * v);
                px[2] = to_u8(y + 516 * u);
            }
        }
        (w, h)
    }
}

impl YUVSource for I420 {
    fn dimensions(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    fn strides(&self) -> (usize, usize, usize) {
        (self.width, self.width / 2, self.width / 2)
    }

    fn y(&self) -> &[u8] {
        &self.data[..self.width * self.height]
    }

    fn u(&self) -> &[u8] {
        let luma = self.width * self.height;
        &self.data[luma..luma + luma / 4]
    }

    fn v(&self) -> &[u8] {
        let luma = self.width * self.height;
        &self.data[luma + luma / 4..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_preview_fits_its_box_and_keeps_the_colours() {
        let mut f = I420::new(1920, 960);
        let (y, u, v) = f.planes_mut();
        // Left half: studio white; right half: pure red (BT.601 Y 81, Cb 90, Cr 240).
        for row in y.chunks_exact_mut(1920) {
            row[..960].fill(235);
            row[960..].fill(81);
        }
        for (urow, vrow) in u.chunks_exact_mut(960).zip(v.chunks_exact_mut(960)) {
            urow[..480].fill(128);
            vrow[..480].fill(128);
            urow[480..].fill(90);
            vrow[480..].fill(240);
        }
        let mut rgba = Vec::new();
        let (w, h) = f.to_rgba_within(640, 640, &mut rgba);
        assert_eq!((w, h), (640, 320));
        assert_eq!(rgba.len(), 640 * 320 * 4);
        let px = |x: usize, y: usize| &rgba[(y * w + x) * 4..(y * w + x) * 4 + 4];
        assert!(
            px(10, 10).iter().all(|&c| c >= 250),
            "white: {:?}",
            px(10, 10)
        );
        let red = px(600, 300);
        assert!(red[0] > 240 && red[1] < 20 && red[2] < 20, "red: {red:?}");
        // Already small enough: full size.
        assert_eq!(
            I420::new(320, 240).to_rgba_within(640, 640, &mut rgba),
            (320, 240)
        );
    }
}
