//! H.264 through openh264: Constrained Baseline, Annex B byte streams, SPS/PPS on every IDR.

use openh264::OpenH264API;
use openh264::decoder::{Decoder, DecoderConfig};
use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, Profile,
    RateControlMode, SpsPpsStrategy, UsageType,
};
use openh264::formats::YUVSource as _;

use super::frame::{I420, Nv12};
use super::stamp::{self, Stamp};

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("H.264 encoder: {0}")]
    Encoder(openh264::Error),
    #[error("H.264 decoder: {0}")]
    Decoder(openh264::Error),
}

/// How to encode.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EncoderSettings {
    pub fps: f32,
    pub bitrate_kbps: u32,
    /// Frames between scheduled keyframes (viewers joining or asking get one sooner).
    pub keyframe_interval: u32,
    /// Encoder threads; 0 chooses by frame size (see [`encoder_threads`]).
    pub threads: u16,
}

impl Default for EncoderSettings {
    fn default() -> Self {
        Self {
            fps: 30.0,
            bitrate_kbps: 2_000,
            keyframe_interval: 300,
            threads: 0,
        }
    }
}

/// openh264 runs at most this many encoder threads.
pub const MAX_ENCODER_THREADS: u16 = 4;
/// Up to this many pixels one thread keeps up easily (720p: hundreds of frames per second on one
/// core here); more threads would only add their overhead (~25 % CPU at 720p).
const ONE_THREAD_MAX_PIXELS: usize = 1280 * 720;
/// With several threads openh264 splits each picture into one partition per thread, each coded
/// as slices of at most this many bytes. Large enough that a partition is normally one slice
/// (every slice boundary costs a little compression and is not deblocked), small enough to bound
/// the encoder's buffers.
const MAX_SLICE_BYTES: u32 = 64_000;

/// Can openh264 encode a `width × height` picture? (Level 5.2: up to 3840×2160, either way up.)
pub fn size_supported(width: usize, height: usize) -> bool {
    width.max(height) <= 3840 && width.min(height) <= 2160
}

/// The encoder threads for a `width × height` picture: `requested` if set (at most
/// [`MAX_ENCODER_THREADS`]), else one for pictures up to 720p and every core (at most four) above.
pub fn encoder_threads(requested: u16, width: usize, height: usize) -> u16 {
    if requested > 0 {
        return requested.min(MAX_ENCODER_THREADS);
    }
    if width * height <= ONE_THREAD_MAX_PIXELS {
        return 1;
    }
    std::thread::available_parallelism().map_or(1, |n| {
        u16::try_from(n.get()).map_or(MAX_ENCODER_THREADS, |n| n.min(MAX_ENCODER_THREADS))
    })
}

/// Encodes frames as Annex B. The openh264 encoder is made for the size of the first frame and
/// made again (starting with a keyframe) when the size changes, with threads for that size.
pub struct H264Encoder {
    settings: EncoderSettings,
    active: Option<ActiveEncoder>,
    keyframe_requested: bool,
}

struct ActiveEncoder {
    inner: Encoder,
    dimensions: (usize, usize),
    threads: u16,
}

impl H264Encoder {
    pub fn new(settings: EncoderSettings) -> Self {
        Self {
            settings,
            active: None,
            keyframe_requested: false,
        }
    }

    /// Threads encoding the current size (none before the first frame).
    pub fn threads(&self) -> Option<u16> {
        self.active.as_ref().map(|a| a.threads)
    }

    /// The next frame will be an IDR (with SPS and PPS).
    pub fn request_keyframe(&mut self) {
        self.keyframe_requested = true;
    }

    fn start(&self, (width, height): (usize, usize)) -> Result<ActiveEncoder, CodecError> {
        let settings = &self.settings;
        let threads = encoder_threads(settings.threads, width, height);
        let mut config = EncoderConfig::new()
            .usage_type(UsageType::CameraVideoRealTime)
            .profile(Profile::Baseline)
            .complexity(Complexity::Low)
            .rate_control_mode(RateControlMode::Bitrate)
            .bitrate(BitRate::from_bps(
                settings.bitrate_kbps.saturating_mul(1000),
            ))
            .max_frame_rate(FrameRate::from_hz(settings.fps))
            // Rate control may skip a frame to hold the bitrate; `encode` then returns `None`
            // and the caller does not count it as sent.
            .skip_frames(true)
            .sps_pps_strategy(SpsPpsStrategy::ConstantId)
            .intra_frame_period(IntraFramePeriod::from_num_frames(
                settings.keyframe_interval,
            ))
            .num_threads(threads);
        if threads > 1 {
            // The one multi-slice mode the openh264 crate offers; with one slice per picture
            // openh264's threads have nothing to share (measured: no speed-up).
            config = config.max_slice_len(MAX_SLICE_BYTES);
        }
        let inner = Encoder::with_api_config(OpenH264API::from_source(), config)
            .map_err(CodecError::Encoder)?;
        tracing::debug!("H.264 encoder for {width}x{height}: {threads} thread(s)");
        Ok(ActiveEncoder {
            inner,
            dimensions: (width, height),
            threads,
        })
    }

