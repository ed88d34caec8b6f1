//! Viewport-sample benchmark (a program, not a timed test): the real `omnicast broadcast
//! --headless --viewport-log` process (640x360 test pattern, 30 fps) with N receive-only viewers
//! on loopback (default 50), in phases that alternate: viewers watching only, then viewers
//! each replaying a 60 Hz head-motion trace (twice each).
//!
//! Per phase it prints the broadcaster's CPU (its own process, from /proc); for the phases with
//! samples, the samples the viewers sent against the lines the log holds, the one-way delay
//! p50/p95 (the log's `t_received - t_sent`, one clock), and log bytes per viewer-hour.
//!
//!   cargo bench -p omnicast --bench viewports
//!   OMNICAST_BENCH_VIEWERS=10 OMNICAST_BENCH_SECONDS=5 cargo bench -p omnicast --bench viewports
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

#[path = "../engine/tests/support/mod.rs"]
mod support;

use omnicast_engine::channels::trace::Trace;
use support::{Session, view_settings, watch_with};

fn start_broadcaster(log: &Path) -> (Child, String) {
    let mut args = [
        "--size",
        "640x360",
        "--fps",
        "30",
        "--bitrate-kbps",
        "500",
        "--viewport-log",
    ]
    .map(std::ffi::OsStr::new)
    .to_vec();
    args.push(log.as_os_str());
    common::start_broadcaster(&args)
}

/// A trace at 60 Hz for `seconds`: the head sweeps left and right, nodding a little.
fn trace(seconds: u64) -> Arc<Trace> {
    let mut csv = String::from("t,yaw,pitch,roll\n");
    for i in 0..seconds * 60 {
        let t = i as f64 / 60.0;
        csv += &format!(
            "{t:.4},{:.2},{:.2},0\n",
            120.0 * (t * 0.7).sin(),
            20.0 * (t * 1.3).sin()
        );
    }
    Arc::new(Trace::parse(&csv).unwrap())
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let n: usize = common::env_or("OMNICAST_BENCH_VIEWERS", 50);
    let seconds: u64 = common::env_or("OMNICAST_BENCH_SECONDS", 20);
    let dir = std::env::temp_dir().join(format!("omnicast-bench-viewports-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    println!(
        "omnicast viewport samples: broadcaster process (640x360 30 fps) with {n} receive-only viewers, loopback, {seconds} s a phase"
    );
    println!(
        "{:>16} {:>7} {:>9} {:>9} {:>9} {:>10} {:>10} {:>16}",
        "phase", "cpu %", "sent", "logged", "lost", "delay p50", "delay p95", "log bytes/v·h"
    );
    // Long enough to cover the measured window for every viewer, short enough to end soon
    // after it: then samples sent and logged are compared with none in flight.
    let trace = trace(seconds + 20);
    for (i, samples) in [false, true, false, true].into_iter().enumerate() {
        let log: PathBuf = dir.join(format!("phase-{i}.jsonl"));
        let _ = std::fs::remove_file(&log);
        let (mut caster, url) = start_broadcaster(&log);
        let pid = caster.id();
        let viewers: Vec<Session> = (0..n)
            .map(|_| {
                let mut settings = view_settings(&url, "");
                if samples {
                    settings.viewport_trace = Some(trace.clone());
                }
                watch_with(settings, false).0
            })
            .collect();
        let cpu = common::cpu_while_watched(pid, &viewers, seconds).await;
        // Every trace has ended when the viewers' counts stop growing (figures come twice a
        // second); whatever arrived is on disk within the log's flush interval.
        let sent_now = || {
            viewers
                .iter()
                .map(|v| v.seen().stats().viewport_samples_sent)
                .sum::<u64>()
        };
        let settle = Instant::now();
        let mut sent = sent_now();
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let now = sent_now();
            if now == sent || settle.elapsed() > Duration::from_secs(60) {
                break;
            }
            sent = now;
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let bytes = text.len() as f64;
        let mut delays: Vec<f64> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|l| Some(l["t_received"].as_f64()? - l["t_sent"].as_f64()?))
            .collect();
        let logged = delays.len() as u64;
        delays.sort_by(f64::total_cmp);
        for v in viewers {
            v.stop().await;
        }
        let _ = caster.kill();
        let _ = caster.wait();
        let phase = if samples {
            "60 Hz samples"
        } else {
            "watching only"
        };
        if samples {
            // A viewer-hour at 60 samples a second.
            let per_viewer_hour = bytes / logged.max(1) as f64 * 60.0 * 3600.0;
            println!(
                "{phase:>16} {cpu:>6.1}% {sent:>9} {logged:>9} {:>9} {:>7.1} ms {:>7.1} ms {:>13.1} MB",
                sent.saturating_sub(logged),
                pct(&delays, 0.5),
                pct(&delays, 0.95),
                per_viewer_hour / 1e6
            );
        } else {
            println!("{phase:>16} {cpu:>6.1}% {:>9} {logged:>9}", 0);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
