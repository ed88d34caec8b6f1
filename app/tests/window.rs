//! The real `omnicast` binary in a real window under Xvfb (wgpu on lavapipe), in both modes:
//! a kiosk broadcaster window, then viewer windows (flat and 360°) watching it. Screenshots of
//! the X screen, taken a moment apart, must show moving video. The screenshots are kept in
//! `target/screenshots/` (the README's come from there). Network traffic stays on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{Proc, omnicast};

use x11rb::connection::Connection as _;
use x11rb::protocol::xproto::{ConnectionExt as _, ImageFormat};

/// An X server of our own on a free display, stopped when dropped.
struct Xvfb {
    child: Child,
    display: String,
}

impl Xvfb {
    fn start() -> Self {
        // Xvfb picks a free display itself and says which (tests run in parallel: choosing one
        // here would race).
        let mut child = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "1280x800x24",
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb runs (apt install xvfb; scripts/setup-debian.sh installs it)");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().expect("piped")),
            &mut line,
        )
        .expect("Xvfb says its display");
        let n: u32 = line.trim().parse().expect("a display number");
        let display = format!(":{n}");
        let socket = format!("/tmp/.X11-unix/X{n}");
        let until = Instant::now() + Duration::from_secs(10);
        while !Path::new(&socket).exists() {
            assert!(Instant::now() < until, "Xvfb {display} did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, display }
    }

    /// The whole screen as RGB.
    fn screenshot(&self) -> image::RgbImage {
        let (conn, screen) = x11rb::connect(Some(&self.display)).expect("connect to Xvfb");
        let root = &conn.setup().roots[screen];
        let (w, h) = (root.width_in_pixels, root.height_in_pixels);
        let reply = conn
            .get_image(ImageFormat::Z_PIXMAP, root.root, 0, 0, w, h, !0)
            .unwrap()
            .reply()
            .expect("screen image");
        // 24-bit depth comes as 32 bits a pixel, blue first.
        let rgb = reply
            .data
            .chunks_exact(4)
            .flat_map(|p| [p[2], p[1], p[0]])
            .collect();
        image::RgbImage::from_raw(u32::from(w), u32::from(h), rgb).expect("whole image")
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The app in a kiosk window on `display`, configured by `config`, living in `home`.
fn kiosk_window(display: &str, config: &str, home: &Path) -> Proc {
    std::fs::create_dir_all(home.join("xdg")).unwrap();
    let config_path = home.join("omnicast.toml");
    std::fs::write(&config_path, config).unwrap();
    let mut command = omnicast();
    command.arg("--kiosk").arg("--config").arg(&config_path);
    in_window(&mut command, display, home);
    Proc::spawn(command)
}

/// Runs `command` on the X `display`, living in `home` (settings, runtime dir), with logs that
/// leave out the graphics stack's chatter.
fn in_window(command: &mut Command, display: &str, home: &Path) {
    command
        .env("DISPLAY", display)
        .env("HOME", home)
        .env("XDG_RUNTIME_DIR", home.join("xdg"))
        .env(
            "RUST_LOG",
            "info,wgpu=error,naga=error,winit=error,rtc=error,webrtc=error",
        );
}

fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Share of pixels in `region` (x0, y0, x1, y1) that changed by more than a little.
fn changed(
    a: &image::RgbImage,
    b: &image::RgbImage,
    (x0, y0, x1, y1): (u32, u32, u32, u32),
) -> f64 {
    let mut n = 0u64;
    for y in y0..y1 {
        for x in x0..x1 {
            let (p, q) = (a.get_pixel(x, y).0, b.get_pixel(x, y).0);
            n += u64::from(p.iter().zip(q).any(|(u, v)| u.abs_diff(v) > 24));
        }
    }
    n as f64 / f64::from((x1 - x0) * (y1 - y0))
}

/// Distinct colours (coarsely) in `region`: a picture has many, an empty window few.
fn colours(img: &image::RgbImage, (x0, y0, x1, y1): (u32, u32, u32, u32)) -> usize {
    let mut seen = std::collections::HashSet::new();
    for y in (y0..y1).step_by(4) {
        for x in (x0..x1).step_by(4) {
            let p = img.get_pixel(x, y).0;
            seen.insert([p[0] >> 4, p[1] >> 4, p[2] >> 4]);
        }
    }
    seen.len()
}

/// Takes screenshots until two a moment apart show moving video in `region`; saves the last
/// one as `name`.
fn moving_video_on_screen(x: &Xvfb, region: (u32, u32, u32, u32), name: &str) -> f64 {
    let until = Instant::now() + Duration::from_secs(60);
    let mut last = x.screenshot();
    loop {
        std::thread::sleep(Duration::from_millis(400));
        let now = x.screenshot();
        let moved = changed(&last, &now, region);
        if moved > 0.01 && colours(&now, region) >= 6 {
            now.save(screenshot_dir().join(name)).unwrap();
            return moved;
        }
        if Instant::now() > until {
            now.save(screenshot_dir().join(name)).unwrap();
            panic!("{name}: no moving video after 60 s ({:.3} changed)", moved);
        }
        last = now;
    }
}

#[test]
fn the_window_shows_moving_video_as_broadcaster_and_as_viewer() {
    let home = std::env::temp_dir().join(format!("omnicast-window-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);

    let screen = Xvfb::start();
    let recordings = home.join("caster-recordings");
    let caster = kiosk_window(
        &screen.display,
        &format!(
            r#"
            mode = "broadcaster"
            media_bind = "127.0.0.1:0"
            [broadcast]
            source = "test-pattern"
            size = "1920x960"
            bind = "127.0.0.1:0"
            stun_bind = "127.0.0.1:0"
            [record]
            dir = "{}"
        "#,
            recordings.display()
        ),
        &home.join("caster"),
    );
    let url = caster.server_url(Duration::from_secs(60));
    // The broadcaster's window: its preview moves.
    let moved = moving_video_on_screen(&screen, (300, 150, 1200, 650), "broadcaster.png");
    eprintln!(
        "broadcaster window: {:.1} % of the preview changed",
        moved * 100.0
    );

    for (name, sphere) in [("viewer.png", false), ("viewer-360.png", true)] {
        let screen = Xvfb::start();
        let _viewer = kiosk_window(
            &screen.display,
            &format!(
                r#"
                    mode = "viewer"
                    media_bind = "127.0.0.1:0"
                    [server]
                    url = "{url}"
                    [view]
                    sphere = {sphere}
                    overlay = {overlay}
                "#,
                overlay = !sphere,
            ),
            &home.join(name),
        );
        let moved = moving_video_on_screen(&screen, (0, 100, 1280, 760), name);
        eprintln!("{name}: {:.1} % of the picture changed", moved * 100.0);
    }
    // SIGTERM (systemd stopping the kiosk) closes the window as its close button would: the
    // recording it made from the start is finished, index and all.
    assert!(caster.terminate(Duration::from_secs(20)).success());
    let sidecar = std::fs::read_dir(&recordings)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .expect("the kiosk recorded from the start");
    let sidecar: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sidecar).unwrap()).unwrap();
    assert_eq!(sidecar["complete"], true, "{sidecar}");
    let _ = std::fs::remove_dir_all(&home);
}

#[test]
fn omnicast_view_with_a_server_opens_a_window_that_shows_the_broadcast() {
    let home = std::env::temp_dir().join(format!("omnicast-view-window-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    std::fs::create_dir_all(home.join("xdg")).unwrap();
    let mut command = omnicast();
    command
        .args(["broadcast", "--headless", "--bind", "127.0.0.1:0"])
        .args(["--stun-bind", "127.0.0.1:0", "--media-bind", "127.0.0.1:0"])
        .args(["--source", "test-pattern", "--size", "640x360"])
        .env("RUST_LOG", "info,rtc=error,webrtc=error");
    let caster = Proc::spawn(command);
    let url = caster.server_url(Duration::from_secs(60));

    // What a person types: the window opens on that server, already connected.
    let screen = Xvfb::start();
    let stats = home.join("stats.json");
    let mut command = omnicast();
    command
        .args(["view", "--server", &url, "--media-bind", "127.0.0.1:0"])
        .args(["--frames", "300", "--stats-json"])
        .arg(&stats);
    in_window(&mut command, &screen.display, &home);
    let mut viewer = Proc::spawn(command);
    let moved = moving_video_on_screen(&screen, (0, 100, 1280, 760), "viewer-cli.png");
    eprintln!(
        "omnicast view: {:.1} % of the picture changed",
        moved * 100.0
    );
    // After 300 frames on screen it closes by itself and says what it showed.
    let until = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = viewer.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < until,
            "the window did not close after --frames 300"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{:#?}", viewer.said());
    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    assert!(stats["frames_shown"].as_u64().unwrap() >= 300, "{stats}");
    assert_eq!(
        (stats["width"].as_u64(), stats["height"].as_u64()),
        (Some(640), Some(360))
    );
    assert_eq!(stats["frames_lost"], 0, "{stats}");
    drop(caster);
    let _ = std::fs::remove_dir_all(&home);
}

/// A 360° picture whose directions have their own colours (yaw 0 at the centre column): front
/// red, right green, back blue, left yellow.
fn compass_png(path: &Path) {
    image::RgbImage::from_fn(640, 320, |x, _| match x {
        240..400 => image::Rgb([220, 30, 30]),
        400..560 => image::Rgb([30, 200, 30]),
        80..240 => image::Rgb([230, 220, 30]),
        _ => image::Rgb([30, 30, 220]),
    })
    .save(path)
    .unwrap();
}

#[test]
fn omnicast_view_opens_a_360_picture_looking_where_yaw_and_pitch_say() {
    let home = std::env::temp_dir().join(format!("omnicast-view-look-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    std::fs::create_dir_all(home.join("xdg")).unwrap();
    let png = home.join("compass.png");
    compass_png(&png);
    let mut command = omnicast();
    command
        .args(["broadcast", "--headless", "--bind", "127.0.0.1:0"])
        .args(["--stun-bind", "127.0.0.1:0", "--media-bind", "127.0.0.1:0"])
        .arg("--source")
        .arg(format!("image:{}", png.display()))
        .args(["--size", "640x320"])
        .env("RUST_LOG", "info,rtc=error,webrtc=error");
    let caster = Proc::spawn(command);
    let url = caster.server_url(Duration::from_secs(60));

    // Looking right: the middle of the window is the picture's right (green), not its front.
    let screen = Xvfb::start();
    let mut command = omnicast();
    command
        .args(["view", "--server", &url, "--media-bind", "127.0.0.1:0"])
        .args(["--yaw", "90", "--pitch", "0", "--fov", "60"]);
    in_window(&mut command, &screen.display, &home);
    let viewer = Proc::spawn(command);
    let green = |p: &image::Rgb<u8>| p.0[1] > 150 && p.0[0] < 90 && p.0[2] < 90;
    let until = Instant::now() + Duration::from_secs(60);
    let shot = loop {
        let shot = screen.screenshot();
        // The video area's middle, below the controls.
        let middle = (590..690)
            .flat_map(|x| (380..480).map(move |y| (x, y)))
            .filter(|&(x, y)| green(shot.get_pixel(x, y)))
            .count();
        if middle == 100 * 100 {
            break shot;
        }
        assert!(
            Instant::now() < until,
            "the middle of the window never showed the picture's right (green); {:#?}",
            viewer.said()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    shot.save(screenshot_dir().join("viewer-look-right.png"))
        .unwrap();
    drop(viewer);
    drop(caster);
    let _ = std::fs::remove_dir_all(&home);
}
