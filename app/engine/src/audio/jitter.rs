//! The viewer's adaptive jitter buffer: Opus packets in by RTP timestamp as they arrive, one
//! 20 ms frame out each time the output needs one. No I/O and no clock: time is passed in, so
//! tests drive it with fake time.
//!
//! - Playing starts once the first packet has waited the target delay.
//! - A missing frame is concealed (Opus PLC, or FEC from the next packet when it is here); a
//!   packet that comes after its turn is counted late and the target grows by a frame.
//! - The target is 20 ms plus four times the interarrival jitter (RFC 3550), within 20–60 ms,
//!   plus whatever lip sync asks for ([`set_extra`](JitterBuffer::set_extra)).
//! - Each second the least time a frame waited is compared with the target: a frame is dropped
//!   (too much delay) or a concealment inserted (too little), one per 20 ms until it is right.
//! - With nothing left for 100 ms it stops and buffers again (an underrun).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{FRAME, FRAME_SAMPLES, SAMPLE_RATE};

const FRAME_TS: u64 = FRAME_SAMPLES as u64;
pub const MIN_TARGET: Duration = Duration::from_millis(20);
pub const MAX_TARGET: Duration = Duration::from_millis(60);
/// Most extra delay lip sync may ask for.
pub const MAX_EXTRA: Duration = Duration::from_millis(250);
/// How far the delay may drift from the target before it is corrected.
const SLACK: Duration = Duration::from_millis(10);
/// How often the delay is compared with the target.
const WINDOW: Duration = Duration::from_secs(1);
/// Concealed frames in a row with nothing buffered before playing stops.
const UNDERRUN_FRAMES: u32 = 5;
/// Packets held at most (2 s); older ones are dropped when more arrive.
const CAPACITY: usize = 100;

/// What to play next.
#[derive(Debug, Clone, PartialEq)]
pub enum Pop {
    /// This packet.
    Frame(Bytes),
    /// A frame is missing: conceal it, from `fec` (the next packet's forward error correction)
    /// if there is one.
    Conceal { fec: Option<Bytes> },
    /// Not playing (starting, or after an underrun): silence.
    Silence,
}

/// Counters, for the viewer's figures.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct JitterStats {
    pub played: u64,
    pub concealed: u64,
    pub late: u64,
    /// Frames dropped to shorten the delay.
    pub dropped: u64,
    /// Concealments inserted to lengthen it.
    pub inserted: u64,
    pub underruns: u64,
    pub overflowed: u64,
}

#[derive(Debug)]
pub struct JitterBuffer {
    packets: BTreeMap<u64, (Bytes, Instant)>,
    /// The next frame to play; `None` while buffering.
    next: Option<u64>,
    /// Grown by late packets, decaying back.
    late_bonus: Duration,
    extra: Duration,
    jitter_s: f64,
    last_transit: Option<f64>,
    epoch: Option<Instant>,
    empty_in_row: u32,
    /// The least a played frame waited in this window, and when the window started.
    window: Option<(Instant, Duration)>,
    last_wait: Duration,
    /// Frames to drop (negative) or insert (positive).
    adjust: i32,
    last_decay: Option<Instant>,
    last_played: Option<u64>,
    pub stats: JitterStats,
}

impl Default for JitterBuffer {
    fn default() -> Self {
        Self {
            packets: BTreeMap::new(),
            next: None,
            late_bonus: Duration::ZERO,
            extra: Duration::ZERO,
            jitter_s: 0.0,
            last_transit: None,
            epoch: None,
            empty_in_row: 0,
            window: None,
            last_wait: Duration::ZERO,
            adjust: 0,
            last_decay: None,
            last_played: None,
            stats: JitterStats::default(),
        }
    }
}

impl JitterBuffer {
    /// The delay aimed at now.
    pub fn target(&self) -> Duration {
        let by_jitter = MIN_TARGET + Duration::from_secs_f64(4.0 * self.jitter_s);
        (by_jitter + self.late_bonus).clamp(MIN_TARGET, MAX_TARGET) + self.extra
    }

