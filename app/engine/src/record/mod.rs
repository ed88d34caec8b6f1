//! Recording what is sent (broadcaster) or received (viewer) as fragmented MP4, without
//! re-encoding: the encoded frames already made go to a [`RecordSink`] on each track, which
//! hands them to the `omnicast-record` thread through a bounded queue. The media path never
//! waits for the disk: when the queue is full the recording drops what comes until the next
//! keyframe (counted, said), never blocking live video.
//!
//! [`fmp4`] makes the bytes (pure); [`writer`] owns the files: names, segments, syncing each
//! fragment to disk, the free-space floor, and a JSON file beside each recording with its
//! start time on the capture clock.

pub mod fmp4;
mod writer;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

use crate::media::{EncodedFrame, KeyframeRequest, MediaKind, TrackSink, TrackSpec};
use crate::sink::{ViewContext, ViewSink};
use fmp4::RecSample;

/// The free space a recording leaves on its disk unless told otherwise.
pub const DEFAULT_MIN_FREE_MB: u64 = 500;
/// Frames queued for the writer: about three seconds of picture and sound.
const QUEUE: usize = 256;

/// Who records: names the files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordRole {
    /// What a broadcaster sends.
    Broadcast,
    /// What a viewer receives.
    View,
}

impl RecordRole {
    fn as_str(self) -> &'static str {
        match self {
            Self::Broadcast => "broadcast",
            Self::View => "view",
        }
    }
}

/// Where and how to record.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordSettings {
    pub dir: PathBuf,
    /// A new file every this long (at the next keyframe); one file when `None`.
    pub segment: Option<Duration>,
    /// Recording stops before the disk's free space would fall below this.
    pub min_free_bytes: u64,
    /// The room, for the file names ("main" for the classic single room).
    pub room: String,
}

impl RecordSettings {
    pub fn new(dir: impl Into<PathBuf>, room: &str) -> Self {
        Self {
            dir: dir.into(),
            segment: None,
            min_free_bytes: DEFAULT_MIN_FREE_MB * 1_000_000,
            room: room.to_owned(),
        }
    }
}

/// Why a recording cannot start.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("already recording")]
    AlreadyRecording,
    #[error("cannot record into {dir}: {source}")]
    Folder {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "not recording: {dir} has {free_mb} MB free, below the {floor_mb} MB the recording leaves free"
    )]
    DiskFull {
        dir: PathBuf,
        free_mb: u64,
        floor_mb: u64,
    },
    #[error("cannot start the recording thread: {0}")]
    Thread(std::io::Error),
}

/// What a recording has done, for the window, `--stats-json` and logs.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct RecordStatus {
    pub recording: bool,
    /// The file being written, or the last one.
    pub file: Option<PathBuf>,
    /// Files written, the current one included.
    pub files: u64,
    /// Picture recorded so far, all files together.
    pub recorded_s: f64,
    pub bytes_written: u64,
    pub fragments: u64,
    /// Times the writer fell behind and what came until the next keyframe was dropped.
    pub fragments_dropped: u64,
    pub frames_dropped: u64,
    /// Frames that could not go in (not H.264, sound that began after the file did, late sound).
    pub frames_left_out: u64,
    /// Why the recording stopped, if not because it was told to.
    pub error: Option<String>,
}

struct Shared {
    role: RecordRole,
    /// Queue to the writer while recording.
    queue: Mutex<Option<SyncSender<RecSample>>>,
    recording: AtomicBool,
    /// The queue overflowed: drop everything until a picture keyframe goes through.
    resync: AtomicBool,
    /// A file is to begin (recording started, a segment is due): ask the encoder (or, on a
    /// viewer, the sender) for a keyframe rather than wait for the next scheduled one.
    want_keyframe: AtomicBool,
    fragments_dropped: AtomicU64,
    frames_dropped: AtomicU64,
    status: Mutex<RecordStatus>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Instants to Unix time: one reading of both clocks.
    epoch: (Instant, SystemTime),
}

/// Records a session's tracks while told to. Cheap to clone; frames reach it through the
/// sinks it makes, which cost an atomic load while it is not recording.
#[derive(Clone)]
pub struct Recorder(Arc<Shared>);

