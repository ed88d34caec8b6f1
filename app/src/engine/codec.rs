//! H.264 through openh264: Constrained Baseline, Annex B byte streams, SPS/PPS on every IDR.

use openh264::OpenH264API;
use openh264::decoder::{Decoder, DecoderConfig};
use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, Profile,
    RateControlMode, SpsPpsStrategy, UsageType,
};
use openh264::formats::YUVSource as _;

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
    /// Encoder threads; 0 lets openh264 decide.
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

pub struct H264Encoder {
    inner: Encoder,
    keyframe_requested: bool,
}

impl H264Encoder {
    pub fn new(settings: EncoderSettings) -> Result<Self, CodecError> {
        let config = EncoderConfig::new()
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
            .num_threads(settings.threads);
        let inner = Encoder::with_api_config(OpenH264API::from_source(), config)
            .map_err(CodecError::Encoder)?;
        Ok(Self {
            inner,
            keyframe_requested: false,
        })
    }

    /// The next frame will be an IDR (with SPS and PPS).
    pub fn request_keyframe(&mut self) {
        self.keyframe_requested = true;
    }

    /// Encodes one frame into `out` (cleared first) as Annex B. Returns whether it is a
    /// keyframe, or `None` if rate control skipped the frame (nothing to send).
    pub fn encode(
        &mut self,
        frame: &impl openh264::formats::YUVSource,
        out: &mut Vec<u8>,
    ) -> Result<Option<bool>, CodecError> {
        if self.keyframe_requested {
            self.inner.force_intra_frame();
        }
        let stream = self.inner.encode(frame).map_err(CodecError::Encoder)?;
        out.clear();
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

/// A decoded picture.
pub struct Decoded {
    pub width: usize,
    pub height: usize,
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

    /// Decodes one access unit (Annex B). When a picture comes out, writes it as RGBA into
    /// `rgba` (resized as needed) and returns its size and stamp.
    pub fn decode(
        &mut self,
        access_unit: &[u8],
        rgba: &mut Vec<u8>,
    ) -> Result<Option<Decoded>, CodecError> {
        let Some(yuv) = self
            .inner
            .decode(access_unit)
            .map_err(CodecError::Decoder)?
        else {
            return Ok(None);
        };
        let (width, height) = yuv.dimensions();
        let stride = yuv.strides().0;
        let stamp = stamp::read(yuv.y(), stride, width, height);
        rgba.resize(width * height * 4, 0);
        yuv.write_rgba8(rgba);
        Ok(Some(Decoded {
            width,
            height,
            stamp,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::pattern::TestPattern;

    #[test]
    fn stamps_survive_encode_and_decode() {
        let (w, h) = (640, 360);
        let mut pattern = TestPattern::new(w, h);
        let mut enc = H264Encoder::new(EncoderSettings {
            bitrate_kbps: 500,
            ..EncoderSettings::default()
        })
        .unwrap();
        let mut dec = H264Decoder::new().unwrap();
        let (mut bits, mut rgba) = (Vec::new(), Vec::new());
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
                .decode(&bits, &mut rgba)
                .unwrap()
                .expect("a picture per frame");
            assert_eq!((got.width, got.height), (w, h));
            assert_eq!(got.stamp, Some(stamp));
            assert_eq!(rgba.len(), w * h * 4);
        }
    }

    #[test]
    fn garbage_is_an_error_or_nothing_never_a_panic() {
        let mut dec = H264Decoder::new().unwrap();
        let mut rgba = Vec::new();
        for junk in [&b""[..], b"\x00\x00\x00\x01\x65garbage", &[0xFF; 4096]] {
            let _ = dec.decode(junk, &mut rgba);
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