    /// Interarrival jitter (RFC 3550), in milliseconds.
    pub fn jitter_ms(&self) -> f64 {
        self.jitter_s * 1e3
    }

    /// How long the last frame played waited here.
    pub fn delay(&self) -> Duration {
        self.last_wait
    }

    /// The extra delay lip sync asked for.
    pub fn extra(&self) -> Duration {
        self.extra
    }

    /// The media timestamp of the last frame played.
    pub fn last_played(&self) -> Option<u64> {
        self.last_played
    }

    /// Extra delay for lip sync (sound that would be ahead of the picture).
    pub fn set_extra(&mut self, extra: Duration) {
        self.extra = extra.min(MAX_EXTRA);
    }

    /// A packet with media timestamp `ts` arrived at `now`.
    pub fn push(&mut self, ts: u64, data: Bytes, now: Instant) {
        let epoch = *self.epoch.get_or_insert(now);
        let transit =
            now.saturating_duration_since(epoch).as_secs_f64() - ts as f64 / f64::from(SAMPLE_RATE);
        if let Some(last) = self.last_transit {
            self.jitter_s += ((transit - last).abs() - self.jitter_s) / 16.0;
        }
        self.last_transit = Some(transit);
        if let Some(next) = self.next
            && ts < next
        {
            // Its turn has passed (it was concealed): wait longer from now on.
            self.stats.late += 1;
            if self.late_bonus < MAX_TARGET {
                self.late_bonus += FRAME;
                self.adjust = self.adjust.max(1);
            }
            return;
        }
        self.packets.insert(ts, (data, now));
        while self.packets.len() > CAPACITY {
            self.packets.pop_first();
            self.stats.overflowed += 1;
        }
    }

    /// The next 20 ms to play, at `now`.
    pub fn pop(&mut self, now: Instant) -> Pop {
        self.decay(now);
        let Some(next) = self.next else {
            return self.start(now);
        };
        if self.adjust > 0 {
            self.adjust -= 1;
            self.stats.inserted += 1;
            return Pop::Conceal { fec: None };
        }
        if let Some((data, arrived)) = self.packets.remove(&next) {
            self.empty_in_row = 0;
            self.next = Some(next + FRAME_TS);
            self.stats.played += 1;
            self.last_played = Some(next);
            self.observe_wait(now, now.saturating_duration_since(arrived));
            if self.adjust < 0 && self.packets.contains_key(&(next + FRAME_TS)) {
                // Drop the frame after this one: the delay shrinks by a frame.
                self.adjust += 1;
                self.packets.remove(&(next + FRAME_TS));
                self.next = Some(next + 2 * FRAME_TS);
                self.stats.dropped += 1;
            }
            return Pop::Frame(data);
        }
        // Anything older than `next` is of no use now.
        while self
            .packets
            .first_key_value()
            .is_some_and(|(t, _)| *t < next)
        {
            self.packets.pop_first();
        }
        // A sender whose timestamps stepped off the 20 ms grid (a source started over, a
        // microphone back after a pause): play on from its packet within this frame's time.
        if let Some((&ts, _)) = self.packets.first_key_value()
            && ts < next + FRAME_TS
            && let Some((data, arrived)) = self.packets.remove(&ts)
        {
            self.empty_in_row = 0;
            self.next = Some(ts + FRAME_TS);
            self.stats.played += 1;
            self.last_played = Some(ts);
            self.observe_wait(now, now.saturating_duration_since(arrived));
            return Pop::Frame(data);
        }
        if self.packets.is_empty() {
            self.empty_in_row += 1;
            if self.empty_in_row > UNDERRUN_FRAMES {
                self.stats.underruns += 1;
                self.next = None;
                self.empty_in_row = 0;
                return Pop::Silence;
            }
        }
        self.next = Some(next + FRAME_TS);
        self.stats.concealed += 1;
        let fec = self.packets.get(&(next + FRAME_TS)).map(|(d, _)| d.clone());
        Pop::Conceal { fec }
    }