    /// Encodes one frame into `out` (cleared first) as Annex B. Returns whether it is a
    /// keyframe, or `None` if rate control skipped the frame (nothing to send).
    pub fn encode(
        &mut self,
        frame: &impl openh264::formats::YUVSource,
        out: &mut Vec<u8>,
    ) -> Result<Option<bool>, CodecError> {
        out.clear();
        let dimensions = frame.dimensions();
        let active = match self.active.take() {
            Some(a) if a.dimensions == dimensions => a,
            // First frame, or a new size: a new encoder, whose first frame is an IDR.
            _ => self.start(dimensions)?,
        };
        let active = self.active.insert(active);
        if self.keyframe_requested {
            active.inner.force_intra_frame();
        }
        let stream = active.inner.encode(frame).map_err(CodecError::Encoder)?;
        let frame_type = stream.frame_type();
        if matches!(frame_type, FrameType::Skip | FrameType::Invalid) {
            return Ok(None);
        }
        stream.write_vec(out);
        let keyframe = matches!(frame_type, FrameType::IDR | FrameType::I);
        if keyframe {
            self.keyframe_requested = false;
        }
        Ok(Some(keyframe))
    }
}

/// What a decoded picture says about itself.
pub struct Decoded {
    /// The test pattern's stamp, when it carries one.
    pub stamp: Option<Stamp>,
}

pub struct H264Decoder {
    inner: Decoder,
}

impl H264Decoder {
    pub fn new() -> Result<Self, CodecError> {
        let inner = Decoder::with_api_config(OpenH264API::from_source(), DecoderConfig::new())
            .map_err(CodecError::Decoder)?;
        Ok(Self { inner })
    }

    /// Decodes one access unit (Annex B). When a picture comes out, copies it into `picture`
    /// (resized as needed; no colour conversion: the display's shader does it) and returns its
    /// stamp.
    pub fn decode(
        &mut self,
        access_unit: &[u8],
        picture: &mut Nv12,
    ) -> Result<Option<Decoded>, CodecError> {
        let Some(yuv) = self
            .inner
            .decode(access_unit)
            .map_err(CodecError::Decoder)?
        else {
            return Ok(None);
        };
        let (width, height) = yuv.dimensions();
        let strides = yuv.strides();
        let stamp = stamp::read(yuv.y(), strides.0, width, height);
        picture.copy_from_i420((width, height), (yuv.y(), yuv.u(), yuv.v()), strides);
        Ok(Some(Decoded { stamp }))
    }
}

