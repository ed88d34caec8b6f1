//! The broadcaster's video track, on the `omnicast-media` thread: a camera (read on its own
//! capture thread) or the test pattern, a preview tap, the encoder, and each encoded frame
//! handed to the track's sinks once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::capture::{
    CAMERA_RETRY, CAMERA_STALL, CameraFeed, CameraSource, FeedState, OpenInput, SourceSpec,
    VideoInput,
};
use crate::codec::{EncoderSettings, H264Encoder};
use crate::figures::VideoFigures;
use crate::file_source::{ImageSource, Y4mSource};
use crate::frame::{FrameSlot, I420, Nv12, VideoFrame};
use crate::media::{EncodedFrame, KeyframeRequest, TrackSink, TrackSpec};
use crate::pattern::TestPattern;
use crate::replay::Mp4Pictures;
use crate::stamp::Stamp;
use crate::worker::Worker;

/// What the video track sends.
#[derive(Debug, Clone)]
pub struct VideoSettings {
    pub source: SourceSpec,
    pub width: u32,
    pub height: u32,
    pub encoder: EncoderSettings,
}

/// Where a preview of what goes out is shown, and whether it is shown now (a window on the
/// broadcaster screen). Kept by the session, so it outlasts each attempt.
#[derive(Clone)]
pub struct PreviewTap {
    pub slot: Arc<FrameSlot>,
    on: Arc<AtomicBool>,
}

