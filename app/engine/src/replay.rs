//! Recordings as a source (`--source mp4:PATH`): an MP4 or fragmented MP4 with H.264 (and
//! Opus) sent to viewers as if it were the camera, looped. H.264 that viewers can take as it is
//! (Constrained Baseline, what WebRTC sends and what Omnicast records) goes out **without
//! re-encoding**, each access unit as recorded, at its recorded time ([`Replay`]); anything else
//! is decoded and encoded again like a camera's pictures ([`Mp4Pictures`]).
//!
//! [`Mp4Reader`] reads samples with shiguredo_mp4's demuxers, asking the file only for the
//! ranges they need, so a long recording is never read into memory whole. A recording cut off
//! by a crash plays up to its last whole fragment.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use shiguredo_mp4::TrackKind;
use shiguredo_mp4::bitstream::h264::{LengthSize, length_prefixed_to_annexb};
use shiguredo_mp4::boxes::SampleEntry;
use shiguredo_mp4::demux::{
    DemuxError, Fmp4FileDemuxer, Input, Mp4FileDemuxer, Mp4FileKind, Mp4FileKindDetector,
    RequiredInput,
};

use crate::audio::FRAME_SAMPLES;
use crate::capture::{CameraFrame, CaptureError, VideoInput};
use crate::capture::{file_error as capture_error, file_name};
use crate::codec::H264Decoder;
use crate::figures::VideoFigures;
use crate::frame::I420;
use crate::media::{EncodedFrame, KeyframeRequest, TrackId, TrackSink};
use crate::record::fmp4::{AUDIO_TIMESCALE, VIDEO_TIMESCALE};
use crate::worker::Worker;

/// The picture's and the sound's RTP clocks (the same as a recording's).
const VIDEO_CLOCK: u64 = VIDEO_TIMESCALE as u64;
const AUDIO_CLOCK: u64 = AUDIO_TIMESCALE as u64;
/// One Opus frame (20 ms).
const OPUS_FRAME: u64 = FRAME_SAMPLES as u64;
/// The most one box or range read at once (a fragment, `moov`): larger is not a recording.
const MAX_READ: u64 = 256 * 1024 * 1024;

/// Why a recording cannot be replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
}

fn file_error(path: &Path, message: impl std::fmt::Display) -> ReplayError {
    ReplayError::File {
        path: path.to_owned(),
        message: message.to_string(),
    }
}

/// A sample read from a recording, its data with it.
#[derive(Debug, Clone)]
pub struct FileSample {
    pub kind: TrackKind,
    pub timescale: u32,
    /// Decode time in `timescale` units, from the file's start.
    pub timestamp: u64,
    pub duration: u32,
    pub keyframe: bool,
    /// As stored: length-prefixed NAL units (H.264) or one Opus packet.
    pub data: Vec<u8>,
}

enum Demux {
    Mp4(Box<Mp4FileDemuxer>),
    Fmp4(Box<Fmp4FileDemuxer>),
}

/// What a recording holds, found by reading its start.
#[derive(Debug, Clone, PartialEq)]
pub struct Mp4Info {
    pub width: u16,
    pub height: u16,
    /// H.264 profile_idc and constraint flags, as `42e01f` is written.
    pub profile: String,
    /// Viewers can take its H.264 as it is: Constrained Baseline.
    pub sendable_as_is: bool,
    /// It has an Opus track (sent with the picture when replayed as recorded).
    pub opus: bool,
}

/// Samples of an MP4 or fragmented MP4, in file order, read as the demuxer asks.
pub struct Mp4Reader {
    path: PathBuf,
    file: File,
    len: u64,
    demux: Demux,
    buf: Vec<u8>,
    /// The H.264 sample entry's SPS and PPS (Annex B), and its NAL length size.
    parameters: Vec<u8>,
    length_size: LengthSize,
    last_request: Option<RequiredInput>,
    /// The file ended inside a fragment (a recording cut off).
    pub truncated: bool,
    /// What the sample entries seen so far say.
    video: Option<Mp4Info>,
    /// The sound track is Opus (`Some(false)`: another codec, not sent).
    audio_opus: Option<bool>,
}