impl H264Decoder {
    /// Decodes one access unit (Annex B) into `picture` as I420 (resized as needed), for
    /// encoding again; false when no picture came out yet.
    pub fn decode_i420(
        &mut self,
        access_unit: &[u8],
        picture: &mut I420,
    ) -> Result<bool, CodecError> {
        let Some(yuv) = self
            .inner
            .decode(access_unit)
            .map_err(CodecError::Decoder)?
        else {
            return Ok(false);
        };
        let (width, height) = yuv.dimensions();
        if (picture.width(), picture.height()) != (width, height) {
            *picture = I420::new(width, height);
        }
        let (sy, su, sv) = yuv.strides();
        let (cw, ch) = picture.chroma_size();
        let (y, u, v) = picture.planes_mut();
        for (dst, src, stride, w, h) in [
            (y, yuv.y(), sy, width, height),
            (u, yuv.u(), su, cw, ch),
            (v, yuv.v(), sv, cw, ch),
        ] {
            for row in 0..h {
                dst[row * w..(row + 1) * w].copy_from_slice(&src[row * stride..row * stride + w]);
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::I420;
    use crate::pattern::TestPattern;

    #[test]
    fn stamps_survive_encode_and_decode() {
        let (w, h) = (640, 360);
        let mut pattern = TestPattern::new(w, h);
        let mut enc = H264Encoder::new(EncoderSettings {
            bitrate_kbps: 500,
            ..EncoderSettings::default()
        });
        let mut dec = H264Decoder::new().unwrap();
        let (mut bits, mut picture) = (Vec::new(), Nv12::default());
        for seq in 0..30 {
            if seq == 20 {
                enc.request_keyframe();
            }
            let stamp = Stamp {
                seq,
                capture_ms: 1000 + seq * 33,
            };
            let key = enc
                .encode(pattern.render(stamp), &mut bits)
                .unwrap()
                .expect("500 kbit/s is plenty for 640x360: nothing skipped");
            assert_eq!(key, seq == 0 || seq == 20, "frame {seq}");
            if key {
                // Every IDR carries SPS (type 7) and PPS (type 8).
                let types: Vec<u8> = nal_types(&bits);
                assert!(
                    types.contains(&7) && types.contains(&8) && types.contains(&5),
                    "{types:?}"
                );
            }
            let got = dec
                .decode(&bits, &mut picture)
                .unwrap()
                .expect("a picture per frame");
            assert_eq!((picture.width(), picture.height()), (w, h));
            assert_eq!(got.stamp, Some(stamp));
            assert_eq!(picture.byte_len(), w * h * 3 / 2);
        }
    }

    #[test]
    fn a_360_picture_is_shared_between_threads_and_decodes_whole() {
        let (w, h) = (3840, 1920);
        let mut pattern = TestPattern::new(w, h);
        let mut enc = H264Encoder::new(EncoderSettings {
            bitrate_kbps: 12_000,
            threads: 2,
            ..EncoderSettings::default()
        });
        let mut dec = H264Decoder::new().unwrap();
        let (mut bits, mut picture) = (Vec::new(), Nv12::default());
        for seq in 0..6 {
            let stamp = Stamp {
                seq,
                capture_ms: 5000 + seq * 33,
            };
            let key = enc
                .encode(pattern.render(stamp), &mut bits)
                .unwrap()
                .expect("12 Mbit/s: nothing skipped");
            assert_eq!(enc.threads(), Some(2));
            // One partition per thread, each at least one slice (IDR type 5, else type 1).
            let slice_type = if key { 5 } else { 1 };
            let slices = nal_types(&bits)
                .iter()
                .filter(|t| **t == slice_type)
                .count();
            assert!(slices >= 2, "frame {seq}: {slices} slice(s)");
            let got = dec
                .decode(&bits, &mut picture)
                .unwrap()
                .expect("a picture per frame");
            assert_eq!((picture.width(), picture.height()), (w, h));
            assert_eq!(got.stamp, Some(stamp), "frame {seq}");
        }
    }

    #[test]
    fn a_new_size_starts_again_with_a_keyframe() {
        let mut enc = H264Encoder::new(EncoderSettings::default());
        let mut dec = H264Decoder::new().unwrap();
        let (mut bits, mut picture) = (Vec::new(), Nv12::default());
        for (seq, (w, h)) in [(640, 360), (640, 360), (1280, 720), (1280, 720)]
            .into_iter()
            .enumerate()
        {
            let seq = seq as u32;
            let mut pattern = TestPattern::new(w, h);
            let stamp = Stamp {
                seq,
                capture_ms: seq,
            };
            let key = enc.encode(pattern.render(stamp), &mut bits).unwrap();
            assert_eq!(key, Some(seq.is_multiple_of(2)), "frame {seq} at {w}x{h}");
            let got = dec.decode(&bits, &mut picture).unwrap().expect("a picture");
            assert_eq!(
                (picture.width(), picture.height(), got.stamp),
                (w, h, Some(stamp))
            );
        }
    }

    #[test]
    fn threads_follow_the_picture_size_unless_asked() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let all = u16::try_from(cores.min(4)).unwrap();
        assert_eq!(encoder_threads(0, 1280, 720), 1);
        assert_eq!(encoder_threads(0, 640, 480), 1);
        assert_eq!(encoder_threads(0, 1920, 1080), all);
        assert_eq!(encoder_threads(0, 3840, 1920), all);
        assert_eq!(encoder_threads(3, 320, 240), 3);
        assert_eq!(encoder_threads(16, 3840, 1920), MAX_ENCODER_THREADS);
    }

    #[test]
    fn a_size_openh264_cannot_encode_is_an_error() {
        let mut enc = H264Encoder::new(EncoderSettings::default());
        let err = enc
            .encode(&I420::new(4096, 2304), &mut Vec::new())
            .unwrap_err();
        assert!(err.to_string().contains("3840x2160"), "{err}");
        assert!(!size_supported(4096, 2304));
        assert!(size_supported(3840, 1920) && size_supported(2160, 3840));
    }

    #[test]
    fn garbage_is_an_error_or_nothing_never_a_panic() {
        let mut dec = H264Decoder::new().unwrap();
        let mut picture = Nv12::default();
        for junk in [&b""[..], b"\x00\x00\x00\x01\x65garbage", &[0xFF; 4096]] {
            let _ = dec.decode(junk, &mut picture);
        }
    }

    fn nal_types(annexb: &[u8]) -> Vec<u8> {
        annexb
            .windows(4)
            .enumerate()
            .filter(|(_, w)| w[..3] == [0, 0, 1])
            .map(|(i, _)| annexb[i + 3] & 0x1F)
            .collect()
    }
}
