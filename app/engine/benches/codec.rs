//! Encode and decode speed through omnicast's engine, single process, no network.
//!
//! Two kinds of picture: the moving test pattern (flat, easy to encode) and a camera-like scene
//! (a detailed panorama panning at a sub-pixel speed, with sensor noise: what a 360° camera on a
//! turning robot sends). Encode fps times the encoder alone. The viewer's decoder thread is timed
//! per frame in parts, on the same decoded pictures: decoding, copying the picture out as NV12
//! for the display's shader (what it does now), converting it to RGBA (what it did until
//! 2026-12); "now" and "before" are decode plus either. Then the camera path at the largest size: MJPEG → I420 conversion,
//! and frames per second with conversion and encoding on one thread versus the broadcaster's
//! capture thread beside the encoder.
//!
//!   cargo bench -p omnicast-engine --bench codec
//!   OMNICAST_BENCH_SIZES=3840x1920 OMNICAST_BENCH_FRAMES=120 cargo bench -p omnicast-engine --bench codec
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use nokhwa::utils::{FrameFormat, Resolution};
use omnicast_engine::capture::{CameraFeed, CameraFrame, CaptureError, OpenInput, VideoInput};
use omnicast_engine::codec::{EncoderSettings, H264Encoder, encoder_threads};
use omnicast_engine::convert::{Scratch, camera_buffer_to_i420};
use omnicast_engine::frame::{I420, Nv12};
use omnicast_engine::pattern::TestPattern;
use omnicast_engine::stamp::Stamp;
use openh264::OpenH264API;
use openh264::decoder::{Decoder, DecoderConfig};
use openh264::formats::YUVSource as _;

/// A detailed panorama (value noise, six octaves) that pans 3.3 pixels a frame, plus noise.
struct Scene {
    width: usize,
    height: usize,
    /// Luma, twice as wide as the picture so any pan is one window.
    texture: Vec<u8>,
    pan: f32,
    rng: u32,
}

impl Scene {
    fn new(width: usize, height: usize) -> Self {
        let hash = |x: i64, y: i64, octave: i64| {
            let mut n = (x.wrapping_mul(374_761_393) ^ y.wrapping_mul(668_265_263) ^ octave) as u64;
            n = (n ^ (n >> 13)).wrapping_mul(1_274_126_177);
            ((n >> 16) & 0xFFFF) as f32 / 65535.0
        };
        let tw = 2 * width;
        let mut texture = vec![0u8; tw * height];
        for y in 0..height {
            for x in 0..tw {
                let (mut v, mut amp, mut cell) = (0.0f32, 0.5f32, 256.0f32);
                for octave in 0..6 {
                    let fx = (x % width) as f32 / cell;
                    let fy = y as f32 / cell;
                    let (ix, iy) = (fx.floor() as i64, fy.floor() as i64);
                    let (dx, dy) = (fx - ix as f32, fy - iy as f32);
                    let a = hash(ix, iy, octave);
                    let b = hash(ix + 1, iy, octave);
                    let c = hash(ix, iy + 1, octave);
                    let d = hash(ix + 1, iy + 1, octave);
                    v += amp * (a + (b - a) * dx + (c - a) * dy + (a - b - c + d) * dx * dy);
                    amp *= 0.55;
                    cell = (cell / 2.0).max(2.0);
                }
                texture[y * tw + x] = (16.0 + v * 219.0).clamp(16.0, 235.0) as u8;
            }
        }
        Self {
            width,
            height,
            texture,
            pan: 0.0,
            rng: 1,
        }
    }

    /// The next picture (chroma tinted by the texture, so colour costs bits too).
    fn render(&mut self) -> I420 {
        let (w, h) = (self.width, self.height);
        let mut picture = I420::new(w, h);
        let (start, frac) = (self.pan.floor() as usize, (self.pan.fract() * 256.0) as u32);
        self.pan = (self.pan + 3.3) % w as f32;
        let tw = 2 * w;
        let (luma, u, v) = picture.planes_mut();
        for (y, out) in luma.chunks_exact_mut(w).enumerate() {
            let row = &self.texture[y * tw + start..];
            for (x, px) in out.iter_mut().enumerate() {
                let (a, b) = (u32::from(row[x]), u32::from(row[x + 1]));
                self.rng ^= self.rng << 13;
                self.rng ^= self.rng >> 17;
                self.rng ^= self.rng << 5;
                let noise = (self.rng & 3) as i32 - 2 + ((self.rng >> 8) & 1) as i32;
                *px = (((a * (256 - frac) + b * frac) >> 8) as i32 + noise).clamp(0, 255) as u8;
            }
        }
        let (cw, ch) = (w / 2, h / 2);
        for y in 0..ch {
            for x in 0..cw {
                let t = self.texture[2 * y * tw + 2 * x + start];
                u[y * cw + x] = 128 - (t / 8) + 16;
                v[y * cw + x] = 112 + (t / 6);
            }
        }
        picture
    }
}

