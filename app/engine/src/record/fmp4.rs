//! One recording file as fragmented MP4, with no I/O and no clock (the writer thread does
//! both): encoded frames go in by track with their media timestamps and capture times; bytes
//! come out, the init segment with the first fragment and then a fragment (`moof` + `mdat`) at
//! each keyframe or each second of picture, whichever comes first. A file cut off anywhere
//! plays up to its last whole fragment.
//!
//! The file starts at a keyframe; its sound starts with the frame captured nearest that
//! keyframe (within half a frame, 10 ms), led in with silent frames if the sound began later.
//! Each sample lasts until the next one's timestamp, so frames lost on the way stretch the one
//! before them and never shift what follows.

use std::collections::VecDeque;
use std::num::NonZeroU32;

use bytes::Bytes;
use shiguredo_mp4::TrackKind;
use shiguredo_mp4::bitstream::h264::{
    H264NalUnitType, H264SampleEntryConfig, LengthSize, annexb_to_length_prefixed,
    build_avc1_box_from_annexb, collect_nal_units, parse_annexb_nal_units,
};
use shiguredo_mp4::bitstream::opus::{ChannelCount, OpusSampleEntryConfig, build_opus_box};
use shiguredo_mp4::boxes::SampleEntry;
use shiguredo_mp4::mux::{Fmp4SegmentMuxer, Sample, SegmentMuxerOptions};

use crate::media::MediaKind;

/// The picture's clock (H.264 over RTP).
pub const VIDEO_TIMESCALE: u32 = 90_000;
/// The sound's clock (Opus over RTP).
pub const AUDIO_TIMESCALE: u32 = crate::audio::SAMPLE_RATE;
/// A fragment holds at most this much picture.
pub const FRAGMENT_VIDEO_TICKS: u64 = VIDEO_TIMESCALE as u64;
/// The first fragment waits this long at most for sound to begin.
const FIRST_FRAGMENT_MAX_TICKS: u64 = 3 * VIDEO_TIMESCALE as u64;
/// libopus's encoder delay at 48 kHz, in samples (6.5 ms).
const OPUS_PRE_SKIP: u16 = 312;
/// One Opus frame (20 ms), the length given to a last frame and to lead-in silence.
const AUDIO_FRAME_TICKS: u32 = crate::audio::FRAME_SAMPLES as u32;
/// A step in the picture's timestamps longer than this is a new stream, not a gap: a new file.
const MAX_STEP_S: u64 = 10;
/// Sound may pause longer (a microphone that came back): the last frame before stretches.
const MAX_SOUND_GAP_S: u64 = 600;
/// Sound captured before the file's first picture, kept to pick the nearest one from.
const EARLY_SOUND: usize = 10;
/// Sound is aligned to within half a frame.
const HALF_FRAME_NS: i64 = 10_000_000;

/// An encoded frame on its way into a recording.
#[derive(Debug, Clone)]
pub struct RecSample {
    pub kind: MediaKind,
    /// H.264 in Annex B (start codes), or one Opus packet.
    pub data: Bytes,
    /// Media time in the track's clock (90 kHz or 48 kHz), never wrapping.
    pub timestamp: u64,
    pub keyframe: bool,
    /// When it was captured (broadcaster) or arrived (viewer), ns since the Unix epoch.
    pub unix_ns: i64,
}

/// Why a sample cannot go into this file.
#[derive(Debug, thiserror::Error)]
pub enum MuxFail {
    /// The picture's size or coding changed: finish this file and start another with it.
    #[error("the picture's parameters changed")]
    NewParameters,
    /// A track's timestamps went back or jumped: finish this file and start another with it.
    #[error("the {0} track's timestamps jumped")]
    Discontinuity(&'static str),
    /// A frame that is not H.264 in Annex B: it is left out.
    #[error("a picture that is not H.264: {0}")]
    BadPicture(String),
    #[error("MP4: {0}")]
    Mp4(String),
}

struct Pending {
    data: Vec<u8>,
    timestamp: u64,
    keyframe: bool,
}

/// What one file holds so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileFigures {
    pub video_frames: u64,
    pub audio_frames: u64,
    /// Sound frames left out: sound that began after the file's first fragment (whose init
    /// segment then had no sound track).
    pub audio_left_out: u64,
    /// Sound packets overtaken by later ones on the way (viewer), left out.
    pub audio_late: u64,
    pub fragments: u64,
}