impl Mp4Reader {
    pub fn open(path: &Path) -> Result<Self, ReplayError> {
        let mut file = File::open(path).map_err(|e| file_error(path, e))?;
        let len = file.metadata().map_err(|e| file_error(path, e))?.len();
        let mut buf = Vec::new();
        let mut detector = Mp4FileKindDetector::new();
        let mut reads = 0;
        let kind = loop {
            reads += 1;
            if reads > 64 {
                return Err(file_error(
                    path,
                    "not an MP4 file (no moov box near its start)",
                ));
            }
            match detector.file_kind() {
                Ok(Some(kind)) => break kind,
                Ok(None) => {}
                Err(e) => return Err(file_error(path, format!("not an MP4 file: {e}"))),
            }
            let Some(r) = detector.required_input() else {
                return Err(file_error(path, "not an MP4 file"));
            };
            let n = read_range(&mut file, len, r, &mut buf).map_err(|e| file_error(path, e))?;
            if n == 0 {
                return Err(file_error(path, "not an MP4 file (it ends too soon)"));
            }
            detector.handle_input(Input {
                position: r.position,
                data: &buf,
            });
        };
        let demux = match kind {
            Mp4FileKind::Mp4 => Demux::Mp4(Box::new(Mp4FileDemuxer::new())),
            Mp4FileKind::FragmentedMp4 => Demux::Fmp4(Box::new(Fmp4FileDemuxer::new())),
        };
        Ok(Self {
            path: path.to_owned(),
            file,
            len,
            demux,
            buf,
            parameters: Vec::new(),
            length_size: LengthSize::FourBytes,
            last_request: None,
            truncated: false,
            video: None,
            audio_opus: None,
        })
    }

    /// The next sample, or `None` at the end (or where a cut-off file stops making sense).
    pub fn next_sample(&mut self) -> Result<Option<FileSample>, ReplayError> {
        loop {
            let next = match &mut self.demux {
                Demux::Mp4(d) => d.next_sample().map(|s| s.map(|s| owned(&s))),
                Demux::Fmp4(d) => d.next_sample().map(|s| s.map(|s| owned(&s))),
            };
            let request = match next {
                Ok(Some((mut sample, entry, offset, size))) => {
                    if let Some(entry) = entry {
                        self.learn(&entry)?;
                    }
                    sample.data = self.read_data(offset, size)?;
                    return Ok(Some(sample));
                }
                Ok(None) => return Ok(None),
                Err(DemuxError::InputRequired(r)) => r,
                Err(e) if self.truncated_at_end() => {
                    tracing::debug!("{}: {e}", self.path.display());
                    self.truncated = true;
                    return Ok(None);
                }
                Err(e) => return Err(file_error(&self.path, format!("not readable: {e}"))),
            };
            if self.last_request == Some(request) {
                // Asked again for what could not be given: the file stops mid-box.
                self.truncated = true;
                return Ok(None);
            }
            self.last_request = Some(request);
            let n = read_range(&mut self.file, self.len, request, &mut self.buf)
                .map_err(|e| file_error(&self.path, e))?;
            if n == 0 && request.position >= self.len {
                // The end, at a box boundary.
                return Ok(None);
            }
            let input = Input {
                position: request.position,
                data: &self.buf,
            };
            match &mut self.demux {
                Demux::Mp4(d) => d.handle_input(input),
                Demux::Fmp4(d) => d.handle_input(input),
            }
        }
    }

    /// An error near the end of the file is a recording cut off, not a broken file.
    fn truncated_at_end(&self) -> bool {
        self.last_request
            .is_some_and(|r| r.size.is_none_or(|n| r.position + n as u64 > self.len))
    }

