//! The `omnicast-record` thread: takes queued frames, makes fragments with [`FileMuxer`], and
//! owns the files: each named with its start time and room, a new one every segment, each
//! fragment synced to disk as it is written, a JSON file beside each with its start time, and
//! a stop, said, before the disk's free space falls below the floor.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;

use super::fmp4::{FileFigures, FileMuxer, MuxFail, RecSample, VIDEO_TIMESCALE};
use super::{RecordRole, RecordSettings, Shared};
use crate::media::MediaKind;

/// Free space for an unprivileged writer on the disk holding `dir`.
pub(super) fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let s = rustix::fs::statvfs(dir)?;
    Ok(s.f_bavail.saturating_mul(s.f_frsize))
}

/// One silent 20 ms stereo Opus frame (for a sound track's lead-in).
fn silent_opus() -> Bytes {
    let frame = opus::Encoder::new(48_000, opus::Channels::Stereo, opus::Application::Voip)
        .and_then(|mut e| e.encode_vec_float(&[0.0; 960 * 2], 400));
    match frame {
        Ok(f) => Bytes::from(f),
        Err(e) => {
            tracing::warn!("Opus: {e}; recordings whose sound starts late start it early");
            Bytes::new()
        }
    }
}

/// How early a segment's next file may begin, to start at the keyframe asked for it.
const SEGMENT_EARLY_S: f64 = 0.1;

struct Open {
    file: File,
    path: PathBuf,
    index: u64,
}

struct Writer<'a> {
    settings: &'a RecordSettings,
    shared: &'a Shared,
    silence: Bytes,
    muxer: FileMuxer,
    open: Option<Open>,
    /// The last sound frames, to start the next file's sound with.
    recent_sound: VecDeque<RecSample>,
    files: u64,
    /// The keyframe for the next segment has been asked for.
    keyframe_asked: bool,
    /// Picture in the files already finished.
    finished_ticks: u64,
    left_out: u64,
}

/// Why a recording stopped by itself.
struct Stopped(String);

pub(super) fn run(rx: &Receiver<RecSample>, settings: &RecordSettings, shared: &Shared) {
    let silence = silent_opus();
    let mut w = Writer {
        settings,
        shared,
        muxer: FileMuxer::new(now_unix_s(), silence.clone()),
        silence,
        open: None,
        recent_sound: VecDeque::with_capacity(8),
        files: 0,
        keyframe_asked: false,
        finished_ticks: 0,
        left_out: 0,
    };
    let mut error = None;
    while let Ok(sample) = rx.recv() {
        if let Err(Stopped(why)) = w.take(&sample) {
            tracing::error!("{why}");
            error = Some(why);
            break;
        }
    }
    // Told to stop, or stopping: no more frames; finish the file.
    shared.recording.store(false, Ordering::Release);
    shared.queue.lock().take();
    if let Err(Stopped(why)) = w.finish_file(error.is_some()) {
        tracing::error!("{why}");
        error.get_or_insert(why);
    }
    let mut status = shared.status.lock();
    status.recording = false;
    status.error = error;
    if let Some(file) = &status.file {
        tracing::info!(
            "recording finished: {} ({} file(s), {:.1} s, {} bytes)",
            file.display(),
            status.files,
            status.recorded_s,
            status.bytes_written
        );
    }
}

