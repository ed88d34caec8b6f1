//! Video sources: cameras (nokhwa), read on their own thread into a latest-frame slot. A camera
//! that is missing or fails is said once and retried; the broadcaster sends the test pattern
//! meanwhile.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nokhwa::Camera;
use nokhwa::pixel_format::RgbFormat;
use nokhwa::utils::{
    ApiBackend, CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType,
    Resolution,
};

use parking_lot::Mutex;

use super::convert::{Scratch, camera_buffer_to_i420};
use super::frame::I420;
use super::slot::LatestSlot;

/// Which camera, as the user named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CameraSelector {
    First,
    Index(u32),
    Name(String),
}

/// What to broadcast: `test-pattern`, `camera`, `camera:INDEX` or `camera:NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    TestPattern,
    Camera(CameraSelector),
    /// A PNG or JPEG picture, sent at the chosen rate and size.
    Image(std::path::PathBuf),
    /// A YUV4MPEG2 video, looped.
    Y4m(std::path::PathBuf),
    /// A recording (MP4 with H.264, and Opus), looped: sent as recorded when viewers can take
    /// its H.264 as it is, else re-encoded.
    Mp4(std::path::PathBuf),
}

impl FromStr for SourceSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            None if s == "test-pattern" => Ok(Self::TestPattern),
            None if s == "camera" => Ok(Self::Camera(CameraSelector::First)),
            Some(("camera", "")) => Err("camera: needs an index or a name after the colon".into()),
            Some(("camera", sel)) => Ok(Self::Camera(match sel.parse() {
                Ok(i) => CameraSelector::Index(i),
                Err(_) => CameraSelector::Name(sel.to_owned()),
            })),
            Some(("image" | "y4m" | "mp4", "")) => {
                Err(format!("{s}: needs a file after the colon"))
            }
            Some(("image", path)) => Ok(Self::Image(path.into())),
            Some(("y4m", path)) => Ok(Self::Y4m(path.into())),
            Some(("mp4", path)) => Ok(Self::Mp4(path.into())),
            _ => Err(format!(
                "unknown source {s:?}: expected test-pattern, camera, camera:INDEX, camera:NAME, \
                 image:FILE, y4m:FILE or mp4:FILE"
            )),
        }
    }
}

impl fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TestPattern => f.write_str("test-pattern"),
            Self::Camera(CameraSelector::First) => f.write_str("camera"),
            Self::Camera(CameraSelector::Index(i)) => write!(f, "camera:{i}"),
            Self::Camera(CameraSelector::Name(n)) => write!(f, "camera:{n}"),
            Self::Image(p) => write!(f, "image:{}", p.display()),
            Self::Y4m(p) => write!(f, "y4m:{}", p.display()),
            Self::Mp4(p) => write!(f, "mp4:{}", p.display()),
        }
    }
}

/// A camera the system reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CameraInfo {
    pub index: u32,
    pub name: String,
}