    fn learn(&mut self, entry: &SampleEntry) -> Result<(), ReplayError> {
        match entry {
            SampleEntry::Avc1(avc1) => {
                let c = &avc1.avcc_box;
                self.length_size = match c.length_size_minus_one.get() {
                    0 => LengthSize::OneByte,
                    1 => LengthSize::TwoBytes,
                    _ => LengthSize::FourBytes,
                };
                self.parameters.clear();
                for nal in c.sps_list.iter().chain(&c.pps_list) {
                    self.parameters.extend_from_slice(&[0, 0, 0, 1]);
                    self.parameters.extend_from_slice(nal);
                }
                let (profile, iop) = (c.avc_profile_indication, c.profile_compatibility);
                self.video = Some(Mp4Info {
                    width: avc1.visual.width,
                    height: avc1.visual.height,
                    profile: format!("{profile:02x}{iop:02x}{:02x}", c.avc_level_indication),
                    // Constrained Baseline: Baseline with constraint_set1_flag.
                    sendable_as_is: profile == 66 && iop & 0x40 != 0,
                    opus: false,
                });
            }
            SampleEntry::Opus(_) => self.audio_opus = Some(true),
            SampleEntry::Mp4a(_) => {
                if self.audio_opus.is_none() {
                    tracing::warn!(
                        "{}: its sound is AAC, which WebRTC does not carry: it is not sent",
                        self.path.display()
                    );
                }
                self.audio_opus = Some(false);
            }
            other => {
                return Err(file_error(
                    &self.path,
                    format!(
                        "its {:?} track cannot be replayed (H.264 and Opus can)",
                        shiguredo_mp4::BaseBox::box_type(other)
                    ),
                ));
            }
        }
        Ok(())
    }

    fn read_data(&mut self, offset: u64, size: usize) -> Result<Vec<u8>, ReplayError> {
        if offset + size as u64 > self.len || size as u64 > MAX_READ {
            return Err(file_error(
                &self.path,
                "a sample lies past the end of the file",
            ));
        }
        let mut data = vec![0; size];
        self.file
            .seek(SeekFrom::Start(offset))
            .and_then(|_| self.file.read_exact(&mut data))
            .map_err(|e| file_error(&self.path, e))?;
        Ok(data)
    }

    /// A picture sample as Annex B (what the encoder would have made), its SPS and PPS put
    /// before a keyframe that does not carry them (files made elsewhere keep them only in the
    /// sample entry; Omnicast's recordings carry them, so their bytes go out unchanged).
    pub fn annex_b(&self, sample: &FileSample) -> Result<Vec<u8>, ReplayError> {
        let body = length_prefixed_to_annexb(&sample.data, self.length_size)
            .map_err(|e| file_error(&self.path, format!("a picture that is not H.264: {e}")))?;
        let has_sps = annex_b_nal_types(&body).any(|t| t == 7);
        if sample.keyframe && !has_sps && !self.parameters.is_empty() {
            let mut out = self.parameters.clone();
            out.extend_from_slice(&body);
            return Ok(out);
        }
        Ok(body)
    }
}

/// The NAL unit types of an Annex B access unit.
fn annex_b_nal_types(au: &[u8]) -> impl Iterator<Item = u8> + '_ {
    au.windows(4)
        .enumerate()
        .filter_map(move |(i, w)| (w[..3] == [0, 0, 1]).then(|| au.get(i + 3).map(|b| b & 0x1f))?)
}

/// A demuxed sample with its new sample entry, if any, and where its data is.
fn owned(s: &shiguredo_mp4::demux::Sample<'_>) -> (FileSample, Option<SampleEntry>, u64, usize) {
    (
        FileSample {
            kind: s.track.kind,
            timescale: s.track.timescale.get(),
            timestamp: s.timestamp,
            duration: s.duration,
            keyframe: s.keyframe,
            data: Vec::new(),
        },
        s.sample_entry.cloned(),
        s.data_offset,
        s.data_size,
    )
}

