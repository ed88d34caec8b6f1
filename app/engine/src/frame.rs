//! Raw video frames: planar I420, the encoder's input; NV12 (the same samples with U and V
//! interleaved), what the decoder hands to a display, which uploads it as it is and converts it
//! to RGB in its shader; pictures handed over in a latest-frame slot; RGBA only for snapshots.

use std::path::Path;

use openh264::formats::{RgbSliceU8, YUVBuffer, YUVSource};

use super::slot::LatestSlot;
use super::stamp::Stamp;

/// A picture on its way to a display: as decoded (or as sent, for a preview).
#[derive(Clone)]
pub struct VideoFrame {
    pub picture: Nv12,
    pub stamp: Option<Stamp>,
    /// Counts frames since the producer started.
    pub index: u64,
}

impl VideoFrame {
    pub fn width(&self) -> usize {
        self.picture.width()
    }

    pub fn height(&self) -> usize {
        self.picture.height()
    }
}

/// The newest picture only, plus who to wake when it changes.
pub type FrameSlot = LatestSlot<VideoFrame>;

/// A planar 4:2:0 frame: `width × height` luma, then the U and V planes, each
/// `⌈width/2⌉ × ⌈height/2⌉`; rows packed (stride = width).
#[derive(Clone, Default)]
pub struct I420 {
    width: usize,
    height: usize,
    data: Vec<u8>,
}

impl I420 {
    /// A black frame to encode; sizes are rounded down to even numbers (4:2:0), at least 2×2.
    pub fn new(width: usize, height: usize) -> Self {
        let mut f = Self::default();
        f.resize((width & !1).max(2), (height & !1).max(2));
        f
    }

