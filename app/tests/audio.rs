//! Sound through the real binaries: the broadcaster's test tone reaches a headless viewer's WAV
//! with its beeps one second apart; a missing microphone leaves the picture going; 5 % of UDP
//! dropped (nft, in a private network namespace) leaves no gap in the sound over 100 ms.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use omnicast_engine::audio::tone::BeepDetector;
use support::{Proc, headless_broadcaster, headless_viewer};

fn start_broadcaster(args: &[&str]) -> (Proc, String) {
    let mut all = vec!["--source", "test-pattern", "--size", "320x240"];
    all.extend_from_slice(args);
    headless_broadcaster(&all)
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("omnicast-audio-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A headless viewer of `url` decoding `frames` frames, its statistics and its sound (WAV)
/// written into `dir`.
fn viewer(url: &str, frames: u64, dir: &Path) -> Command {
    let mut command = headless_viewer(url);
    command
        .args(["--frames", &frames.to_string(), "--stats-json"])
        .arg(dir.join("stats.json"))
        .arg("--audio-wav")
        .arg(dir.join("heard.wav"));
    command
}

/// The left channel of a WAV file the viewer wrote, as floats.
fn heard(dir: &Path) -> Vec<f32> {
    let mut wav = hound::WavReader::open(dir.join("heard.wav")).unwrap();
    let spec = wav.spec();
    assert_eq!(
        (spec.sample_rate, spec.channels, spec.bits_per_sample),
        (48_000, 2, 16)
    );
    wav.samples::<i16>()
        .step_by(2)
        .map(|s| f32::from(s.unwrap()) / 32768.0)
        .collect()
}

fn stats(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("stats.json")).unwrap()).unwrap()
}

/// Where beeps begin, in samples.
fn beeps(samples: &[f32]) -> Vec<usize> {
    BeepDetector::new(48_000).feed(samples)
}

#[test]
fn the_test_tone_reaches_a_headless_viewers_wav_with_a_beep_each_second() {
    let (_caster, url) = start_broadcaster(&["--audio", "test-tone"]);
    let dir = scratch("tone");
    let status = viewer(&url, 180, &dir)
        .env("RUST_LOG", "warn")
        .status()
        .unwrap();
    assert!(status.success());
    let samples = heard(&dir);
    let seconds = samples.len() as f64 / 48_000.0;
    assert!(seconds > 4.0, "{seconds} s of sound for 6 s of picture");
    let onsets = beeps(&samples);
    // One a second, the whole way: every second's beep is there, a second apart, give or take
    // two 20 ms frames (the jitter buffer settles its delay a frame at a time, mostly in the
    // first seconds); on average exactly a second.
    assert!(
        onsets.len() as f64 >= seconds.floor() - 1.0,
        "{onsets:?} in {seconds} s"
    );
    for w in onsets.windows(2) {
        let apart = w[1] - w[0];
        assert!(
            apart.abs_diff(48_000) <= 2_000,
            "beeps {apart} samples apart: {onsets:?}"
        );
    }
    let mean = (onsets[onsets.len() - 1] - onsets[0]) as f64 / (onsets.len() - 1) as f64;
    assert!((mean - 48_000.0).abs() < 500.0, "{mean}: {onsets:?}");
    // Between beeps, the quiet tone: sound, not silence.
    let between = &samples[onsets[0] + 9_600..onsets[0] + 40_000];
    let peak = between.iter().fold(0f32, |m, s| m.max(s.abs()));
    assert!((0.02..0.06).contains(&peak), "{peak}");
    let s = stats(&dir);
    assert_eq!(s["audio"]["output"], "no output device");
    assert!(s["audio"]["beeps"].as_u64().unwrap() >= 4, "{s}");
    assert!(s["audio"]["bitrate_kbps"].as_f64().unwrap() > 20.0, "{s}");
    assert!(s["audio"]["av_offset_ms"].as_f64().is_some(), "{s}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_microphone_is_said_and_the_picture_goes_on() {
    let (caster, url) = start_broadcaster(&["--audio", "no-such-microphone-here"]);
    // Said whether the machine has no sound devices at all or only others.
    let said = caster.wait_for("no microphone", Duration::from_secs(20));
    assert!(said.contains("trying again every 5s"), "{said}");
    let dir = scratch("nomic");
    let status = viewer(&url, 60, &dir)
        .env("RUST_LOG", "warn")
        .status()
        .unwrap();
    assert!(status.success());
    let s = stats(&dir);
    assert!(s["frames_decoded"].as_u64().unwrap() >= 60, "{s}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Longest run of silence in `samples` after the sound began, in milliseconds.
fn longest_gap_ms(samples: &[f32]) -> f64 {
    let start = samples
        .iter()
        .position(|s| s.abs() > 0.01)
        .unwrap_or(samples.len());
    let (mut longest, mut run) = (0usize, 0usize);
    for s in &samples[start..] {
        if s.abs() < 0.002 {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    longest as f64 / 48.0
}

#[test]
fn with_five_percent_of_packets_lost_the_sound_has_no_gap_over_100_ms() {
    if Command::new("nft").arg("--version").output().is_err() {
        panic!("nft is needed (Debian package nftables; scripts/setup-debian.sh installs it)");
    }
    let dir = scratch("loss");
    let bin = env!("CARGO_BIN_EXE_omnicast");
    // Everything in a network namespace of its own (only loopback), where an output rule drops
    // one UDP packet in twenty: the media, both ways.
    let script = format!(
        r#"set -e
ip link set lo up
nft add table inet loss
nft add chain inet loss out '{{ type filter hook output priority 0; }}'
nft add rule inet loss out meta l4proto udp numgen random mod 100 '<' 5 drop
NO_COLOR=1 RUST_LOG=warn "{bin}" broadcast --headless --bind 127.0.0.1:4000 --stun-bind 127.0.0.1:3478 \
  --media-bind 127.0.0.1 --source test-pattern --size 320x240 --audio test-tone &
B=$!
for i in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/4000) 2>/dev/null && break; sleep 0.1; done
NO_COLOR=1 RUST_LOG=warn timeout 60 "{bin}" view --headless --server http://127.0.0.1:4000 \
  --media-bind 127.0.0.1 --frames 300 --stats-json "{dir}/stats.json" --audio-wav "{dir}/heard.wav"
kill $B
"#,
        dir = dir.display()
    );
    let out = Command::new("unshare")
        .args(["-n", "bash", "-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let s = stats(&dir);
    let a = &s["audio"];
    let (received, lost) = (
        a["packets_received"].as_u64().unwrap(),
        a["packets_lost"].as_u64().unwrap(),
    );
    // The loss was real: 2–10 % of the sound's packets.
    let share = lost as f64 / (received + lost) as f64;
    assert!(
        (0.02..0.10).contains(&share),
        "{lost} of {} lost: {s}",
        received + lost
    );
    let samples = heard(&dir);
    assert!(samples.len() > 48_000 * 6, "{} samples", samples.len());
    let gap = longest_gap_ms(&samples);
    assert!(gap < 100.0, "a gap of {gap} ms in the sound: {a}");
    // Concealment covered the losses; beeps still a second apart.
    assert!(a["frames_concealed"].as_u64().unwrap() > 0, "{a}");
    let onsets = beeps(&samples);
    assert!(onsets.len() >= 6, "{onsets:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