/// Reads what `r` asks for (to the end of the file when it gives no size) into `buf`.
fn read_range(
    file: &mut File,
    len: u64,
    r: RequiredInput,
    buf: &mut Vec<u8>,
) -> std::io::Result<usize> {
    let end = r
        .size
        .map_or(len, |n| r.position.saturating_add(n as u64))
        .min(len);
    let n = end.saturating_sub(r.position).min(MAX_READ);
    buf.resize(usize::try_from(n).unwrap_or(0), 0);
    if n > 0 {
        file.seek(SeekFrom::Start(r.position))?;
        file.read_exact(buf)?;
    }
    Ok(buf.len())
}

/// Reads a recording's start: its picture's size and profile, whether it has Opus.
pub fn probe(path: &Path) -> Result<Mp4Info, ReplayError> {
    let mut reader = Mp4Reader::open(path)?;
    // Each track's sample entry comes with its first sample, within the first fragment.
    for _ in 0..1_000 {
        if reader.video.is_some() && reader.audio_opus.is_some() {
            break;
        }
        if reader.next_sample()?.is_none() {
            break;
        }
    }
    let mut info = reader
        .video
        .clone()
        .ok_or_else(|| file_error(path, "no H.264 picture in it"))?;
    info.opus = reader.audio_opus == Some(true);
    Ok(info)
}

/// A recording sent as recorded, looped, on the `omnicast-replay` thread: each sample at its
/// time in the file, the picture's to `video` and the sound's (Opus) to `audio`. Keyframe
/// requests cannot be met: a viewer joining mid-way waits for the file's next keyframe.
pub struct Replay {
    worker: Worker,
}

/// The tracks a replay feeds.
pub struct ReplaySinks {
    pub video: (TrackId, Vec<Box<dyn TrackSink>>),
    pub audio: Option<(TrackId, Vec<Box<dyn TrackSink>>)>,
}

impl Replay {
    pub fn start(
        path: PathBuf,
        sinks: ReplaySinks,
        keyframe: KeyframeRequest,
        figures: Arc<VideoFigures>,
    ) -> std::io::Result<Self> {
        let worker = Worker::spawn("omnicast-replay", move |stop| {
            replay_loop(&path, sinks, &keyframe, &figures, stop);
        })?;
        Ok(Self { worker })
    }

    /// Stops the thread and waits for it (off the async threads).
    pub async fn stop(self) {
        self.worker.stop().await;
    }
}

/// How far ahead a replay reads: a file holds each fragment's pictures before its sound, and
/// its first fragment may hold three seconds.
const LOOKAHEAD_S: f64 = 4.0;

/// A sample and its time, ordered by time (then by file order).
struct Timed {
    at_s: f64,
    seq: u64,
    sample: FileSample,
}

impl PartialEq for Timed {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}
impl Eq for Timed {}
impl PartialOrd for Timed {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Timed {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.at_s
            .total_cmp(&other.at_s)
            .then(self.seq.cmp(&other.seq))
    }
}

/// A recording's samples in time order, both tracks interleaved as they were captured.
struct InTimeOrder {
    heap: std::collections::BinaryHeap<std::cmp::Reverse<Timed>>,
    seq: u64,
    read_to_s: f64,
    done: bool,
}

impl InTimeOrder {
    fn new() -> Self {
        Self {
            heap: std::collections::BinaryHeap::new(),
            seq: 0,
            read_to_s: 0.0,
            done: false,
        }
    }

    fn next(&mut self, reader: &mut Mp4Reader) -> Result<Option<FileSample>, ReplayError> {
        loop {
            let earliest = self.heap.peek().map(|t| t.0.at_s);
            if self.done || earliest.is_some_and(|e| self.read_to_s >= e + LOOKAHEAD_S) {
                break;
            }
            match reader.next_sample()? {
                Some(sample) => {
                    let at_s = sample.timestamp as f64 / f64::from(sample.timescale.max(1));
                    self.read_to_s = self.read_to_s.max(at_s);
                    self.seq += 1;
                    self.heap.push(std::cmp::Reverse(Timed {
                        at_s,
                        seq: self.seq,
                        sample,
                    }));
                }
                None => self.done = true,
            }
        }
        Ok(self.heap.pop().map(|t| t.0.sample))
    }
}

