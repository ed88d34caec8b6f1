//! The broadcaster's viewport log: every sample as a JSON line, written on a thread of its own
//! (off the media path and the event loop) and flushed to disk once a second, so a crash loses
//! at most the last second. If the disk cannot keep up, the queue fills and what it cannot take
//! is counted and reported, never dropped silently.
//!
//! The thread drains the queue every [`DRAIN_INTERVAL`] instead of waiting on it: a wake-up per
//! sample (thousands a second with 50 viewers) cost the broadcaster more than the writing.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::Serialize;

use super::protocol::{ViewportSample, round3};

/// Samples waiting for the disk: 30 s of 50 viewers at 60 Hz.
const QUEUE: usize = 100_000;
/// How often the writer takes what is queued.
pub const DRAIN_INTERVAL: Duration = Duration::from_millis(200);
/// Written lines are flushed this often, so none waits more than a second to reach the disk.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(800);

/// One line of the log.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub viewer: Arc<str>,
    /// The broadcaster's clock when it arrived, ms since the Unix epoch.
    pub t_received_ms: f64,
    pub sample: ViewportSample,
}

#[derive(Serialize)]
struct Line<'a> {
    viewer: &'a str,
    t_sent: f64,
    t_received: f64,
    yaw: f64,
    pitch: f64,
    roll: f64,
    fov: Option<f64>,
}

/// What the log has done, for the status.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct LogStatus {
    pub path: PathBuf,
    pub written: u64,
    /// Samples the log could not take (the disk fell behind, or writing failed).
    pub dropped: u64,
    pub error: Option<String>,
}

#[derive(Default)]
struct Figures {
    written: AtomicU64,
    dropped: AtomicU64,
    error: Mutex<Option<String>>,
}

/// The log's handle; dropping it writes what is queued, flushes and ends the thread.
pub struct ViewportLog {
    path: PathBuf,
    queue: SyncSender<LogEntry>,
    figures: Arc<Figures>,
}

impl ViewportLog {
    /// Opens `path` for appending (made if missing) and starts the writer thread.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let (queue, rx) = sync_channel(QUEUE);
        let figures = Arc::new(Figures::default());
        std::thread::Builder::new()
            .name("omnicast-viewport-log".to_owned())
            .spawn({
                let figures = figures.clone();
                move || write_loop(file, rx, &figures)
            })?;
        Ok(Self {
            path: path.to_owned(),
            queue,
            figures,
        })
    }

    /// Queues a sample for the disk; never waits.
    pub fn record(&self, entry: LogEntry) {
        match self.queue.try_send(entry) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.figures.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub fn status(&self) -> LogStatus {
        LogStatus {
            path: self.path.clone(),
            written: self.figures.written.load(Ordering::Relaxed),
            dropped: self.figures.dropped.load(Ordering::Relaxed),
            error: self.figures.error.lock().clone(),
        }
    }
}

fn write_loop(file: File, rx: Receiver<LogEntry>, figures: &Figures) {
    let mut out = BufWriter::with_capacity(64 * 1024, file);
    let mut next_flush = Instant::now() + FLUSH_INTERVAL;
    let mut unflushed: u64 = 0;
    let mut line = Vec::with_capacity(256);
    loop {
        std::thread::sleep(DRAIN_INTERVAL);
        let ended = loop {
            match rx.try_recv() {
                Ok(entry) => match write_line(&mut out, &mut line, &entry) {
                    Ok(()) => unflushed += 1,
                    Err(e) => failed(figures, 1, &e),
                },
                Err(TryRecvError::Empty) => break false,
                Err(TryRecvError::Disconnected) => break true,
            }
        };
        if ended || Instant::now() >= next_flush {
            if unflushed > 0 {
                match out.flush().and_then(|()| out.get_ref().sync_data()) {
                    Ok(()) => {
                        figures.written.fetch_add(unflushed, Ordering::Relaxed);
                    }
                    Err(e) => failed(figures, unflushed, &e),
                }
                unflushed = 0;
            }
            next_flush = Instant::now() + FLUSH_INTERVAL;
        }
        if ended {
            return;
        }
    }
}

