//! The real app driven through egui_kittest by its labels, rendered with wgpu (lavapipe here):
//! switching modes, a test-pattern broadcast watched by a second app in the same test, the
//! statistics overlay, settings that persist, kiosk mode, the 360° view on the GPU, and
//! snapshots of both screens. Network traffic stays on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use eframe::egui;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;
use omnicast_engine::frame::{I420, Nv12, VideoFrame};
use omnicast_engine::peer::PeerSettings;
use omnicast_gui::video::{Chroma, SphereView, VideoPipeline, VideoTexture};
use omnicast_gui::{AppOptions, Mode, OmnicastApp, Settings};

/// What the broadcaster screen says in place of its viewer list while nobody watches.
const NO_VIEWERS: &str = "No viewers yet: each one is listed here as it connects.";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Options for an app that keeps to loopback and forgets its settings.
fn options(settings: Settings) -> AppOptions {
    AppOptions {
        settings: Some(settings),
        persist: false,
        host_bind: (loopback(0), loopback(0)),
        peer: PeerSettings::loopback(),
        snapshot_dir: std::env::temp_dir(),
        ..AppOptions::default()
    }
}

fn small_test_pattern() -> Settings {
    Settings {
        source: "test-pattern".into(),
        width: 640,
        height: 360,
        ..Settings::default()
    }
}

fn harness<'a>(
    runtime: &'a tokio::runtime::Runtime,
    options: AppOptions,
) -> Harness<'a, OmnicastApp> {
    Harness::builder()
        .with_size(egui::vec2(1280.0, 800.0))
        .wgpu()
        .build_eframe(move |cc| OmnicastApp::new(cc, runtime.handle(), options))
}

/// Steps `h` (real time passing) until `done` holds, or panics after `within`.
fn step_until(
    h: &mut Harness<'_, OmnicastApp>,
    what: &str,
    within: Duration,
    done: impl Fn(&OmnicastApp) -> bool,
) {
    let until = Instant::now() + within;
    while !done(h.state()) {
        assert!(Instant::now() < until, "{what}: not within {within:?}");
        h.step();
        std::thread::sleep(Duration::from_millis(15));
    }
}

/// Steps the broadcaster and viewer apps together (both must keep running) until `done` holds
/// for them, or panics after `within` saying `what`.
fn step_both_until(
    caster: &mut Harness<'_, OmnicastApp>,
    viewer: &mut Harness<'_, OmnicastApp>,
    what: &str,
    within: Duration,
    done: impl Fn(&OmnicastApp, &OmnicastApp) -> bool,
) {
    let until = Instant::now() + within;
    while !done(caster.state(), viewer.state()) {
        assert!(Instant::now() < until, "{what}: not within {within:?}");
        caster.step();
        viewer.step();
        std::thread::sleep(Duration::from_millis(15));
    }
}

/// Steps both apps until the viewer has shown `frames` frames, failing after 30 s.
fn step_both_until_frames_shown(
    caster: &mut Harness<'_, OmnicastApp>,
    viewer: &mut Harness<'_, OmnicastApp>,
    frames: u64,
) {
    step_both_until(
        caster,
        viewer,
        &format!("{frames} frames on screen"),
        Duration::from_secs(30),
        |_, v| v.shown.frames >= frames,
    );
}

