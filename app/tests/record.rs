//! Recording through the real binaries, checked with ffprobe/ffmpeg as someone opening the
//! files would: the broadcaster's 10 s of test pattern and test tone (H.264 and Opus, the
//! right duration, every stamped frame in order, the beeps where the capture clock puts them),
//! a recording killed with SIGKILL still plays, a headless viewer records what it receives, and
//! a disk about to fill stops the recording cleanly (a small tmpfs in a mount namespace); a
//! recording replayed as the source reaches a viewer byte for byte (a High-profile file is
//! re-encoded instead, a bogus one refused).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use omnicast_engine::audio::tone::BeepDetector;
use omnicast_engine::replay::Mp4Reader;
use omnicast_engine::stamp;
use support::{Proc, headless_broadcaster, headless_viewer, omnicast};

const W: usize = 320;
const H: usize = 240;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("omnicast-record-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The one recording in `dir`, and its JSON sidecar.
fn recording(dir: &Path) -> (PathBuf, serde_json::Value) {
    let mp4: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "mp4"))
        .collect();
    assert_eq!(mp4.len(), 1, "one recording in {}: {mp4:?}", dir.display());
    let json = std::fs::read_to_string(mp4[0].with_extension("json")).unwrap();
    (mp4[0].clone(), serde_json::from_str(&json).unwrap())
}