/// RGB of an I420 picture (BT.601, studio range), for making MJPEG camera frames.
fn to_rgb(yuv: &I420) -> Vec<u8> {
    let (w, h) = (yuv.width(), yuv.height());
    let mut rgb = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            let l = 1.164 * (f32::from(yuv.y()[y * w + x]) - 16.0);
            let c = (y / 2) * (w / 2) + x / 2;
            let (u, v) = (f32::from(yuv.u()[c]) - 128.0, f32::from(yuv.v()[c]) - 128.0);
            for px in [l + 1.596 * v, l - 0.392 * u - 0.813 * v, l + 2.017 * u] {
                rgb.push(px.clamp(0.0, 255.0) as u8);
            }
        }
    }
    rgb
}

fn mjpeg(rgb: &[u8], (w, h): (usize, usize)) -> Vec<u8> {
    let mut c = mozjpeg::Compress::new(mozjpeg::ColorSpace::JCS_RGB);
    c.set_size(w, h);
    c.set_quality(85.0);
    let mut c = c.start_compress(Vec::new()).unwrap();
    c.write_scanlines(rgb).unwrap();
    c.finish().unwrap()
}

/// A camera that hands out prepared MJPEG frames at 30 fps (at once when the reader is late).
struct MjpegCamera {
    frames: Vec<Vec<u8>>,
    size: (usize, usize),
    next: usize,
    scratch: Scratch,
    due: Option<Instant>,
}

const CAMERA_INTERVAL: Duration = Duration::from_nanos(1_000_000_000 / 30);

impl VideoInput for MjpegCamera {
    fn name(&self) -> &str {
        "bench MJPEG camera"
    }

    fn read(&mut self, reuse: Option<I420>) -> Result<CameraFrame, CaptureError> {
        let due = *self.due.get_or_insert_with(Instant::now);
        let now = Instant::now();
        if now < due {
            std::thread::sleep(due - now);
        }
        // Frames the reader was too late for are gone, as a camera's would be.
        self.due = Some(due.max(now) + CAMERA_INTERVAL);
        let jpeg = &self.frames[self.next % self.frames.len()];
        self.next += 1;
        let res = Resolution::new(self.size.0 as u32, self.size.1 as u32);
        let buffer = nokhwa::Buffer::new(res, jpeg, FrameFormat::MJPEG);
        let captured = Instant::now();
        let image = camera_buffer_to_i420(&buffer, &mut self.scratch, reuse)
            .map_err(|e| CaptureError::Camera("bench".into(), e))?;
        Ok(CameraFrame { image, captured })
    }
}

fn settings(w: usize, h: usize, threads: u16) -> EncoderSettings {
    EncoderSettings {
        fps: 30.0,
        // ~2 Mbit/s at 720p, scaled by area: 16 Mbit/s at 3840x1920.
        bitrate_kbps: (w * h / 1000 * 2) as u32 + 150,
        keyframe_interval: 300,
        threads,
    }
}

