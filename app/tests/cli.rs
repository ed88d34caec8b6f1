//! The real `omnicast` binary, headless: a broadcaster process (no camera here, so the test
//! pattern, said clearly) and viewer processes that exit after N frames with their statistics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::{Child, Stdio};
use std::time::Duration;

use support::{Proc, headless_broadcaster, headless_viewer, omnicast};

struct Broadcaster {
    proc: Proc,
    url: String,
}

fn start_broadcaster(args: &[&str]) -> Broadcaster {
    let (proc, url) = headless_broadcaster(args);
    Broadcaster { proc, url }
}

fn view(url: &str, frames: u64, stats: &std::path::Path) -> Child {
    headless_viewer(url)
        .args(["--frames", &frames.to_string(), "--stats-json"])
        .arg(stats)
        .env("RUST_LOG", "warn,webrtc=error,rtc=error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("viewer starts")
}

fn wait(mut child: Child, within: Duration) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("process did not finish within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn without_a_camera_the_test_pattern_goes_out_and_viewer_processes_decode_it() {
    let caster = start_broadcaster(&["--source", "camera", "--size", "320x240"]);
    let dir = std::env::temp_dir().join(format!("omnicast-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let viewers: Vec<_> = (0..3)
        .map(|i| {
            let path = dir.join(format!("viewer{i}.json"));
            (view(&caster.url, 60, &path), path)
        })
        .collect();
    for (child, path) in viewers {
        assert!(wait(child, Duration::from_secs(60)).success());
        let stats: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert!(stats["frames_decoded"].as_u64().unwrap() >= 60, "{stats}");
        assert_eq!(stats["width"], 320);
        assert_eq!(stats["frames_lost"], 0, "{stats}");
        assert_eq!(
            stats["frames_with_stamp"], stats["frames_decoded"],
            "test pattern stamps"
        );
    }
    // The broadcaster said why it sends the test pattern.
    let said = caster.proc.said();
    assert!(
        said.iter()
            .any(|l| l.contains("no camera found") && l.contains("test pattern")),
        "{said:#?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn pictures_and_videos_from_files_reach_viewers() {
    let dir = std::env::temp_dir().join(format!("omnicast-cli-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // A 2:1 picture, red on the left half and blue on the right, at half the size it is sent.
    let png = dir.join("halves.png");
    image::RgbImage::from_fn(160, 80, |x, _| {
        if x < 80 {
            image::Rgb([230, 20, 20])
        } else {
            image::Rgb([20, 20, 230])
        }
    })
    .save(&png)
    .unwrap();
    let caster = start_broadcaster(&[
        "--source",
        &format!("image:{}", png.display()),
        "--size",
        "320x160",
    ]);
    let shot = dir.join("shot.png");
    let stats = dir.join("image.json");
    let viewer = headless_viewer(&caster.url)
        .args(["--frames", "20", "--stats-json"])
        .arg(&stats)
        .arg("--snapshot")
        .arg(&shot)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait(viewer, Duration::from_secs(60)).success());
    let got: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    assert_eq!(
        (got["width"].as_u64(), got["height"].as_u64()),
        (Some(320), Some(160))
    );
    let img = image::open(&shot).unwrap().to_rgb8();
    let (left, right) = (img.get_pixel(40, 80).0, img.get_pixel(280, 80).0);
    assert!(left[0] > 180 && left[2] < 80, "left is red: {left:?}");
    assert!(right[2] > 180 && right[0] < 80, "right is blue: {right:?}");
    assert!(
        caster
            .proc
            .said()
            .iter()
            .any(|l| l.contains("broadcasting image halves.png")),
        "{:#?}",
        caster.proc.said()
    );
    drop(caster);

    // A YUV4MPEG2 video plays at its own size.
    let y4m = dir.join("grey.y4m");
    let mut bytes = b"YUV4MPEG2 W64 H32 F30:1 C420jpeg\n".to_vec();
    for i in 0..10u8 {
        bytes.extend_from_slice(b"FRAME\n");
        bytes.extend(std::iter::repeat_n(40 + i * 10, 64 * 32));
        bytes.extend(std::iter::repeat_n(128, 64 * 32 / 2));
    }
    std::fs::write(&y4m, bytes).unwrap();
    let caster = start_broadcaster(&["--source", &format!("y4m:{}", y4m.display())]);
    let stats = dir.join("y4m.json");
    assert!(wait(view(&caster.url, 30, &stats), Duration::from_secs(60)).success());
    let got: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    assert_eq!(
        (got["width"].as_u64(), got["height"].as_u64()),
        (Some(64), Some(32))
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_arguments_get_clear_errors() {
    for (args, says) in [
        (&["--size", "12by7"][..], "expected WIDTHxHEIGHT"),
        // Beyond what H.264 level 5.2 (openh264's limit) encodes.
        (&["--size", "7680x3840"], "up to 3840x2160"),
        (&["--source", "webcam"], "unknown source"),
        (&["--encode-threads", "9"], "0 to 4"),
        (&["--fps", "120"], "1 to 60"),
        (&["--bitrate-kbps", "10"], "100 to 50000"),
        (&["--server", "robot:4000"], "http:// or https://"),
        (&["--media-bind", "localhost:x"], "expected an IP address"),
        // Files that cannot be sent are said before anything starts, naming the file.
        (
            &["--source", "image:/nonexistent/robot.png"],
            "/nonexistent/robot.png: No such file",
        ),
        (
            &["--source", "y4m:/etc/hostname"],
            "/etc/hostname: not a YUV4MPEG2 video",
        ),
        (&["--source", "image:"], "needs a file"),
    ] {
        let out = omnicast()
            .args(["broadcast", "--headless"])
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    // A server that does not exist: a clear error and a non-zero exit, not a hang.
    let out = omnicast()
        .args([
            "view",
            "--headless",
            "--server",
            "http://127.0.0.1:9",
            "--frames",
            "1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot reach the signal server"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
