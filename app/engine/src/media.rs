//! What a session carries: tracks, each with a kind and a codec (payload type, clock rate), and
//! the encoded frames that flow on them from a source to sinks. On the broadcaster frames go
//! from the encoder to the network fan-out (later a recorder); on the viewer from the network to
//! the decoder and its display (later a recorder, audio output).
//!
//! A new kind of track is a new [`Codec`] in [`CODECS`] plus its source; a new sink is a
//! [`TrackSink`] in a file of its own, registered where the session is planned.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use bytes::Bytes;
use rtc::rtp::codec::h264::{H264Packet, H264Payloader};
use rtc::rtp::codec::opus::{OpusPacket, OpusPayloader};
use rtc::rtp::packetizer::{Depacketizer, Payloader};

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    Video,
    Audio,
}

/// A codec as WebRTC negotiates it, with what it takes to carry it over RTP.
#[derive(Debug)]
pub struct Codec {
    /// For people: "H.264 Constrained Baseline".
    pub name: &'static str,
    pub kind: MediaKind,
    pub mime_type: &'static str,
    pub clock_rate: u32,
    /// Audio channels; 0 for video.
    pub channels: u16,
    pub fmtp: &'static str,
    pub payload_type: u8,
    /// Offered when sending; otherwise only accepted from a remote sender.
    pub send: bool,
    /// RTCP feedback offered (type, parameter).
    pub rtcp_feedback: &'static [(&'static str, &'static str)],
    pub payloader: fn() -> Box<dyn Payloader>,
    pub depacketizer: fn() -> Box<dyn Depacketizer + Send>,
    /// Can a decoder start at this frame (a keyframe with what it needs to decode alone)?
    pub is_keyframe: fn(&[u8]) -> bool,
}

const VIDEO_FEEDBACK: &[(&str, &str)] = &[
    ("goog-remb", ""),
    ("ccm", "fir"),
    ("nack", ""),
    ("nack", "pli"),
];

const H264_CONSTRAINED_BASELINE: Codec = Codec {
    name: "H.264 Constrained Baseline",
    kind: MediaKind::Video,
    mime_type: "video/H264",
    clock_rate: 90_000,
    channels: 0,
    fmtp: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
    payload_type: 102,
    send: true,
    rtcp_feedback: VIDEO_FEEDBACK,
    payloader: || Box::new(H264Payloader::default()),
    depacketizer: || Box::new(H264Packet::default()),
    is_keyframe: h264_is_keyframe,
};

/// H.264 Constrained Baseline, packetization-mode 1: what the broadcaster sends (openh264) and
/// every browser decodes.
pub static H264: Codec = H264_CONSTRAINED_BASELINE;

/// H.264 Baseline, received from browsers that offer it beside (or instead of) Constrained
/// Baseline; openh264 decodes both.
pub static H264_BASELINE: Codec = Codec {
    name: "H.264 Baseline",
    fmtp: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f",
    payload_type: 127,
    send: false,
    ..H264_CONSTRAINED_BASELINE
};

/// Opus, 48 kHz, as every browser sends and plays it: SDP always says two channels; mono or
/// stereo is the encoder's choice per packet. In-band FEC on, 20 ms frames.
pub static OPUS: Codec = Codec {
    name: "Opus",
    kind: MediaKind::Audio,
    mime_type: "audio/opus",
    clock_rate: 48_000,
    channels: 2,
    fmtp: "minptime=10;useinbandfec=1",
    payload_type: 111,
    send: true,
    rtcp_feedback: &[],
    payloader: || Box::new(OpusPayloader),
    depacketizer: || Box::new(OpusPacket),
    is_keyframe: |_| true,
};

/// Every codec a peer connection negotiates, in order of preference within its kind.
pub static CODECS: [&Codec; 3] = [&H264, &H264_BASELINE, &OPUS];

/// The codec negotiated under `mime_type` (case-insensitive), if this engine carries it.
pub fn codec_for_mime(mime_type: &str) -> Option<&'static Codec> {
    CODECS
        .iter()
        .copied()
        .find(|c| c.mime_type.eq_ignore_ascii_case(mime_type))
}