/// A fragmented MP4 being made.
pub struct FileMuxer {
    muxer: Fmp4SegmentMuxer,
    video_entry: Option<SampleEntry>,
    /// The SPS and PPS the sample entry was made from.
    parameters: Vec<Vec<u8>>,
    audio_entry: SampleEntry,
    /// A silent Opus frame, for a lead-in when the sound began after the picture.
    silence: Bytes,
    /// Capture time of the first picture (the file's time zero), once it has come.
    start_unix_ns: Option<i64>,
    first_video_ts: u64,
    early_sound: VecDeque<RecSample>,
    held_video: Option<Pending>,
    held_audio: Option<Pending>,
    last_video_step: u32,
    fragment_start_ts: u64,
    video: Vec<(Pending, u32)>,
    audio: Vec<(Pending, u32)>,
    init_written: bool,
    sound_in_file: bool,
    figures: FileFigures,
}

impl FileMuxer {
    /// A file whose creation time is `creation_unix_s`; `silence` is one silent 20 ms Opus frame.
    pub fn new(creation_unix_s: u64, silence: Bytes) -> Self {
        let options = SegmentMuxerOptions {
            creation_timestamp: std::time::Duration::from_secs(creation_unix_s),
            ..SegmentMuxerOptions::default()
        };
        let audio_entry = SampleEntry::Opus(build_opus_box(&OpusSampleEntryConfig {
            channel_count: ChannelCount::Stereo,
            // libopus's look-ahead at 48 kHz (what WebRTC senders use): players drop it, so
            // the sound lines up with the picture as captured.
            pre_skip: OPUS_PRE_SKIP,
            input_sample_rate: AUDIO_TIMESCALE,
            output_gain: 0,
        }));
        Self {
            // Creating it cannot fail (it only stores the options).
            muxer: Fmp4SegmentMuxer::with_options(options)
                .unwrap_or_else(|_| unreachable!("a new muxer")),
            video_entry: None,
            parameters: Vec::new(),
            audio_entry,
            silence,
            start_unix_ns: None,
            first_video_ts: 0,
            early_sound: VecDeque::with_capacity(EARLY_SOUND),
            held_video: None,
            held_audio: None,
            last_video_step: VIDEO_TIMESCALE / 30,
            fragment_start_ts: 0,
            video: Vec::new(),
            audio: Vec::new(),
            init_written: false,
            sound_in_file: false,
            figures: FileFigures::default(),
        }
    }

    /// The file's time zero (capture time of its first picture), ns since the Unix epoch.
    pub fn start_unix_ns(&self) -> Option<i64> {
        self.start_unix_ns
    }

    /// How much picture the file has, in its clock's ticks.
    pub fn video_ticks(&self) -> u64 {
        self.held_video
            .as_ref()
            .map_or(0, |h| h.timestamp - self.first_video_ts)
    }

    pub fn figures(&self) -> FileFigures {
        self.figures
    }

    /// Whether bytes have been given out: the file exists.
    pub fn started(&self) -> bool {
        self.init_written
    }

    /// Takes a sample; gives the bytes to append when a fragment is complete.
    pub fn push(&mut self, s: &RecSample) -> Result<Option<Vec<u8>>, MuxFail> {
        match s.kind {
            MediaKind::Video => self.push_video(s),
            MediaKind::Audio => {
                if self.start_unix_ns.is_none() {
                    if self.early_sound.len() == EARLY_SOUND {
                        self.early_sound.pop_front();
                    }
                    self.early_sound.push_back(s.clone());
                    return Ok(None);
                }
                self.push_audio(s)?;
                Ok(None)
            }
        }
    }

