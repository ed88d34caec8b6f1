//! Recording benchmark (a program, not a timed test), on loopback:
//!
//! 1. What recording costs the broadcaster: its CPU (its own process, from /proc) sending the
//!    test pattern and test tone to one receive-only viewer, with `--record` and without, at
//!    1280x720 and 3840x1920, alternating (twice each). Recording adds no encoding: the cost is
//!    muxing and writing (with a sync per fragment).
//! 2. Bytes written a minute against what the encoders made (the viewer's received payload
//!    rate, and the target bitrate).
//! 3. Footage lost to SIGKILL: recordings killed at different moments; what ffprobe decodes
//!    against how long each had been recording. Target: at most one fragment (1 s).
//!
//!   cargo bench -p omnicast --bench record
//!   OMNICAST_BENCH_SECONDS=10 cargo bench -p omnicast --bench record
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

mod common;

#[path = "../engine/tests/support/mod.rs"]
mod support;

use support::{Session, view_settings, watch_with};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "omnicast-bench-record-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The one recording in `dir` and its start (Unix seconds, from its JSON file).
fn recording(dir: &Path) -> Option<(PathBuf, f64)> {
    let mp4 = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "mp4"))?;
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(mp4.with_extension("json")).ok()?).ok()?;
    let start = json["start_unix_ms"].as_f64()? / 1000.0;
    Some((mp4, start))
}

/// Seconds of picture ffmpeg decodes from `file` (frames at 30 fps).
fn decodable_s(file: &Path) -> f64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v"])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(file)
        .output()
        .expect("ffprobe (Debian's ffmpeg)");
    let frames: f64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0.0);
    frames / 30.0
}

struct Run {
    cpu: f64,
    /// Bytes a minute: written to the file, and received by the viewer (RTP payload).
    written_per_min: Option<f64>,
    received_per_min: f64,
}

async fn run(size: &str, kbps: &str, record: bool, seconds: u64) -> Run {
    let dir = scratch("cpu");
    let dir_arg = dir.display().to_string();
    let mut args = vec![
        "--size",
        size,
        "--bitrate-kbps",
        kbps,
        "--fps",
        "30",
        "--audio",
        "test-tone",
    ];
    if record {
        args.extend(["--record", &dir_arg]);
    }
    let os: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    let (mut caster, url) = common::start_broadcaster(&os);
    let pid = caster.id();
    let viewers: Vec<Session> = vec![watch_with(view_settings(&url, ""), false).0];
    let got = |v: &Session| {
        let s = v.seen().stats();
        s.bytes_received + s.audio.bytes_received
    };
    let bytes0 = got(&viewers[0]);
    let size0 = recording(&dir).map_or(0, |(f, _)| std::fs::metadata(f).map_or(0, |m| m.len()));
    let t0 = std::time::Instant::now();
    let cpu = common::cpu_while_watched(pid, &viewers, seconds).await;
    let elapsed_min = t0.elapsed().as_secs_f64() / 60.0;
    let received = got(&viewers[0]) - bytes0;
    let written = recording(&dir).map(|(f, _)| std::fs::metadata(f).map_or(0, |m| m.len()) - size0);
    for v in viewers {
        v.stop().await;
    }
    let _ = caster.kill();
    let _ = caster.wait();
    let _ = std::fs::remove_dir_all(&dir);
    Run {
        cpu,
        written_per_min: written.map(|w| w as f64 / elapsed_min),
        received_per_min: received as f64 / elapsed_min,
    }
}

/// Records for `after` seconds, then SIGKILL; the seconds of footage lost.
fn killed_after(after: Duration) -> f64 {
    let dir = scratch("kill");
    let args = [
        "--size",
        "1280x720",
        "--audio",
        "test-tone",
        "--record",
        &dir.display().to_string(),
    ]
    .map(std::ffi::OsString::from);
    let os: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let (mut caster, _url) = common::start_broadcaster(&os);
    // The file starts at the first keyframe, at once.
    let until = std::time::Instant::now() + Duration::from_secs(20);
    while recording(&dir).is_none() && std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(after);
    let killed_at = omnicast_engine::lipsync::unix_now_s();
    let _ = caster.kill();
    let _ = caster.wait();
    let (file, start) = recording(&dir).expect("a recording");
    let lost = (killed_at - start) - decodable_s(&file);
    let _ = std::fs::remove_dir_all(&dir);
    lost
}

#[tokio::main]
async fn main() {
    let seconds: u64 = common::env_or("OMNICAST_BENCH_SECONDS", 20);
    println!(
        "omnicast recording: broadcaster process (test pattern 30 fps + test tone), one viewer, \
         {seconds} s a run"
    );
    println!(
        "{:>10} {:>6} {:>9} {:>9} {:>9} {:>12} {:>12}",
        "size", "kbit/s", "off", "on", "cost", "written/min", "received/min"
    );
    for (size, kbps) in [("1280x720", "2000"), ("3840x1920", "8000")] {
        let (mut off, mut on) = (Vec::new(), Vec::new());
        let mut written = Vec::new();
        let mut received = Vec::new();
        for _ in 0..2 {
            off.push(run(size, kbps, false, seconds).await.cpu);
            let r = run(size, kbps, true, seconds).await;
            on.push(r.cpu);
            written.extend(r.written_per_min);
            received.push(r.received_per_min);
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        println!(
            "{size:>10} {kbps:>6} {:>8.1}% {:>8.1}% {:>+8.1}% {:>9.2} MB {:>9.2} MB   (runs: off {off:.1?}, on {on:.1?})",
            mean(&off),
            mean(&on),
            mean(&on) - mean(&off),
            mean(&written) / 1e6,
            mean(&received) / 1e6,
        );
        let target = (kbps.parse::<f64>().unwrap() + 48.0) * 1000.0 / 8.0 * 60.0;
        println!(
            "{:>10} target bitrate (picture + 48 kbit/s sound) is {:.2} MB a minute; the file is {:.0} % of what the viewer received",
            "",
            target / 1e6,
            mean(&written) / mean(&received) * 100.0
        );
    }
    let lost: Vec<f64> = [2.3, 3.7, 4.1, 5.5, 6.9]
        .iter()
        .map(|s| killed_after(Duration::from_secs_f64(*s)))
        .collect();
    println!(
        "footage lost to SIGKILL (5 kills, 1280x720): worst {:.2} s, mean {:.2} s ({lost:.2?})",
        lost.iter().copied().fold(f64::MIN, f64::max),
        lost.iter().sum::<f64>() / lost.len() as f64
    );
}