/// ffprobe's view of a file: its streams and duration.
fn probe(file: &Path) -> serde_json::Value {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_format",
            "-show_streams",
            "-of",
            "json",
        ])
        .arg(file)
        .output()
        .expect("ffprobe (Debian's ffmpeg) is installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn codecs(probe: &serde_json::Value) -> Vec<String> {
    probe["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["codec_name"].as_str().unwrap().to_owned())
        .collect()
}

fn duration_s(probe: &serde_json::Value) -> f64 {
    probe["format"]["duration"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// Every picture ffmpeg decodes from `file`, as the stamps the test pattern drew into them.
fn stamps(file: &Path) -> Vec<Option<u32>> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(file)
        // Each decoded picture once: no frames repeated to fill a constant rate.
        .args(["-map", "0:v", "-fps_mode", "passthrough"])
        .args(["-f", "rawvideo", "-pix_fmt", "gray", "-"])
        .stderr(Stdio::null())
        .output()
        .unwrap();
    out.stdout
        .chunks_exact(W * H)
        .map(|y| stamp::read(y, W, W, H).map(|s| s.seq))
        .collect()
}

/// Where the test tone's beeps start in `file`'s sound, in seconds of the file.
fn beeps(file: &Path) -> Vec<f64> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(file)
        .args([
            "-map", "0:a", "-ac", "1", "-ar", "48000", "-f", "f32le", "-",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pcm: Vec<f32> = out
        .stdout
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    BeepDetector::new(48_000)
        .feed(&pcm)
        .into_iter()
        .map(|at| at as f64 / 48_000.0)
        .collect()
}

/// What every broadcaster here sends: the test pattern, small, and the test tone.
const PATTERN_AND_TONE: [&str; 6] = [
    "--source",
    "test-pattern",
    "--size",
    "320x240",
    "--audio",
    "test-tone",
];

/// A headless broadcaster sending them and recording into `dir`, with `extra` arguments.
fn recording_broadcaster(dir: &Path, extra: &[&str]) -> (Proc, String) {
    let dir = dir.display().to_string();
    let mut args = PATTERN_AND_TONE.to_vec();
    args.extend(["--record", &dir]);
    args.extend_from_slice(extra);
    headless_broadcaster(&args)
}

#[test]
fn a_broadcaster_records_ten_seconds_of_picture_and_sound_as_they_were_captured() {
    let dir = scratch("ten");
    let (caster, _url) = recording_broadcaster(&dir, &[]);
    // Said with the first fragment on disk, a second into the file.
    caster.wait_for("recording to", Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(9));
    assert!(caster.terminate(Duration::from_secs(15)).success());
    let (file, sidecar) = recording(&dir);
    assert!(
        file.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("omnicast-broadcast-main-2"),
        "named with the room and start time: {}",
        file.display()
    );
    assert_eq!(sidecar["complete"], true);
    let p = probe(&file);
    assert_eq!(codecs(&p), ["h264", "opus"]);
    let duration = duration_s(&p);
    assert!((9.5..=10.5).contains(&duration), "{duration} s");
    // Every picture there, each the one after the last.
    let seqs = stamps(&file);
    assert!(
        (285..=315).contains(&seqs.len()),
        "{} pictures in {duration} s",
        seqs.len()
    );
    let seqs: Vec<u32> = seqs
        .iter()
        .map(|s| s.expect("every picture's stamp reads back"))
        .collect();
    for pair in seqs.windows(2) {
        assert_eq!(pair[1], pair[0] + 1, "pictures in order, none missing");
    }
    // Each beep began at a whole second of the capture clock: in the file, at that second
    // less the file's start, within the half frame sound is aligned to (and the detector's ms).
    let start_s = sidecar["start_unix_ms"].as_f64().unwrap() / 1000.0;
    // A beep already sounding when the file starts (one start in ten) has no onset in it: the
    // detector reports the file's first sample.
    let onsets: Vec<f64> = beeps(&file).into_iter().filter(|t| *t > 0.005).collect();
    assert!(onsets.len() >= 8, "beeps at {onsets:?}");
    for t in onsets {
        let capture = start_s + t;
        let off_ms = (capture - capture.round()) * 1000.0;
        assert!(
            off_ms.abs() <= 15.0,
            "a beep {off_ms:+.1} ms from a whole second of capture (at {t:.3} s)"
        );
    }
}

#[test]
fn a_recording_killed_mid_way_still_plays_up_to_its_last_second() {
    let dir = scratch("killed");
    let (mut caster, _url) = recording_broadcaster(&dir, &[]);
    caster.wait_for("recording to", Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(6));
    caster.child.kill().unwrap(); // SIGKILL: no chance to finish the file
    caster.child.wait().unwrap();
    let (file, sidecar) = recording(&dir);
    assert_eq!(sidecar["complete"], false);
    let p = probe(&file);
    assert_eq!(codecs(&p), ["h264", "opus"]);
    let seqs = stamps(&file);
    // At most the last fragment (a second) is lost.
    assert!(
        seqs.len() >= 6 * 30,
        "{} pictures decode of ~7 s",
        seqs.len()
    );
    assert!(duration_s(&p) >= 6.0, "{} s", duration_s(&p));
    // Replay reads it as far as it goes (every picture ffmpeg decoded, and the sound), and
    // takes the cut for the end rather than failing.
    let mut reader = Mp4Reader::open(&file).unwrap();
    let (mut pictures, mut sounds) = (0, 0);
    while let Some(s) = reader.next_sample().unwrap() {
        match s.kind {
            shiguredo_mp4::TrackKind::Video => pictures += 1,
            _ => sounds += 1,
        }
    }
    assert!(
        pictures >= seqs.len(),
        "{pictures} of {} pictures",
        seqs.len()
    );
    assert!(sounds >= 5 * 50, "{sounds} sound frames");
}

#[test]
fn a_headless_viewer_records_what_it_receives() {
    let dir = scratch("viewer");
    let (_caster, url) = headless_broadcaster(&PATTERN_AND_TONE);
    let status = headless_viewer(&url)
        .args(["--frames", "150", "--record"])
        .arg(&dir)
        .arg("--stats-json")
        .arg(dir.join("stats.json"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::remove_file(dir.join("stats.json")).unwrap();
    let (file, sidecar) = recording(&dir);
    assert!(
        file.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("omnicast-view-main-"),
        "{}",
        file.display()
    );
    assert_eq!(sidecar["role"], "view");
    let p = probe(&file);
    assert_eq!(codecs(&p), ["h264", "opus"]);
    let seqs: Vec<u32> = stamps(&file).into_iter().map(Option::unwrap).collect();
    assert!((140..=160).contains(&seqs.len()), "{} pictures", seqs.len());
    for pair in seqs.windows(2) {
        assert!(pair[1] > pair[0], "in order: {pair:?}");
    }
    assert!(beeps(&file).len() >= 3);
}

#[test]
fn segments_split_a_recording_into_files_of_the_length_asked() {
    let dir = scratch("segments");
    let (caster, _url) = recording_broadcaster(&dir, &["--record-segment", "5s"]);
    caster.wait_for("recording to", Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(11));
    assert!(caster.terminate(Duration::from_secs(15)).success());
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "mp4"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 3, "{files:?}");
    let starts: Vec<f64> = files
        .iter()
        .map(|f| {
            let json = std::fs::read_to_string(f.with_extension("json")).unwrap();
            let sidecar: serde_json::Value = serde_json::from_str(&json).unwrap();
            sidecar["start_unix_ms"].as_f64().unwrap()
        })
        .collect();
    for (i, f) in files.iter().enumerate().take(2) {
        // Each full segment is 5 s (its next file begins at the keyframe asked for then)…
        let d = duration_s(&probe(f));
        assert!((4.8..=5.1).contains(&d), "file {i}: {d} s");
        // …and the next one starts where it ended: nothing lost between files.
        let gap_ms = starts[i + 1] - starts[i] - d * 1000.0;
        assert!(
            gap_ms.abs() < 40.0,
            "{gap_ms} ms between files {i} and {}",
            i + 1
        );
        assert_eq!(codecs(&probe(f)), ["h264", "opus"]);
    }
}

#[test]
fn a_disk_about_to_fill_stops_the_recording_cleanly() {
    // A 20.4 MB tmpfs, seen only by this broadcaster (its own mount namespace); recording must
    // leave 20 MB free, so it stops after ~0.4 MB, and the picture goes on.
    let dir = scratch("floor");
    let bin = env!("CARGO_BIN_EXE_omnicast");
    let script = format!(
        "set -e; mount -t tmpfs -o size=20400000 tmpfs {d}/disk; \
         {bin} broadcast --headless --bind 127.0.0.1:0 --stun-bind 127.0.0.1:0 \
           --media-bind 127.0.0.1:0 --source test-pattern --size 640x360 --bitrate-kbps 4000 \
           --record {d}/disk --record-min-free-mb 20 > {d}/log 2>&1 & pid=$!; \
         for i in $(seq 1 300); do grep -q 'recording stopped' {d}/log && break; sleep 0.1; done; \
         sleep 2; kill -0 $pid; kill -TERM $pid; wait $pid || true; \
         df -B1 --output=avail {d}/disk | tail -1 > {d}/avail; cp {d}/disk/* {d}/",
        d = dir.display()
    );
    std::fs::create_dir_all(dir.join("disk")).unwrap();
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()
        .expect("unshare (util-linux)");
    let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "{}\n{log}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = log
        .lines()
        .find(|l| l.contains("recording stopped"))
        .unwrap_or_else(|| panic!("no stop said:\n{log}"));
    assert!(said.contains("MB free"), "{said}");
    let avail: u64 = std::fs::read_to_string(dir.join("avail"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(avail >= 20_000_000, "{avail} bytes left free");
    std::fs::remove_dir(dir.join("disk")).unwrap();
    let (file, _) = recording(&dir);
    let p = probe(&file);
    assert_eq!(codecs(&p), ["h264"]);
    assert!(duration_s(&p) >= 3.0, "{} s", duration_s(&p));
}

/// A recording's pictures as stored (length-prefixed NAL units), each with its keyframe flag.
fn pictures(file: &Path) -> Vec<(Vec<u8>, bool)> {
    let mut reader = Mp4Reader::open(file).unwrap();
    let mut out = Vec::new();
    while let Some(s) = reader.next_sample().unwrap() {
        if s.kind == shiguredo_mp4::TrackKind::Video {
            out.push((s.data, s.keyframe));
        }
    }
    out
}

#[test]
fn a_recording_replayed_as_the_source_reaches_viewers_as_recorded() {
    // Recorded with a keyframe a second, so a viewer joining the replay soon has one.
    let dir = scratch("replay");
    let (a_dir, b_dir) = (dir.join("recorded"), dir.join("received"));
    let (caster, _url) = recording_broadcaster(&a_dir, &["--keyframe-interval", "30"]);
    caster.wait_for("recording to", Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(4));
    assert!(caster.terminate(Duration::from_secs(15)).success());
    let (recorded, _) = recording(&a_dir);

    let source = format!("mp4:{}", recorded.display());
    let (replay, url) = headless_broadcaster(&["--source", &source]);
    let status = headless_viewer(&url)
        .args(["--frames", "200", "--record"])
        .arg(&b_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    drop(replay);
    let (received, _) = recording(&b_dir);

    // Every picture the viewer got is the recorded one, byte for byte, in order across the
    // loop: nothing was decoded and encoded again.
    let sent = pictures(&recorded);
    let got = pictures(&received);
    assert!(got.len() >= 150, "{} pictures received", got.len());
    assert!(
        got.len() > sent.len(),
        "the replay looped: {} of {}",
        got.len(),
        sent.len()
    );
    let first = sent
        .iter()
        .position(|p| p.0 == got[0].0)
        .expect("the first picture received is one recorded");
    for (k, (data, _)) in got.iter().enumerate() {
        let (want, _) = &sent[(first + k) % sent.len()];
        assert!(
            data == want,
            "picture {k} differs from recorded picture {}",
            (first + k) % sent.len()
        );
    }
    // And the recording's sound came with it.
    assert!(beeps(&received).len() >= 3);
}

#[test]
fn a_recording_viewers_cannot_take_as_it_is_is_re_encoded() {
    // High profile (libx264), as a camera's own recorder might make: decoded and encoded again.
    let dir = scratch("reencode");
    let file = dir.join("high.mp4");
    let made = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=30",
            "-t",
            "3",
        ])
        .args([
            "-c:v",
            "libx264",
            "-profile:v",
            "high",
            "-bf",
            "0",
            "-pix_fmt",
            "yuv420p",
        ])
        .arg(&file)
        .status()
        .unwrap();
    assert!(made.success());
    let source = format!("mp4:{}", file.display());
    let (replay, url) = headless_broadcaster(&["--source", &source]);
    let out = headless_viewer(&url)
        .args(["--frames", "60"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("decoded 60 frames (320x240)"), "{said}");
    // The broadcaster said so as it started (before or after its server's address).
    let log = replay.said().join("\n");
    assert!(
        log.contains("profile 6400") && log.contains("not Constrained Baseline: re-encoding it"),
        "{log}"
    );
}

#[test]
fn a_file_that_is_not_a_recording_is_refused_with_the_reason() {
    let dir = scratch("bogus");
    let file = dir.join("bogus.mp4");
    std::fs::write(&file, b"this is not an MP4 file at all").unwrap();
    let out = omnicast()
        .args(["broadcast", "--headless", "--bind", "127.0.0.1:0"])
        .args(["--stun-bind", "127.0.0.1:0", "--source"])
        .arg(format!("mp4:{}", file.display()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("bogus.mp4") && said.contains("not an MP4 file"),
        "{said}"
    );
}
