//! The data channels end to end, through the service, the real signal server and real peer
//! connections on loopback: viewers' views reach the broadcaster's log in order, a trace replays
//! at its own timing, only the control key's holders reach the robot, telemetry reaches every
//! viewer, and none of it disturbs the video.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use omnicast_engine::broadcaster::BroadcastCommand;
use omnicast_engine::channels::protocol::Viewport;
use omnicast_engine::channels::room::DataSettings;
use omnicast_engine::channels::trace::Trace;
use omnicast_engine::service::SessionCommand;
use omnicast_engine::values::Projection;
use omnicast_engine::viewer::ViewCommand;
use serde_json::{Value, json};
use support::{
    Session, broadcast, broadcast_settings, loopback_server, small_encoder, view_settings,
    watch_with,
};

fn temp_log(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("omnicast-channels-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    path
}

fn caster(url: &str, room: &str, data: DataSettings) -> Session {
    let mut settings = broadcast_settings(url, room, (320, 240), small_encoder());
    settings.data = data;
    broadcast(settings, None)
}

/// The log's lines for `viewer`, in file order.
fn logged(path: &Path, viewer: &str) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("each line is JSON"))
        .filter(|l| l["viewer"] == viewer)
        .collect()
}

async fn until_logged(path: &Path, viewer: &str, n: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let lines = logged(path, viewer);
        if lines.len() >= n || tokio::time::Instant::now() > deadline {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The id the broadcaster knows a viewer by: the one viewer whose views it sees now.
async fn viewer_id(caster: &Session, not: &[String]) -> String {
    let seen = caster
        .until(Duration::from_secs(10), "a viewer's view arrives", |s| {
            s.views.keys().any(|k| !not.contains(k))
        })
        .await;
    seen.views
        .keys()
        .find(|k| !not.contains(k))
        .unwrap()
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_reach_the_log_in_order_and_only_the_key_reaches_the_robot() {
    let server = loopback_server().await;
    let url = server.local_url();
    let log = temp_log("views.jsonl");
    let caster = caster(
        &url,
        "lab",
        DataSettings {
            control_key: Some("k3y".parse().unwrap()),
            viewport_log: Some(log.clone()),
            ..DataSettings::default()
        },
    );
    let mut with_key = view_settings(&url, "lab");
    with_key.control_key = Some("k3y".parse().unwrap());
    let (operator, _) = watch_with(with_key, true);
    let (watcher, _) = watch_with(view_settings(&url, "lab"), true);
    operator.until_frames(10, "operator").await;
    watcher.until_frames(10, "watcher").await;
    let op = operator
        .until(
            Duration::from_secs(10),
            "the operator is welcomed with control",
            |s| s.control == Some(true),
        )
        .await;
    assert!(op.refused.is_empty(), "{op:?}");
    watcher
        .until(Duration::from_secs(10), "the watcher is welcomed", |s| {
            s.control == Some(false)
        })
        .await;

    // The operator turns right in 20 steps, 50 ms apart (slower than the 30 Hz cap: all go).
    for i in 0..20 {
        let view = Viewport::new(f64::from(i) * 5.0, 10.0, 0.0, Some(90.0));
        operator.command(SessionCommand::View(ViewCommand::Look(view)));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let op_id = viewer_id(&caster, &[]).await;
    let lines = until_logged(&log, &op_id, 20).await;
    let yaws: Vec<f64> = lines.iter().map(|l| l["yaw"].as_f64().unwrap()).collect();
    assert_eq!(
        yaws,
        (0..20).map(|i| f64::from(i) * 5.0).collect::<Vec<_>>(),
        "{lines:?}"
    );
    let t_sent: Vec<f64> = lines
        .iter()
        .map(|l| l["t_sent"].as_f64().unwrap())
        .collect();
    assert!(
        t_sent.windows(2).all(|w| w[0] < w[1]),
        "in order: {t_sent:?}"
    );
    for l in &lines {
        assert_eq!(
            (l["pitch"].as_f64(), l["fov"].as_f64()),
            (Some(10.0), Some(90.0))
        );
        let delay = l["t_received"].as_f64().unwrap() - l["t_sent"].as_f64().unwrap();
        assert!(
            (-5.0..500.0).contains(&delay),
            "one-way delay {delay} ms: {l}"
        );
    }
    // The broadcaster shows where the operator looks.
    caster
        .until(Duration::from_secs(5), "the latest view is shown", |s| {
            s.views.get(&op_id).is_some_and(|v| v.yaw_deg == 95.0)
        })
        .await;

    // Standing still, the view goes again once a second: the next two samples are the last
    // view, each about a second after the one before.
    let lines = until_logged(&log, &op_id, 22).await;
    assert!(lines.len() >= 22, "{} lines", lines.len());
    let t_sent: Vec<f64> = lines
        .iter()
        .map(|l| l["t_sent"].as_f64().unwrap())
        .collect();
    for i in 20..22 {
        assert_eq!(lines[i]["yaw"].as_f64(), Some(95.0), "{}", lines[i]);
        let gap = t_sent[i] - t_sent[i - 1];
        assert!(
            (900.0..1_300.0).contains(&gap),
            "{gap} ms after the one before"
        );
    }

    // Messages: the operator's reach the broadcaster (and the robot); the watcher's are refused.
    operator.command(SessionCommand::View(ViewCommand::Message(
        json!({"drive": [1, 0]}),
    )));
    watcher.command(SessionCommand::View(ViewCommand::Message(
        json!({"drive": [0, 1]}),
    )));
    let seen = caster
        .until(Duration::from_secs(10), "the operator's message", |s| {
            !s.messages.is_empty()
        })
        .await;
    assert_eq!(seen.messages, [(op_id.clone(), json!({"drive": [1, 0]}))]);
    watcher
        .until(Duration::from_secs(10), "the watcher hears why", |s| {
            s.refused.iter().any(|r| r.contains("control key"))
        })
        .await;

    // Telemetry reaches both.
    caster.command(SessionCommand::Broadcast(BroadcastCommand::Telemetry(
        json!({"battery": 0.87}),
    )));
    for v in [&operator, &watcher] {
        v.until(Duration::from_secs(10), "telemetry", |s| {
            s.telemetry == [json!({"battery": 0.87})]
        })
        .await;
    }
    // Too large to send: refused with a reason, nothing sent.
    caster.command(SessionCommand::Broadcast(BroadcastCommand::Telemetry(
        json!("x".repeat(20_000)),
    )));
    caster
        .until(Duration::from_secs(5), "oversize telemetry refused", |s| {
            s.refused.iter().any(|r| r.contains("over the limit"))
        })
        .await;

    let status = caster
        .until(Duration::from_secs(5), "the status counts them", |s| {
            s.status().data.messages_refused == 1
        })
        .await
        .status();
    assert_eq!(status.data.messages_accepted, 1, "{:?}", status.data);
    assert_eq!(status.data.telemetry_sent, 1, "{:?}", status.data);
    assert_eq!(
        status.data.viewers_sending_views, 1,
        "only the operator looks around (the watcher has no 360° view)"
    );
    let op_summary = status.viewers.iter().find(|v| v.id == op_id).unwrap();
    assert!(op_summary.data.as_ref().unwrap().control);
    // None of it disturbed the video.
    let before = operator.seen().stats().frames_decoded;
    let s = operator.until_frames(before + 15, "video goes on").await;
    assert_eq!((s.frames_lost, s.decode_errors), (0, 0), "{s:?}");
    assert!(
        s.viewport_samples_sent >= 21 && s.messages_sent == 1,
        "{s:?}"
    );
    operator.stop().await;
    watcher.stop().await;
    caster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_replays_at_its_own_timing_from_the_first_frame() {
    let server = loopback_server().await;
    let url = server.local_url();
    let log = temp_log("trace.jsonl");
    let caster = caster(
        &url,
        "trace",
        DataSettings {
            viewport_log: Some(log.clone()),
            ..DataSettings::default()
        },
    );
    // 60 samples at 60 Hz, then a pause, then 10 more: faster than the window's 30 Hz cap.
    let mut csv = "t,yaw,pitch,roll,extra\n".to_owned();
    for i in 0..60 {
        csv += &format!(
            "{:.4},{},{},0,x\n",
            5.0 + f64::from(i) / 60.0,
            i * 3 - 90,
            i % 7
        );
    }
    for i in 0..10 {
        csv += &format!("{:.4},{},-20,2,y\n", 7.0 + f64::from(i) * 0.1, 100 + i);
    }
    let trace = Arc::new(Trace::parse(&csv).unwrap());
    let mut settings = view_settings(&url, "trace");
    settings.viewport_trace = Some(trace.clone());
    let (viewer, _) = watch_with(settings, true);
    viewer.until_frames(1, "viewer").await;
    let id = viewer_id(&caster, &[]).await;
    let lines = until_logged(&log, &id, 70).await;
    assert_eq!(lines.len(), 70, "every sample logged");
    let mut lines = lines;
    lines.sort_by(|a, b| {
        a["t_sent"]
            .as_f64()
            .partial_cmp(&b["t_sent"].as_f64())
            .unwrap()
    });
    let t0 = lines[0]["t_received"].as_f64().unwrap();
    let mut worst_ms: f64 = 0.0;
    for (line, point) in lines.iter().zip(&trace.points) {
        assert_eq!(line["yaw"].as_f64().unwrap(), point.view.yaw_deg, "{line}");
        assert_eq!(
            line["pitch"].as_f64().unwrap(),
            point.view.pitch_deg,
            "{line}"
        );
        assert_eq!(
            line["roll"].as_f64().unwrap(),
            point.view.roll_deg,
            "{line}"
        );
        let at_ms = line["t_received"].as_f64().unwrap() - t0;
        worst_ms = worst_ms.max((at_ms - point.at.as_secs_f64() * 1e3).abs());
    }
    assert!(worst_ms <= 50.0, "timing off by {worst_ms} ms");
    // The viewer counted them too (its figures come every half second).
    viewer
        .until(Duration::from_secs(5), "70 samples counted as sent", |s| {
            s.stats().viewport_samples_sent == 70
        })
        .await;
    viewer.stop().await;
    caster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_that_cannot_be_opened_stops_the_broadcast_with_its_reason() {
    let server = loopback_server().await;
    let caster = caster(
        &server.local_url(),
        "nolog",
        DataSettings {
            viewport_log: Some("/nonexistent-dir/views.jsonl".into()),
            ..DataSettings::default()
        },
    );
    let seen = caster
        .until(Duration::from_secs(10), "the broadcast stops", |s| {
            s.stopped()
        })
        .await;
    let error = format!("{:?}", seen.states.last());
    assert!(
        error.contains("cannot open the viewport log /nonexistent-dir/views.jsonl"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_are_told_what_the_picture_is_when_they_join_and_when_it_changes() {
    let server = loopback_server().await;
    let url = server.local_url();
    let mut settings = broadcast_settings(&url, "proj", (320, 160), small_encoder());
    settings.data.projection = Projection::Equirect;
    let caster = broadcast(settings, None);
    let (viewer, _) = watch_with(view_settings(&url, "proj"), false);
    viewer
        .until(Duration::from_secs(15), "told 360° on joining", |s| {
            s.projections == [Projection::Equirect]
        })
        .await;
    caster.command(SessionCommand::Broadcast(BroadcastCommand::Projection(
        Projection::Flat,
    )));
    viewer
        .until(Duration::from_secs(5), "told flat when it changed", |s| {
            s.projections == [Projection::Equirect, Projection::Flat]
        })
        .await;
    viewer
        .until(Duration::from_secs(5), "its statistics say so too", |s| {
            s.stats().projection == Some(Projection::Flat)
        })
        .await;
    // A viewer joining now hears the new projection.
    let (late, _) = watch_with(view_settings(&url, "proj"), false);
    late.until(Duration::from_secs(15), "a late joiner told flat", |s| {
        s.projections == [Projection::Flat]
    })
    .await;
    caster
        .until(Duration::from_secs(5), "the status says flat", |s| {
            s.status().projection == Projection::Flat
        })
        .await;
    late.stop().await;
    viewer.stop().await;
    caster.stop().await;
}