/// The cameras present now (empty when there are none or the system cannot list them).
pub fn list_cameras() -> Vec<CameraInfo> {
    match nokhwa::query(ApiBackend::Auto) {
        Ok(cams) => cams
            .iter()
            .filter_map(|c| match c.index() {
                CameraIndex::Index(i) => Some(CameraInfo {
                    index: *i,
                    name: c.human_name(),
                }),
                CameraIndex::String(_) => None,
            })
            .collect(),
        Err(e) => {
            tracing::debug!("cannot list cameras: {e}");
            Vec::new()
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("no camera found")]
    NoCamera,
    #[error("no camera named {0:?} (found: {1})")]
    NoSuchCamera(String, String),
    #[error("camera {0}: {1}")]
    Camera(String, nokhwa::NokhwaError),
    /// One frame that does not decode (USB cameras send a truncated JPEG now and then).
    #[error("camera {0} sent a frame that does not decode: {1}")]
    BadFrame(String, nokhwa::NokhwaError),
    /// A file given as the source that cannot be used.
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
}

/// A file source's error: the file's path and what is wrong with it.
pub(crate) fn file_error(path: &Path, reason: impl std::fmt::Display) -> CaptureError {
    CaptureError::File {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// A file's name for messages (its whole path when it has no name).
pub(crate) fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// A captured picture, and when the device handed it over.
pub struct CameraFrame {
    pub image: I420,
    pub captured: Instant,
}

/// A video input read one frame at a time: a camera, or a stand-in for one in tests.
pub trait VideoInput {
    fn name(&self) -> &str;
    /// What it is, for people: `camera NAME`, `image FILE`…
    fn label(&self) -> String {
        format!("camera {}", self.name())
    }
    /// Waits for the next frame and converts it to I420, into `reuse` when that has the size.
    fn read(&mut self, reuse: Option<I420>) -> Result<CameraFrame, CaptureError>;
}

/// An open nokhwa camera.
pub struct CameraSource {
    name: String,
    camera: Camera,
    scratch: Scratch,
}

impl CameraSource {
    pub fn open(
        selector: &CameraSelector,
        width: u32,
        height: u32,
        fps: u32,
    ) -> Result<Self, CaptureError> {
        let cameras = list_cameras();
        let info = match selector {
            CameraSelector::First => cameras.first().cloned(),
            CameraSelector::Index(i) => cameras.iter().find(|c| c.index == *i).cloned(),
            CameraSelector::Name(n) => {
                let found = cameras.iter().find(|c| c.name == *n).cloned();
                if found.is_none() && !cameras.is_empty() {
                    let names: Vec<_> = cameras.iter().map(|c| c.name.as_str()).collect();
                    return Err(CaptureError::NoSuchCamera(n.clone(), names.join(", ")));
                }
                found
            }
        }
        .ok_or(CaptureError::NoCamera)?;
        let format = RequestedFormat::new::<RgbFormat>(RequestedFormatType::Closest(
            CameraFormat::new(Resolution::new(width, height), FrameFormat::MJPEG, fps),
        ));
        let err = |e| CaptureError::Camera(info.name.clone(), e);
        let mut camera = Camera::new(CameraIndex::Index(info.index), format).map_err(err)?;
        camera.open_stream().map_err(err)?;
        Ok(Self {
            name: info.name,
            camera,
            scratch: Scratch::default(),
        })
    }
}

impl VideoInput for CameraSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn read(&mut self, reuse: Option<I420>) -> Result<CameraFrame, CaptureError> {
        let buffer = self
            .camera
            .frame()
            .map_err(|e| CaptureError::Camera(self.name.clone(), e))?;
        let captured = Instant::now();
        let image = camera_buffer_to_i420(&buffer, &mut self.scratch, reuse)
            .map_err(|e| CaptureError::BadFrame(self.name.clone(), e))?;
        Ok(CameraFrame { image, captured })
    }
}

/// Opens the video input; called on the capture thread, since cameras cannot move between
/// threads.
pub type OpenInput = Box<dyn FnMut() -> Result<Box<dyn VideoInput>, CaptureError> + Send>;

/// How often a missing or failed camera is tried again.
pub const CAMERA_RETRY: Duration = Duration::from_secs(5);
/// A camera that delivers nothing for this long (without failing: a hung device) is
/// [`FeedState::Stalled`].
pub const CAMERA_STALL: Duration = Duration::from_secs(2);
/// This many undecodable frames in a row count as a failed camera.
const MAX_BAD_FRAMES: u32 = 30;
/// How long dropping a [`CameraFeed`] waits for a camera that does not return a frame.
const STOP_WAIT: Duration = Duration::from_secs(2);

/// What a [`CameraFeed`] is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedState {
    /// No camera delivering: none found, or it failed and is being tried again.
    NoCamera,
    Live,
    /// Open, but it has sent nothing for [`CAMERA_STALL`].
    Stalled,
}

/// Reads a camera on its own thread (`omnicast-capture`) as fast as it delivers, so conversion
/// overlaps encoding and frames never wait in the device's queue; keeps only the newest frame
/// for the encoder. A camera that is missing or fails is said once and tried again every
/// `retry`; meanwhile, and while it is stalled, the feed is not [live](Self::is_live) and the
/// caller sends something else.
pub struct CameraFeed {
    shared: Arc<FeedShared>,
    ended: std::sync::mpsc::Receiver<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct FeedShared {
    latest: LatestSlot<CameraFrame>,
    /// A camera is open and has delivered.
    open: AtomicBool,
    /// The open camera's name.
    name: Mutex<Option<String>>,
    /// When it last delivered, in µs after `epoch`.
    last_frame_us: AtomicU64,
    epoch: Instant,
    stop: AtomicBool,
    /// Frames replaced before the encoder took them.
    overwritten: AtomicU64,
    /// Why the input last failed to open.
    error: Mutex<Option<String>>,
}

impl CameraFeed {
    pub fn start(open: OpenInput, retry: Duration) -> std::io::Result<Self> {
        let shared = Arc::new(FeedShared {
            latest: LatestSlot::default(),
            open: AtomicBool::new(false),
            name: Mutex::new(None),
            last_frame_us: AtomicU64::new(0),
            epoch: Instant::now(),
            stop: AtomicBool::new(false),
            overwritten: AtomicU64::new(0),
            error: Mutex::new(None),
        });
        let (ended_tx, ended) = std::sync::mpsc::sync_channel(1);
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("omnicast-capture".into())
                .spawn(move || {
                    capture_loop(open, retry, &shared);
                    let _ = ended_tx.send(());
                })?
        };
        Ok(Self {
            shared,
            ended,
            thread: Some(thread),
        })
    }

    pub fn state(&self) -> FeedState {
        let shared = &self.shared;
        if !shared.open.load(Ordering::Relaxed) {
            return FeedState::NoCamera;
        }
        let last = Duration::from_micros(shared.last_frame_us.load(Ordering::Relaxed));
        if shared.epoch.elapsed().saturating_sub(last) > CAMERA_STALL {
            FeedState::Stalled
        } else {
            FeedState::Live
        }
    }

    /// What is open now (`camera NAME`, `image FILE`…), if anything.
    pub fn input_label(&self) -> Option<String> {
        self.shared.name.lock().clone()
    }

    /// Why the input last failed to open, if it did.
    pub fn last_error(&self) -> Option<String> {
        self.shared.error.lock().clone()
    }

    /// Is a camera delivering?
    pub fn is_live(&self) -> bool {
        self.state() == FeedState::Live
    }

    /// The newest frame not yet taken, waiting up to `timeout` for one.
    pub fn next_frame(&self, timeout: Duration) -> Option<CameraFrame> {
        self.shared.latest.take_within(timeout)
    }

    /// Gives a frame's buffer back for the next conversion.
    pub fn recycle(&self, image: I420) {
        self.shared.latest.recycle(CameraFrame {
            image,
            captured: Instant::now(),
        });
    }

    /// Frames the camera delivered that were replaced by newer ones before being taken.
    pub fn overwritten(&self) -> u64 {
        self.shared.overwritten.load(Ordering::Relaxed)
    }
}

impl Drop for CameraFeed {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        // A camera blocked in a read ends the thread after its next frame; one that never
        // delivers again is left behind rather than hanging the caller.
        match self.ended.recv_timeout(STOP_WAIT) {
            Ok(()) => {
                if let Some(t) = self.thread.take() {
                    let _ = t.join();
                }
            }
            Err(_) => tracing::warn!("the camera did not stop within {STOP_WAIT:?}; leaving it"),
        }
    }
}

