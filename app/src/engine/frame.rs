//! Raw video frames: planar I420, the encoder's input and the decoder's output.

use openh264::formats::YUVSource;

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