    fn push_video(&mut self, s: &RecSample) -> Result<Option<Vec<u8>>, MuxFail> {
        let bad = |e: shiguredo_mp4::Error| MuxFail::BadPicture(e.to_string());
        if s.keyframe {
            let nals = parse_annexb_nal_units(&s.data).map_err(bad)?;
            let mut parameters: Vec<Vec<u8>> =
                collect_nal_units(nals.iter().copied(), H264NalUnitType::Sps)
                    .into_iter()
                    .map(<[u8]>::to_vec)
                    .collect();
            parameters.extend(
                collect_nal_units(nals.iter().copied(), H264NalUnitType::Pps)
                    .into_iter()
                    .map(<[u8]>::to_vec),
            );
            if !parameters.is_empty() && parameters != self.parameters {
                if self.video_entry.is_some() {
                    return Err(MuxFail::NewParameters);
                }
                let config = H264SampleEntryConfig {
                    length_size: LengthSize::FourBytes,
                };
                let avc1 = build_avc1_box_from_annexb(&s.data, &config).map_err(bad)?;
                self.video_entry = Some(SampleEntry::Avc1(avc1));
                self.parameters = parameters;
            }
        }
        if self.start_unix_ns.is_none() {
            // The file starts at a keyframe whose parameters are known.
            if !s.keyframe || self.video_entry.is_none() {
                return Ok(None);
            }
            let data = annexb_to_length_prefixed(&s.data, LengthSize::FourBytes).map_err(bad)?;
            self.start_unix_ns = Some(s.unix_ns);
            self.first_video_ts = s.timestamp;
            self.fragment_start_ts = s.timestamp;
            self.held_video = Some(Pending {
                data,
                timestamp: s.timestamp,
                keyframe: true,
            });
            let early: Vec<RecSample> = self.early_sound.drain(..).collect();
            for a in &early {
                // Early sound that jumps is dropped with the rest of what came before.
                let _ = self.push_audio(a);
            }
            return Ok(None);
        }
        let held = self
            .held_video
            .as_ref()
            .unwrap_or_else(|| unreachable!("a picture is held once the file has started"));
        let step = s.timestamp.saturating_sub(held.timestamp);
        if step == 0 || step > MAX_STEP_S * u64::from(VIDEO_TIMESCALE) {
            return Err(MuxFail::Discontinuity("picture"));
        }
        let data = annexb_to_length_prefixed(&s.data, LengthSize::FourBytes).map_err(bad)?;
        let held = self
            .held_video
            .replace(Pending {
                data,
                timestamp: s.timestamp,
                keyframe: s.keyframe,
            })
            .unwrap_or_else(|| unreachable!("checked above"));
        let step = u32::try_from(step).unwrap_or(u32::MAX);
        self.last_video_step = step;
        self.video.push((held, step));
        let span = s.timestamp - self.fragment_start_ts;
        let close = if self.init_written {
            s.keyframe || span >= FRAGMENT_VIDEO_TICKS
        } else {
            // The first fragment decides the file's tracks (its init segment): it takes at
            // least a second, and waits up to three for sound to begin.
            span >= FRAGMENT_VIDEO_TICKS
                && (!self.audio.is_empty() || span >= FIRST_FRAGMENT_MAX_TICKS)
        };
        if close {
            self.fragment_start_ts = s.timestamp;
            return self.fragment().map(Some);
        }
        Ok(None)
    }

