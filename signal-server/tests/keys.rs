//! Broadcaster keys: nobody can take over a broadcast by emitting `broadcaster`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::time::Duration;

use omnicast_signal::{HubConfig, ServerConfig};
use serde_json::json;
use support::{TestClient, broadcaster, loopback_server, room, server, watcher};

const QUIET: Duration = Duration::from_millis(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_room_key_is_enforced() {
    let config = ServerConfig {
        hub: HubConfig {
            room_keys: HashMap::from([("robot".to_owned(), "s3cret".to_owned())]),
            ..HubConfig::default()
        },
        ..ServerConfig::loopback_ephemeral()
    };
    let server = server(config).await;
    let mut viewer = TestClient::connect(&server, room("robot")).await;

    let mut no_key = TestClient::connect(&server, room("robot")).await;
    no_key.emit("broadcaster", vec![]).await;
    no_key.expect_error("broadcaster_key").await;
    let mut wrong = TestClient::connect(&server, json!({"room": "robot", "key": "guess"})).await;
    wrong.emit("broadcaster", vec![]).await;
    wrong.expect_error("broadcaster_key").await;
    viewer.assert_quiet(QUIET).await;

    let mut right = TestClient::connect(&server, json!({"room": "robot", "key": "s3cret"})).await;
    right.emit("broadcaster", vec![]).await;
    right.expect("viewers").await;
    viewer.expect("broadcaster").await;

    // The key can also be given with the event itself, as `{key}` or a string.
    let mut other_room = TestClient::connect(&server, room("robot")).await;
    other_room
        .emit("broadcaster", vec![json!({"key": "nope"})])
        .await;
    other_room.expect_error("broadcaster_key").await;
    viewer.emit("watcher", vec![]).await;
    right.expect("watcher").await;

    // Rooms without a configured key keep the classic behaviour.
    let mut open = TestClient::connect(&server, room("open")).await;
    open.emit("broadcaster", vec![]).await;
    open.expect("viewers").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_broadcaster_claims_its_room_until_it_leaves() {
    let server = loopback_server().await;
    let mut owner = broadcaster(&server, json!({"room": "lab", "key": "k1"})).await;
    let (mut viewer, viewer_id) = watcher(&server, "lab", &mut owner).await;

    let mut hijacker = TestClient::connect(&server, room("lab")).await;
    hijacker.emit("broadcaster", vec![]).await;
    hijacker.expect_error("broadcaster_key").await;
    hijacker.emit("broadcaster", vec![json!("k2")]).await;
    hijacker.expect_error("broadcaster_key").await;
    viewer.assert_quiet(QUIET).await;
    // The viewer still reaches the owner.
    viewer.emit("watcher", vec![]).await;
    assert_eq!(owner.expect("watcher").await, vec![json!(viewer_id)]);

    // The owner reconnecting with its key takes over from its stale self, which is told.
    let mut owner2 = TestClient::connect(&server, json!({"room": "lab", "key": "k1"})).await;
    owner2.emit("broadcaster", vec![]).await;
    let new_id = owner.expect("replaced").await;
    owner.expect("broadcaster").await;
    owner2.expect("viewers").await;
    viewer.expect("broadcaster").await;
    hijacker.expect("broadcaster").await;
    viewer.emit("watcher", vec![]).await;
    assert_eq!(owner2.expect("watcher").await, vec![json!(viewer_id)]);
    owner2
        .emit("offer", vec![json!(viewer_id), json!({})])
        .await;
    assert_eq!(
        viewer.expect("offer").await[0],
        new_id[0],
        "replaced names the new broadcaster"
    );

    // Once it leaves, the room is free again.
    owner.disconnect().await;
    owner2.disconnect().await;
    viewer.expect("broadcasterLeft").await;
    hijacker.expect("broadcasterLeft").await;
    hijacker.emit("broadcaster", vec![]).await;
    hijacker.expect("viewers").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_keys_the_last_broadcaster_wins_as_in_the_classic_server() {
    let server = loopback_server().await;
    let mut first = broadcaster(&server, room("")).await;
    let mut second = broadcaster(&server, room("")).await;
    first.expect("replaced").await;
    first.expect("broadcaster").await;
    watcher(&server, "", &mut second).await;
}
