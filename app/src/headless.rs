//! Sessions with no window (`broadcast --headless`, `view --headless`, `--kiosk --headless`):
//! the same service the window uses, its events logged to stdout, until Ctrl-C or SIGTERM (or
//! until the caller has seen enough).

use std::future::Future;
use std::time::Duration;

use omnicast_engine::broadcaster::{BroadcastEvent, BroadcastStatus};
use omnicast_engine::service::{Event, Plan, Service, SessionEvent};
use omnicast_engine::session::{SessionId, SessionState};
use omnicast_engine::viewer::{ViewEvent, ViewState, ViewerStats};

/// How often a summary line is logged.
pub const STATUS_EVERY: Duration = Duration::from_secs(30);
/// How long the session may take to close its connections when stopped.
const STOP_WAIT: Duration = Duration::from_secs(5);

/// What a headless session saw by the end.
#[derive(Default)]
pub struct Outcome {
    /// The viewer's last statistics.
    pub stats: Option<ViewerStats>,
}

/// Runs `plan` until Ctrl-C/SIGTERM or `enough` completes. A session that gives up (the
/// command line's first connection failed, the server could not be hosted) is an error.
pub async fn run(plan: Plan, enough: impl Future<Output = ()>) -> anyhow::Result<Outcome> {
    let mut service = Service::start(&tokio::runtime::Handle::current(), || {});
    let id = service.start_session(plan)?;
    let mut log = Log::default();
    let shutdown = omnicast_signal::shutdown_signal();
    tokio::pin!(shutdown, enough);
    let mut status = tokio::time::interval(STATUS_EVERY);
    status.tick().await;
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            () = &mut enough => break,
            _ = status.tick() => log.summary(),
            event = service.next_event() => {
                let Some(Event::Session { id: from, event }) = event else {
                    continue;
                };
                if from != id {
                    continue;
                }
                if let SessionEvent::State(SessionState::Stopped { error }) = &event {
                    return match error {
                        Some(e) => Err(anyhow::anyhow!("{e}")),
                        None => Ok(log.outcome()),
                    };
                }
                log.event(event);
            }
        }
    }
    stop(&mut service, id, &mut log).await;
    Ok(log.outcome())
}

/// Stops the session and lets it close its connections (a few hundred milliseconds).
async fn stop(service: &mut Service, id: SessionId, log: &mut Log) {
    if service.stop_session(id).is_err() {
        return;
    }
    let _ = tokio::time::timeout(STOP_WAIT, async {
        while let Some(event) = service.next_event().await {
            if let Event::Session { id: from, event } = event
                && from == id
            {
                if matches!(event, SessionEvent::State(SessionState::Stopped { .. })) {
                    return;
                }
                log.event(event);
            }
        }
    })
    .await;
}

/// Says what changes, once.
#[derive(Default)]
struct Log {
    broadcast: Option<BroadcastStatus>,
    view: Option<ViewState>,
    stats: Option<ViewerStats>,
    control: Option<bool>,
    /// The latest telemetry (the first is logged as it comes, the latest in each summary).
    telemetry: Option<serde_json::Value>,
}

/// A JSON value for a log line: at most 200 characters.
fn short(v: &serde_json::Value) -> String {
    let mut s = v.to_string();
    if let Some((at, _)) = s.char_indices().nth(200) {
        s.truncate(at);
        s.push('…');
    }
    s
}

impl Log {
    fn event(&mut self, event: SessionEvent) {
        match event {
            SessionEvent::State(SessionState::Retrying { .. }) => {
                // The supervisor said why and when it tries again.
            }
            SessionEvent::State(_) => {}
            SessionEvent::Broadcast(BroadcastEvent::Hosting(h)) => {
                println!("viewers: {}  (no window: add --headless)", h.view_command());
                println!(
                    "browsers: {}  (broadcaster page {})",
                    h.viewer_links.join("  "),
                    h.broadcaster_page
                );
            }
            SessionEvent::Broadcast(BroadcastEvent::Status(s)) => {
                let said = self
                    .broadcast
                    .as_ref()
                    .map(|b| (b.signal_connected, b.connected_viewers()));
                let now = (s.signal_connected, s.connected_viewers());
                if said != Some(now) {
                    let (up, n) = now;
                    tracing::info!(
                        "broadcaster: {}, {n} viewer(s)",
                        if up {
                            "connected to the signal server"
                        } else {
                            "reconnecting to the signal server"
                        }
                    );
                }
                self.broadcast = Some(*s);
            }
            SessionEvent::View(ViewEvent::State(state)) => {
                if self.view != Some(state) {
                    tracing::info!("viewer: {state}");
                    self.view = Some(state);
                }
            }
            SessionEvent::View(ViewEvent::Stats(s)) => self.stats = Some(*s),
            SessionEvent::Broadcast(BroadcastEvent::Views(_)) => {}
            SessionEvent::Broadcast(BroadcastEvent::Message { viewer, data }) => {
                tracing::info!("message from viewer {viewer}: {}", short(&data));
            }
            SessionEvent::Broadcast(BroadcastEvent::Refused(why))
            | SessionEvent::View(ViewEvent::Refused(why)) => tracing::warn!("{why}"),
            SessionEvent::View(ViewEvent::Control(control)) => {
                if self.control != Some(control) {
                    tracing::info!(
                        "viewer: {}",
                        if control {
                            "the control key was accepted: messages reach the robot"
                        } else {
                            "watching (no control)"
                        }
                    );
                    self.control = Some(control);
                }
            }
            SessionEvent::View(ViewEvent::Projection(p)) => {
                tracing::info!(
                    "viewer: the broadcaster's picture is {}",
                    match p {
                        omnicast_engine::values::Projection::Equirect => {
                            "a 360° panorama (equirectangular)"
                        }
                        omnicast_engine::values::Projection::Flat => "flat",
                    }
                );
            }
            SessionEvent::View(ViewEvent::Telemetry { data, .. }) => {
                if self.telemetry.is_none() {
                    tracing::info!("telemetry: {}", short(&data));
                }
                self.telemetry = Some(data);
            }
        }
    }

    fn summary(&self) {
        if let Some(b) = &self.broadcast {
            tracing::info!(
                "sending {} to {} viewer(s), {} frames so far",
                b.source,
                b.connected_viewers(),
                b.frames_encoded
            );
        }
        if let Some(s) = &self.stats {
            tracing::info!(
                "viewer {}: {}x{}, {:.1} fps, {} frames, {} lost",
                self.view
                    .map_or_else(|| "starting".to_owned(), |v| v.to_string()),
                s.width,
                s.height,
                s.fps_decoded,
                s.frames_decoded,
                s.frames_lost
            );
        }
        if let Some(t) = &self.telemetry {
            tracing::info!("latest telemetry: {}", short(t));
        }
        if let Some(d) = self.broadcast.as_ref().map(|b| &b.data)
            && (d.viewport_samples > 0 || d.messages_accepted > 0 || d.log.is_some())
        {
            tracing::info!(
                "data channels: {} viewer(s) sending views, {} samples, {} messages ({} refused){}",
                d.viewers_sending_views,
                d.viewport_samples,
                d.messages_accepted,
                d.messages_refused,
                d.log.as_ref().map_or_else(String::new, |l| format!(
                    "; log {}: {} written, {} dropped",
                    l.path.display(),
                    l.written,
                    l.dropped
                ))
            );
        }
    }

    fn outcome(&mut self) -> Outcome {
        Outcome {
            stats: self.stats.take(),
        }
    }
}
