//! Media over RTP: each encoded frame becomes packets once, whatever the codec (its
//! [`Codec`](crate::media::Codec) says how), and received packets become frames again.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtc::rtp::Packet;
use rtc::rtp::packetizer::{Depacketizer, Packetizer, new_packetizer};
use rtc::rtp::sequence::new_random_sequencer;

use crate::media::{Codec, EncodedFrame, TrackId};

/// RTP packet size, leaving room for SRTP, UDP, IP and tunnels under a 1500-byte MTU.
const MTU: usize = 1200;

/// One encoded frame as RTP, ready for any number of viewers.
pub struct FramePackets {
    pub packets: Vec<Packet>,
    pub keyframe: bool,
}

/// Packetizes each encoded frame of one track once. SSRC is set per viewer when sending.
pub struct FramePacketizer {
    inner: Box<dyn Packetizer>,
}

impl FramePacketizer {
    pub fn new(codec: &Codec) -> Self {
        Self {
            inner: Box::new(new_packetizer(
                Instant::now(),
                MTU,
                codec.payload_type,
                0,
                (codec.payloader)(),
                Box::new(new_random_sequencer()),
                codec.clock_rate,
            )),
        }
    }

    /// Packetizes one frame; its RTP timestamp is the packetizer's random start plus the
    /// frame's media time, so the spacing of timestamps is exactly that of the captures.
    pub fn packetize(
        &mut self,
        frame: &EncodedFrame,
    ) -> Result<FramePackets, rtc::shared::error::Error> {
        let mut packets = self.inner.packetize(frame.at, &frame.data, 0)?;
        for p in &mut packets {
            // Truncation is RTP's own wrap-around.
            p.header.timestamp = p.header.timestamp.wrapping_add(frame.timestamp as u32);
        }
        Ok(FramePackets {
            packets,
            keyframe: frame.keyframe,
        })
    }
}

/// Extends 32-bit RTP timestamps into a count that does not wrap.
#[derive(Debug, Default)]
pub struct TimestampUnwrapper {
    last: Option<u64>,
}

impl TimestampUnwrapper {
    pub fn unwrap(&mut self, ts: u32) -> u64 {
        let ext = match self.last {
            None => u64::from(ts) + (1 << 32),
            Some(last) => {
                let delta = i64::from(ts.wrapping_sub(last as u32) as i32);
                last.saturating_add_signed(delta)
            }
        };
        self.last = Some(ext);
        ext
    }
}

/// Reassembles one track's received packets into frames (for H.264, Annex B access units).
///
/// A frame is handed out as soon as its last packet (for H.264 the RTP marker) and everything
/// before it have arrived, so no frame waits for the next one. Packets may arrive out of order; a gap that is not
/// filled within [`GAP_WAIT`] (or by [`MAX_BUFFERED`] later packets) is given up: the frames it
/// broke are skipped up to the next frame start and the loss is reported, so the caller can ask
/// for a keyframe. Time is an input, so tests drive it.
pub struct FrameAssembler {
    codec: &'static Codec,
    track: TrackId,
    depacketizer: Box<dyn Depacketizer + Send>,
    timestamps: TimestampUnwrapper,
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
    pub fn new(codec: &'static Codec, track: TrackId) -> Self {
        Self {
            codec,
            track,
            depacketizer: (codec.depacketizer)(),
            timestamps: TimestampUnwrapper::default(),
            buffer: BTreeMap::new(),
            next: None,
            highest: None,
            stalled_since: None,
            lost: 0,
        }
    }

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