    fn start(&mut self, now: Instant) -> Pop {
        let Some((&ts, &(_, arrived))) = self.packets.first_key_value() else {
            return Pop::Silence;
        };
        // Start so that the first frame has waited the target; the newest packets decide
        // (after an outage several arrive at once).
        let newest = self
            .packets
            .last_key_value()
            .map_or(arrived, |(_, (_, at))| *at);
        if now.saturating_duration_since(newest)
            + Duration::from_millis((self.packets.len() as u64 - 1) * 20)
            < self.target()
        {
            return Pop::Silence;
        }
        // Skip what is older than the target allows.
        let keep = (self.target().as_millis() / FRAME.as_millis()) as usize + 1;
        while self.packets.len() > keep {
            self.packets.pop_first();
        }
        let first = self.packets.first_key_value().map_or(ts, |(t, _)| *t);
        self.next = Some(first);
        self.window = None;
        self.adjust = 0;
        self.pop(now)
    }

    fn observe_wait(&mut self, now: Instant, waited: Duration) {
        self.last_wait = waited;
        let (since, least) = self.window.get_or_insert((now, waited));
        *least = (*least).min(waited);
        if now.saturating_duration_since(*since) < WINDOW {
            return;
        }
        let (least, target) = (*least, self.target());
        self.window = None;
        if self.adjust != 0 {
            return;
        }
        let frames = |d: Duration| (d.as_millis() / FRAME.as_millis()).clamp(1, 10) as i32;
        if least > target + SLACK {
            self.adjust = -frames(least - target);
        } else if least + SLACK < target {
            self.adjust = frames(target - least);
        }
    }

