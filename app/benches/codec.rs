//! Encode and decode speed of the test pattern through openh264, single process, no network.
//!
//!   cargo bench -p omnicast --bench codec
//!   OMNICAST_BENCH_SIZES=3840x1920,1280x720 OMNICAST_BENCH_FRAMES=120 cargo bench -p omnicast --bench codec
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use omnicast::engine::codec::{EncoderSettings, H264Decoder, H264Encoder};
use omnicast::engine::pattern::TestPattern;
use omnicast::engine::stamp::Stamp;

fn main() {
    let sizes =
        std::env::var("OMNICAST_BENCH_SIZES").unwrap_or_else(|_| "1280x720,3840x1920".into());
    let frames: u32 = std::env::var("OMNICAST_BENCH_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(90);
    println!("openh264 through omnicast's engine, {frames} frames of the moving test pattern");
    println!(
        "{:>10} {:>8} {:>12} {:>12} {:>10}",
        "size", "threads", "encode fps", "decode fps", "kbit/frame"
    );
    for size in sizes.split(',') {
        let (w, h) = size.split_once('x').unwrap();
        let (w, h): (usize, usize) = (w.parse().unwrap(), h.parse().unwrap());
        for threads in [1u16, 0] {
            let bitrate_kbps = (w * h / 1000 * 8) as u32; // ~2 Mbit/s at 720p scaled by area
            let mut enc = H264Encoder::new(EncoderSettings {
                fps: 30.0,
                bitrate_kbps,
                keyframe_interval: 300,
                threads,
            })
            .unwrap();
            let mut pattern = TestPattern::new(w, h);
            let mut encoded = Vec::new();
            let mut bits = Vec::new();
            let t = Instant::now();
            for seq in 0..frames {
                if enc
                    .encode(pattern.render(Stamp::now(seq)), &mut bits)
                    .unwrap()
                    .is_some()
                {
                    encoded.push(bits.clone());
                }
            }
            let enc_fps = f64::from(frames) / t.elapsed().as_secs_f64();
            let mut dec = H264Decoder::new().unwrap();
            let mut rgba = Vec::new();
            let t = Instant::now();
            for au in &encoded {
                dec.decode(au, &mut rgba).unwrap();
            }
            let dec_fps = encoded.len() as f64 / t.elapsed().as_secs_f64();
            let kbit = encoded.iter().map(Vec::len).sum::<usize>() as f64 * 8.0
                / 1000.0
                / encoded.len() as f64;
            let label = if threads == 0 {
                "auto".to_owned()
            } else {
                threads.to_string()
            };
            println!("{size:>10} {label:>8} {enc_fps:>12.1} {dec_fps:>12.1} {kbit:>10.1}");
        }
    }
}