/// Sleeps until `due`, waking to check `stop` at least every 50 ms; false if stopped.
fn wait_until(due: Instant, stop: &AtomicBool) -> bool {
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let now = Instant::now();
        if now >= due {
            return true;
        }
        std::thread::sleep((due - now).min(Duration::from_millis(50)));
    }
}

fn replay_loop(
    path: &Path,
    mut sinks: ReplaySinks,
    keyframe: &KeyframeRequest,
    figures: &VideoFigures,
    stop: &AtomicBool,
) {
    let name = file_name(path);
    let say = |s: String| *figures.source.lock() = s;
    figures.sent_as_recorded.store(true, Ordering::Relaxed);
    // Media time continues across loops: each pass starts where the last one ended.
    let (mut video_base, mut audio_base) = (0u64, 0u64);
    let mut said_cut = false;
    while !stop.load(Ordering::Relaxed) {
        let mut reader = match Mp4Reader::open(path) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("{e}; trying again every second");
                say(format!("cannot replay: {e}"));
                wait_until(Instant::now() + Duration::from_secs(1), stop);
                continue;
            }
        };
        say(format!("recording {name}, sent as recorded"));
        let start = Instant::now();
        let mut pass_end_s = 0f64;
        let mut sent = 0u64;
        let mut samples = InTimeOrder::new();
        loop {
            let sample = match samples.next(&mut reader) {
                Ok(Some(s)) => s,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!("{e}: starting the recording over");
                    break;
                }
            };
            let timescale = u64::from(sample.timescale.max(1));
            let at_s = sample.timestamp as f64 / timescale as f64;
            pass_end_s = pass_end_s
                .max((sample.timestamp + u64::from(sample.duration)) as f64 / timescale as f64);
            if !wait_until(start + Duration::from_secs_f64(at_s), stop) {
                return;
            }
            // Requests cannot be met without re-encoding; the file's next keyframe will do.
            keyframe.take();
            let (id, targets, data, timestamp) = match sample.kind {
                TrackKind::Video => {
                    let data = match reader.annex_b(&sample) {
                        Ok(d) => d,
                        Err(e) => {
                            tracing::warn!("{e}");
                            continue;
                        }
                    };
                    figures.frames_encoded.fetch_add(1, Ordering::Relaxed);
                    if sample.keyframe {
                        figures.keyframes.fetch_add(1, Ordering::Relaxed);
                    }
                    let ts = video_base + sample.timestamp * VIDEO_CLOCK / timescale;
                    (sinks.video.0, &mut sinks.video.1, data, ts)
                }
                TrackKind::Audio => match &mut sinks.audio {
                    Some((id, targets)) if reader.audio_opus == Some(true) => {
                        let ts = audio_base + sample.timestamp * AUDIO_CLOCK / timescale;
                        (*id, targets, std::mem::take(&mut { sample.data }), ts)
                    }
                    _ => continue,
                },
                _ => continue,
            };
            sent += 1;
            let frame = EncodedFrame {
                track: id,
                data: Bytes::from(data),
                timestamp,
                keyframe: sample.keyframe || sample.kind == TrackKind::Audio,
                at: Instant::now(),
            };
            for sink in targets.iter_mut() {
                sink.accept(&frame);
            }
        }
        if reader.truncated && !said_cut {
            said_cut = true;
            tracing::info!(
                "{name} was cut off (a recording killed mid-way): replaying what it holds"
            );
        }
        if sent == 0 {
            say(format!("cannot replay {name}: it holds no samples"));
            wait_until(Instant::now() + Duration::from_secs(1), stop);
            continue;
        }
        // The pass lasts until its last sample has played out.
        if !wait_until(start + Duration::from_secs_f64(pass_end_s), stop) {
            return;
        }
        video_base += (pass_end_s * VIDEO_CLOCK as f64).round() as u64;
        // Sound stays on its 20 ms grid across the loop.
        audio_base +=
            (pass_end_s * AUDIO_CLOCK as f64 / OPUS_FRAME as f64).round() as u64 * OPUS_FRAME;
    }
}