    /// The next complete frame (finished arriving `now`) and how many packets were lost
    /// before it.
    pub fn pop(&mut self, now: Instant) -> Option<(EncodedFrame, u16)> {
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
                if self
                    .depacketizer
                    .is_partition_tail(p.header.marker, &p.payload)
                {
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
                let rtp_timestamp = frame.values().next().map(|p| p.header.timestamp);
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
                let Some(ts) = rtp_timestamp.filter(|_| !au.is_empty()) else {
                    continue;
                };
                let data = au.freeze();
                let frame = EncodedFrame {
                    track: self.track,
                    keyframe: (self.codec.is_keyframe)(&data),
                    data,
                    timestamp: self.timestamps.unwrap(ts),
                    at: now,
                };
                return Some((frame, std::mem::take(&mut self.lost)));
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
            self.depacketizer = (self.codec.depacketizer)();
            self.next = Some(resume);
            self.stalled_since = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{EncoderSettings, H264Decoder, H264Encoder};
    use crate::frame::Nv12;
    use crate::media::H264;
    use crate::pattern::TestPattern;
    use crate::stamp::Stamp;
    use bytes::Bytes;

    const TRACK: TrackId = TrackId(0);

    /// The encoder's output as the broadcaster hands it on: captured `ms` after the start.
    fn encoded(bits: &[u8], keyframe: bool, start: Instant, ms: u64) -> EncodedFrame {
        EncodedFrame {
            track: TRACK,
            data: Bytes::copy_from_slice(bits),
            timestamp: ms * 90,
            keyframe,
            at: start + Duration::from_millis(ms),
        }
    }

    #[test]
    fn frames_survive_packetizing_reordering_and_reassembly() {
        let (w, h) = (1280, 720);
        let mut pattern = TestPattern::new(w, h);
        let mut enc = H264Encoder::new(EncoderSettings::default());
        let mut dec = H264Decoder::new().unwrap();
        let mut pk = FramePacketizer::new(&H264);
        let mut asm = FrameAssembler::new(&H264, TRACK);
        let (mut bits, mut picture) = (Vec::new(), Nv12::default());
        let start = Instant::now();
        let (mut decoded, mut timestamps) = (Vec::new(), Vec::new());
        for seq in 0..20u32 {
            let stamp = Stamp {
                seq,
                capture_ms: seq,
            };
            let Some(key) = enc.encode(pattern.render(stamp), &mut bits).unwrap() else {
                continue;
            };
            let ms = u64::from(seq) * 33;
            let frame = pk.packetize(&encoded(&bits, key, start, ms)).unwrap();
            assert!(frame.packets.iter().all(|p| p.payload.len() <= MTU));
            assert_eq!(frame.keyframe, key);
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
            while let Some((frame, lost)) = asm.pop(Instant::now()) {
                assert_eq!(lost, 0);
                assert_eq!(frame.keyframe, key, "the keyframe flag survives");
                timestamps.push(frame.timestamp);
                if let Some(d) = dec.decode(&frame.data, &mut picture).unwrap() {
                    decoded.push(d.stamp.unwrap().seq);
                }
            }
        }
        // Every frame comes out as soon as it is complete, none held for the next one.
        assert_eq!(decoded.len(), 20, "{decoded:?}");
        assert!(decoded.windows(2).all(|w| w[0] < w[1]), "{decoded:?}");
        // Media time survives: 33 ms apart at 90 kHz.
        assert!(
            timestamps.windows(2).all(|w| w[1] - w[0] == 33 * 90),
            "{timestamps:?}"
        );
    }

    /// Twelve encoded 720p frames as packets, sequence numbers starting at `first_seq`.
    fn frames(first_seq: u16) -> Vec<Vec<Packet>> {
        let mut pattern = TestPattern::new(1280, 720);
        let mut enc = H264Encoder::new(EncoderSettings::default());
        let mut pk = FramePacketizer::new(&H264);
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
            let mut f = pk
                .packetize(&encoded(&bits, key, start, u64::from(n) * 33))
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
        let mut picture = Nv12::default();
        let mut got = Vec::new();
        while let Some((frame, lost)) = asm.pop(now) {
            if let Ok(Some(d)) = dec.decode(&frame.data, &mut picture) {
                got.push((d.stamp.unwrap().seq, lost));
            }
        }
        got
    }

    #[test]
    fn a_lost_packet_is_waited_for_then_skipped_and_reported() {
        let frames = frames(100);
        assert!(frames[3].len() > 1, "frame 3 spans packets");
        let mut asm = FrameAssembler::new(&H264, TRACK);
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
        let mut asm = FrameAssembler::new(&H264, TRACK);
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

#[cfg(test)]
mod unwrap_tests {
    use super::TimestampUnwrapper;

    #[test]
    fn rtp_timestamps_unwrap_across_the_wrap_and_tolerate_reordering() {
        let mut u = TimestampUnwrapper::default();
        let a = u.unwrap(u32::MAX - 1000);
        let b = u.unwrap(500); // wrapped
        assert_eq!(b - a, 1501);
        let c = u.unwrap(u32::MAX - 10); // a late one from before the wrap
        assert!(c < b && b - c == 511);
        assert_eq!(u.unwrap(3000) - a, 4001);
    }
}
