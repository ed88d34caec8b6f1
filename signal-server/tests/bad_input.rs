//! Bad input gets a clear `error` event for its sender only; nothing panics, nothing else breaks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use omnicast_signal::{HubConfig, ServerConfig};
use serde_json::json;
use support::{TestClient, loopback_server, room, server};

const QUIET: Duration = Duration::from_millis(300);

/// A broadcaster with one watcher, whose relays prove the room still works afterwards.
async fn pair(
    server: &omnicast_signal::SignalServer,
    name: &str,
) -> (TestClient, TestClient, String) {
    let mut caster = support::broadcaster(server, room(name)).await;
    let (viewer, viewer_id) = support::watcher(server, name, &mut caster).await;
    (caster, viewer, viewer_id)
}

async fn still_relays(caster: &TestClient, viewer: &mut TestClient, viewer_id: &str) {
    caster
        .emit("offer", vec![json!(viewer_id), json!({"still": "works"})])
        .await;
    assert_eq!(viewer.expect("offer").await[1], json!({"still": "works"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_argument_counts_and_types() {
    let server = loopback_server().await;
    let (mut caster, mut viewer, viewer_id) = pair(&server, "args").await;

    let cases = [
        ("offer", vec![]),
        ("offer", vec![json!(viewer_id)]),
        ("offer", vec![json!(viewer_id), json!({}), json!("extra")]),
        ("answer", vec![json!(42), json!({})]),
        ("candidate", vec![json!(null), json!({})]),
        ("candidate", vec![json!({"id": viewer_id}), json!({})]),
        ("watcher", vec![json!("unexpected")]),
        ("broadcaster", vec![json!(1), json!(2)]),
        ("broadcaster", vec![json!({"key": 7})]),
    ];
    for (event, args) in cases {
        caster.emit(event, args.clone()).await;
        let err = caster.expect_error("bad_arguments").await;
        assert_eq!(err["event"], event, "{event} {args:?}");
    }
    // Sending to oneself is refused too.
    viewer
        .emit("answer", vec![json!(viewer_id), json!({})])
        .await;
    viewer.expect_error("bad_arguments").await;
    viewer.assert_quiet(QUIET).await;
    still_relays(&caster, &mut viewer, &viewer_id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_targets_and_events() {
    let server = loopback_server().await;
    let (mut caster, mut viewer, viewer_id) = pair(&server, "unknown").await;
    for target in ["not-an-id", "AAAAAAAAAAAAAAAA", ""] {
        caster.emit("offer", vec![json!(target), json!({})]).await;
        let err = caster.expect_error("unknown_target").await;
        assert!(
            err["message"].as_str().unwrap().contains("no socket"),
            "{err}"
        );
    }
    caster.emit("takeover", vec![json!("everything")]).await;
    let err = caster.expect_error("unknown_event").await;
    assert_eq!(err["event"], "takeover");
    viewer.assert_quiet(QUIET).await;
    // `keepalive` (a client probing its connection) is known: no error, nobody told.
    caster.emit("keepalive", vec![]).await;
    caster.assert_quiet(QUIET).await;
    viewer.assert_quiet(QUIET).await;
    still_relays(&caster, &mut viewer, &viewer_id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_over_the_limit_are_refused() {
    let config = ServerConfig {
        hub: HubConfig {
            max_payload_bytes: 16 * 1024,
            ..HubConfig::default()
        },
        ..ServerConfig::loopback_ephemeral()
    };
    let server = server(config).await;
    let (mut caster, mut viewer, viewer_id) = pair(&server, "big").await;

    let just_fits = "a".repeat(15 * 1024);
    caster
        .emit("offer", vec![json!(viewer_id), json!({"sdp": just_fits})])
        .await;
    assert_eq!(
        viewer.expect("offer").await[1]["sdp"]
            .as_str()
            .unwrap()
            .len(),
        15 * 1024
    );

    let too_big = "a".repeat(40 * 1024);
    caster
        .emit("offer", vec![json!(viewer_id), json!({"sdp": too_big})])
        .await;
    let err = caster.expect_error("payload_too_large").await;
    assert!(err["message"].as_str().unwrap().contains("16384"), "{err}");
    viewer.assert_quiet(QUIET).await;
    still_relays(&caster, &mut viewer, &viewer_id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_socket_is_throttled_and_nobody_else_notices() {
    let config = ServerConfig {
        hub: HubConfig {
            max_events_per_sec: 50,
            max_event_burst: 100,
            ..HubConfig::default()
        },
        ..ServerConfig::loopback_ephemeral()
    };
    let server = server(config).await;
    let (caster, mut viewer, viewer_id) = pair(&server, "flood").await;
    let (other_caster, mut other_viewer, other_id) = pair(&server, "calm").await;

    let mut flooder = TestClient::connect(&server, room("flood")).await;
    let started = std::time::Instant::now();
    for n in 0..1000 {
        flooder
            .emit("candidate", vec![json!(viewer_id), json!({"n": n})])
            .await;
    }
    // One notice (not one per dropped message) tells the flooder why.
    flooder.expect_error("rate_limited").await;
    let flood_secs = started.elapsed().as_secs_f64();
    // The victim got the burst plus what the sustained rate allowed, in order, and then nothing.
    let mut received = Vec::new();
    while let Ok((event, args)) =
        tokio::time::timeout(Duration::from_millis(500), viewer.next()).await
    {
        assert_eq!(event, "candidate");
        received.push(args[1]["n"].as_u64().unwrap());
    }
    assert!(
        received.windows(2).all(|w| w[0] < w[1]),
        "in order: {received:?}"
    );
    assert_eq!(
        &received[..100],
        &(0..100).collect::<Vec<_>>()[..],
        "the burst passes whole"
    );
    let allowed = 100.0 + 50.0 * (flood_secs + 0.6);
    assert!(
        (received.len() as f64) <= allowed,
        "{} received, {allowed} allowed",
        received.len()
    );
    assert!(received.len() < 1000);
    // Everyone else is unaffected.
    still_relays(&other_caster, &mut other_viewer, &other_id).await;
    still_relays(&caster, &mut viewer, &viewer_id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_room_name_is_refused_at_connect_with_the_reason() {
    use futures_util::FutureExt as _;
    let server = loopback_server().await;
    let long = "x".repeat(100);
    for (bad, reason) in [
        (long.as_str(), "longer than 64 bytes"),
        ("has space", "may only contain"),
        ("../../etc", "may only contain"),
    ] {
        let (tx, mut rx) = tokio::sync::mpsc::channel(8);
        let client = rust_socketio::asynchronous::ClientBuilder::new(server.local_url())
            .transport_type(rust_socketio::TransportType::Websocket)
            .reconnect(false)
            .auth(json!({ "room": bad }))
            .on("error", move |payload, _| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(format!("{payload:?}")).await;
                }
                .boxed()
            })
            .connect()
            .await
            .expect("the transport connects; the namespace is refused");
        let error = tokio::time::timeout(support::WAIT, rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(
            error.contains("ConnectError") && error.contains(reason),
            "{bad}: {error}"
        );
        let _ = client.disconnect().await;
    }
    let (caster, mut viewer, viewer_id) = pair(&server, "ok").await;
    still_relays(&caster, &mut viewer, &viewer_id).await;
}
