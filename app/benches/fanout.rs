//! Fan-out benchmark (a program, not a timed test): the real `omnicast broadcast --headless`
//! process at 1280x720 30 fps 2 Mbit/s, with N = 1, 5, 20, 50 viewers on loopback.
//!
//! Per N it prints the broadcaster's CPU (its own process, from /proc), frames encoded per
//! second, glass-to-glass latency p50/p95 and frames lost on a decoding probe viewer, the first
//! frame time p50/p95 of viewers joining the running broadcast, and packets lost across all
//! viewers (10 joins per N; `OMNICAST_BENCH_JOINS`). The other N-1 viewers receive and count RTP without decoding: fifty 720p decoders do
//! not fit on a 2-core machine next to the broadcaster being measured.
//!
//!   cargo bench -p omnicast --bench fanout
//!   OMNICAST_BENCH_VIEWERS=1,5 OMNICAST_BENCH_SECONDS=5 cargo bench -p omnicast --bench fanout
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Child;
use std::time::{Duration, Instant};

mod common;

#[path = "../engine/tests/support/mod.rs"]
mod support;

use support::{Session, watch};

/// A viewer in a service of its own, as the window runs one: decoding (the probe and the
/// joiners) or only receiving and counting.
fn start_viewer(url: &str, decode: bool) -> Session {
    watch(url, "", decode).0
}

fn start_broadcaster() -> (Child, String) {
    common::start_broadcaster(
        &[
            "--size",
            "1280x720",
            "--fps",
            "30",
            "--bitrate-kbps",
            "2000",
        ]
        .map(std::ffi::OsStr::new),
    )
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize] as f64
}

/// Has `viewer` decoded `n` frames within `within`? (Its figures come every half second.)
async fn until_frames(viewer: &Session, n: u64, within: Duration) -> bool {
    tokio::time::timeout(within, async {
        while viewer.seen().stats().frames_decoded < n {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .is_ok()
}

#[tokio::main]
async fn main() {
    let counts: Vec<usize> = std::env::var("OMNICAST_BENCH_VIEWERS")
        .unwrap_or_else(|_| "1,5,20,50".into())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    let seconds: u64 = common::env_or("OMNICAST_BENCH_SECONDS", 10);
    let joins: usize = common::env_or("OMNICAST_BENCH_JOINS", 10);
    println!(
        "omnicast fan-out: broadcaster process at 1280x720 30 fps 2 Mbit/s, loopback, {seconds} s per N"
    );
    println!(
        "{:>4} {:>9} {:>11} {:>9} {:>9} {:>11} {:>11} {:>11} {:>10} {:>11}",
        "N",
        "cpu %",
        "encode fps",
        "lat p50",
        "lat p95",
        "join p50",
        "join p95",
        "join max",
        "lost fr",
        "lost pkts"
    );
    for &n in &counts {
        let (mut caster, url) = start_broadcaster();
        let pid = caster.id();
        // N viewers: one decoding probe, the rest receive-only.
        let probe = start_viewer(&url, true);
        let others: Vec<Session> = (1..n).map(|_| start_viewer(&url, false)).collect();
        if !until_frames(&probe, 30, Duration::from_secs(30)).await {
            println!(
                "{n:>4} probe viewer got no video in 30 s: {:?}",
                probe.seen()
            );
            let _ = caster.kill();
            continue;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;

        let before = probe.seen().stats();
        let cpu0 = common::cpu_secs(pid);
        let t0 = Instant::now();
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        let cpu = (common::cpu_secs(pid) - cpu0) / t0.elapsed().as_secs_f64() * 100.0;
        let after = probe.seen().stats();
        let encoded = after
            .last_seq
            .unwrap_or(0)
            .wrapping_sub(before.last_seq.unwrap_or(0));
        let encode_fps = f64::from(encoded) / t0.elapsed().as_secs_f64();
        // Samples added during the window (the most recent are kept: 20 s of them).
        let new_samples = (after.frames_with_stamp - before.frames_with_stamp)
            .min(after.latency_ms.len() as u64) as usize;
        let mut lat: Vec<u64> = after
            .latency_ms
            .iter()
            .skip(after.latency_ms.len() - new_samples)
            .map(|&v| u64::from(v))
            .collect();
        lat.sort_unstable();

        // Joiners: time from starting a viewer to its first decoded frame.
        let mut first_ms = Vec::new();
        let mut slowest = None;
        for _ in 0..joins {
            let j = start_viewer(&url, true);
            if until_frames(&j, 1, Duration::from_secs(10)).await {
                let s = j.seen().stats();
                let ms = s.first_frame_ms.unwrap_or(u64::MAX);
                if slowest.as_ref().is_none_or(|(m, _)| ms > *m) {
                    slowest = Some((ms, s.timeline_ms));
                }
                first_ms.push(ms);
            }
            j.stop().await;
        }
        first_ms.sort_unstable();

        let lost_frames = after.frames_lost;
        let lost_packets: u64 = after.packets_lost
            + others
                .iter()
                .map(|v| v.seen().stats().packets_lost)
                .sum::<u64>();
        println!(
            "{n:>4} {cpu:>8.1}% {encode_fps:>11.1} {:>6.0} ms {:>6.0} ms {:>8.0} ms {:>8.0} ms {:>8.0} ms {lost_frames:>10} {lost_packets:>11}",
            pct(&lat, 0.5),
            pct(&lat, 0.95),
            pct(&first_ms, 0.5),
            pct(&first_ms, 0.95),
            pct(&first_ms, 1.0),
        );
        if let Some((ms, timeline)) = slowest {
            println!("       slowest join ({ms} ms): {timeline:?}");
        }
        probe.stop().await;
        for v in others {
            v.stop().await;
        }
        let _ = caster.kill();
        let _ = caster.wait();
    }
}