    fn push_audio(&mut self, s: &RecSample) -> Result<(), MuxFail> {
        if self.init_written && !self.sound_in_file {
            self.figures.audio_left_out += 1;
            return Ok(());
        }
        let Some(held) = &self.held_audio else {
            let start = self.start_unix_ns.unwrap_or(s.unix_ns);
            let late_ns = s.unix_ns - start;
            if late_ns < -HALF_FRAME_NS {
                return Ok(()); // before the picture
            }
            // Sound that began later than the picture is led in with silence.
            let frame_ns = 20_000_000;
            let lead = if self.silence.is_empty() {
                0
            } else {
                (late_ns + HALF_FRAME_NS).div_euclid(frame_ns).max(0)
            };
            for _ in 0..lead {
                let silent = Pending {
                    data: self.silence.to_vec(),
                    timestamp: 0,
                    keyframe: true,
                };
                self.audio.push((silent, AUDIO_FRAME_TICKS));
            }
            self.held_audio = Some(Pending {
                data: s.data.to_vec(),
                timestamp: s.timestamp,
                keyframe: true,
            });
            return Ok(());
        };
        // Sound arrives as sent, not reordered: a packet overtaken by the next one is late
        // and left out; a long way back, or a long silence, is a new stream.
        let Some(step) = s.timestamp.checked_sub(held.timestamp).filter(|s| *s > 0) else {
            if held.timestamp - s.timestamp < u64::from(AUDIO_TIMESCALE) {
                self.figures.audio_late += 1;
                return Ok(());
            }
            return Err(MuxFail::Discontinuity("sound"));
        };
        if step > MAX_SOUND_GAP_S * u64::from(AUDIO_TIMESCALE) {
            return Err(MuxFail::Discontinuity("sound"));
        }
        let held = self
            .held_audio
            .replace(Pending {
                data: s.data.to_vec(),
                timestamp: s.timestamp,
                keyframe: true,
            })
            .unwrap_or_else(|| unreachable!("checked above"));
        self.audio
            .push((held, u32::try_from(step).unwrap_or(u32::MAX)));
        Ok(())
    }

    /// The fragment so far as bytes (after the init segment, the first time).
    fn fragment(&mut self) -> Result<Vec<u8>, MuxFail> {
        if self.video.is_empty() && self.audio.is_empty() {
            return Ok(Vec::new());
        }
        let mp4 = |e: shiguredo_mp4::mux::MuxError| MuxFail::Mp4(e.to_string());
        let video_scale = NonZeroU32::new(VIDEO_TIMESCALE).unwrap_or(NonZeroU32::MIN);
        let audio_scale = NonZeroU32::new(AUDIO_TIMESCALE).unwrap_or(NonZeroU32::MIN);
        let first_fragment = !self.init_written;
        if first_fragment {
            self.sound_in_file = !self.audio.is_empty();
        }
        if !self.sound_in_file {
            self.figures.audio_left_out += self.audio.len() as u64;
            self.audio.clear();
        }
        let mut samples = Vec::with_capacity(self.video.len() + self.audio.len());
        let mut offset = 0u64;
        for (i, (p, duration)) in self.video.iter().enumerate() {
            samples.push(Sample {
                track_kind: TrackKind::Video,
                timescale: video_scale,
                sample_entry: (i == 0).then(|| self.video_entry.clone()).flatten(),
                duration: *duration,
                keyframe: p.keyframe,
                composition_time_offset: None,
                data_offset: offset,
                data_size: p.data.len(),
            });
            offset += p.data.len() as u64;
        }
        for (i, (p, duration)) in self.audio.iter().enumerate() {
            samples.push(Sample {
                track_kind: TrackKind::Audio,
                timescale: audio_scale,
                sample_entry: (i == 0).then(|| self.audio_entry.clone()),
                duration: *duration,
                keyframe: true,
                composition_time_offset: None,
                data_offset: offset,
                data_size: p.data.len(),
            });
            offset += p.data.len() as u64;
        }
        let metadata = self
            .muxer
            .create_media_segment_metadata(&samples)
            .map_err(mp4)?;
        let mut out = Vec::new();
        if first_fragment {
            out = self.muxer.init_segment_bytes().map_err(mp4)?;
            self.init_written = true;
        }
        out.reserve(metadata.len() + offset as usize);
        out.extend_from_slice(&metadata);
        for (p, _) in self.video.iter().chain(self.audio.iter()) {
            out.extend_from_slice(&p.data);
        }
        self.figures.video_frames += self.video.len() as u64;
        self.figures.audio_frames += self.audio.len() as u64;
        self.figures.fragments += 1;
        self.video.clear();
        self.audio.clear();
        Ok(out)
    }

