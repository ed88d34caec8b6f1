//! The classic broadcast protocol through the real server, driven by rust_socketio clients.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;
use support::{TestClient, broadcaster, id, loopback_server, room, watcher};

const QUIET: Duration = Duration::from_millis(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_broadcaster_twenty_watchers_every_message_reaches_exactly_its_target() {
    let server = loopback_server().await;
    let mut caster = TestClient::connect(&server, room("main")).await;
    caster.emit("broadcaster", vec![]).await;
    assert_eq!(caster.expect("viewers").await, vec![json!(0)]);

    // Watchers join one by one so the broadcaster can tell which id belongs to which client.
    let mut watchers = Vec::new();
    let mut ids = Vec::new();
    for n in 0..20 {
        let w = TestClient::connect(&server, room("main")).await;
        w.emit("watcher", vec![]).await;
        let watcher_id = id(&caster.expect("watcher").await[0]);
        assert_eq!(caster.expect("viewers").await, vec![json!(n + 1)]);
        // Socket ids are distinct.
        assert!(!ids.contains(&watcher_id));
        ids.push(watcher_id);
        watchers.push(w);
    }

    for (n, target) in ids.iter().enumerate() {
        caster
            .emit(
                "offer",
                vec![
                    json!(target),
                    json!({"type": "offer", "sdp": format!("sdp for {n}")}),
                ],
            )
            .await;
        caster
            .emit(
                "candidate",
                vec![
                    json!(target),
                    json!({"candidate": format!("c{n}"), "sdpMLineIndex": 0}),
                ],
            )
            .await;
    }
    let mut caster_id = None;
    for (n, w) in watchers.iter_mut().enumerate() {
        let offer = w.expect("offer").await;
        assert_eq!(
            offer[1],
            json!({"type": "offer", "sdp": format!("sdp for {n}")})
        );
        let sender = id(&offer[0]);
        assert_eq!(*caster_id.get_or_insert_with(|| sender.clone()), sender);
        let cand = w.expect("candidate").await;
        assert_eq!(
            cand,
            vec![
                json!(sender),
                json!({"candidate": format!("c{n}"), "sdpMLineIndex": 0})
            ]
        );
        w.emit(
            "answer",
            vec![
                json!(sender),
                json!({"type": "answer", "sdp": format!("answer {n}")}),
            ],
        )
        .await;
        w.emit(
            "candidate",
            vec![json!(sender), json!({"candidate": format!("w{n}")})],
        )
        .await;
    }
    // Each answer and candidate arrives at the broadcaster from the right watcher.
    let mut answered = HashSet::new();
    for _ in 0..40 {
        let (event, args) = caster.next().await;
        let from = id(&args[0]);
        let n = ids
            .iter()
            .position(|i| *i == from)
            .expect("a known watcher");
        match event.as_str() {
            "answer" => assert_eq!(
                args[1],
                json!({"type": "answer", "sdp": format!("answer {n}")})
            ),
            "candidate" => assert_eq!(args[1], json!({"candidate": format!("w{n}")})),
            other => panic!("unexpected {other}"),
        }
        answered.insert((event, n));
    }
    assert_eq!(answered.len(), 40);
    // Nobody received anything that was not theirs.
    caster.assert_quiet(QUIET).await;
    for w in &mut watchers {
        w.assert_quiet(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn departures_are_announced_to_the_right_sockets() {
    let server = loopback_server().await;
    let mut caster = broadcaster(&server, room("bye")).await;
    let (a, a_id) = watcher(&server, "bye", &mut caster).await;
    let (mut b, _) = watcher(&server, "bye", &mut caster).await;

    a.disconnect().await;
    assert_eq!(caster.expect("disconnectPeer").await, vec![json!(a_id)]);
    assert_eq!(caster.expect("bye").await, vec![json!(a_id)]);
    assert_eq!(caster.expect("viewers").await, vec![json!(1)]);
    b.assert_quiet(QUIET).await;

    // A socket that never watched leaves quietly: the classic page would crash on an unknown id.
    let lurker = TestClient::connect(&server, room("bye")).await;
    lurker.disconnect().await;
    caster.assert_quiet(QUIET).await;

    caster.disconnect().await;
    b.expect("broadcasterLeft").await;
    let gone = b.expect("disconnectPeer").await;
    assert_eq!(b.expect("bye").await, gone);

    // A new broadcaster is announced, and the waiting watcher is counted again when it re-asks.
    let mut caster2 = broadcaster(&server, room("bye")).await;
    b.expect("broadcaster").await;
    b.emit("watcher", vec![]).await;
    caster2.expect("watcher").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_are_isolated() {
    let server = loopback_server().await;
    let mut red = broadcaster(&server, room("red")).await;
    let mut blue_viewer = TestClient::connect(&server, room("blue")).await;
    blue_viewer.emit("watcher", vec![]).await;
    blue_viewer.expect("noBroadcaster").await;
    red.assert_quiet(QUIET).await;

    let (mut red_viewer, red_viewer_id) = watcher(&server, "red", &mut red).await;

    // The blue broadcaster's announcement reaches only blue.
    let mut blue = broadcaster(&server, room("blue")).await;
    blue_viewer.expect("broadcaster").await;
    red_viewer.assert_quiet(QUIET).await;

    // A message aimed across rooms is refused as if the target did not exist.
    blue.emit("offer", vec![json!(red_viewer_id), json!({"sdp": "x"})])
        .await;
    blue.expect_error("unknown_target").await;
    red_viewer.assert_quiet(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_given_in_the_query_string_is_honoured() {
    let server = loopback_server().await;
    let url = format!("{}/?room=q1", server.local_url());
    let mut caster = TestClient::connect_url(&url, None).await;
    caster.emit("broadcaster", vec![]).await;
    caster.expect("viewers").await;
    watcher(&server, "q1", &mut caster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_sockets_messages_arrive_in_the_order_sent() {
    let server = loopback_server().await;
    let mut a = broadcaster(&server, room("order")).await;
    let (mut b, b_id) = watcher(&server, "order", &mut a).await;

    a.emit("offer", vec![json!(b_id), json!({"sdp": "offer"})])
        .await;
    for n in 0..150 {
        a.emit("candidate", vec![json!(b_id), json!({"n": n})])
            .await;
    }
    assert_eq!(b.expect("offer").await[1], json!({"sdp": "offer"}));
    for n in 0..150 {
        assert_eq!(b.expect("candidate").await[1], json!({"n": n}));
    }
}