impl PreviewTap {
    /// Off until [`set`](Self::set).
    pub fn new(slot: Arc<FrameSlot>) -> Self {
        Self {
            slot,
            on: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn set(&self, on: bool) {
        self.on.store(on, Ordering::Relaxed);
    }

    fn is_on(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }
}

/// The preview is at most this big (a thumbnail of what goes out).
const PREVIEW_MAX: (usize, usize) = (640, 640);
const PREVIEW_INTERVAL: Duration = Duration::from_millis(66);

/// The running video track.
pub struct VideoTrack {
    figures: Arc<VideoFigures>,
    worker: Worker,
}

impl VideoTrack {
    /// Starts capturing and encoding for `track`; every encoded frame goes to each of `sinks`.
    /// The encoder makes a keyframe when `keyframe` is requested. While `preview` is on, its
    /// slot gets a small copy of what goes out, up to 15 times a second.
    pub fn start(
        track: TrackSpec,
        settings: &VideoSettings,
        sinks: Vec<Box<dyn TrackSink>>,
        keyframe: KeyframeRequest,
        preview: Option<PreviewTap>,
    ) -> std::io::Result<Self> {
        let (w, h) = (settings.width as usize, settings.height as usize);
        let fps = settings.encoder.fps;
        let camera = start_camera(&settings.source, settings.width, settings.height, fps)?;
        let encoder = H264Encoder::new(settings.encoder);
        let figures = Arc::new(VideoFigures::default());
        let links = Links {
            track,
            sinks,
            keyframe,
            figures: figures.clone(),
            preview,
        };
        let worker = Worker::spawn("omnicast-media", move |stop| {
            media_loop(camera, TestPattern::new(w, h), encoder, fps, links, stop);
        })?;
        Ok(Self { figures, worker })
    }

    pub fn figures(&self) -> &VideoFigures {
        &self.figures
    }

    /// Stops the thread and waits for it (off the async threads).
    pub async fn stop(self) {
        self.worker.stop().await;
    }
}

/// Starts reading the configured camera or file, if any, on the capture thread; it says why
/// when there is none.
fn start_camera(
    spec: &SourceSpec,
    width: u32,
    height: u32,
    fps: f32,
) -> std::io::Result<Option<CameraFeed>> {
    let open: OpenInput = match spec.clone() {
        SourceSpec::TestPattern => return Ok(None),
        SourceSpec::Camera(selector) => Box::new(move || {
            CameraSource::open(&selector, width, height, fps as u32)
                .map(|c| Box::new(c) as Box<dyn VideoInput>)
        }),
        SourceSpec::Image(path) => Box::new(move || {
            ImageSource::open(&path, width, height, fps).map(|c| Box::new(c) as Box<dyn VideoInput>)
        }),
        SourceSpec::Y4m(path) => Box::new(move || {
            Y4mSource::open(&path, fps).map(|c| Box::new(c) as Box<dyn VideoInput>)
        }),
        // Reaches here only when it must be re-encoded (else it is replayed as recorded).
        SourceSpec::Mp4(path) => {
            Box::new(move || Mp4Pictures::open(&path).map(|c| Box::new(c) as Box<dyn VideoInput>))
        }
    };
    CameraFeed::start(open, CAMERA_RETRY).map(Some)
}

/// Lets frames through at most `fps` a second, whatever rate a camera delivers at; a frame up
/// to a quarter of an interval early still counts as on time (camera clocks jitter).
struct Pacer {
    interval: Duration,
    next: Option<Instant>,
}

impl Pacer {
    fn new(interval: Duration) -> Self {
        Self {
            interval,
            next: None,
        }
    }

    fn admit(&mut self, at: Instant) -> bool {
        let slack = self.interval / 4;
        if self.next.is_some_and(|next| at + slack < next) {
            return false;
        }
        let on_schedule = self.next.map(|n| n + self.interval);
        let from_now = at + self.interval - slack;
        self.next = Some(on_schedule.map_or(from_now, |n| n.max(from_now)));
        true
    }
}

/// What the media thread works with.
struct Links {
    track: TrackSpec,
    sinks: Vec<Box<dyn TrackSink>>,
    keyframe: KeyframeRequest,
    figures: Arc<VideoFigures>,
    preview: Option<PreviewTap>,
}

/// Encodes until `stop`: the camera's frames as they arrive while it delivers, else the test
/// pattern on a clock.
fn media_loop(
    camera: Option<CameraFeed>,
    mut pattern: TestPattern,
    mut encoder: H264Encoder,
    fps: f32,
    links: Links,
    stop: &AtomicBool,
) {
    let Links {
        track,
        mut sinks,
        keyframe,
        figures,
        preview: preview_tap,
    } = links;
    let interval = Duration::from_secs_f32(1.0 / fps.max(1.0));
    let clock_rate = f64::from(track.codec.clock_rate);
    let mut pacer = Pacer::new(interval);
    let mut bits = Vec::new();
    // Stamped (test pattern) frames only, so a viewer counts no losses across a camera spell.
    let mut seq = 0u32;
    let mut next = Instant::now();
    let mut late_ticks = 0u64;
    let mut last_state = None;
    let mut first_capture: Option<Instant> = None;
    let mut last_timestamp: Option<u64> = None;
    let mut failing: Option<String> = None;
    let mut preview = Preview::default();
    while !stop.load(Ordering::Relaxed) {
        let state = camera
            .as_ref()
            .map_or(FeedState::NoCamera, CameraFeed::state);
        let state_changed = last_state != Some(state);
        if state_changed {
            match state {
                FeedState::Stalled => tracing::warn!(
                    "the camera has sent nothing for {CAMERA_STALL:?}: sending the test pattern until it does"
                ),
                FeedState::Live if last_state == Some(FeedState::Stalled) => {
                    tracing::info!("the camera delivers again");
                }
                _ => {}
            }
            // The pattern's clock starts afresh; missed ticks were not its fault.
            (last_state, next) = (Some(state), Instant::now());
        }
        // Said again when the state changes, and while nothing is open (why can change without
        // the state changing: the first failure); not on every frame of a live input.
        let recheck = state_changed || state == FeedState::NoCamera;
        let source = match (&camera, state) {
            _ if !recheck => None,
            (None, _) => Some("test pattern".to_owned()),
            (Some(feed), FeedState::Live) => Some(feed.input_label().unwrap_or_default()),
            (Some(feed), FeedState::NoCamera) => Some(match feed.last_error() {
                Some(e) => format!("test pattern: {e} (retrying every 5 s)"),
                None => "test pattern: no camera works (retrying every 5 s)".to_owned(),
            }),
            (Some(_), FeedState::Stalled) => {
                Some("test pattern: the camera sends nothing".to_owned())
            }
        };
        if let Some(source) = source {
            let mut said = figures.source.lock();
            if *said != source {
                *said = source;
            }
        }
        let live = state == FeedState::Live;
        let from_camera = match &camera {
            Some(feed) if live => feed.next_frame(interval.max(Duration::from_millis(100))),
            _ => None,
        };
        let captured;
        let mut camera_frame = None;
        let (frame, stamped) = match (from_camera, &camera) {
            (Some(f), Some(feed)) => {
                if !pacer.admit(f.captured) {
                    feed.recycle(f.image);
                    continue;
                }
                captured = f.captured;
                (&*camera_frame.insert(f.image), false)
            }
            // The camera's next frame is not in yet.
            _ if live => continue,
            _ => {
                let now = Instant::now();
                if now < next {
                    std::thread::sleep(next - now);
                } else if now > next + interval {
                    // Behind (slow encoder or a stall): drop the stale ticks, never queue them.
                    late_ticks += ((now - next).as_secs_f64() / interval.as_secs_f64()) as u64;
                    next = now;
                }
                next += interval;
                captured = Instant::now();
                (pattern.render(Stamp::now(seq)), true)
            }
        };
        if keyframe.take() {
            encoder.request_keyframe();
        }
        if let Some(tap) = &preview_tap
            && tap.is_on()
        {
            preview.offer(frame, &tap.slot);
        }
        let started = Instant::now();
        let result = encoder.encode(frame, &mut bits);
        let encode_us = started.elapsed().as_micros() as u64;
        if let (Some(image), Some(feed)) = (camera_frame.take(), &camera) {
            feed.recycle(image);
        }
        figures.frames_dropped_late.store(
            late_ticks + camera.as_ref().map_or(0, CameraFeed::overwritten),
            Ordering::Relaxed,
        );
        let key = match result {
            Ok(Some(key)) => key,
            Ok(None) => continue, // rate control skipped it; the stamp's seq is reused
            Err(e) => {
                // Said once, not thirty times a second.
                let e = e.to_string();
                if failing.as_ref() != Some(&e) {
                    tracing::error!("{e}");
                    failing = Some(e);
                }
                continue;
            }
        };
        failing = None;
        figures
            .encode_us_total
            .fetch_add(encode_us, Ordering::Relaxed);
        figures.frames_encoded.fetch_add(1, Ordering::Relaxed);
        if let Some(t) = encoder.threads() {
            figures
                .encoder_threads
                .store(u64::from(t), Ordering::Relaxed);
        }
        if key {
            figures.keyframes.fetch_add(1, Ordering::Relaxed);
        }
        if stamped {
            seq = seq.wrapping_add(1);
        }
        // Media time follows capture time, never backwards (a camera frame may have been
        // captured just before the pattern frame that covered for it).
        let since = captured.saturating_duration_since(*first_capture.get_or_insert(captured));
        let timestamp =
            ((since.as_secs_f64() * clock_rate) as u64).max(last_timestamp.map_or(0, |t| t + 1));
        last_timestamp = Some(timestamp);
        let encoded = EncodedFrame {
            track: track.id,
            data: Bytes::copy_from_slice(&bits),
            timestamp,
            keyframe: key,
            at: captured,
        };
        for sink in &mut sinks {
            sink.accept(&encoded);
        }
    }
}

/// Small copies of outgoing frames for a local preview, at most every [`PREVIEW_INTERVAL`],
/// reusing the buffer of a copy nobody took or one the display handed back.
#[derive(Default)]
struct Preview {
    last: Option<Instant>,
    spare: Option<VideoFrame>,
    index: u64,
}

impl Preview {
    fn offer(&mut self, frame: &I420, slot: &FrameSlot) {
        if self.last.is_some_and(|t| t.elapsed() < PREVIEW_INTERVAL) {
            return;
        }
        self.last = Some(Instant::now());
        let mut copy = self
            .spare
            .take()
            .or_else(|| slot.take_spare())
            .unwrap_or_else(|| VideoFrame {
                picture: Nv12::default(),
                stamp: None,
                index: 0,
            });
        copy.picture
            .downscale_from(frame, PREVIEW_MAX.0, PREVIEW_MAX.1);
        self.index += 1;
        copy.index = self.index;
        self.spare = slot.put(copy);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::fake::{FakeCamera, opener};
    use crate::codec::H264Decoder;
    use crate::media::{H264, TrackId};
    use std::sync::atomic::AtomicU64;

    #[test]
    fn the_pacer_holds_a_fast_camera_to_the_frame_rate_and_lets_a_slow_one_through() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        // 60 fps camera, 30 fps wanted: every other frame.
        let mut p = Pacer::new(Duration::from_millis(33));
        let admitted = (0..60).filter(|i| p.admit(ms(i * 50 / 3))).count();
        assert!((29..=31).contains(&admitted), "{admitted} of 60");
        // 30 fps with ±5 ms of jitter: all of them.
        let mut p = Pacer::new(Duration::from_millis(33));
        let jitter = [0, 5, -5, 3, -4, 5, 0, -5];
        let admitted = (0..80)
            .filter(|i| p.admit(ms((100 + i * 33 + jitter[*i as usize % 8]) as u64)))
            .count();
        assert_eq!(admitted, 80);
        // A camera slower than asked: all of them, and no catching up after a stall.
        let mut p = Pacer::new(Duration::from_millis(33));
        assert!((0..20).all(|i| p.admit(ms(i * 50))));
        assert!(p.admit(ms(5000)));
        assert!(
            !p.admit(ms(5010)),
            "a burst after a stall is not let through"
        );
    }

    /// A sink that hands frames to the test.
    struct Collect(std::sync::mpsc::SyncSender<EncodedFrame>);

    impl TrackSink for Collect {
        fn accept(&mut self, frame: &EncodedFrame) {
            let _ = self.0.try_send(frame.clone());
        }
    }

    /// Runs the media thread with `camera` until `enough` holds for the decoded stamps, or
    /// 30 s; returns the stamp sequence numbers in the order they were decoded and how many
    /// frames did not decode.
    fn run_media(camera: CameraFeed, enough: impl Fn(&[u32]) -> bool) -> (Vec<u32>, u64) {
        let (tx, rx) = std::sync::mpsc::sync_channel(64);
        let stop = Arc::new(AtomicBool::new(false));
        let links = Links {
            track: TrackSpec {
                id: TrackId(0),
                codec: &H264,
            },
            sinks: vec![Box::new(Collect(tx))],
            keyframe: KeyframeRequest::default(),
            figures: Arc::new(VideoFigures::default()),
            preview: None,
        };
        let (w, h) = (160, 96);
        let media = std::thread::Builder::new()
            .name("media-test".into())
            .spawn({
                let stop = stop.clone();
                move || {
                    let encoder = H264Encoder::new(EncoderSettings::default());
                    media_loop(
                        Some(camera),
                        TestPattern::new(w, h),
                        encoder,
                        30.0,
                        links,
                        &stop,
                    );
                }
            })
            .unwrap();
        let mut decoder = H264Decoder::new().unwrap();
        let (mut picture, mut seqs, mut errors) = (Nv12::default(), Vec::new(), 0);
        let mut last_timestamp = None;
        let until = Instant::now() + Duration::from_secs(30);
        while !enough(&seqs) && Instant::now() < until {
            let Ok(frame) = rx.recv_timeout(Duration::from_millis(100)) else {
                continue;
            };
            // Media time only moves forward.
            assert!(last_timestamp < Some(frame.timestamp), "{last_timestamp:?}");
            last_timestamp = Some(frame.timestamp);
            match decoder.decode(&frame.data, &mut picture) {
                Ok(Some(d)) => seqs.push(d.stamp.expect("stamped").seq),
                Ok(None) => {}
                Err(_) => errors += 1,
            }
        }
        stop.store(true, Ordering::Relaxed);
        media.join().unwrap();
        (seqs, errors)
    }

    #[test]
    fn when_the_camera_goes_away_the_pattern_fills_in_and_the_camera_comes_back() {
        let cam = |frames, first_seq| FakeCamera {
            size: (160, 96),
            frames,
            first_seq,
            period: Duration::from_millis(33),
            sent: 0,
            bad_every: 0,
            pause: None,
        };
        // Camera frames are stamped from 1000 (first camera) and 2000 (after it came back); the
        // pattern's own stamps count from 0.
        let script = vec![Some(cam(15, 1000)), None, Some(cam(u32::MAX, 2000))];
        let feed = CameraFeed::start(
            opener(script, Arc::new(AtomicU64::new(0))),
            Duration::from_millis(300),
        )
        .unwrap();
        let (seqs, errors) = run_media(feed, |s| s.iter().filter(|q| **q >= 2010).count() > 0);
        assert_eq!(errors, 0, "{seqs:?}");
        let first_cam: Vec<_> = seqs.iter().filter(|s| (1000..2000).contains(*s)).collect();
        let pattern: Vec<_> = seqs.iter().copied().filter(|s| *s < 1000).collect();
        assert!(
            first_cam.len() >= 10,
            "the camera's frames went out: {seqs:?}"
        );
        assert!(
            seqs.iter().any(|s| *s >= 2010),
            "the camera came back: {seqs:?}"
        );
        // Between the two camera spells the pattern was sent, its stamps without a gap, so
        // viewers count nothing lost.
        let gone = seqs
            .iter()
            .position(|s| *s == 1014)
            .expect("last frame of camera 1");
        let back = seqs.iter().position(|s| *s >= 2000).expect("camera 2");
        assert!(back - gone > 10, "pattern frames in between: {seqs:?}");
        assert!(seqs[gone + 1..back].iter().all(|s| *s < 1000), "{seqs:?}");
        assert!(
            pattern.windows(2).all(|w| w[1] == w[0] + 1),
            "pattern stamps in sequence: {pattern:?}"
        );
    }

    #[test]
    fn a_camera_that_hangs_is_covered_by_the_pattern_until_it_delivers_again() {
        let hanging = FakeCamera {
            size: (160, 96),
            frames: u32::MAX,
            first_seq: 1000,
            period: Duration::from_millis(33),
            sent: 0,
            bad_every: 0,
            // After ten frames it sends nothing for 3.5 s, then carries on.
            pause: Some((10, Duration::from_millis(3500))),
        };
        let opened = Arc::new(AtomicU64::new(0));
        let feed = CameraFeed::start(
            opener(vec![Some(hanging)], opened.clone()),
            Duration::from_secs(60),
        )
        .unwrap();
        let (seqs, errors) = run_media(feed, |s| s.iter().any(|q| *q >= 1015));
        assert_eq!(errors, 0);
        let hung = seqs.iter().position(|s| *s == 1009).expect("frames before");
        let back = seqs.iter().position(|s| *s >= 1010).expect("frames after");
        let covered = &seqs[hung + 1..back];
        // 2 s of nothing, then the pattern for the remaining 1.5 s (about 45 frames).
        assert!(covered.len() >= 20, "{seqs:?}");
        assert!(covered.iter().all(|s| *s < 1000), "{seqs:?}");
        assert_eq!(
            opened.load(Ordering::Relaxed),
            1,
            "the same camera, not reopened"
        );
    }

    #[test]
    fn the_preview_is_a_small_copy_made_only_while_it_is_on() {
        let slot = Arc::new(FrameSlot::default());
        let tap = PreviewTap::new(slot.clone());
        let track = VideoTrack::start(
            TrackSpec {
                id: TrackId(0),
                codec: &H264,
            },
            &VideoSettings {
                source: SourceSpec::TestPattern,
                width: 1920,
                height: 960,
                encoder: EncoderSettings::default(),
            },
            Vec::new(),
            KeyframeRequest::default(),
            Some(tap.clone()),
        )
        .unwrap();
        // Frames go out with the preview off: none is copied for it.
        let until = Instant::now() + Duration::from_secs(10);
        while track.figures().frames_encoded.load(Ordering::Relaxed) < 5 {
            assert!(Instant::now() < until, "the track encodes frames");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(slot.take().is_none(), "off until asked");
        tap.set(true);
        let frame = slot
            .take_within(Duration::from_secs(10))
            .expect("a preview");
        assert_eq!((frame.width(), frame.height()), (640, 320));
        assert_eq!(*track.figures().source.lock(), "test pattern");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(track.stop());
    }
}