#[test]
fn a_broadcast_started_in_one_app_shows_moving_video_in_another() {
    let rt = runtime();
    let mut caster = harness(&rt, options(small_test_pattern()));
    caster.get_by_label("Start broadcast").click();
    step_until(&mut caster, "hosted server", Duration::from_secs(20), |a| {
        a.hosted().is_some()
    });
    let url = caster.state().hosted().unwrap().local_url.clone();
    caster.get_by_label("Stop broadcast");
    caster.get_by_label(NO_VIEWERS);

    // The second app starts as a broadcaster and is switched to the viewer screen.
    let shots = std::env::temp_dir().join(format!("omnicast-gui-shots-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).unwrap();
    let mut viewer = harness(
        &rt,
        AppOptions {
            snapshot_dir: shots.clone(),
            ..options(Settings {
                server_url: url,
                ..Settings::default()
            })
        },
    );
    assert!(
        viewer.query_by_label("Connect").is_none(),
        "broadcaster screen first"
    );
    viewer.get_by_label("Viewer").click();
    viewer.step();
    assert_eq!(viewer.state().settings.mode, Mode::Viewer);
    viewer.get_by_label("Connect").click();
    let started = Instant::now();
    step_both_until_frames_shown(&mut caster, &mut viewer, 30);
    // The figures come every half second.
    step_until(
        &mut viewer,
        "figures of 30 frames",
        Duration::from_secs(5),
        |a| a.viewer_stats().is_some_and(|s| s.frames_with_stamp >= 30),
    );
    let stats = viewer.state().viewer_stats().cloned().unwrap();
    eprintln!(
        "first frame {} ms after Connect, 30 frames on screen after {:?}",
        stats.first_frame_ms.unwrap_or_default(),
        started.elapsed()
    );
    assert_eq!((stats.width, stats.height), (640, 360));
    assert!(stats.frames_with_stamp >= 30, "{stats:?}");
    assert_eq!(stats.frames_lost, 0, "{stats:?}");
    // The frames move: stamps kept counting while we watched.
    assert!(
        stats.last_seq.unwrap() > stats.first_seq.unwrap() + 20,
        "{stats:?}"
    );
    // Each frame went to the GPU as its I420 planes: 1.5 bytes a pixel, not RGBA's 4.
    assert_eq!(viewer.state().bytes_uploaded(), Some(640 * 360 * 3 / 2));

    // The overlay comes and goes with its toggle.
    assert!(viewer.query_by_label_contains("fps shown").is_none());
    viewer.get_by_label("Statistics").click();
    viewer.step();
    viewer.step();
    viewer.get_by_label_contains("fps shown");
    viewer.get_by_label_contains("640×360");
    viewer.get_by_label("Statistics").click();
    viewer.step();
    viewer.step();
    assert!(viewer.query_by_label_contains("fps shown").is_none());

    // A snapshot of what is on screen, as a PNG of the picture's own size.
    let shots = viewer.state().snapshot_dir().to_owned();
    viewer.get_by_label("Snapshot").click();
    let until = Instant::now() + Duration::from_secs(10);
    // The file appears, then is written: wait until it reads as a whole PNG.
    let img = loop {
        viewer.step();
        let found = std::fs::read_dir(&shots)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "png"));
        if let Some(img) = found.and_then(|p| image::open(p).ok()) {
            break img;
        }
        assert!(
            Instant::now() < until,
            "no whole snapshot in {}",
            shots.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!((img.width(), img.height()), (640, 360));

    // Full screen (F11) shows only the picture; F11 again brings the controls back.
    viewer.key_press(egui::Key::F11);
    viewer.step();
    viewer.step();
    assert!(viewer.state().is_fullscreen());
    assert!(viewer.query_by_label("Disconnect").is_none());
    viewer.key_press(egui::Key::F11);
    viewer.step();
    viewer.step();
    assert!(!viewer.state().is_fullscreen());
    viewer.get_by_label("Disconnect");

    // The broadcaster lists its viewer.
    step_until(&mut caster, "viewer listed", Duration::from_secs(10), |a| {
        a.broadcast_status()
            .is_some_and(|s| s.viewers.iter().any(|v| v.connected && v.sent_kbps > 0.0))
    });
    caster.step();
    assert!(caster.query_by_label(NO_VIEWERS).is_none());
    // The broadcaster screen as it looks now (the README's picture of it).
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    caster
        .render()
        .unwrap()
        .save(dir.join("broadcaster-screen.png"))
        .unwrap();

    // Both record, from their Record buttons: the broadcaster what it sends, the viewer what
    // it receives; each shows the time and size while recording, and each file is finished
    // when stopped.
    let recordings = shots.join("recordings");
    for (app, dir) in [(&mut caster, "sent"), (&mut viewer, "received")] {
        app.state_mut().settings.record_dir = recordings.join(dir).display().to_string();
        app.get_by_label("Record").click();
        app.step();
    }
    let until = Instant::now() + Duration::from_secs(20);
    let mut shown = [false; 2];
    while !shown.iter().all(|s| *s) {
        assert!(
            Instant::now() < until,
            "two seconds recorded on both: not within 20 s ({shown:?})"
        );
        caster.step();
        viewer.step();
        for (seen, app) in shown.iter_mut().zip([&caster, &viewer]) {
            *seen |= app.query_by_label_contains("REC 0:02").is_some();
        }
        std::thread::sleep(Duration::from_millis(15));
    }
    for (app, name) in [(&mut caster, "broadcaster"), (&mut viewer, "viewer")] {
        let shot = dir.join(format!("{name}-recording.png"));
        app.render().unwrap().save(shot).unwrap();
    }
    for app in [&mut caster, &mut viewer] {
        app.get_by_label("Stop").click();
        app.step();
    }
    for dir in ["sent", "received"] {
        let dir = recordings.join(dir);
        let until = Instant::now() + Duration::from_secs(10);
        let sidecar = loop {
            caster.step();
            viewer.step();
            let json = std::fs::read_dir(&dir)
                .unwrap()
                .filter_map(Result::ok)
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|x| x == "json"))
                .and_then(|p| std::fs::read_to_string(p).ok())
                .and_then(|j| serde_json::from_str::<serde_json::Value>(&j).ok());
            if let Some(j) = json.filter(|j| j["complete"] == true) {
                break j;
            }
            assert!(
                Instant::now() < until,
                "no finished recording in {}",
                dir.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(sidecar["video_frames"].as_u64().unwrap() >= 60, "{sidecar}");
    }
    caster.get_by_label("Record");
    viewer.get_by_label("Record");

    // Disconnect, and stopping the broadcast ends it.
    viewer.get_by_label("Disconnect").click();
    viewer.step();
    assert!(!viewer.state().is_viewing());
    caster.get_by_label("Stop broadcast").click();
    caster.step();
    assert!(!caster.state().is_broadcasting());
    caster.step();
    caster.get_by_label("Start broadcast");
    let _ = std::fs::remove_dir_all(&shots);
}

#[test]
fn a_360_picture_is_shown_as_360_and_the_view_is_outlined_on_the_preview_and_messages_cross() {
    let rt = runtime();
    let mut caster = harness(
        &rt,
        options(Settings {
            width: 640,
            height: 320,
            control_key: "k".into(),
            ..small_test_pattern()
        }),
    );
    caster.get_by_label("Start broadcast").click();
    step_until(&mut caster, "hosted server", Duration::from_secs(20), |a| {
        a.hosted().is_some()
    });
    let url = caster.state().hosted().unwrap().local_url.clone();
    let mut viewer = harness(
        &rt,
        options(Settings {
            mode: Mode::Viewer,
            server_url: url,
            // Flat at first: the broadcaster's 2:1 picture is announced as 360°.
            sphere: false,
            control_key: "k".into(),
            ..Settings::default()
        }),
    );
    viewer.get_by_label("Connect").click();
    step_both_until_frames_shown(&mut caster, &mut viewer, 10);
    step_both_until(
        &mut caster,
        &mut viewer,
        "the viewer turns to the 360° view by itself",
        Duration::from_secs(10),
        |_, v| v.settings.sphere,
    );

    // The 360° view goes to the broadcaster, which outlines it on its 2:1 preview.
    step_both_until(
        &mut caster,
        &mut viewer,
        "the viewer's view reached the broadcaster",
        Duration::from_secs(10),
        |c, _| c.viewer_views().is_some_and(|v| !v.is_empty()),
    );
    let view = *caster
        .state()
        .viewer_views()
        .unwrap()
        .values()
        .next()
        .unwrap();
    assert_eq!((view.yaw_deg, view.pitch_deg), (0.0, 0.0));
    let fov = view.fov_deg.unwrap();
    assert!(
        fov > 90.0 && fov < 150.0,
        "horizontal fov of a wide window: {fov}"
    );
    caster.step();
    let image = caster.render().unwrap();
    let outline = image
        .pixels()
        .filter(|p| p.0[0] > 240 && (195..225).contains(&p.0[1]) && p.0[2] < 30)
        .count();
    assert!(
        outline > 200,
        "{outline} pixels of the first viewer's outline colour"
    );

    // A message typed in the viewer reaches the broadcaster's screen.
    viewer.get_by_label("Message to the robot").focus();
    viewer.step();
    viewer
        .get_by_label("Message to the robot")
        .type_text(r#"{"drive": [1, 0]}"#);
    viewer.step();
    viewer.get_by_label("Send").click();
    viewer.step();
    viewer.step();
    step_until(
        &mut caster,
        "the message shown",
        Duration::from_secs(10),
        |a| {
            a.broadcast_status()
                .is_some_and(|s| s.data.messages_accepted == 1)
        },
    );
    caster.step();
    caster.get_by_label_contains(r#"{"drive":[1,0]}"#);

    // Telemetry typed in the broadcaster reaches the viewer.
    caster.get_by_label("Telemetry to viewers").focus();
    caster.step();
    caster
        .get_by_label("Telemetry to viewers")
        .type_text(r#"{"battery": 0.5}"#);
    caster.step();
    caster.get_by_label("Send").click();
    step_both_until(
        &mut caster,
        &mut viewer,
        "telemetry reached the viewer",
        Duration::from_secs(10),
        |_, v| v.telemetry() == Some(&serde_json::json!({"battery": 0.5})),
    );
}

#[test]
fn stopping_and_starting_again_at_once_keeps_the_new_broadcast() {
    let rt = runtime();
    let mut app = harness(&rt, options(small_test_pattern()));
    app.get_by_label("Start broadcast").click();
    app.step();
    step_until(&mut app, "hosted server", Duration::from_secs(20), |a| {
        a.hosted().is_some()
    });
    // Stop and start again before the first broadcast has finished ending: its last events
    // (its `Stopped` among them) arrive while the second runs, and must not end it.
    app.get_by_label("Stop broadcast").click();
    app.step();
    assert!(!app.state().is_broadcasting());
    app.step();
    app.get_by_label("Start broadcast").click();
    app.step();
    step_until(
        &mut app,
        "the new broadcast live",
        Duration::from_secs(20),
        |a| a.hosted().is_some() && a.broadcast_status().is_some_and(|s| s.signal_connected),
    );
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        app.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(app.state().is_broadcasting());
    app.get_by_label("Stop broadcast");
}

#[test]
fn the_viewer_says_what_is_going_on_when_there_is_no_picture() {
    let rt = runtime();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let mut viewer = harness(
        &rt,
        options(Settings {
            mode: Mode::Viewer,
            server_url: url,
            ..Settings::default()
        }),
    );
    viewer.get_by_label_contains("Not connected");
    viewer.get_by_label("Connect").click();
    // No server there yet.
    step_label(&mut viewer, "Reconnecting");
    // A server, but nobody broadcasting.
    let server = rt
        .block_on(omnicast_signal::SignalServer::start(
            omnicast_signal::ServerConfig {
                http_bind: loopback(port),
                stun_bind: None,
                ..omnicast_signal::ServerConfig::default()
            },
        ))
        .unwrap();
    step_label(&mut viewer, "Waiting for the broadcaster");
    // A broadcaster comes, and goes.
    let mut caster = harness(
        &rt,
        options(Settings {
            host_server: false,
            server_url: server.local_url(),
            ..small_test_pattern()
        }),
    );
    caster.get_by_label("Start broadcast").click();
    step_both_until_frames_shown(&mut caster, &mut viewer, 5);
    caster.get_by_label("Stop broadcast").click();
    caster.step();
    step_label(&mut viewer, "The broadcaster left");
}

/// Steps `h` until a label containing `text` shows, for up to 30 s.
fn step_label(h: &mut Harness<'_, OmnicastApp>, text: &str) {
    let until = Instant::now() + Duration::from_secs(30);
    while h.query_by_label_contains(text).is_none() {
        assert!(Instant::now() < until, "no {text:?} on screen");
        h.step();
        std::thread::sleep(Duration::from_millis(15));
    }
}

/// An eframe storage in memory.
#[derive(Default)]
struct MemoryStorage(HashMap<String, String>);

impl eframe::Storage for MemoryStorage {
    fn get_string(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned()
    }
    fn set_string(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
    fn remove_string(&mut self, key: &str) {
        self.0.remove(key);
    }
    fn flush(&mut self) {}
}

#[test]
fn settings_persist_across_runs() {
    let rt = runtime();
    let persisting = AppOptions {
        settings: None,
        persist: true,
        ..options(Settings::default())
    };
    let mut storage = MemoryStorage::default();
    {
        let mut first = harness(&rt, persisting.clone());
        first.get_by_label("Viewer").click();
        first.step();
        first.get_by_label("360° view").click();
        first.step();
        first.get_by_label("Statistics").click();
        first.step();
        first.state_mut().settings.room = "lab".into();
        eframe::App::save(first.state_mut(), &mut storage);
    }
    let mut second = Harness::builder()
        .with_size(egui::vec2(1280.0, 800.0))
        .wgpu()
        .build_eframe(|cc| {
            cc.storage = Some(&storage);
            OmnicastApp::new(cc, rt.handle(), persisting)
        });
    second.step();
    let s = &second.state().settings;
    assert_eq!(s.mode, Mode::Viewer);
    assert!(s.sphere && s.overlay, "{s:?}");
    assert_eq!(s.room, "lab");
    second.get_by_label("Connect");
}

#[test]
fn kiosk_mode_starts_at_once_and_offers_no_mode_toggle() {
    let rt = runtime();
    let mut kiosk = harness(
        &rt,
        AppOptions {
            kiosk: true,
            ..options(small_test_pattern())
        },
    );
    assert!(kiosk.state().is_broadcasting(), "started without a click");
    kiosk.step();
    assert!(
        kiosk.query_by_label("Broadcaster").is_none(),
        "no mode toggle"
    );
    assert!(kiosk.query_by_label("Start broadcast").is_none());
    assert!(kiosk.query_by_label("Stop broadcast").is_none());
    step_until(&mut kiosk, "hosted server", Duration::from_secs(20), |a| {
        a.hosted().is_some()
    });
}

#[test]
fn both_screens_look_as_they_should() {
    let rt = runtime();
    let mut app = harness(&rt, options(small_test_pattern()));
    app.step();
    app.snapshot("broadcaster_screen");
    app.get_by_label("Viewer").click();
    app.step();
    app.step();
    app.snapshot("viewer_screen");
}

/// A frame whose longitude quarters are red, green, blue and yellow from the left, with white
/// above 60° north: what the 360° view shows says where it looks.
fn quarters(w: usize, h: usize) -> VideoFrame {
    let mut rgb = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            let c = if y < h / 6 {
                [255, 255, 255]
            } else {
                [[220, 20, 20], [20, 200, 20], [20, 20, 220], [230, 230, 20]][x * 4 / w]
            };
            rgb.extend_from_slice(&c);
        }
    }
    VideoFrame {
        picture: Nv12::from(&I420::from_rgb(w, h, &rgb)),
        stamp: None,
        index: 0,
    }
}

/// Draws a known picture, flat or as the 360° view of `view`.
struct VideoProbe {
    frame: Option<VideoFrame>,
    texture: Option<VideoTexture>,
    view: Option<SphereView>,
}

impl eframe::App for VideoProbe {
    fn logic(&mut self, _ctx: &egui::Context, frame: &mut eframe::Frame) {
        if let (Some(f), Some(rs)) = (self.frame.take(), frame.wgpu_render_state()) {
            VideoTexture::upload(rs, &mut self.texture, &f);
        }
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let rect = ui.max_rect();
        if let Some(t) = &self.texture {
            let shape = match self.view {
                Some(view) => t.sphere_shape(rect, view),
                None => t.flat_shape(rect),
            };
            ui.painter().add(shape);
        }
    }
}

fn probe<'a>(view: Option<SphereView>, chroma: Chroma) -> Harness<'a, VideoProbe> {
    Harness::builder()
        .with_size(egui::vec2(400.0, 300.0))
        .wgpu()
        .build_eframe(move |cc| {
            VideoPipeline::install_with(cc.wgpu_render_state.as_ref().expect("wgpu"), chroma);
            VideoProbe {
                frame: Some(quarters(1024, 512)),
                texture: None,
                view,
            }
        })
}

/// Within 12 of each channel (YUV 4:2:0 and back is not exact).
fn near(got: [u8; 4], want: [u8; 3]) -> bool {
    got[..3].iter().zip(want).all(|(g, w)| g.abs_diff(w) <= 12)
}

#[test]
fn the_360_view_is_drawn_on_the_gpu_where_the_viewer_looks() {
    for chroma in [Chroma::Filtered, Chroma::Nearest] {
        the_360_view_looks_where_the_viewer_looks(chroma);
    }
}

fn the_360_view_looks_where_the_viewer_looks(chroma: Chroma) {
    let mut h = probe(Some(SphereView::default()), chroma);
    let centre = |h: &mut Harness<'_, VideoProbe>, view: SphereView| {
        h.state_mut().view = Some(view);
        h.step();
        let image = h.render().expect("rendered");
        let (w, ht) = image.dimensions();
        image.get_pixel(w / 2, ht / 2).0
    };
    let look = |yaw_deg, pitch_deg| SphereView {
        yaw_deg,
        pitch_deg,
        fov_deg: 60.0,
    };
    // Quarter centres are at longitudes −135°, −45°, 45° and 135° (yaw 0 looks at the middle).
    for (yaw, colour) in [
        (-135.0, [220, 20, 20]),
        (-45.0, [20, 200, 20]),
        (45.0, [20, 20, 220]),
        (135.0, [230, 230, 20]),
    ] {
        let got = centre(&mut h, look(yaw, 0.0));
        assert!(
            near(got, colour),
            "{chroma:?}, yaw {yaw}: {got:?}, want {colour:?}"
        );
    }
    let got = centre(&mut h, look(45.0, 80.0));
    assert!(near(got, [255, 255, 255]), "looking up: {got:?}");
    // Dragging and zooming go through the same view.
    let mut v = look(45.0, 0.0);
    v.drag(egui::vec2(-300.0, 0.0), 300.0);
    assert!(
        near(centre(&mut h, v), [230, 230, 20]),
        "{chroma:?}: dragged left: looking right"
    );
    if chroma == Chroma::Filtered {
        h.snapshot("sphere_view");
    }
}

#[test]
fn the_flat_view_shows_the_picture_in_its_colours_converted_on_the_gpu() {
    for chroma in [Chroma::Filtered, Chroma::Nearest] {
        let mut h = probe(None, chroma);
        h.step();
        let image = h.render().expect("rendered");
        let (w, ht) = image.dimensions();
        for (i, colour) in [[220, 20, 20], [20, 200, 20], [20, 20, 220], [230, 230, 20]]
            .into_iter()
            .enumerate()
        {
            let x = w * (2 * i as u32 + 1) / 8;
            let got = image.get_pixel(x, ht * 2 / 3).0;
            assert!(
                near(got, colour),
                "{chroma:?}, quarter {i}: {got:?}, want {colour:?}"
            );
        }
        let top = image.get_pixel(w / 2, ht / 20).0;
        assert!(
            near(top, [255, 255, 255]),
            "{chroma:?}, the white top: {top:?}"
        );
    }
}