/// A recording whose H.264 viewers cannot take as it is, decoded to pictures for the encoder
/// like a camera's, at their recorded times, looped. Its sound is not sent.
pub struct Mp4Pictures {
    name: String,
    path: PathBuf,
    reader: Mp4Reader,
    decoder: H264Decoder,
    start: Option<Instant>,
    /// Where this pass's times start, after the passes before.
    base: Duration,
    pass_end: Duration,
    /// Pictures in a row that did not decode.
    failing: u32,
}

/// Pictures in a row that may fail to decode before the file is given up on.
const MAX_UNDECODABLE: u32 = 90;

/// A replay problem as a capture error (the capture thread says and retries it), its file
/// named once.
impl From<ReplayError> for CaptureError {
    fn from(e: ReplayError) -> Self {
        let ReplayError::File { path, message } = e;
        capture_error(&path, message)
    }
}

impl Mp4Pictures {
    pub fn open(path: &Path) -> Result<Self, CaptureError> {
        Ok(Self {
            name: file_name(path),
            path: path.to_owned(),
            reader: Mp4Reader::open(path)?,
            decoder: H264Decoder::new().map_err(|e| capture_error(path, e))?,
            start: None,
            base: Duration::ZERO,
            pass_end: Duration::ZERO,
            failing: 0,
        })
    }
}

impl VideoInput for Mp4Pictures {
    fn name(&self) -> &str {
        &self.name
    }

    fn label(&self) -> String {
        format!(
            "recording {} (re-encoded: its H.264 is not Constrained Baseline)",
            self.name
        )
    }

    fn read(&mut self, reuse: Option<I420>) -> Result<CameraFrame, CaptureError> {
        let path = self.path.clone();
        let mut restarts = 0;
        loop {
            let Some(sample) = self.reader.next_sample()? else {
                restarts += 1;
                if restarts > 1 {
                    return Err(capture_error(&self.path, "no picture decodes"));
                }
                self.reader = Mp4Reader::open(&self.path)?;
                self.base += self.pass_end;
                self.pass_end = Duration::ZERO;
                continue;
            };
            if sample.kind != TrackKind::Video {
                continue;
            }
            let scale = f64::from(sample.timescale.max(1));
            let at = Duration::from_secs_f64(sample.timestamp as f64 / scale);
            self.pass_end = self.pass_end.max(Duration::from_secs_f64(
                (sample.timestamp + u64::from(sample.duration)) as f64 / scale,
            ));
            let au = self.reader.annex_b(&sample)?;
            let mut image = reuse.clone().unwrap_or_else(|| I420::new(16, 16));
            match self.decoder.decode_i420(&au, &mut image) {
                Ok(true) => self.failing = 0,
                Ok(false) => continue,
                // A picture that does not decode is skipped; many in a row end the source
                // (said, and retried, by the capture thread).
                Err(e) => {
                    self.failing += 1;
                    if self.failing == 1 {
                        tracing::warn!(
                            "{}: a picture does not decode ({e}); skipped",
                            path.display()
                        );
                    }
                    if self.failing > MAX_UNDECODABLE {
                        return Err(capture_error(&path, e));
                    }
                    continue;
                }
            }
            let start = *self.start.get_or_insert_with(Instant::now);
            let due = start + self.base + at;
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            return Ok(CameraFrame {
                image,
                captured: Instant::now(),
            });
        }
    }
}
