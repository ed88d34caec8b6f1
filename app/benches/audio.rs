//! Sound benchmark (a program, not a timed test), on loopback:
//!
//! 1. Lip sync and latency: the real broadcaster (640x360 test pattern, `--audio test-tone`) and
//!    a headless viewer process for 30 s. Each beep the viewer plays left at a whole second of
//!    the capture clock, so its age when played is the sound's glass-to-glass latency; less the
//!    latest picture's stamp latency it is the A/V offset. Prints p50/p95 of both.
//! 2. What sound costs the broadcaster: its CPU (its own process, from /proc) with 1 and with 20
//!    receive-only viewers, with `--audio none` and with `--audio test-tone`. Sound is encoded
//!    once, so 19 more viewers add only sending.
//!
//!   cargo bench -p omnicast --bench audio
//!   OMNICAST_BENCH_SECONDS=10 cargo bench -p omnicast --bench audio
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

mod common;

#[path = "../engine/tests/support/mod.rs"]
mod support;

use support::{Session, view_settings, watch_with};

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn broadcaster(audio: &str) -> (std::process::Child, String) {
    let args = [
        "--size",
        "640x360",
        "--fps",
        "30",
        "--bitrate-kbps",
        "500",
        "--audio",
        audio,
    ]
    .map(std::ffi::OsStr::new);
    common::start_broadcaster(&args)
}

fn sync_and_latency(seconds: u64) {
    let (mut caster, url) = broadcaster("test-tone");
    let dir = std::env::temp_dir().join(format!("omnicast-bench-audio-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let stats = dir.join("stats.json");
    let status = Command::new(env!("CARGO_BIN_EXE_omnicast"))
        .args([
            "view",
            "--headless",
            "--media-bind",
            "127.0.0.1:0",
            "--server",
            &url,
        ])
        .args(["--frames", &(seconds * 30).to_string(), "--stats-json"])
        .arg(&stats)
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    let _ = caster.kill();
    let _ = caster.wait();
    assert!(status.success());
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    let a = &s["audio"];
    let series = |key: &str| {
        // The first two seconds settle the jitter buffer and lip sync.
        let mut v: Vec<f64> = a[key]
            .as_array()
            .unwrap()
            .iter()
            .skip(2)
            .filter_map(serde_json::Value::as_f64)
            .collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let (latency, offset) = (series("beep_latency_ms"), series("beep_av_offset_ms"));
    let abs_offset = {
        let mut v: Vec<f64> = offset.iter().map(|o| o.abs()).collect();
        v.sort_by(f64::total_cmp);
        v
    };
    println!(
        "lip sync over {seconds} s ({} beeps): A/V offset p50 {:+.1} ms, |offset| p95 {:.1} ms, range {:+.1}..{:+.1} ms (sound later is +); sender-report estimate at the end {:+.1} ms",
        latency.len(),
        pct(&offset, 0.5),
        pct(&abs_offset, 0.95),
        pct(&offset, 0.0),
        pct(&offset, 1.0),
        a["av_offset_ms"].as_f64().unwrap_or(f64::NAN)
    );
    println!(
        "sound glass to glass: p50 {:.1} ms, p95 {:.1} ms, range {:.1}..{:.1} ms; jitter buffer {:.0} ms (target {:.0}), {} concealed, {} late",
        pct(&latency, 0.5),
        pct(&latency, 0.95),
        pct(&latency, 0.0),
        pct(&latency, 1.0),
        a["jitter_buffer_ms"].as_f64().unwrap_or(f64::NAN),
        a["jitter_target_ms"].as_f64().unwrap_or(f64::NAN),
        a["frames_concealed"],
        a["packets_late"]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

async fn cpu_with(audio: &str, n: usize, seconds: u64) -> f64 {
    let (mut caster, url) = broadcaster(audio);
    let pid = caster.id();
    let viewers: Vec<Session> = (0..n)
        .map(|_| watch_with(view_settings(&url, ""), false).0)
        .collect();
    let cpu = common::cpu_while_watched(pid, &viewers, seconds).await;
    for v in viewers {
        v.stop().await;
    }
    let _ = caster.kill();
    let _ = caster.wait();
    cpu
}

#[tokio::main]
async fn main() {
    let seconds: u64 = common::env_or("OMNICAST_BENCH_SECONDS", 20);
    println!("omnicast sound: broadcaster process (640x360 30 fps, Opus 48 kbit/s), loopback");
    sync_and_latency(seconds.max(20));
    println!("{:>10} {:>8} {:>8}", "audio", "1 viewer", "20 viewers");
    let mut rows = Vec::new();
    for audio in ["none", "test-tone"] {
        let one = cpu_with(audio, 1, seconds).await;
        let twenty = cpu_with(audio, 20, seconds).await;
        println!("{audio:>10} {one:>7.1}% {twenty:>9.1}%");
        rows.push((one, twenty));
    }
    let (none, tone) = (rows[0], rows[1]);
    println!(
        "sound's cost for 19 more viewers: {:+.1} % of a core (20 viewers over 1, with sound less without)",
        (tone.1 - tone.0) - (none.1 - none.0)
    );
}