fn capture_loop(mut open: OpenInput, retry: Duration, shared: &FeedShared) {
    let stopped = || shared.stop.load(Ordering::Relaxed);
    let retry_s = retry.as_secs_f32();
    // Said once until a camera works again; repeated failures are only debug logs.
    let mut said = false;
    let mut ever_opened = false;
    while !stopped() {
        let mut input = match open() {
            Ok(input) => input,
            Err(e) => {
                *shared.error.lock() = Some(e.to_string());
                if said {
                    tracing::debug!("camera still unavailable: {e}");
                } else {
                    tracing::warn!(
                        "{e}: broadcasting the test pattern instead (retrying the camera every {retry_s} s)"
                    );
                    said = true;
                }
                sleep_unless(retry, stopped);
                continue;
            }
        };
        if ever_opened {
            tracing::info!("{} is back", input.label());
        } else {
            tracing::info!("broadcasting {}", input.label());
        }
        (ever_opened, said) = (true, false);
        *shared.name.lock() = Some(input.label());
        let mut bad_in_a_row = 0;
        let mut reuse = None;
        while !stopped() {
            let buffer = shared.latest.reuse(reuse.take()).map(|f| f.image);
            match input.read(buffer) {
                Err(e @ CaptureError::BadFrame(..)) if bad_in_a_row < MAX_BAD_FRAMES => {
                    tracing::debug!("{e}; skipped");
                    bad_in_a_row += 1;
                }
                Ok(frame) => {
                    bad_in_a_row = 0;
                    let at = shared.epoch.elapsed().as_micros() as u64;
                    shared.last_frame_us.store(at, Ordering::Relaxed);
                    shared.open.store(true, Ordering::Relaxed);
                    reuse = shared.latest.put(frame);
                    if reuse.is_some() {
                        shared.overwritten.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(e) => {
                    tracing::warn!(
                        "{e}: broadcasting the test pattern instead (retrying the camera every {retry_s} s)"
                    );
                    said = true;
                    break;
                }
            }
        }
        shared.open.store(false, Ordering::Relaxed);
        *shared.name.lock() = None;
        drop(shared.latest.take());
        drop(input);
        sleep_unless(retry, stopped);
    }
    shared.open.store(false, Ordering::Relaxed);
}

/// Sleeps for `total`, in short steps so that `stop` ends it early.
fn sleep_unless(total: Duration, stop: impl Fn() -> bool) {
    let until = Instant::now() + total;
    while !stop() {
        let now = Instant::now();
        if now >= until {
            return;
        }
        std::thread::sleep((until - now).min(Duration::from_millis(50)));
    }
}

/// Stand-in cameras for tests: frames carrying a stamp, then unplugged.
#[cfg(test)]
pub(crate) mod fake {
    use super::*;
    use crate::stamp::{self, Stamp};

    pub(crate) struct FakeCamera {
        pub size: (usize, usize),
        /// Frames it delivers before failing (`u32::MAX`: it never fails).
        pub frames: u32,
        /// Stamp sequence number of its first frame.
        pub first_seq: u32,
        pub period: Duration,
        pub sent: u32,
        /// Every this many frames one does not decode (0: never).
        pub bad_every: u32,
        /// After this many frames, deliver nothing for this long (once).
        pub pause: Option<(u32, Duration)>,
    }

    impl VideoInput for FakeCamera {
        fn name(&self) -> &str {
            "fake camera"
        }

        fn read(&mut self, reuse: Option<I420>) -> Result<CameraFrame, CaptureError> {
            std::thread::sleep(self.period);
            if let Some((after, pause)) = self.pause
                && after == self.sent
            {
                std::thread::sleep(pause);
                self.pause = None;
            }
            if self.sent == self.frames {
                return Err(CaptureError::Camera(
                    "fake camera".into(),
                    nokhwa::NokhwaError::ReadFrameError("unplugged".into()),
                ));
            }
            if self.bad_every > 0 && self.sent % self.bad_every == self.bad_every - 1 {
                self.sent += 1;
                return Err(CaptureError::BadFrame(
                    "fake camera".into(),
                    nokhwa::NokhwaError::ReadFrameError("truncated JPEG".into()),
                ));
            }
            let (w, h) = self.size;
            let mut image = reuse
                .filter(|i| (i.width(), i.height()) == (w, h))
                .unwrap_or_else(|| I420::new(w, h));
            let (y, _, _) = image.planes_mut();
            y.fill(90);
            let seq = self.first_seq + self.sent;
            stamp::write(y, w, w, h, Stamp::now(seq));
            self.sent += 1;
            Ok(CameraFrame {
                image,
                captured: Instant::now(),
            })
        }
    }

    /// An opener that plays `script` in order (`None`: no camera), then finds no camera.
    pub(crate) fn opener(script: Vec<Option<FakeCamera>>, opened: Arc<AtomicU64>) -> OpenInput {
        let mut script = script.into_iter();
        Box::new(move || {
            opened.fetch_add(1, Ordering::Relaxed);
            match script.next().flatten() {
                Some(cam) => Ok(Box::new(cam) as Box<dyn VideoInput>),
                None => Err(CaptureError::NoCamera),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::fake::{FakeCamera, opener};
    use super::*;
    use crate::stamp;
    use openh264::formats::YUVSource as _;

    fn wait_for(what: &str, within: Duration, done: impl Fn() -> bool) {
        let until = Instant::now() + within;
        while !done() {
            assert!(Instant::now() < until, "{what}: not within {within:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn camera(frames: u32, first_seq: u32) -> FakeCamera {
        FakeCamera {
            size: (160, 96),
            frames,
            first_seq,
            period: Duration::from_millis(5),
            sent: 0,
            bad_every: 0,
            pause: None,
        }
    }

    fn seq_of(frame: &CameraFrame) -> u32 {
        let img = &frame.image;
        let (w, h) = (img.width(), img.height());
        stamp::read(img.y(), w, w, h).expect("stamped").seq
    }

    #[test]
    fn a_camera_that_goes_away_is_tried_again_until_it_is_back() {
        let opened = Arc::new(AtomicU64::new(0));
        let script = vec![
            Some(camera(10, 100)),
            None,
            None,
            Some(camera(u32::MAX, 500)),
        ];
        let feed =
            CameraFeed::start(opener(script, opened.clone()), Duration::from_millis(20)).unwrap();
        let mut seen = Vec::new();
        let until = Instant::now() + Duration::from_secs(20);
        let mut was_down = false;
        // Take frames until the second camera has delivered some, noting the spell without one.
        while seen.last().is_none_or(|s| *s < 505) {
            assert!(Instant::now() < until, "frames so far: {seen:?}");
            if !feed.is_live() && !seen.is_empty() {
                was_down = true;
            }
            if let Some(f) = feed.next_frame(Duration::from_millis(10)) {
                seen.push(seq_of(&f));
                feed.recycle(f.image);
            }
        }
        assert!(was_down, "not live while there was no camera");
        assert!(seen.iter().any(|s| (100..110).contains(s)), "{seen:?}");
        assert!(
            seen.windows(2).all(|w| w[0] < w[1]),
            "newest first: {seen:?}"
        );
        // Opened, unplugged, two failed tries, back.
        assert_eq!(opened.load(Ordering::Relaxed), 4);
        drop(feed);
    }

    #[test]
    fn a_slow_consumer_gets_the_newest_frame_not_a_backlog() {
        let opened = Arc::new(AtomicU64::new(0));
        let feed = CameraFeed::start(
            opener(vec![Some(camera(u32::MAX, 0))], opened),
            Duration::from_secs(60),
        )
        .unwrap();
        wait_for("first frame", Duration::from_secs(10), || feed.is_live());
        // Not taken, frames replace each other: the next one taken is the newest.
        wait_for("frames overwritten", Duration::from_secs(10), || {
            feed.overwritten() >= 4
        });
        let a = seq_of(&feed.next_frame(Duration::from_secs(1)).unwrap());
        assert!(a >= 4, "after 4 frames overwritten, frame {a}");
        let b = seq_of(&feed.next_frame(Duration::from_secs(1)).unwrap());
        assert!(b > a);
    }

    #[test]
    fn a_frame_that_does_not_decode_is_skipped_not_a_lost_camera() {
        let opened = Arc::new(AtomicU64::new(0));
        let flaky = FakeCamera {
            bad_every: 3,
            ..camera(u32::MAX, 0)
        };
        let feed =
            CameraFeed::start(opener(vec![Some(flaky)], opened.clone()), Duration::ZERO).unwrap();
        let mut seen = Vec::new();
        let until = Instant::now() + Duration::from_secs(20);
        while seen.len() < 20 {
            assert!(Instant::now() < until, "{seen:?}");
            if let Some(f) = feed.next_frame(Duration::from_millis(10)) {
                seen.push(seq_of(&f));
            }
        }
        assert!(
            seen.iter().all(|s| s % 3 != 2),
            "bad frames never arrive: {seen:?}"
        );
        assert_eq!(opened.load(Ordering::Relaxed), 1, "the camera was kept");
    }

    #[test]
    fn stopping_does_not_wait_for_the_retry_interval() {
        let opened = Arc::new(AtomicU64::new(0));
        let feed = CameraFeed::start(
            opener(vec![None], opened.clone()),
            Duration::from_secs(3600),
        )
        .unwrap();
        // The first try has failed: the thread now waits an hour to try again.
        wait_for("the first try", Duration::from_secs(10), || {
            opened.load(Ordering::Relaxed) == 1 && !feed.is_live()
        });
        let t = Instant::now();
        drop(feed);
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    }

    #[test]
    fn source_specs_parse_and_print() {
        for s in ["test-pattern", "camera", "camera:2", "camera:Front Cam"] {
            assert_eq!(s.parse::<SourceSpec>().unwrap().to_string(), s);
        }
        assert_eq!(
            "camera:1".parse::<SourceSpec>(),
            Ok(SourceSpec::Camera(CameraSelector::Index(1)))
        );
        assert!(
            "webcam"
                .parse::<SourceSpec>()
                .unwrap_err()
                .contains("unknown source")
        );
        assert!("camera:".parse::<SourceSpec>().is_err());
    }

    #[test]
    fn without_a_camera_opening_one_is_a_clear_error() {
        // The test machines have no camera; where one exists this checks a bogus name instead.
        let selector = if list_cameras().is_empty() {
            CameraSelector::First
        } else {
            CameraSelector::Name("no such camera, surely".into())
        };
        let err = CameraSource::open(&selector, 640, 480, 30)
            .err()
            .expect("no camera");
        let msg = err.to_string();
        assert!(msg.contains("no camera"), "{msg}");
    }
}