    /// The rest of the file: what is held, the last fragment and the random-access index.
    pub fn finish(mut self) -> Result<(Vec<u8>, FileFigures), MuxFail> {
        if let Some(p) = self.held_video.take() {
            let step = self.last_video_step;
            self.video.push((p, step));
        }
        if let Some(p) = self.held_audio.take() {
            self.audio.push((p, AUDIO_FRAME_TICKS));
        }
        if self.start_unix_ns.is_none() {
            return Ok((Vec::new(), self.figures));
        }
        let mut out = self.fragment()?;
        if self.init_written {
            let mfra = self
                .muxer
                .mfra_bytes()
                .map_err(|e| MuxFail::Mp4(e.to_string()))?;
            out.extend_from_slice(&mfra);
        }
        Ok((out, self.figures))
    }
}

#[cfg(test)]
mod tests {
    use shiguredo_mp4::demux::{DemuxError, Fmp4FileDemuxer, Input};

    use super::*;
    use crate::codec::{EncoderSettings, H264Encoder};
    use crate::pattern::TestPattern;
    use crate::stamp::Stamp;

    /// `n` pictures of the test pattern, Annex B, the first a keyframe.
    fn pictures(n: u32, w: usize, h: usize) -> Vec<(Vec<u8>, bool)> {
        keyframes_at(n, w, h, &[])
    }

    /// `n` pictures, keyframes at 0 and at `keys`.
    fn keyframes_at(n: u32, w: usize, h: usize, keys: &[u32]) -> Vec<(Vec<u8>, bool)> {
        let mut pattern = TestPattern::new(w, h);
        let mut enc = H264Encoder::new(EncoderSettings::default());
        (0..n)
            .map(|seq| {
                if keys.contains(&seq) {
                    enc.request_keyframe();
                }
                let mut bits = Vec::new();
                let stamp = Stamp {
                    seq,
                    capture_ms: seq * 33,
                };
                let key = enc.encode(pattern.render(stamp), &mut bits).unwrap();
                (bits, key.unwrap())
            })
            .collect()
    }

    fn video(bits: &[u8], key: bool, ts: u64, unix_ns: i64) -> RecSample {
        RecSample {
            kind: MediaKind::Video,
            data: Bytes::copy_from_slice(bits),
            timestamp: ts,
            keyframe: key,
            unix_ns,
        }
    }

    fn sound(ts: u64, unix_ns: i64) -> RecSample {
        RecSample {
            kind: MediaKind::Audio,
            data: Bytes::from_static(&[0xfc, 0xff, 0xfe]),
            timestamp: ts,
            keyframe: true,
            unix_ns,
        }
    }

    /// A sample read back: decode time, duration, size.
    type Row = (u64, u32, usize);

    /// Each track's samples (picture, sound) read back from `file`.
    fn read_back(file: &[u8]) -> (Vec<Row>, Vec<Row>) {
        let mut demuxer = Fmp4FileDemuxer::new();
        demuxer.handle_input(Input {
            position: 0,
            data: file,
        });
        let (mut v, mut a) = (Vec::new(), Vec::new());
        loop {
            match demuxer.next_sample() {
                Ok(Some(s)) => {
                    let row = (s.timestamp, s.duration, s.data_size);
                    match s.track.kind {
                        TrackKind::Video => v.push(row),
                        _ => a.push(row),
                    }
                }
                Ok(None) => break,
                Err(DemuxError::InputRequired(r)) => {
                    let from = usize::try_from(r.position).unwrap().min(file.len());
                    let to = r.size.map_or(file.len(), |n| (from + n).min(file.len()));
                    demuxer.handle_input(Input {
                        position: r.position,
                        data: &file[from..to],
                    });
                }
                Err(e) => panic!("{e:?}"),
            }
        }
        (v, a)
    }

    const MS: i64 = 1_000_000;

    #[test]
    fn a_lost_picture_stretches_the_one_before_and_shifts_nothing_after() {
        let pics = pictures(150, 320, 240);
        let mut m = FileMuxer::new(0, Bytes::from_static(&[0xfc]));
        let mut file = Vec::new();
        for (i, (bits, key)) in pics.iter().enumerate() {
            if i == 10 {
                continue; // lost on the way
            }
            let ts = i as u64 * 3000;
            if let Some(b) = m
                .push(&video(bits, *key, 5_000 + ts, i as i64 * 33 * MS))
                .unwrap()
            {
                file.extend(b);
            }
        }
        let (rest, figures) = m.finish().unwrap();
        file.extend(rest);
        let (v, a) = read_back(&file);
        assert!(a.is_empty());
        assert_eq!(v.len(), 149);
        assert_eq!(figures.video_frames, 149);
        // The last picture is at 149 × 3000 ticks of the file, as it was sent.
        assert_eq!(v[148].0, 149 * 3000);
        assert_eq!(v[9], (9 * 3000, 6000, pics[9].0.len()));
        assert_eq!(v[10].0, 11 * 3000);
        // With no sound the first fragment waits 3 s for it; then a fragment a second.
        assert_eq!(figures.fragments, 3, "{figures:?}");
    }