fn main() {
    let sizes =
        std::env::var("OMNICAST_BENCH_SIZES").unwrap_or_else(|_| "1280x720,3840x1920".into());
    let frames: usize = std::env::var("OMNICAST_BENCH_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(90);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("openh264 through omnicast's engine, {frames} frames each, {cores} cores");
    println!(
        "{:>8} {:>10} {:>8} {:>11} {:>11} {:>10} {:>10} {:>11} {:>11} {:>8} {:>11}",
        "content",
        "size",
        "threads",
        "encode fps",
        "decode",
        "+NV12",
        "+RGBA",
        "now",
        "before",
        "saved",
        "kbit/frame"
    );
    let mut largest = (0, 0);
    for size in sizes.split(',') {
        let (w, h) = size.split_once('x').expect("WxH");
        let (w, h): (usize, usize) = (w.parse().unwrap(), h.parse().unwrap());
        if w * h > largest.0 * largest.1 {
            largest = (w, h);
        }
        let mut scene = Scene::new(w, h);
        let scene_frames: Vec<I420> = (0..frames).map(|_| scene.render()).collect();
        let mut pattern = TestPattern::new(w, h);
        let pattern_frames: Vec<I420> = (0..frames)
            .map(|seq| pattern.render(Stamp::now(seq as u32)).clone())
            .collect();
        for (content, pictures) in [("pattern", &pattern_frames), ("scene", &scene_frames)] {
            for threads in [1u16, 0] {
                let mut enc = H264Encoder::new(settings(w, h, threads));
                let mut encoded = Vec::new();
                let mut bits = Vec::new();
                let mut encoding = Duration::ZERO;
                for picture in pictures {
                    let t = Instant::now();
                    let out = enc.encode(picture, &mut bits).unwrap();
                    encoding += t.elapsed();
                    if out.is_some() {
                        encoded.push(bits.clone());
                    }
                }
                let enc_fps = pictures.len() as f64 / encoding.as_secs_f64();
                // The viewer's decoder thread per frame: decode, then hand the picture on. It
                // copies it out as NV12 (the display's shader converts it); until 2026-12 it
                // converted it to RGBA. Both are timed on the same decoded pictures.
                let mut dec =
                    Decoder::with_api_config(OpenH264API::from_source(), DecoderConfig::new())
                        .unwrap();
                let (mut picture, mut rgba) = (Nv12::default(), vec![0; w * h * 4]);
                let (mut decoding, mut copying, mut converting) =
                    (Duration::ZERO, Duration::ZERO, Duration::ZERO);
                for au in &encoded {
                    let t = Instant::now();
                    let Some(yuv) = dec.decode(au).unwrap() else {
                        continue;
                    };
                    decoding += t.elapsed();
                    let t = Instant::now();
                    picture.copy_from_i420(
                        yuv.dimensions(),
                        (yuv.y(), yuv.u(), yuv.v()),
                        yuv.strides(),
                    );
                    copying += t.elapsed();
                    let t = Instant::now();
                    yuv.write_rgba8(&mut rgba);
                    converting += t.elapsed();
                }
                let per_frame = |d: Duration| d.as_secs_f64() * 1e3 / encoded.len() as f64;
                let (decode_ms, copy_ms, rgba_ms) = (
                    per_frame(decoding),
                    per_frame(copying),
                    per_frame(converting),
                );
                let kbit = encoded.iter().map(Vec::len).sum::<usize>() as f64 * 8.0
                    / 1000.0
                    / encoded.len() as f64;
                let used = enc.threads().unwrap_or(0);
                let label = if threads == 0 {
                    format!("auto={used}")
                } else {
                    used.to_string()
                };
                let (now, before) = (decode_ms + copy_ms, decode_ms + rgba_ms);
                println!(
                    "{content:>8} {size:>10} {label:>8} {enc_fps:>11.1} {decode_ms:>8.2} ms {copy_ms:>7.2} ms {rgba_ms:>7.2} ms {now:>8.2} ms {before:>8.2} ms {:>6.0} % {kbit:>11.1}",
                    (1.0 - now / before) * 100.0
                );
            }
        }
    }
    camera_path(largest, frames);
}

/// The camera path at `size`: MJPEG conversion cost, then convert + encode in one thread versus
/// the capture thread feeding the encoder (as the broadcaster runs it).
fn camera_path((w, h): (usize, usize), frames: usize) {
    let mut scene = Scene::new(w, h);
    let jpegs: Vec<Vec<u8>> = (0..8)
        .map(|_| mjpeg(&to_rgb(&scene.render()), (w, h)))
        .collect();
    let kb = jpegs.iter().map(Vec::len).sum::<usize>() / jpegs.len() / 1024;
    let mut camera = MjpegCamera {
        frames: jpegs.clone(),
        size: (w, h),
        next: 0,
        scratch: Scratch::default(),
        due: None,
    };
    let mut reuse = None;
    let mut scratch = Scratch::default();
    let res = Resolution::new(w as u32, h as u32);
    let t = Instant::now();
    for jpeg in jpegs.iter().cycle().take(frames) {
        let buffer = nokhwa::Buffer::new(res, jpeg, FrameFormat::MJPEG);
        reuse = Some(camera_buffer_to_i420(&buffer, &mut scratch, reuse).unwrap());
    }
    let convert_ms = t.elapsed().as_secs_f64() * 1000.0 / frames as f64;

    // One thread: convert, then encode.
    let mut enc = H264Encoder::new(settings(w, h, 0));
    let mut bits = Vec::new();
    let t = Instant::now();
    let mut reuse = None;
    for _ in 0..frames {
        let frame = camera.read(reuse).unwrap();
        enc.encode(&frame.image, &mut bits).unwrap();
        reuse = Some(frame.image);
    }
    let serial_fps = frames as f64 / t.elapsed().as_secs_f64();

    // The capture thread converts while the encoder encodes the previous frame.
    let camera = Some(MjpegCamera {
        frames: jpegs,
        size: (w, h),
        next: 0,
        scratch: Scratch::default(),
        due: None,
    });
    let mut camera = camera.into_iter();
    let open: OpenInput = Box::new(move || {
        camera
            .next()
            .map(|c| Box::new(c) as Box<dyn VideoInput>)
            .ok_or(CaptureError::NoCamera)
    });
    let feed = CameraFeed::start(open, Duration::from_secs(60)).unwrap();
    let pt: u16 = std::env::var("PT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut enc = H264Encoder::new(settings(w, h, pt));
    let first = feed.next_frame(Duration::from_secs(30)).expect("a frame");
    enc.encode(&first.image, &mut bits).unwrap();
    feed.recycle(first.image);
    let t = Instant::now();
    for _ in 0..frames {
        let frame = feed.next_frame(Duration::from_secs(30)).expect("a frame");
        enc.encode(&frame.image, &mut bits).unwrap();
        feed.recycle(frame.image);
    }
    let piped_fps = frames as f64 / t.elapsed().as_secs_f64();
    drop(feed);
    println!(
        "camera path {w}x{h} (MJPEG q85, {kb} KB a frame, encoder threads {}): \
         MJPEG → I420 {convert_ms:.1} ms a frame; convert then encode on one thread {serial_fps:.1} fps; \
         capture thread + encoder {piped_fps:.1} fps",
        encoder_threads(0, w, h)
    );
}