impl Writer<'_> {
    fn take(&mut self, s: &RecSample) -> Result<(), Stopped> {
        if s.kind == MediaKind::Audio {
            if self.recent_sound.len() == 8 {
                self.recent_sound.pop_front();
            }
            self.recent_sound.push_back(s.clone());
        }
        if s.kind == MediaKind::Video
            && let Some(segment) = self.settings.segment
            && self.muxer.start_unix_ns().is_some()
        {
            // The next file is due a frame or so early: the keyframe it starts with is asked
            // for then, and it begins at the first keyframe after.
            let recorded = self.muxer.video_ticks() as f64 / f64::from(VIDEO_TIMESCALE);
            if recorded + SEGMENT_EARLY_S >= segment.as_secs_f64() {
                if s.keyframe {
                    self.next_file()?;
                } else if !self.keyframe_asked {
                    self.keyframe_asked = true;
                    self.shared.want_keyframe.store(true, Ordering::Relaxed);
                }
            }
        }
        match self.muxer.push(s) {
            Ok(Some(bytes)) => self.write(&bytes),
            Ok(None) => Ok(()),
            Err(MuxFail::NewParameters | MuxFail::Discontinuity(_)) => {
                self.next_file()?;
                match self.muxer.push(s) {
                    Ok(Some(bytes)) => self.write(&bytes),
                    Ok(None) => Ok(()),
                    Err(e) => {
                        self.left_out(&e);
                        Ok(())
                    }
                }
            }
            Err(e @ MuxFail::BadPicture(_)) => {
                self.left_out(&e);
                Ok(())
            }
            Err(e @ MuxFail::Mp4(_)) => Err(Stopped(format!("recording stopped: {e}"))),
        }
    }

    fn left_out(&mut self, e: &MuxFail) {
        self.left_out += 1;
        if self.left_out == 1 {
            tracing::warn!("recording: {e}; left out");
        }
        self.shared.status.lock().frames_left_out = self.left_out;
    }

    /// Finishes this file and starts the next with the sound just before.
    fn next_file(&mut self) -> Result<(), Stopped> {
        self.finish_file(false)?;
        self.keyframe_asked = false;
        self.muxer = FileMuxer::new(now_unix_s(), self.silence.clone());
        for a in std::mem::take(&mut self.recent_sound) {
            let _ = self.muxer.push(&a);
        }
        Ok(())
    }

    /// Writes what the muxer still holds, the index, and the JSON file's last word.
    fn finish_file(&mut self, floor_reached: bool) -> Result<(), Stopped> {
        let muxer = std::mem::replace(
            &mut self.muxer,
            FileMuxer::new(now_unix_s(), self.silence.clone()),
        );
        let ticks = muxer.video_ticks();
        let start_unix_ns = muxer.start_unix_ns();
        let (tail, figures) = match muxer.finish() {
            Ok(done) => done,
            Err(e) => return Err(Stopped(format!("recording: {e}"))),
        };
        let mut result = Ok(());
        if !tail.is_empty() && !floor_reached {
            result = self.write(&tail);
        }
        self.finished_ticks += ticks;
        self.left_out += figures.audio_left_out + figures.audio_late;
        if let (Some(open), Some(start)) = (self.open.take(), start_unix_ns) {
            let _ = open.file.sync_all();
            self.sidecar(&open, start, Some((ticks, figures)));
        }
        let mut status = self.shared.status.lock();
        status.frames_left_out = self.left_out;
        status.recorded_s = self.finished_ticks as f64 / f64::from(VIDEO_TIMESCALE);
        drop(status);
        result
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), Stopped> {
        let dir = &self.settings.dir;
        let floor = self.settings.min_free_bytes;
        let free = free_bytes(dir).map_err(|e| Stopped(format!("recording stopped: {e}")))?;
        if free < floor.saturating_add(bytes.len() as u64) {
            return Err(Stopped(format!(
                "recording stopped: {} has {} MB free, and the recording leaves {} MB free",
                dir.display(),
                free / 1_000_000,
                floor / 1_000_000
            )));
        }
        if self.open.is_none() {
            self.create()?;
        }
        let Some(open) = &mut self.open else {
            return Ok(());
        };
        let written = open
            .file
            .write_all(bytes)
            .and_then(|()| open.file.sync_data());
        if let Err(e) = written {
            return Err(Stopped(format!(
                "recording stopped: writing {}: {e}",
                open.path.display()
            )));
        }
        let recorded_s =
            (self.finished_ticks + self.muxer.video_ticks()) as f64 / f64::from(VIDEO_TIMESCALE);
        let mut status = self.shared.status.lock();
        status.bytes_written += bytes.len() as u64;
        status.fragments += 1;
        status.recorded_s = recorded_s;
        Ok(())
    }

    fn create(&mut self) -> Result<(), Stopped> {
        let start = self.muxer.start_unix_ns().unwrap_or(0);
        let stamp = humantime::format_rfc3339_seconds(
            UNIX_EPOCH + Duration::from_nanos(u64::try_from(start).unwrap_or(0)),
        )
        .to_string()
        .replace(['-', ':'], "");
        let base = format!(
            "omnicast-{}-{}-{stamp}",
            self.shared.role.as_str(),
            file_safe(&self.settings.room)
        );
        let mut n = 1;
        let (file, path) = loop {
            let name = if n == 1 {
                format!("{base}.mp4")
            } else {
                format!("{base}-{n}.mp4")
            };
            let path = self.settings.dir.join(name);
            match File::options().write(true).create_new(true).open(&path) {
                Ok(f) => break (f, path),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 100 => n += 1,
                Err(e) => {
                    return Err(Stopped(format!(
                        "recording stopped: cannot create {}: {e}",
                        path.display()
                    )));
                }
            }
        };
        self.files += 1;
        let open = Open {
            file,
            path: path.clone(),
            index: self.files,
        };
        self.sidecar(&open, start, None);
        tracing::info!("recording to {}", path.display());
        self.open = Some(open);
        let mut status = self.shared.status.lock();
        status.file = Some(path);
        status.files = self.files;
        Ok(())
    }

    /// `NAME.json` beside `NAME.mp4`: when the file's time zero was, on which clock; when the
    /// file is finished, how long it is. Written whole and renamed into place.
    fn sidecar(&self, open: &Open, start_unix_ns: i64, finished: Option<(u64, FileFigures)>) {
        let start_ms = start_unix_ns as f64 / 1e6;
        let clock = match self.shared.role {
            RecordRole::Broadcast => {
                "capture time on the broadcaster's clock (the viewport log's t_received clock)"
            }
            RecordRole::View => {
                "arrival time on this viewer's clock (its viewport samples' t_sent clock)"
            }
        };
        let mut doc = serde_json::json!({
            "file": open.path.file_name().map(|n| n.to_string_lossy().into_owned()),
            "role": self.shared.role,
            "room": self.settings.room,
            "segment": open.index,
            "start_unix_ms": start_ms,
            "start_utc": humantime::format_rfc3339_millis(
                UNIX_EPOCH + Duration::from_nanos(u64::try_from(start_unix_ns).unwrap_or(0))
            ).to_string(),
            "clock": clock,
            "complete": finished.is_some(),
        });
        if let Some((ticks, f)) = finished {
            doc["duration_s"] = serde_json::json!(ticks as f64 / f64::from(VIDEO_TIMESCALE));
            doc["video_frames"] = serde_json::json!(f.video_frames);
            doc["audio_frames"] = serde_json::json!(f.audio_frames);
            doc["fragments"] = serde_json::json!(f.fragments);
        }
        let path = open.path.with_extension("json");
        let tmp = open.path.with_extension("json.tmp");
        let written = serde_json::to_vec_pretty(&doc)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(&tmp, bytes))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = written {
            tracing::warn!("recording: cannot write {}: {e}", path.display());
        }
    }
}

/// Now, whole seconds since the Unix epoch (a file's creation time).
fn now_unix_s() -> u64 {
    crate::lipsync::unix_now_s() as u64
}

/// A room name as part of a file name.
fn file_safe(room: &str) -> String {
    if room.is_empty() {
        return "main".into();
    }
    room.chars()
        .take(40)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