/// Can decoding start at this Annex B access unit: does it carry a sequence parameter set (NAL
/// type 7) and an IDR slice (type 5)? (Every IDR from openh264 and browsers carries SPS/PPS; an
/// IDR whose first packet went missing does not, and would not decode.)
pub fn h264_is_keyframe(access_unit: &[u8]) -> bool {
    let types = || {
        access_unit
            .windows(4)
            .filter(|w| w[..3] == [0, 0, 1])
            .map(|w| w[3] & 0x1F)
    };
    types().any(|t| t == 7) && types().any(|t| t == 5)
}

/// A session's track: which one, and what it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct TrackId(pub u16);

#[derive(Debug, Clone, Copy)]
pub struct TrackSpec {
    pub id: TrackId,
    pub codec: &'static Codec,
}

impl TrackSpec {
    pub fn kind(&self) -> MediaKind {
        self.codec.kind
    }
}

/// One encoded frame of one track: an H.264 access unit (Annex B) or an Opus packet.
#[derive(Debug, Clone)]
pub struct EncodedFrame {
    pub track: TrackId,
    pub data: Bytes,
    /// Media time in the codec's clock-rate units, never wrapping: from the track's first
    /// capture on the broadcaster; the sender's RTP timestamp, unwrapped, on the viewer.
    pub timestamp: u64,
    /// A decoder can start here.
    pub keyframe: bool,
    /// When it was captured (broadcaster) or finished arriving (viewer).
    pub at: Instant,
}

/// Where a track's encoded frames go. Sinks run on the thread that produces the track's frames
/// (the encoder's on the broadcaster, the network task on the viewer), so they hand anything
/// slow to a thread of their own.
pub trait TrackSink: Send {
    fn accept(&mut self, frame: &EncodedFrame);

    /// `packets` were lost before the next frame (viewer): a decoder may need a keyframe.
    fn lost(&mut self, _packets: u32) {}
}

/// A request for a keyframe, set by whoever needs one (a sink, a joining viewer) and taken by
/// whoever can make it happen (the encoder; on the viewer, a PLI to the sender).
#[derive(Debug, Clone, Default)]
pub struct KeyframeRequest(Arc<AtomicBool>);

impl KeyframeRequest {
    pub fn request(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Was one requested since the last take? Clears it.
    pub fn take(&self) -> bool {
        self.0.swap(false, Ordering::Relaxed)
    }

    pub fn is_requested(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codecs_are_found_by_mime_type_and_h264_sends_constrained_baseline() {
        assert!(std::ptr::eq(codec_for_mime("video/h264").unwrap(), &H264));
        assert!(std::ptr::eq(codec_for_mime("audio/OPUS").unwrap(), &OPUS));
        assert!(codec_for_mime("video/VP8").is_none());
        let sending: Vec<_> = CODECS
            .iter()
            .filter(|c| c.send && c.kind == MediaKind::Video)
            .collect();
        assert_eq!(sending.len(), 1);
        assert!(sending[0].fmtp.contains("42e01f"));
        // Payload types are distinct: each is one m-line entry.
        let mut pts: Vec<_> = CODECS.iter().map(|c| c.payload_type).collect();
        pts.dedup();
        assert_eq!(pts.len(), CODECS.len());
    }

    #[test]
    fn a_decoder_starts_only_at_an_idr_that_carries_its_sps() {
        let sps_pps_idr = [0, 0, 0, 1, 0x67, 1, 0, 0, 1, 0x68, 2, 0, 0, 1, 0x65, 3];
        assert!(h264_is_keyframe(&sps_pps_idr));
        // An IDR that lost its first packet (no SPS), a P frame, garbage.
        assert!(!h264_is_keyframe(&[0, 0, 1, 0x65, 3]));
        assert!(!h264_is_keyframe(&[0, 0, 1, 0x41, 3]));
        assert!(!h264_is_keyframe(&[0xFF; 3]));
    }

    #[test]
    fn a_keyframe_request_is_taken_once() {
        let k = KeyframeRequest::default();
        assert!(!k.take());
        k.request();
        k.clone().request();
        assert!(k.is_requested());
        assert!(k.take());
        assert!(!k.take());
    }
}