    /// Makes this frame `width × height`, reusing its buffer; black when the size changed.
    fn resize(&mut self, width: usize, height: usize) {
        let (cw, ch) = (width.div_ceil(2), height.div_ceil(2));
        let luma = width * height;
        let total = luma + 2 * cw * ch;
        if (self.width, self.height) != (width, height) {
            self.data.clear();
            self.data.resize(total, 128);
            self.data[..luma].fill(16);
            (self.width, self.height) = (width, height);
        }
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn height(&self) -> usize {
        self.height
    }

    /// Width and height of the U and V planes.
    pub fn chroma_size(&self) -> (usize, usize) {
        (self.width.div_ceil(2), self.height.div_ceil(2))
    }

    fn split(&self) -> (usize, usize) {
        let luma = self.width * self.height;
        let (cw, ch) = self.chroma_size();
        (luma, luma + cw * ch)
    }

    /// The Y, U and V planes.
    pub fn planes(&self) -> (&[u8], &[u8], &[u8]) {
        let (a, b) = self.split();
        let (y, uv) = self.data.split_at(a);
        let (u, v) = uv.split_at(b - a);
        (y, u, v)
    }

    /// The Y, U and V planes, writable.
    pub fn planes_mut(&mut self) -> (&mut [u8], &mut [u8], &mut [u8]) {
        let (a, b) = self.split();
        let (y, uv) = self.data.split_at_mut(a);
        let (u, v) = uv.split_at_mut(b - a);
        (y, u, v)
    }

    /// An RGB picture (8 bits a channel, rows packed) as I420, through the same BT.601
    /// conversion the camera path uses; odd sizes lose their last column or row.
    pub fn from_rgb(width: usize, height: usize, rgb: &[u8]) -> Self {
        let mut out = Self::new(width, height);
        out.fill_from_rgb(width, height, rgb, &mut None);
        out
    }

    /// Converts a `width × height` RGB picture into this frame, which already has that size
    /// rounded down to even; `scratch` keeps openh264's conversion buffer between frames.
    pub fn fill_from_rgb(
        &mut self,
        width: usize,
        height: usize,
        rgb: &[u8],
        scratch: &mut Option<YUVBuffer>,
    ) {
        let (ew, eh) = (self.width, self.height);
        let yuv = match scratch.take() {
            Some(y) if y.dimensions() == (ew, eh) => y,
            _ => YUVBuffer::new(ew, eh),
        };
        let yuv = scratch.insert(yuv);
        if (ew, eh) == (width, height) {
            yuv.read_rgb8(RgbSliceU8::new(rgb, (width, height)));
        } else {
            let cropped: Vec<u8> = rgb
                .chunks_exact(width * 3)
                .take(eh)
                .flat_map(|row| &row[..ew * 3])
                .copied()
                .collect();
            yuv.read_rgb8(RgbSliceU8::new(&cropped, (ew, eh)));
        }
        let (y, u, v) = self.planes_mut();
        y.copy_from_slice(yuv.y());
        u.copy_from_slice(yuv.u());
        v.copy_from_slice(yuv.v());
    }
}

impl YUVSource for I420 {
    fn dimensions(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    fn strides(&self) -> (usize, usize, usize) {
        let (cw, _) = self.chroma_size();
        (self.width, cw, cw)
    }

    fn y(&self) -> &[u8] {
        self.planes().0
    }

    fn u(&self) -> &[u8] {
        self.planes().1
    }

    fn v(&self) -> &[u8] {
        self.planes().2
    }
}

/// A picture for display: `width × height` luma (Y), then one plane of interleaved U and V
/// samples, `⌈width/2⌉ × ⌈height/2⌉` pairs; rows packed. The same samples as I420 (1.5 bytes a
/// pixel), laid out as a display uploads them: two textures, so its shader samples twice a
/// pixel, not three times.
#[derive(Clone, Default)]
pub struct Nv12 {
    width: usize,
    height: usize,
    data: Vec<u8>,
}

impl Nv12 {
    /// Makes this picture `width × height` (any size, odd included, as decoders report them),
    /// reusing its buffer.
    fn resize(&mut self, width: usize, height: usize) {
        let (cw, ch) = (width.div_ceil(2), height.div_ceil(2));
        self.data.resize(width * height + 2 * cw * ch, 128);
        (self.width, self.height) = (width, height);
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn height(&self) -> usize {
        self.height
    }

    /// Width and height of the chroma plane, in U/V pairs.
    pub fn chroma_size(&self) -> (usize, usize) {
        (self.width.div_ceil(2), self.height.div_ceil(2))
    }

    /// Bytes in both planes: 1.5 a pixel.
    pub fn byte_len(&self) -> usize {
        self.data.len()
    }

    /// The Y plane and the interleaved UV plane.
    pub fn planes(&self) -> (&[u8], &[u8]) {
        self.data.split_at(self.width * self.height)
    }

    /// Copies a picture given as three planes with strides (a decoder's buffers) into this one,
    /// resized to `width × height`, interleaving U and V as it goes.
    pub fn copy_from_i420(
        &mut self,
        (width, height): (usize, usize),
        (y, u, v): (&[u8], &[u8], &[u8]),
        (y_stride, u_stride, v_stride): (usize, usize, usize),
    ) {
        self.resize(width, height);
        let (cw, ch) = self.chroma_size();
        let (dy, duv) = self.data.split_at_mut(width * height);
        if y_stride == width {
            dy.copy_from_slice(&y[..width * height]);
        } else {
            for (row, out) in dy.chunks_exact_mut(width).enumerate() {
                out.copy_from_slice(&y[row * y_stride..row * y_stride + width]);
            }
        }
        for (row, out) in duv.chunks_exact_mut(2 * cw).take(ch).enumerate() {
            let (u, v) = (&u[row * u_stride..][..cw], &v[row * v_stride..][..cw]);
            for ((pair, &u), &v) in out.chunks_exact_mut(2).zip(u).zip(v) {
                pair[0] = u;
                pair[1] = v;
            }
        }
    }

    /// `picture` scaled down by a whole factor until it fits `max_width × max_height` (nearest
    /// sample: a preview, not a master), into this one.
    pub fn downscale_from(&mut self, picture: &I420, max_width: usize, max_height: usize) {
        let (sw, sh) = (picture.width(), picture.height());
        let step = sw
            .div_ceil(max_width.max(1))
            .max(sh.div_ceil(max_height.max(1)))
            .max(1);
        self.resize((sw / step).max(1), (sh / step).max(1));
        let (sy, su, sv) = picture.planes();
        let (scw, sch) = picture.chroma_size();
        let (w, h) = (self.width, self.height);
        let (cw, ch) = self.chroma_size();
        let (dy, duv) = self.data.split_at_mut(w * h);
        for (row, out) in dy.chunks_exact_mut(w).enumerate() {
            let src = &sy[row * step * sw..];
            for (col, px) in out.iter_mut().enumerate() {
                *px = src[col * step];
            }
        }
        for (row, out) in duv.chunks_exact_mut(2 * cw).take(ch).enumerate() {
            let at = (row * step).min(sch - 1) * scw;
            for (col, pair) in out.chunks_exact_mut(2).enumerate() {
                let c = at + (col * step).min(scw - 1);
                pair[0] = su[c];
                pair[1] = sv[c];
            }
        }
    }

    /// The picture as RGBA, 8 bits a channel (BT.601 studio range, as the encoder takes it and
    /// the display's shader converts it): for snapshots, not for display.
    pub fn to_rgba(&self, rgba: &mut Vec<u8>) {
        rgba.clear();
        rgba.reserve(self.width * self.height * 4);
        let (y_plane, uv_plane) = self.planes();
        let (cw, _) = self.chroma_size();
        for row in 0..self.height {
            for col in 0..self.width {
                let c = 2 * ((row / 2) * cw + col / 2);
                let y = (i32::from(y_plane[row * self.width + col]) - 16) * 298;
                let (u, v) = (
                    i32::from(uv_plane[c]) - 128,
                    i32::from(uv_plane[c + 1]) - 128,
                );
                let to_u8 = |x: i32| ((x + 128) >> 8).clamp(0, 255) as u8;
                rgba.extend_from_slice(&[
                    to_u8(y + 409 * v),
                    to_u8(y - 100 * u - 208 * v),
                    to_u8(y + 516 * u),
                    255,
                ]);
            }
        }
    }
}

impl From<&I420> for Nv12 {
    /// The same picture, for display.
    fn from(picture: &I420) -> Self {
        let mut out = Self::default();
        out.downscale_from(picture, usize::MAX, usize::MAX);
        out
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}: {source}")]
pub struct SnapshotError {
    path: String,
    source: image::ImageError,
}

/// Saves `frame` as a PNG of its own size. Blocking: call it off the UI and async threads.
pub fn save_png(frame: &VideoFrame, path: &Path) -> Result<(), SnapshotError> {
    let fail = |source| SnapshotError {
        path: path.display().to_string(),
        source,
    };
    let mut rgba = Vec::new();
    frame.picture.to_rgba(&mut rgba);
    let size = |n: usize| {
        u32::try_from(n).map_err(|_| {
            fail(image::ImageError::Limits(
                image::error::LimitError::from_kind(image::error::LimitErrorKind::DimensionError),
            ))
        })
    };
    image::save_buffer(
        path,
        &rgba,
        size(frame.width())?,
        size(frame.height())?,
        image::ExtendedColorType::Rgba8,
    )
    .map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Left half studio white, right half pure red (BT.601 Y 81, Cb 90, Cr 240).
    fn white_and_red(w: usize, h: usize) -> I420 {
        let mut f = I420::new(w, h);
        let (cw, _) = f.chroma_size();
        let (y, u, v) = f.planes_mut();
        for row in y.chunks_exact_mut(w) {
            row[..w / 2].fill(235);
            row[w / 2..].fill(81);
        }
        for (urow, vrow) in u.chunks_exact_mut(cw).zip(v.chunks_exact_mut(cw)) {
            urow[..cw / 2].fill(128);
            vrow[..cw / 2].fill(128);
            urow[cw / 2..].fill(90);
            vrow[cw / 2..].fill(240);
        }
        f
    }

    #[test]
    fn a_preview_fits_its_box_and_keeps_the_colours() {
        let f = white_and_red(1920, 960);
        let mut small = Nv12::default();
        small.downscale_from(&f, 640, 640);
        assert_eq!((small.width(), small.height()), (640, 320));
        assert_eq!(small.byte_len(), 640 * 320 * 3 / 2);
        let mut rgba = Vec::new();
        small.to_rgba(&mut rgba);
        assert_eq!(rgba.len(), 640 * 320 * 4);
        let px = |x: usize, y: usize| &rgba[(y * 640 + x) * 4..(y * 640 + x) * 4 + 4];
        assert!(
            px(10, 10).iter().all(|&c| c >= 250),
            "white: {:?}",
            px(10, 10)
        );
        let red = px(600, 300);
        assert!(red[0] > 240 && red[1] < 20 && red[2] < 20, "red: {red:?}");
        // Already small enough: the same size.
        small.downscale_from(&I420::new(320, 240), 640, 640);
        assert_eq!((small.width(), small.height()), (320, 240));
    }

    #[test]
    fn rgb_comes_back_as_the_colours_it_went_in_as() {
        let (w, h) = (33, 18); // odd: the last column goes
        let rgb: Vec<u8> = (0..w * h)
            .flat_map(|i| {
                if i % w < w / 2 {
                    [200, 30, 40]
                } else {
                    [20, 40, 220]
                }
            })
            .collect();
        let f = I420::from_rgb(w, h, &rgb);
        assert_eq!((f.width(), f.height()), (32, 18));
        let mut rgba = Vec::new();
        Nv12::from(&f).to_rgba(&mut rgba);
        let px = |x: usize, y: usize| &rgba[(y * 32 + x) * 4..(y * 32 + x) * 4 + 3];
        let near =
            |got: &[u8], want: [u8; 3]| got.iter().zip(want).all(|(g, w)| g.abs_diff(w) <= 6);
        assert!(near(px(3, 9), [200, 30, 40]), "{:?}", px(3, 9));
        assert!(near(px(28, 9), [20, 40, 220]), "{:?}", px(28, 9));
    }

    #[test]
    fn decoder_planes_with_strides_are_copied_packed_and_interleaved() {
        // A 5×3 picture in buffers 8 bytes a row (luma) and 4 (chroma), as decoders pad them.
        let y: Vec<u8> = (0..8 * 3).map(|i| i as u8).collect();
        let u: Vec<u8> = (100..100 + 4 * 2).collect();
        let v: Vec<u8> = (200..200 + 4 * 2).collect();
        let mut f = Nv12::default();
        f.copy_from_i420((5, 3), (&y, &u, &v), (8, 4, 4));
        assert_eq!((f.width(), f.height(), f.chroma_size()), (5, 3, (3, 2)));
        let (py, puv) = f.planes();
        assert_eq!(py, [0, 1, 2, 3, 4, 8, 9, 10, 11, 12, 16, 17, 18, 19, 20]);
        assert_eq!(
            puv,
            [100, 200, 101, 201, 102, 202, 104, 204, 105, 205, 106, 206]
        );
        assert_eq!(f.byte_len(), 15 + 12);
        // Reused at another size, and still consistent.
        f.copy_from_i420((2, 2), (&y, &u, &v), (8, 4, 4));
        assert_eq!(f.byte_len(), 4 + 2);
        assert_eq!(f.planes(), (&[0, 1, 8, 9][..], &[100, 200][..]));
    }

    #[test]
    fn a_snapshot_is_a_png_of_the_pictures_size_and_colours() {
        let frame = VideoFrame {
            picture: Nv12::from(&white_and_red(64, 32)),
            stamp: None,
            index: 1,
        };
        let path = std::env::temp_dir().join(format!("omnicast-snap-{}.png", std::process::id()));
        save_png(&frame, &path).unwrap();
        let img = image::open(&path).unwrap().to_rgba8();
        assert_eq!(img.dimensions(), (64, 32));
        assert!(img.get_pixel(60, 16).0[0] > 240 && img.get_pixel(60, 16).0[1] < 20);
        let _ = std::fs::remove_file(&path);
        let err = save_png(&frame, Path::new("/nonexistent/dir/x.png")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/dir/x.png"), "{err}");
    }
}