    /// Lateness is forgiven slowly: a frame's worth every 10 s.
    fn decay(&mut self, now: Instant) {
        let last = *self.last_decay.get_or_insert(now);
        if now.saturating_duration_since(last) >= Duration::from_secs(10) {
            self.late_bonus = self.late_bonus.saturating_sub(FRAME);
            self.last_decay = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(n: u64) -> Bytes {
        Bytes::from(n.to_be_bytes().to_vec())
    }

    /// Plays `seconds` of a stream whose packet `n` arrives at `arrive(n)` (None: lost), popping
    /// every 20 ms; returns what was popped.
    fn run(
        jb: &mut JitterBuffer,
        seconds: u64,
        arrive: impl Fn(u64) -> Option<Duration>,
    ) -> Vec<Pop> {
        let t0 = Instant::now();
        let frames = seconds * 50;
        let mut arrivals: Vec<(Duration, u64)> =
            (0..frames).filter_map(|n| Some((arrive(n)?, n))).collect();
        arrivals.sort();
        let mut next_arrival = 0;
        let mut out = Vec::new();
        // Stops as the last packets arrive, before the buffer runs dry.
        for tick in 0..frames + 1 {
            let now = Duration::from_millis(tick * 20);
            while next_arrival < arrivals.len() && arrivals[next_arrival].0 <= now {
                let n = arrivals[next_arrival].1;
                jb.push(n * FRAME_TS, packet(n), t0 + arrivals[next_arrival].0);
                next_arrival += 1;
            }
            out.push(jb.pop(t0 + now));
        }
        out
    }

    fn played(out: &[Pop]) -> Vec<u64> {
        out.iter()
            .filter_map(|p| match p {
                Pop::Frame(b) => Some(u64::from_be_bytes(b[..].try_into().unwrap())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_steady_stream_plays_every_frame_in_order_at_the_least_delay() {
        let mut jb = JitterBuffer::default();
        let out = run(&mut jb, 10, |n| Some(Duration::from_millis(n * 20 + 5)));
        let p = played(&out);
        // In order; at most one frame dropped, to come down from the start's extra wait.
        assert!(p.windows(2).all(|w| w[1] > w[0]));
        assert!(p[0] == 0 && p.len() >= 495, "{}", p.len());
        assert!(jb.stats.dropped <= 1, "{:?}", jb.stats);
        assert_eq!(jb.stats.concealed, 0);
        assert!(jb.delay() <= Duration::from_millis(40), "{:?}", jb.delay());
        assert!(
            jb.target() <= Duration::from_millis(25),
            "{:?}",
            jb.target()
        );
    }

    #[test]
    fn timestamps_stepping_off_the_frame_grid_keep_playing() {
        // A sender that starts over (a recording replayed from its beginning) continues its
        // timestamps from a point that is not a whole number of frames on.
        let mut jb = JitterBuffer::default();
        let t0 = Instant::now();
        let mut played = 0;
        for tick in 0..200u64 {
            let ts = if tick < 100 {
                tick * FRAME_TS
            } else {
                tick * FRAME_TS + 333
            };
            let now = t0 + Duration::from_millis(tick * 20);
            jb.push(ts, packet(tick), now + Duration::from_millis(5));
            if let Pop::Frame(_) = jb.pop(now + Duration::from_millis(10)) {
                played += 1;
            }
        }
        assert!(played >= 195, "{played} played; {:?}", jb.stats);
        assert!(jb.stats.concealed <= 2, "{:?}", jb.stats);
    }

    #[test]
    fn a_lost_packet_is_concealed_with_the_next_ones_fec_and_nothing_shifts() {
        let mut jb = JitterBuffer::default();
        let out = run(&mut jb, 4, |n| {
            (n % 50 != 25).then(|| Duration::from_millis(n * 20 + 30))
        });
        let p = played(&out);
        assert!(!p.contains(&25) && p.contains(&24) && p.contains(&26));
        assert!(
            out.contains(&Pop::Conceal {
                fec: Some(packet(26))
            }),
            "{:?}",
            jb.stats
        );
        assert_eq!(jb.stats.concealed, 4, "{:?}", jb.stats);
        assert_eq!(jb.stats.underruns, 0);
    }

    #[test]
    fn jitter_raises_the_target_up_to_60_ms_and_late_packets_raise_it_further() {
        let mut jb = JitterBuffer::default();
        // ±15 ms of jitter.
        let wobble = [0u64, 15, 30, 5, 25, 10, 20];
        run(&mut jb, 10, |n| {
            Some(Duration::from_millis(n * 20 + wobble[n as usize % 7]))
        });
        assert!(jb.jitter_ms() > 5.0, "{}", jb.jitter_ms());
        let target = jb.target();
        assert!(
            target > Duration::from_millis(40) && target <= MAX_TARGET,
            "{target:?}"
        );
        // Hardly anything late or concealed once it settled.
        assert!(jb.stats.concealed <= 6, "{:?}", jb.stats);
    }

    #[test]
    fn too_much_delay_is_dropped_and_lip_sync_can_add_some() {
        // Packets arrive in a burst of 200 ms, then steadily: the buffer starts deep and must
        // come back to its target.
        let mut jb = JitterBuffer::default();
        run(&mut jb, 6, |n| {
            Some(Duration::from_millis((n * 20).max(200)))
        });
        assert!(jb.stats.dropped > 0);
        assert!(jb.delay() <= Duration::from_millis(45), "{:?}", jb.delay());
        // Now ask for 100 ms more: the delay grows to it by inserted frames.
        let mut jb = JitterBuffer::default();
        jb.set_extra(Duration::from_millis(100));
        run(&mut jb, 6, |n| Some(Duration::from_millis(n * 20)));
        assert!(jb.delay() >= Duration::from_millis(100), "{:?}", jb.delay());
        jb.set_extra(Duration::from_secs(5));
        assert!(jb.target() <= MAX_TARGET + MAX_EXTRA);
    }

    #[test]
    fn an_outage_stops_playing_and_it_starts_again_when_packets_come_back() {
        let mut jb = JitterBuffer::default();
        let out = run(&mut jb, 6, |n| {
            (!(100..150).contains(&n)).then(|| Duration::from_millis(n * 20 + 5))
        });
        assert_eq!(jb.stats.underruns, 1, "{:?}", jb.stats);
        let p = played(&out);
        assert!(p.contains(&99) && p.contains(&151));
        // Silence during the outage, not endless concealment.
        let silent = out.iter().filter(|o| **o == Pop::Silence).count();
        assert!(silent >= 40, "{silent}");
    }
}