    #[test]
    fn the_file_starts_at_a_keyframe_with_the_sound_captured_nearest_it() {
        // The first picture comes at 100 ms and is not a keyframe (a viewer joining mid-way),
        // the keyframe at 133 ms; sound every 20 ms from t = 0.
        let pics = keyframes_at(41, 320, 240, &[2, 32]);
        let mut m = FileMuxer::new(0, Bytes::from_static(&[0xfc]));
        let mut file = Vec::new();
        let mut sound_t = 0;
        for (i, (bits, key)) in pics[1..].iter().enumerate() {
            let t = 100 + i as i64 * 33;
            while sound_t <= t {
                let ts = u64::try_from(sound_t).unwrap() * 48;
                assert!(m.push(&sound(ts, sound_t * MS)).unwrap().is_none());
                sound_t += 20;
            }
            assert_eq!(*key, i == 1 || i == 31);
            if let Some(b) = m.push(&video(bits, *key, i as u64 * 2970, t * MS)).unwrap() {
                file.extend(b);
            }
        }
        assert_eq!(m.start_unix_ns(), Some(133 * MS));
        file.extend(m.finish().unwrap().0);
        let (v, a) = read_back(&file);
        assert_eq!(v.len(), 39, "from the keyframe on");
        // The sound frame captured at 140 ms is 7 ms from the picture (120 ms is 13 ms): first.
        assert_eq!(a[0].0, 0);
        assert_eq!(a.len() as i64, (sound_t - 140) / 20);
    }

    #[test]
    fn sound_that_begins_late_is_led_in_with_silence() {
        let pics = pictures(40, 320, 240);
        let mut m = FileMuxer::new(0, Bytes::from_static(&[0xfc]));
        let mut file = Vec::new();
        for (i, (bits, key)) in pics.iter().enumerate() {
            let t = i as i64 * 33;
            // Sound starts with the picture captured at 231 ms.
            if t >= 200 {
                let ts = u64::try_from(t).unwrap() * 48;
                m.push(&sound(ts, t * MS)).unwrap();
            }
            if let Some(b) = m.push(&video(bits, *key, i as u64 * 2970, t * MS)).unwrap() {
                file.extend(b);
            }
        }
        file.extend(m.finish().unwrap().0);
        let (_, a) = read_back(&file);
        // 231 ms late: twelve silent frames first, so the real sound begins at 240 ms of the
        // file, within half a frame of when it was captured.
        let silent: Vec<_> = a.iter().take_while(|s| s.2 == 1).collect();
        assert_eq!(silent.len(), 12, "{a:?}");
        assert_eq!(a[12].0, 12 * 960);
    }

    #[test]
    fn a_new_picture_size_needs_a_new_file() {
        let small = pictures(2, 320, 240);
        let big = pictures(1, 640, 360);
        let mut m = FileMuxer::new(0, Bytes::new());
        m.push(&video(&small[0].0, true, 0, 0)).unwrap();
        m.push(&video(&small[1].0, false, 3000, 33 * MS)).unwrap();
        assert!(matches!(
            m.push(&video(&big[0].0, true, 6000, 66 * MS)),
            Err(MuxFail::NewParameters)
        ));
        assert!(matches!(
            m.push(&video(&small[0].0, true, 0, 99 * MS)),
            Err(MuxFail::Discontinuity("picture"))
        ));
        assert!(matches!(
            m.push(&video(b"not h264", true, 9000, 99 * MS)),
            Err(MuxFail::BadPicture(_))
        ));
    }
}
