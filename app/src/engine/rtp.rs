//! H.264 over RTP (RFC 6184, packetization-mode 1): one encoded frame becomes packets once, and
//! received packets become frames again.

use std::time::{Duration, Instant};

use bytes::Bytes;
use rtc::media::io::sample_builder::SampleBuilder;
use rtc::rtp::Packet;
use rtc::rtp::codec::h264::{H264Packet, H264Payloader};
use rtc::rtp::packetizer::{Packetizer, new_packetizer};
use rtc::rtp::sequence::new_random_sequencer;

pub const H264_CLOCK_RATE: u32 = 90_000;
/// Payload type the broadcaster offers H.264 under.
pub const H264_PAYLOAD_TYPE: u8 = 102;
/// RTP packet size, leaving room for SRTP, UDP, IP and tunnels under a 1500-byte MTU.
const MTU: usize = 1200;
/// How many packets of reordering the depacketizer waits for.
const MAX_LATE_PACKETS: u16 = 512;

/// One encoded frame as RTP, ready for any number of viewers.
pub struct FramePackets {
    pub packets: Vec<Packet>,
    pub keyframe: bool,
}

/// Packetizes each encoded frame once. SSRC and payload type are set per viewer when sending.
pub struct FramePacketizer {
    inner: Box<dyn Packetizer>,
    last: Option<Instant>,
}

impl Default for FramePacketizer {
    fn default() -> Self {
        Self {
            inner: Box::new(new_packetizer(
                Instant::now(),
                MTU,
                H264_PAYLOAD_TYPE,
                0,
                Box::new(H264Payloader::default()),
                Box::new(new_random_sequencer()),
                H264_CLOCK_RATE,
            )),
            last: None,
        }
    }
}

impl FramePacketizer {
    /// Packetizes one Annex B access unit captured at `captured`.
    pub fn packetize(
        &mut self,
        access_unit: Bytes,
        captured: Instant,
        keyframe: bool,
    ) -> Result<FramePackets, rtc::shared::error::Error> {
        // The timestamp advances by the real time between captures (90 kHz clock).
        let elapsed = self
            .last
            .map_or(Duration::ZERO, |l| captured.saturating_duration_since(l));
        self.last = Some(captured);
        let samples = (elapsed.as_secs_f64() * f64::from(H264_CLOCK_RATE)) as u32;
        if samples > 0 {
            self.inner.skip_samples(samples);
        }
        let packets = self.inner.packetize(captured, &access_unit, 0)?;
        Ok(FramePackets { packets, keyframe })
    }
}

/// Reassembles received packets into Annex B access units, tolerating reordering.
pub struct FrameAssembler {
    builder: SampleBuilder<H264Packet>,
}

impl Default for FrameAssembler {
    fn default() -> Self {
        Self {
            builder: SampleBuilder::new(MAX_LATE_PACKETS, H264Packet::default(), H264_CLOCK_RATE)
                .with_max_time_delay(Duration::from_millis(500)),
        }
    }
}

impl FrameAssembler {
    pub fn push(&mut self, packet: Packet) {
        self.builder.push(Instant::now(), packet);
    }

    /// The next complete access unit, and how many packets were lost before it.
    pub fn pop(&mut self) -> Option<(Bytes, u16)> {
        self.builder
            .pop(Instant::now())
            .map(|s| (s.data, s.prev_dropped_packets))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::codec::{EncoderSettings, H264Decoder, H264Encoder};
    use crate::engine::pattern::TestPattern;
    use crate::engine::stamp::Stamp;

    #[test]
    fn frames_survive_packetizing_reordering_and_reassembly() {
        let (w, h) = (1280, 720);
        let mut pattern = TestPattern::new(w, h);
        let mut enc = H264Encoder::new(EncoderSettings::default()).unwrap();
        let mut dec = H264Decoder::new().unwrap();
        let mut pk = FramePacketizer::default();
        let mut asm = FrameAssembler::default();
        let (mut bits, mut rgba) = (Vec::new(), Vec::new());
        let start = Instant::now();
        let mut decoded = Vec::new();
        for seq in 0..20u32 {
            let stamp = Stamp {
                seq,
                capture_ms: seq,
            };
            let Some(key) = enc.encode(pattern.render(stamp), &mut bits).unwrap() else {
                continue;
            };
            let at = start + Duration::from_millis(u64::from(seq) * 33);
            let frame = pk
                .packetize(Bytes::copy_from_slice(&bits), at, key)
                .unwrap();
            assert!(frame.packets.iter().all(|p| p.payload.len() <= MTU));
            assert!(
                frame.packets.last().unwrap().header.marker,
                "marker on the last packet"
            );
            let mut packets = frame.packets;
            // Swap neighbours: the network may reorder.
            for pair in packets.chunks_mut(2) {
                pair.reverse();
            }
            for p in packets {
                asm.push(p);
            }
            while let Some((au, lost)) = asm.pop() {
                assert_eq!(lost, 0);
                if let Some(d) = dec.decode(&au, &mut rgba).unwrap() {
                    decoded.push(d.stamp.unwrap().seq);
                }
            }
        }
        // The assembler holds the newest frame until the next one starts.
        assert!(decoded.len() >= 18, "{decoded:?}");
        assert!(decoded.windows(2).all(|w| w[0] < w[1]), "{decoded:?}");
    }
}