fn write_line(out: &mut BufWriter<File>, line: &mut Vec<u8>, entry: &LogEntry) -> io::Result<()> {
    line.clear();
    let s = &entry.sample;
    serde_json::to_writer(
        &mut *line,
        &Line {
            viewer: &entry.viewer,
            t_sent: s.t_ms,
            t_received: entry.t_received_ms,
            yaw: round3(s.view.yaw_deg),
            pitch: round3(s.view.pitch_deg),
            roll: round3(s.view.roll_deg),
            fov: s.view.fov_deg.map(round3),
        },
    )?;
    line.push(b'\n');
    out.write_all(line)
}

fn failed(figures: &Figures, lines: u64, e: &io::Error) {
    figures.dropped.fetch_add(lines, Ordering::Relaxed);
    let mut error = figures.error.lock();
    if error.is_none() {
        tracing::error!("viewport log: {e}");
    }
    *error = Some(e.to_string());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::protocol::Viewport;

    fn entry(viewer: &str, t: f64) -> LogEntry {
        LogEntry {
            viewer: viewer.into(),
            t_received_ms: t + 3.0,
            sample: ViewportSample {
                t_ms: t,
                view: Viewport::new(10.0, -5.0, 0.0, Some(90.0)),
            },
        }
    }

    fn wait_for(path: &Path, lines: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let got: Vec<serde_json::Value> = text
                .lines()
                .map(|l| serde_json::from_str(l).expect("every line is JSON"))
                .collect();
            if got.len() >= lines || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn samples_reach_the_disk_within_a_second_while_the_log_stays_open() {
        let dir = std::env::temp_dir().join(format!("omnicast-vplog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("flush.jsonl");
        let _ = std::fs::remove_file(&path);
        let log = ViewportLog::open(&path).unwrap();
        let started = Instant::now();
        for i in 0..100 {
            log.record(entry(
                if i % 2 == 0 { "a" } else { "b" },
                1000.0 + f64::from(i),
            ));
        }
        // Still open: the lines are on disk by the next flush.
        let lines = wait_for(&path, 100);
        assert_eq!(lines.len(), 100);
        assert!(
            started.elapsed() < FLUSH_INTERVAL * 3,
            "{:?}",
            started.elapsed()
        );
        assert_eq!(
            lines[1],
            serde_json::json!({"viewer":"b","t_sent":1001.0,"t_received":1004.0,
                "yaw":10.0,"pitch":-5.0,"roll":0.0,"fov":90.0})
        );
        let a: Vec<f64> = lines
            .iter()
            .filter(|l| l["viewer"] == "a")
            .map(|l| l["t_sent"].as_f64().unwrap())
            .collect();
        assert!(a.windows(2).all(|w| w[0] < w[1]), "in order per viewer");
        // Counted as written once synced to disk, a moment after the lines can be read.
        let deadline = Instant::now() + Duration::from_secs(5);
        let status = loop {
            let status = log.status();
            if status.written >= 100 || Instant::now() > deadline {
                break status;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!((status.written, status.dropped), (100, 0));
        // Reopening appends.
        drop(log);
        let log = ViewportLog::open(&path).unwrap();
        log.record(entry("c", 5.0));
        drop(log);
        assert_eq!(wait_for(&path, 101).len(), 101);
    }

    #[test]
    fn a_log_that_cannot_be_opened_says_so() {
        let e = ViewportLog::open(Path::new("/nonexistent-dir/x/log.jsonl")).err();
        assert!(e.is_some());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_full_disk_is_counted_not_hidden() {
        // /dev/full takes the open and fails every write.
        let log = ViewportLog::open(Path::new("/dev/full")).unwrap();
        for i in 0..10 {
            log.record(entry("a", f64::from(i)));
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while log.status().dropped < 10 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let status = log.status();
        assert_eq!(status.dropped, 10, "{status:?}");
        assert_eq!(status.written, 0);
        assert!(status.error.is_some());
    }
}
