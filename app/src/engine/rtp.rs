//! H.264 over RTP (RFC 6184, packetization-mode 1): one encoded frame becomes packets once, and
//! received packets become frames again.

use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use rtc::rtp::Packet;
use rtc::rtp::codec::h264::{H264Packet, H264Payloader};
use rtc::rtp::packetizer::{Depacketizer as _, Packetizer, new_packetizer};
use rtc::rtp::sequence::new_random_sequencer;

pub const H264_CLOCK_RATE: u32 = 90_000;
/// Payload type the broadcaster offers H.264 under.
pub const H264_PAYLOAD_TYPE: u8 = 102;
/// RTP packet size, leaving room for SRTP, UDP, IP and tunnels under a 1500-byte MTU.
const MTU: usize = 1200;

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

/// Reassembles received packets into Annex B access units.
///
/// A frame is handed out as soon as its last packet (RTP marker) and everything before it have
/// arrived, so no frame waits for the next one. Packets may arrive out of order; a gap that is not
/// filled within [`GAP_WAIT`] (or by [`MAX_BUFFERED`] later packets) is given up: the frames it
/// broke are skipped up to the next frame start and the loss is reported, so the caller can ask
/// for a keyframe. Time is an input, so tests drive it.
#[derive(Default)]
pub struct FrameAssembler {
    depacketizer: H264Packet,
    /// Packets by extended (unwrapped) sequence number.
    buffer: BTreeMap<u64, Packet>,
    /// Extended sequence number the next frame starts at, once known.
    next: Option<u64>,
    /// Highest extended sequence number seen, for unwrapping.
    highest: Option<u64>,
    /// When the current gap was first seen.
    stalled_since: Option<Instant>,
    lost: u16,
}

/// How long a missing packet is waited for (retransmission included) before giving up.
pub const GAP_WAIT: Duration = Duration::from_millis(150);
/// Packets buffered beyond a gap before giving up regardless of time.
const MAX_BUFFERED: usize = 1024;

impl FrameAssembler {
    fn extend(&mut self, seq: u16) -> u64 {
        let ext = match self.highest {
            None => u64::from(seq) + (1 << 16),
            Some(h) => {
                let base = h & !0xFFFF;
                let candidates = [base.wrapping_sub(1 << 16), base, base + (1 << 16)];
                candidates
                    .into_iter()
                    .map(|b| b + u64::from(seq))
                    .min_by_key(|c| c.abs_diff(h))
                    .unwrap_or(base + u64::from(seq))
            }
        };
        self.highest = Some(self.highest.map_or(ext, |h| h.max(ext)));
        ext
    }

    pub fn push(&mut self, packet: Packet) {
        let ext = self.extend(packet.header.sequence_number);
        if self.next.is_some_and(|n| ext < n) {
            return; // late or duplicate: its frame is already out (or given up)
        }
        self.buffer.entry(ext).or_insert(packet);
    }