impl Recorder {
    pub fn new(role: RecordRole) -> Self {
        Self(Arc::new(Shared {
            role,
            queue: Mutex::new(None),
            recording: AtomicBool::new(false),
            resync: AtomicBool::new(false),
            want_keyframe: AtomicBool::new(false),
            fragments_dropped: AtomicU64::new(0),
            frames_dropped: AtomicU64::new(0),
            status: Mutex::new(RecordStatus::default()),
            thread: Mutex::new(None),
            epoch: (Instant::now(), SystemTime::now()),
        }))
    }

    /// Starts recording into `settings.dir` (made if missing). Fails at once, with the reason,
    /// when the folder cannot be written or its disk is already below the floor.
    pub fn start(&self, settings: RecordSettings) -> Result<(), RecordError> {
        let mut thread = self.0.thread.lock();
        if thread.as_ref().is_some_and(|t| !t.is_finished()) {
            return Err(RecordError::AlreadyRecording);
        }
        let dir = settings.dir.clone();
        std::fs::create_dir_all(&dir).map_err(|source| RecordError::Folder {
            dir: dir.clone(),
            source,
        })?;
        let free = writer::free_bytes(&dir).map_err(|source| RecordError::Folder {
            dir: dir.clone(),
            source,
        })?;
        if free < settings.min_free_bytes {
            return Err(RecordError::DiskFull {
                dir,
                free_mb: free / 1_000_000,
                floor_mb: settings.min_free_bytes / 1_000_000,
            });
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        *self.0.status.lock() = RecordStatus {
            recording: true,
            ..RecordStatus::default()
        };
        self.0.fragments_dropped.store(0, Ordering::Relaxed);
        self.0.frames_dropped.store(0, Ordering::Relaxed);
        self.0.resync.store(false, Ordering::Relaxed);
        let shared = self.0.clone();
        *thread = Some(
            std::thread::Builder::new()
                .name("omnicast-record".into())
                .spawn(move || writer::run(&rx, &settings, &shared))
                .map_err(RecordError::Thread)?,
        );
        *self.0.queue.lock() = Some(tx);
        self.0.want_keyframe.store(true, Ordering::Relaxed);
        self.0.recording.store(true, Ordering::Release);
        tracing::info!(
            "recording what this {} into {}",
            match self.0.role {
                RecordRole::Broadcast => "broadcaster sends",
                RecordRole::View => "viewer receives",
            },
            dir.display()
        );
        Ok(())
    }

    /// Stops recording: the writer finishes the file (its last fragment and index) on its own
    /// thread; this returns at once.
    pub fn stop(&self) {
        self.0.recording.store(false, Ordering::Release);
        // Dropping the queue's sender ends the writer once it has written what is queued.
        self.0.queue.lock().take();
    }

    /// Stops and waits, at most `timeout`, until the file is finished (for a process about to
    /// exit; never from UI code).
    pub fn stop_and_wait(&self, timeout: Duration) -> bool {
        self.stop();
        let deadline = Instant::now() + timeout;
        loop {
            let done = self
                .0
                .thread
                .lock()
                .as_ref()
                .is_none_or(|t| t.is_finished());
            if done {
                if let Some(t) = self.0.thread.lock().take() {
                    let _ = t.join();
                }
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn role(&self) -> RecordRole {
        self.0.role
    }

    pub fn is_recording(&self) -> bool {
        self.0.recording.load(Ordering::Acquire)
    }

    pub fn status(&self) -> RecordStatus {
        let mut s = self.0.status.lock().clone();
        s.fragments_dropped = self.0.fragments_dropped.load(Ordering::Relaxed);
        s.frames_dropped = self.0.frames_dropped.load(Ordering::Relaxed);
        s
    }

    /// A sink for a track of `kind`; `keyframe` asks for a keyframe when a file is to begin.
    pub fn sink(&self, kind: MediaKind, keyframe: Option<KeyframeRequest>) -> RecordSink {
        RecordSink {
            shared: self.0.clone(),
            kind,
            keyframe,
        }
    }
}

/// Hands a track's frames to the recorder while it records.
pub struct RecordSink {
    shared: Arc<Shared>,
    kind: MediaKind,
    keyframe: Option<KeyframeRequest>,
}

impl TrackSink for RecordSink {
    fn accept(&mut self, frame: &EncodedFrame) {
        let shared = &*self.shared;
        if !shared.recording.load(Ordering::Acquire) {
            return;
        }
        let video = self.kind == MediaKind::Video;
        if video
            && let Some(k) = &self.keyframe
            && shared.want_keyframe.swap(false, Ordering::Relaxed)
        {
            k.request();
        }
        if shared.resync.load(Ordering::Relaxed) && !(video && frame.keyframe) {
            shared.frames_dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let (epoch_instant, epoch_unix) = shared.epoch;
        let unix = if frame.at >= epoch_instant {
            epoch_unix + frame.at.duration_since(epoch_instant)
        } else {
            epoch_unix - epoch_instant.duration_since(frame.at)
        };
        let unix_ns = unix
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        let sample = RecSample {
            kind: self.kind,
            data: frame.data.clone(),
            timestamp: frame.timestamp,
            keyframe: frame.keyframe,
            unix_ns,
        };
        let queue = shared.queue.lock();
        let Some(tx) = queue.as_ref() else { return };
        match tx.try_send(sample) {
            Ok(()) => {
                if video && frame.keyframe {
                    shared.resync.store(false, Ordering::Relaxed);
                }
            }
            Err(TrySendError::Full(_)) => {
                shared.frames_dropped.fetch_add(1, Ordering::Relaxed);
                if !shared.resync.swap(true, Ordering::Relaxed) {
                    shared.fragments_dropped.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        "the recording is behind (slow disk): dropping until the next keyframe"
                    );
                }
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

/// A viewer's recorder: a [`RecordSink`] on every track it receives.
pub struct RecordView(pub Recorder);

impl ViewSink for RecordView {
    fn sink_for(&self, track: &TrackSpec, ctx: &ViewContext) -> Option<Box<dyn TrackSink>> {
        // A keyframe asked for goes to the sender as a PLI.
        Some(Box::new(
            self.0.sink(track.codec.kind, Some(ctx.keyframe.clone())),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::TrackId;
    use bytes::Bytes;

    fn frame(keyframe: bool) -> EncodedFrame {
        EncodedFrame {
            track: TrackId(0),
            data: Bytes::from_static(b"\0\0\0\x01\x65"),
            timestamp: 0,
            keyframe,
            at: Instant::now(),
        }
    }

    #[test]
    fn a_writer_behind_costs_whole_fragments_counted_never_the_media_thread() {
        // A recorder whose writer has fallen behind: a queue of two that nobody drains.
        let recorder = Recorder::new(RecordRole::Broadcast);
        let (tx, rx) = std::sync::mpsc::sync_channel(2);
        *recorder.0.queue.lock() = Some(tx);
        recorder.0.recording.store(true, Ordering::Release);
        let keyframes = KeyframeRequest::default();
        let mut video = recorder.sink(MediaKind::Video, Some(keyframes.clone()));
        let mut sound = recorder.sink(MediaKind::Audio, None);
        video.accept(&frame(true));
        video.accept(&frame(false));
        // Full: this one and everything up to the next keyframe is dropped, at once.
        let t = Instant::now();
        video.accept(&frame(false));
        sound.accept(&frame(true));
        video.accept(&frame(false));
        assert!(
            t.elapsed() < Duration::from_millis(50),
            "the media thread never waits"
        );
        let s = recorder.status();
        assert_eq!((s.fragments_dropped, s.frames_dropped), (1, 3));
        // The writer catches up; the next keyframe resumes the recording.
        assert_eq!(rx.try_iter().count(), 2);
        video.accept(&frame(false));
        assert_eq!(recorder.status().frames_dropped, 4, "not before a keyframe");
        video.accept(&frame(true));
        sound.accept(&frame(true));
        assert_eq!(rx.try_iter().count(), 2);
        assert_eq!(recorder.status().fragments_dropped, 1);
        // Starting asked for a keyframe (none pending here, since `start` was not called).
        assert!(!keyframes.is_requested());
    }
}
