//! Broadcaster and viewers through the real signal server and real peer connections, all on
//! loopback: frames arrive, stamps in order, joiners get a keyframe, departures disturb nobody.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use omnicast::engine::broadcaster::{self, BroadcastSettings, BroadcastStats};
use omnicast::engine::capture::SourceSpec;
use omnicast::engine::codec::EncoderSettings;
use omnicast::engine::peer::PeerSettings;
use omnicast::engine::viewer::{self, FrameSlot, SharedStats, ViewSettings, ViewerStats};
use omnicast_signal::{ServerConfig, SignalServer};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("stops promptly")
            .unwrap();
    }
}

/// Polls `done` every 20 ms until it holds, or gives up after `within`.
async fn wait_until(
    within: Duration,
    done: impl Fn() -> bool,
) -> Result<(), tokio::time::error::Elapsed> {
    tokio::time::timeout(within, async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

fn broadcast(url: &str, room: &str) -> (Running, Arc<BroadcastStats>) {
    broadcast_with(
        url,
        room,
        (320, 240),
        EncoderSettings {
            fps: 30.0,
            bitrate_kbps: 400,
            ..EncoderSettings::default()
        },
    )
}

fn broadcast_with(
    url: &str,
    room: &str,
    (width, height): (u32, u32),
    encoder: EncoderSettings,
) -> (Running, Arc<BroadcastStats>) {
    let settings = BroadcastSettings {
        server_url: url.to_owned(),
        room: room.to_owned(),
        key: None,
        source: SourceSpec::TestPattern,
        width,
        height,
        encoder,
        peer: PeerSettings::loopback(),
    };
    let stats = Arc::new(BroadcastStats::default());
    let (stop, rx) = oneshot::channel();
    let s = stats.clone();
    let task = tokio::spawn(async move {
        broadcaster::run(settings, s, async {
            let _ = rx.await;
        })
        .await
        .expect("broadcast runs");
    });
    (Running { stop, task }, stats)
}

fn watch(url: &str, room: &str) -> (Running, Arc<SharedStats>, Arc<FrameSlot>) {
    let settings = ViewSettings {
        server_url: url.to_owned(),
        room: room.to_owned(),
        peer: PeerSettings::loopback(),
        decode: true,
    };
    let stats = Arc::new(SharedStats::default());
    let slot = Arc::new(FrameSlot::default());
    let (stop, rx) = oneshot::channel();
    let (s, sl) = (stats.clone(), slot.clone());
    let task = tokio::spawn(async move {
        viewer::run(settings, sl, s, async {
            let _ = rx.await;
        })
        .await
        .expect("viewer runs");
    });
    (Running { stop, task }, stats, slot)
}

async fn until_frames(stats: &SharedStats, n: u64, what: &str) -> ViewerStats {
    wait_until(Duration::from_secs(30), || {
        stats.frames_decoded.load(Ordering::Relaxed) >= n
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "{what}: fewer than {n} frames in 30 s: {:?}",
            stats.snapshot()
        )
    });
    stats.snapshot()
}

fn assert_clean(s: &ViewerStats, what: &str) {
    assert_clean_at(s, (320, 240), what);
}

fn assert_clean_at(s: &ViewerStats, size: (usize, usize), what: &str) {
    assert_eq!((s.width, s.height), size, "{what}");
    assert_eq!(
        s.frames_with_stamp, s.frames_decoded,
        "{what}: every frame stamped"
    );
    assert_eq!(s.frames_out_of_order, 0, "{what}: stamps in order: {s:?}");
    assert_eq!(s.frames_lost, 0, "{what}: nothing lost on loopback: {s:?}");
    assert_eq!(s.decode_errors, 0, "{what}: {s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_viewers_each_decode_sixty_stamped_frames_in_order() {
    let server = SignalServer::start(ServerConfig::loopback_ephemeral())
        .await
        .unwrap();
    let url = server.local_url();
    let (caster, caster_stats) = broadcast(&url, "five");
    let viewers: Vec<_> = (0..5).map(|_| watch(&url, "five")).collect();
    for (i, (_, stats, slot)) in viewers.iter().enumerate() {
        let s = until_frames(stats, 60, &format!("viewer {i}")).await;
        assert_clean(&s, &format!("viewer {i}"));
        let frame = slot.peek().expect("a latest frame");
        assert_eq!(frame.rgba.len(), 320 * 240 * 4);
    }
    // Encoded once for everyone: the encoder ran at the frame rate, not five times it.
    let encoded = caster_stats.frames_encoded.load(Ordering::Relaxed);
    let decoded_max = viewers
        .iter()
        .map(|(_, s, _)| s.frames_decoded.load(Ordering::Relaxed))
        .max()
        .unwrap();
    assert!(
        encoded < decoded_max * 2 + 60,
        "encoded {encoded} for 5 viewers of ≤{decoded_max}"
    );
    assert_eq!(caster_stats.viewers.load(Ordering::Relaxed), 5);

    // One viewer leaves; the others keep receiving without loss.
    let mut viewers = viewers.into_iter();
    let (leaver, _, _) = viewers.next().unwrap();
    leaver.stop().await;
    for (i, (_, stats, _)) in viewers.as_slice().iter().enumerate() {
        let before = stats.frames_decoded.load(Ordering::Relaxed);
        let s = until_frames(stats, before + 30, &format!("remaining viewer {i}")).await;
        assert_clean(&s, &format!("remaining viewer {i}"));
    }
    for (v, _, _) in viewers {
        v.stop().await;
    }
    // Every viewer's connection is torn down on the broadcaster's side too.
    wait_until(Duration::from_secs(10), || {
        caster_stats.connected_viewers.load(Ordering::Relaxed) == 0
            && caster_stats.viewers.load(Ordering::Relaxed) == 0
    })
    .await
    .expect("no viewer connections left on the broadcaster");
    caster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_360_broadcast_reaches_its_viewer_whole() {
    let server = SignalServer::start(ServerConfig::loopback_ephemeral())
        .await
        .unwrap();
    let url = server.local_url();
    let encoder = EncoderSettings {
        fps: 10.0,
        bitrate_kbps: 8_000,
        ..EncoderSettings::default()
    };
    let (caster, caster_stats) = broadcast_with(&url, "360", (3840, 1920), encoder);
    let (viewer, stats, slot) = watch(&url, "360");
    let s = until_frames(&stats, 15, "360 viewer").await;
    assert_clean_at(&s, (3840, 1920), "360 viewer");
    assert_eq!(slot.peek().expect("a frame").rgba.len(), 3840 * 1920 * 4);
    // A picture this size is encoded on every core (up to four), not one.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    assert_eq!(
        caster_stats.encoder_threads.load(Ordering::Relaxed),
        cores as u64
    );
    viewer.stop().await;
    caster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broadcaster_lists_its_viewers_and_previews_what_goes_out() {
    let server = SignalServer::start(ServerConfig::loopback_ephemeral())
        .await
        .unwrap();
    let url = server.local_url();
    let (caster, caster_stats) = broadcast(&url, "list");
    caster_stats.want_preview.store(true, Ordering::Relaxed);
    let viewers: Vec<_> = (0..3).map(|_| watch(&url, "list")).collect();
    for (_, stats, _) in &viewers {
        until_frames(stats, 10, "listed viewer").await;
    }
    // Within a couple of refreshes every viewer is listed as connected, with data flowing.
    wait_until(Duration::from_secs(10), || {
        let list = caster_stats.viewer_list.lock();
        list.len() == 3 && list.iter().all(|v| v.connected && v.sent_kbps > 50.0)
    })
    .await
    .unwrap_or_else(|_| panic!("{:?}", caster_stats.viewer_list.lock()));
    assert!(caster_stats.signal_connected.load(Ordering::Relaxed));
    assert_eq!(*caster_stats.source.lock(), "test pattern");
    let preview = caster_stats.preview.take().expect("a preview frame");
    assert_eq!((preview.width, preview.height), (320, 240));
    assert_eq!(preview.rgba.len(), 320 * 240 * 4);
    // One leaves: the list follows.
    let mut viewers = viewers.into_iter();
    viewers.next().unwrap().0.stop().await;
    wait_until(Duration::from_secs(10), || {
        caster_stats.viewer_list.lock().len() == 2
    })
    .await
    .expect("the departed viewer is no longer listed");
    for (v, _, _) in viewers {
        v.stop().await;
    }
    caster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_joiner_starts_on_a_fresh_keyframe() {
    let server = SignalServer::start(ServerConfig::loopback_ephemeral())
        .await
        .unwrap();
    let url = server.local_url();
    let (caster, caster_stats) = broadcast(&url, "late");
    let (first, first_stats, _) = watch(&url, "late");
    until_frames(&first_stats, 30, "first viewer").await;
    // The scheduled keyframe interval is 300 frames (10 s): a joiner decoding within a second
    // got a keyframe made for it.
    let keyframes_before = caster_stats.keyframes.load(Ordering::Relaxed);
    let (late, late_stats, _) = watch(&url, "late");
    let s = until_frames(&late_stats, 1, "late joiner").await;
    assert!(s.first_frame_ms.unwrap() < 3_000, "{s:?}");
    assert!(caster_stats.keyframes.load(Ordering::Relaxed) > keyframes_before);
    let s = until_frames(&late_stats, 30, "late joiner").await;
    assert_clean(&s, "late joiner");
    late.stop().await;
    first.stop().await;
    caster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_resume_when_the_broadcaster_restarts() {
    let server = SignalServer::start(ServerConfig::loopback_ephemeral())
        .await
        .unwrap();
    let url = server.local_url();
    let (caster, _) = broadcast(&url, "restart");
    let (viewer, stats, _) = watch(&url, "restart");
    let before = until_frames(&stats, 20, "before restart").await;
    caster.stop().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (caster2, _) = broadcast(&url, "restart");
    let after = until_frames(&stats, before.frames_decoded + 30, "after restart").await;
    assert!(after.frames_decoded >= before.frames_decoded + 30);
    viewer.stop().await;
    caster2.stop().await;
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_coming_and_going_leave_no_sockets_or_connections_behind() {
    let server = SignalServer::start(ServerConfig::loopback_ephemeral())
        .await
        .unwrap();
    let url = server.local_url();
    let (caster, caster_stats) = broadcast(&url, "churn");
    let cycle = |n: usize| {
        let url = url.clone();
        async move {
            let (v, stats, _) = watch(&url, "churn");
            until_frames(&stats, 5, &format!("churn viewer {n}")).await;
            v.stop().await;
        }
    };
    let settle = || async {
        wait_until(Duration::from_secs(10), || {
            caster_stats.connected_viewers.load(Ordering::Relaxed) == 0
        })
        .await
        .expect("the broadcaster drops each departed viewer");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // Warm up (lazily created runtime resources), then count.
    cycle(0).await;
    settle().await;
    let before = open_fds();
    for n in 1..=15 {
        cycle(n).await;
    }
    settle().await;
    let after = open_fds();
    // Each cycle opens a websocket and two peer connections' UDP sockets; none may remain.
    assert!(
        after <= before + 3,
        "open descriptors grew from {before} to {after} over 15 viewers"
    );
    caster.stop().await;
}
