//! Broadcaster and viewers through the real signal server and real peer connections, all on
//! loopback and all run by the service as the app runs them: frames arrive, stamps in order,
//! joiners get a keyframe, departures disturb nobody, each session's events are its own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use omnicast_engine::broadcaster::BroadcastCommand;
use omnicast_engine::codec::EncoderSettings;
use omnicast_engine::frame::FrameSlot;
use omnicast_engine::service::SessionCommand;
use omnicast_engine::session::SessionState;
use omnicast_engine::viewer::{ViewState, ViewerStats};
use support::{Session, broadcast, broadcast_settings, loopback_server, small_encoder, watch};

fn caster(url: &str, room: &str) -> Session {
    broadcast(
        broadcast_settings(url, room, (320, 240), small_encoder()),
        None,
    )
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
    let server = loopback_server().await;
    let url = server.local_url();
    let caster = caster(&url, "five");
    let viewers: Vec<_> = (0..5).map(|_| watch(&url, "five", true)).collect();
    for (i, (v, slot)) in viewers.iter().enumerate() {
        let s = v.until_frames(60, &format!("viewer {i}")).await;
        assert_clean(&s, &format!("viewer {i}"));
        let frame = slot.peek().expect("a latest frame");
        assert_eq!((frame.width(), frame.height()), (320, 240));
        assert_eq!(
            frame.picture.byte_len(),
            320 * 240 * 3 / 2,
            "I420 as decoded"
        );
        assert_eq!(
            v.seen().view_states.last(),
            Some(&ViewState::Live),
            "viewer {i}"
        );
    }
    // Encoded once for everyone: the encoder ran at the frame rate, not five times it.
    let status = caster
        .until(Duration::from_secs(10), "five connected", |s| {
            s.status().connected_viewers() == 5 && s.status().viewers_in_room == 5
        })
        .await
        .status();
    let decoded_max = viewers
        .iter()
        .map(|(v, _)| v.seen().stats().frames_decoded)
        .max()
        .unwrap();
    assert!(
        status.frames_encoded < decoded_max * 2 + 60,
        "encoded {} for 5 viewers of ≤{decoded_max}",
        status.frames_encoded
    );

    // One viewer leaves; the others keep receiving without loss.
    let mut viewers = viewers.into_iter();
    let (leaver, _) = viewers.next().unwrap();
    leaver.stop().await;
    for (i, (v, _)) in viewers.as_slice().iter().enumerate() {
        let before = v.seen().stats().frames_decoded;
        let s = v
            .until_frames(before + 30, &format!("remaining viewer {i}"))
            .await;
        assert_clean(&s, &format!("remaining viewer {i}"));
    }
    for (v, _) in viewers {
        v.stop().await;
    }
    // Every viewer's connection is torn down on the broadcaster's side too.
    caster
        .until(Duration::from_secs(10), "no viewers left", |s| {
            s.status().viewers.is_empty() && s.status().viewers_in_room == 0
        })
        .await;
    let seen = caster.stop().await;
    assert_eq!(seen.strays, 0);
    assert_eq!(
        seen.states,
        [SessionState::Running, SessionState::Stopped { error: None }]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_360_broadcast_reaches_its_viewer_whole() {
    let server = loopback_server().await;
    let url = server.local_url();
    let encoder = EncoderSettings {
        fps: 10.0,
        bitrate_kbps: 8_000,
        ..EncoderSettings::default()
    };
    let caster = broadcast(broadcast_settings(&url, "360", (3840, 1920), encoder), None);
    let (viewer, slot) = watch(&url, "360", true);
    let s = viewer.until_frames(15, "360 viewer").await;
    assert_clean_at(&s, (3840, 1920), "360 viewer");
    let frame = slot.peek().expect("a frame");
    assert_eq!(frame.picture.byte_len(), 3840 * 1920 * 3 / 2);
    // A picture this size is encoded on every core (up to four), not one.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    assert_eq!(caster.seen().status().encoder_threads, cores as u64);
    viewer.stop().await;
    caster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broadcaster_lists_its_viewers_and_previews_what_goes_out() {
    let server = loopback_server().await;
    let url = server.local_url();
    let preview = Arc::new(FrameSlot::default());
    let caster = broadcast(
        broadcast_settings(&url, "list", (320, 240), small_encoder()),
        Some(preview.clone()),
    );
    let viewers: Vec<_> = (0..3).map(|_| watch(&url, "list", true)).collect();
    for (v, _) in &viewers {
        v.until_frames(10, "listed viewer").await;
    }
    // Within a couple of refreshes every viewer is listed as connected, with data flowing.
    let seen = caster
        .until(Duration::from_secs(10), "three viewers listed", |s| {
            let list = &s.status().viewers;
            list.len() == 3 && list.iter().all(|v| v.connected && v.sent_kbps > 50.0)
        })
        .await;
    let status = seen.status();
    assert!(status.signal_connected);
    assert_eq!(status.source, "test pattern");
    assert!(status.fps > 20.0, "{status:?}");
    // No preview until a display asks for one.
    assert!(preview.take().is_none());
    caster.command(SessionCommand::Broadcast(BroadcastCommand::Preview(true)));
    let frame = tokio::task::spawn_blocking(move || preview.take_within(Duration::from_secs(10)))
        .await
        .unwrap()
        .expect("a preview frame");
    assert_eq!((frame.width(), frame.height()), (320, 240));
    // One leaves: the list follows.
    let mut viewers = viewers.into_iter();
    viewers.next().unwrap().0.stop().await;
    caster
        .until(
            Duration::from_secs(10),
            "the departed viewer unlisted",
            |s| s.status().viewers.len() == 2,
        )
        .await;
    for (v, _) in viewers {
        v.stop().await;
    }
    caster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_joiner_starts_on_a_fresh_keyframe() {
    let server = loopback_server().await;
    let url = server.local_url();
    let caster = caster(&url, "late");
    let (first, _) = watch(&url, "late", true);
    first.until_frames(30, "first viewer").await;
    // The scheduled keyframe interval is 300 frames (10 s): a joiner decoding within a second
    // got a keyframe made for it.
    let keyframes_before = caster
        .until(Duration::from_secs(5), "a status", |s| s.status.is_some())
        .await
        .status()
        .keyframes;
    let (late, _) = watch(&url, "late", true);
    let s = late.until_frames(1, "late joiner").await;
    assert!(s.first_frame_ms.unwrap() < 3_000, "{s:?}");
    caster
        .until(Duration::from_secs(5), "a keyframe for the joiner", |s| {
            s.status().keyframes > keyframes_before
        })
        .await;
    let s = late.until_frames(30, "late joiner").await;
    assert_clean(&s, "late joiner");
    late.stop().await;
    first.stop().await;
    caster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_resume_when_the_broadcaster_restarts() {
    let server = loopback_server().await;
    let url = server.local_url();
    let caster1 = caster(&url, "restart");
    let (viewer, _) = watch(&url, "restart", true);
    let before = viewer.until_frames(20, "before restart").await;
    caster1.stop().await;
    viewer
        .until(Duration::from_secs(10), "told the broadcaster left", |s| {
            s.view_states.last() == Some(&ViewState::BroadcasterLeft)
        })
        .await;
    let caster2 = caster(&url, "restart");
    let after = viewer
        .until_frames(before.frames_decoded + 30, "after restart")
        .await;
    assert!(after.frames_decoded >= before.frames_decoded + 30);
    viewer.stop().await;
    caster2.stop().await;
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_coming_and_going_leave_no_sockets_or_connections_behind() {
    let server = loopback_server().await;
    let url = server.local_url();
    let caster = caster(&url, "churn");
    let cycle = |n: usize| {
        let url = url.clone();
        async move {
            let (v, _) = watch(&url, "churn", true);
            v.until_frames(5, &format!("churn viewer {n}")).await;
            v.stop().await;
        }
    };
    let settle = || async {
        caster
            .until(
                Duration::from_secs(10),
                "each departed viewer dropped",
                |s| s.status().viewers.is_empty(),
            )
            .await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_only_receiving_counts_frames_without_decoding() {
    let server = loopback_server().await;
    let url = server.local_url();
    let caster = caster(&url, "count");
    let (counter, slot) = watch(&url, "count", false);
    let s = counter
        .until(Duration::from_secs(30), "frames counted", |s| {
            s.stats().frames_received >= 30
        })
        .await
        .stats();
    assert_eq!(s.frames_decoded, 0);
    assert_eq!(s.packets_lost, 0);
    assert!(slot.peek().is_none(), "nothing decoded");
    counter.stop().await;
    caster.stop().await;
}