    /// The next complete access unit and how many packets were lost before it.
    pub fn pop(&mut self, now: Instant) -> Option<(Bytes, u16)> {
        loop {
            let start = match self.next {
                Some(n) => n,
                None => {
                    // Start at the first packet that begins a frame.
                    let (&first, _) = self
                        .buffer
                        .iter()
                        .find(|(_, p)| self.depacketizer.is_partition_head(&p.payload))?;
                    self.buffer = self.buffer.split_off(&first);
                    first
                }
            };
            // Walk the contiguous run from `start` to a marker.
            let mut end = None;
            let mut seq = start;
            while let Some(p) = self.buffer.get(&seq) {
                if p.header.marker {
                    end = Some(seq);
                    break;
                }
                seq += 1;
            }
            if let Some(end) = end {
                self.stalled_since = None;
                self.next = Some(end + 1);
                let rest = self.buffer.split_off(&(end + 1));
                let frame = std::mem::replace(&mut self.buffer, rest);
                let mut au = BytesMut::new();
                for (_, p) in frame {
                    if p.payload.is_empty() {
                        continue; // padding (bandwidth probing), not media
                    }
                    match self.depacketizer.depacketize(&p.payload) {
                        Ok(b) => au.extend_from_slice(&b),
                        Err(_) => self.lost = self.lost.saturating_add(1),
                    }
                }
                if au.is_empty() {
                    continue;
                }
                return Some((au.freeze(), std::mem::take(&mut self.lost)));
            }
            // Incomplete. Is something missing (packets exist past the hole)?
            let missing = self.buffer.range(seq..).next().is_some();
            if !missing {
                self.stalled_since = None;
                return None;
            }
            let since = *self.stalled_since.get_or_insert(now);
            if now.saturating_duration_since(since) < GAP_WAIT && self.buffer.len() < MAX_BUFFERED {
                return None;
            }
            // Give up on this frame: resume at the next frame start after the hole.
            let resume = self
                .buffer
                .range(seq..)
                .find(|(_, p)| self.depacketizer.is_partition_head(&p.payload))
                .map(|(&k, _)| k);
            let resume = resume?;
            let skipped_present = self.buffer.range(..resume).count() as u64;
            let skipped = resume - start;
            self.lost = self.lost.saturating_add(
                u16::try_from(skipped - skipped_present)
                    .unwrap_or(u16::MAX)
                    .max(1),
            );
            self.buffer = self.buffer.split_off(&resume);
            self.depacketizer = H264Packet::default();
            self.next = Some(resume);
            self.stalled_since = None;
        }
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
        let mut enc = H264Encoder::new(EncoderSettings::default());
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
            while let Some((au, lost)) = asm.pop(Instant::now()) {
                assert_eq!(lost, 0);
                if let Some(d) = dec.decode(&au, &mut rgba).unwrap() {
                    decoded.push(d.stamp.unwrap().seq);
                }
            }
        }
        // Every frame comes out as soon as it is complete, none held for the next one.
        assert_eq!(decoded.len(), 20, "{decoded:?}");
        assert!(decoded.windows(2).all(|w| w[0] < w[1]), "{decoded:?}");
    }

    /// Twelve encoded 720p frames as packets, sequence numbers starting at `first_seq`.
    fn frames(first_seq: u16) -> Vec<Vec<Packet>> {
        let mut pattern = TestPattern::new(1280, 720);
        let mut enc = H264Encoder::new(EncoderSettings::default());
        let mut pk = FramePacketizer::default();
        let mut bits = Vec::new();
        let start = Instant::now();
        let mut seq = first_seq;
        let mut out = Vec::new();
        for n in 0..12u32 {
            let key = enc
                .encode(
                    pattern.render(Stamp {
                        seq: n,
                        capture_ms: n,
                    }),
                    &mut bits,
                )
                .unwrap()
                .unwrap();
            let at = start + Duration::from_millis(u64::from(n) * 33);
            let mut f = pk
                .packetize(Bytes::copy_from_slice(&bits), at, key)
                .unwrap();
            for p in &mut f.packets {
                p.header.sequence_number = seq;
                seq = seq.wrapping_add(1);
            }
            out.push(f.packets);
        }
        out
    }

    fn stamps(asm: &mut FrameAssembler, dec: &mut H264Decoder, now: Instant) -> Vec<(u32, u16)> {
        let mut rgba = Vec::new();
        let mut got = Vec::new();
        while let Some((au, lost)) = asm.pop(now) {
            if let Ok(Some(d)) = dec.decode(&au, &mut rgba) {
                got.push((d.stamp.unwrap().seq, lost));
            }
        }
        got
    }

    #[test]
    fn a_lost_packet_is_waited_for_then_skipped_and_reported() {
        let frames = frames(100);
        assert!(frames[3].len() > 1, "frame 3 spans packets");
        let mut asm = FrameAssembler::default();
        let mut dec = H264Decoder::new().unwrap();
        let t0 = Instant::now();
        for (n, f) in frames.iter().enumerate() {
            for (i, p) in f.iter().enumerate() {
                if n == 3 && i == 0 {
                    continue; // lost
                }
                asm.push(p.clone());
            }
        }
        // Frames 0-2 come out; frame 3 and later wait for the missing packet.
        assert_eq!(stamps(&mut asm, &mut dec, t0), vec![(0, 0), (1, 0), (2, 0)]);
        assert!(stamps(&mut asm, &mut dec, t0 + GAP_WAIT / 2).is_empty());
        // After the wait the broken frame is skipped and the loss reported with the next one
        // (which the decoder cannot use without frame 3: the viewer then asks for a keyframe).
        let mut later = Vec::new();
        while let Some((_, lost)) = asm.pop(t0 + GAP_WAIT * 2) {
            later.push(lost);
        }
        assert_eq!(later.len(), 8, "frames 4 to 11: {later:?}");
        assert!(
            later[0] > 0 && later[1..].iter().all(|&l| l == 0),
            "{later:?}"
        );
    }

    #[test]
    fn duplicates_and_sequence_wrap_change_nothing() {
        let frames = frames(65_530);
        let mut asm = FrameAssembler::default();
        let mut dec = H264Decoder::new().unwrap();
        let now = Instant::now();
        let mut got = Vec::new();
        for f in &frames {
            for p in f {
                asm.push(p.clone());
                asm.push(p.clone());
            }
            got.extend(stamps(&mut asm, &mut dec, now));
        }
        let want: Vec<(u32, u16)> = (0..12).map(|n| (n, 0)).collect();
        assert_eq!(got, want);
    }
}
