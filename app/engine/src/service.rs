//! The one runner of sessions, for the window, kiosk mode, the command line and tests: typed
//! commands in, typed events out, each tagged with the [`SessionId`] it is about. Sessions run
//! supervised on the tokio runtime; callers never wait for them (`try_send` in, `poll` or
//! [`Service::next_event`] out).
//!
//! Events that change a session's state (its [`SessionState`]s, a viewer's [`ViewState`]s)
//! wait for room in the queue and are never dropped; figures that the next report supersedes
//! (statuses, statistics) are dropped when the queue is full.
//!
//! [`ViewState`]: crate::viewer::ViewState

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::{Mutex as AsyncMutex, mpsc};

use crate::audio::send::AudioFigures;
use crate::broadcaster::video::PreviewTap;
use crate::broadcaster::{self, BroadcastCommand, BroadcastEvent, BroadcastSettings};
use crate::capture::{CameraInfo, list_cameras};
use crate::channels::room::DataRoom;
use crate::frame::{FrameSlot, VideoFrame, save_png};
use crate::hosting;
use crate::record::Recorder;
use crate::session::{self, Retry, SessionId, SessionState, StopHandle};
use crate::sink::ViewSink;
use crate::viewer::{self, ViewCommand, ViewEvent, ViewSettings};

/// A broadcast to start.
pub struct BroadcastPlan {
    pub settings: BroadcastSettings,
    /// Host the signal server here, on these addresses (HTTP, STUN); `settings.server_url` is
    /// then the hosted server's.
    pub host: Option<(SocketAddr, SocketAddr)>,
    /// Where a preview goes, if anything shows one ([`BroadcastCommand::Preview`] turns it on).
    pub preview: Option<Arc<FrameSlot>>,
    /// Records what is sent while told to ([`Recorder::start`]).
    pub recorder: Option<Recorder>,
    pub retry: Retry,
}

/// A viewer to start.
pub struct ViewPlan {
    pub settings: ViewSettings,
    /// What each track goes to: [`viewer::display::Display`] to decode the video into a slot;
    /// none to receive and count only.
    pub sinks: Vec<Arc<dyn ViewSink>>,
    pub retry: Retry,
}

pub enum Plan {
    Broadcast(Box<BroadcastPlan>),
    View(Box<ViewPlan>),
}

/// What a running session can be told.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionCommand {
    Broadcast(BroadcastCommand),
    View(ViewCommand),
}

enum Command {
    Start(SessionId, Plan),
    Stop(SessionId),
    Session(SessionId, SessionCommand),
    ListCameras,
    ListMicrophones,
    SaveSnapshot(Box<VideoFrame>, PathBuf),
}

/// Something that happened.
#[derive(Debug)]
pub enum Event {
    Session {
        id: SessionId,
        event: SessionEvent,
    },
    Cameras(Vec<CameraInfo>),
    /// Microphone names, the default first, or why there are none.
    Microphones(Result<Vec<String>, String>),
    Snapshot(Result<PathBuf, String>),
}

/// Something that happened to one session.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionEvent {
    /// Running, retrying, and at last stopped (always its last event).
    State(SessionState),
    Broadcast(BroadcastEvent),
    View(ViewEvent),
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("the app's service is busy; try again")]
    Busy,
    #[error("the app's service has stopped")]
    Gone,
}

/// The handle on the service.
pub struct Service {
    commands: mpsc::Sender<Command>,
    events: mpsc::Receiver<Event>,
    next_id: u64,
}

const COMMANDS: usize = 64;
const EVENTS: usize = 256;

impl Service {
    /// Starts the service on `runtime`; `wake` is called after each event (egui's
    /// `request_repaint`, so the window drains it).
    pub fn start(
        runtime: &tokio::runtime::Handle,
        wake: impl Fn() + Send + Sync + 'static,
    ) -> Self {
        let (commands, commands_rx) = mpsc::channel(COMMANDS);
        let (events_tx, events) = mpsc::channel(EVENTS);
        let out = Outbox {
            events: events_tx,
            wake: Arc::new(wake),
        };
        runtime.spawn(serve(commands_rx, out));
        Self {
            commands,
            events,
            next_id: 0,
        }
    }

    fn send(&self, command: Command) -> Result<(), ServiceError> {
        self.commands.try_send(command).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => ServiceError::Busy,
            mpsc::error::TrySendError::Closed(_) => ServiceError::Gone,
        })
    }

    /// Starts a session; its events carry the id returned.
    pub fn start_session(&mut self, plan: Plan) -> Result<SessionId, ServiceError> {
        self.next_id += 1;
        let id = SessionId(self.next_id);
        self.send(Command::Start(id, plan))?;
        Ok(id)
    }

    /// Stops a session; [`SessionState::Stopped`] follows when it has ended.
    pub fn stop_session(&self, id: SessionId) -> Result<(), ServiceError> {
        self.send(Command::Stop(id))
    }

    pub fn command(&self, id: SessionId, command: SessionCommand) -> Result<(), ServiceError> {
        self.send(Command::Session(id, command))
    }

    /// Looks for cameras; [`Event::Cameras`] follows.
    pub fn list_cameras(&self) -> Result<(), ServiceError> {
        self.send(Command::ListCameras)
    }

    /// Looks for microphones; [`Event::Microphones`] follows.
    pub fn list_microphones(&self) -> Result<(), ServiceError> {
        self.send(Command::ListMicrophones)
    }

    /// Saves `frame` as a PNG at `path` (off the UI); [`Event::Snapshot`] follows.
    pub fn save_snapshot(&self, frame: VideoFrame, path: PathBuf) -> Result<(), ServiceError> {
        self.send(Command::SaveSnapshot(Box::new(frame), path))
    }

    /// The next event, if any (never waits).
    pub fn poll(&mut self) -> Option<Event> {
        self.events.try_recv().ok()
    }

    /// The next event, waiting for it; `None` once the service has stopped.
    pub async fn next_event(&mut self) -> Option<Event> {
        self.events.recv().await
    }
}

#[derive(Clone)]
struct Outbox {
    events: mpsc::Sender<Event>,
    wake: Arc<dyn Fn() + Send + Sync>,
}

impl Outbox {
    /// An event that must arrive: waits for room.
    async fn send(&self, event: Event) {
        if self.events.send(event).await.is_ok() {
            (self.wake)();
        }
    }

    /// An event the next one supersedes: dropped when the queue is full.
    fn offer(&self, event: Event) {
        match self.events.try_send(event) {
            Ok(()) => (self.wake)(),
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::debug!("the UI is behind; a figures update was dropped");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

/// One session's side of the outbox: its events, tagged with its id.
#[derive(Clone)]
pub struct SessionEvents {
    id: SessionId,
    outbox: Outbox,
}

impl SessionEvents {
    /// A state change: never dropped (waits for room).
    pub async fn send(&self, event: SessionEvent) {
        self.outbox
            .send(Event::Session { id: self.id, event })
            .await;
    }

    /// Figures the next report supersedes: dropped when the queue is full.
    pub fn offer(&self, event: SessionEvent) {
        self.outbox.offer(Event::Session { id: self.id, event });
    }
    /// What a broadcast or viewer reports through, each event wrapped by `wrap`.
    fn reporter<E: Send + 'static>(&self, wrap: fn(E) -> SessionEvent) -> session::Reporter<E> {
        let (sends, offers) = (self.clone(), self.clone());
        session::Reporter::new(
            move |e| {
                let events = sends.clone();
                Box::pin(async move { events.send(wrap(e)).await })
            },
            move |e| offers.offer(wrap(e)),
        )
    }
}

struct Running {
    stop: StopHandle,
    commands: mpsc::Sender<SessionCommand>,
}

async fn serve(mut commands: mpsc::Receiver<Command>, out: Outbox) {
    let mut sessions: std::collections::HashMap<SessionId, Running> = Default::default();
    let mut ending = tokio::task::JoinSet::new();
    // A broadcast that hosts the signal server holds this until it has shut the server down,
    // so the next one can take the same port.
    let hosting = Arc::new(AsyncMutex::new(()));
    loop {
        tokio::select! {
            command = commands.recv() => {
                let Some(command) = command else { break };
                match command {
                    Command::Start(id, plan) => {
                        let (stop, stop_signal) = session::stop_signal();
                        let (commands_tx, commands_rx) = mpsc::channel(16);
                        let events = SessionEvents { id, outbox: out.clone() };
                        match plan {
                            Plan::Broadcast(plan) => ending.spawn(run_broadcast(
                                *plan, events, commands_rx, stop_signal, hosting.clone(),
                            )),
                            Plan::View(plan) => {
                                ending.spawn(run_view(*plan, events, commands_rx, stop_signal))
                            }
                        };
                        sessions.insert(id, Running { stop, commands: commands_tx });
                    }
                    Command::Stop(id) => {
                        if let Some(s) = sessions.remove(&id) {
                            s.stop.stop();
                        }
                    }
                    Command::Session(id, command) => match sessions.get(&id) {
                        Some(s) => match s.commands.try_send(command) {
                            Ok(()) => {}
                            Err(mpsc::error::TrySendError::Full(c)) => {
                                tracing::warn!("{id} is not keeping up with commands: {c:?} dropped");
                            }
                            Err(mpsc::error::TrySendError::Closed(c)) => {
                                tracing::debug!("{id} takes no {c:?}");
                            }
                        },
                        None => tracing::debug!("a command for {id}, which has ended"),
                    },
                    Command::ListCameras => {
                        let out = out.clone();
                        tokio::task::spawn_blocking(move || {
                            out.offer(Event::Cameras(list_cameras()));
                        });
                    }
                    Command::ListMicrophones => {
                        let out = out.clone();
                        tokio::task::spawn_blocking(move || {
                            let names = crate::audio::microphone::input_names();
                            out.offer(Event::Microphones(names.map_err(|e| e.to_string())));
                        });
                    }
                    Command::SaveSnapshot(frame, path) => {
                        let out = out.clone();
                        tokio::task::spawn_blocking(move || {
                            let saved = save_png(&frame, &path).map(|()| path);
                            out.offer(Event::Snapshot(saved.map_err(|e| e.to_string())));
                        });
                    }
                }
            }
            Some(ended) = ending.join_next() => {
                if let Err(e) = ended {
                    tracing::error!("a session ended badly: {e}");
                }
            }
        }
    }
    // The UI is gone: end what runs.
    for s in sessions.into_values() {
        s.stop.stop();
    }
    while ending.join_next().await.is_some() {}
}

async fn run_broadcast(
    plan: BroadcastPlan,
    events: SessionEvents,
    commands: mpsc::Receiver<SessionCommand>,
    stop: session::StopSignal,
    hosting: Arc<AsyncMutex<()>>,
) {
    let BroadcastPlan {
        mut settings,
        host,
        preview,
        recorder,
        retry,
    } = plan;
    let mut hosted = None;
    let _host_lock = if let Some((http, stun)) = host {
        let lock = tokio::select! {
            lock = hosting.lock_owned() => lock,
            () = stop.clone().stopped() => {
                events.send(SessionEvent::State(SessionState::Stopped { error: None })).await;
                return;
            }
        };
        match hosting::host_server(http, stun).await {
            Ok((server, info)) => {
                settings.server_url = info.local_url.clone();
                events
                    .send(SessionEvent::Broadcast(BroadcastEvent::Hosting(info)))
                    .await;
                hosted = Some(server);
            }
            Err(e) => {
                let error = format!("cannot host the signal server: {e}");
                tracing::error!("{error}");
                events
                    .send(SessionEvent::State(SessionState::Stopped {
                        error: Some(error),
                    }))
                    .await;
                return;
            }
        }
        Some(lock)
    } else {
        None
    };
    // The log and the bridge live as long as the session, across its attempts.
    let on_message = {
        let events = events.clone();
        Box::new(move |viewer: &str, data: &serde_json::Value| {
            events.offer(SessionEvent::Broadcast(BroadcastEvent::Message {
                viewer: viewer.to_owned(),
                data: data.clone(),
            }));
        })
    };
    // Opening the viewport log is file I/O: off the async threads.
    let data = settings.data.clone();
    let started = tokio::task::spawn_blocking(move || DataRoom::start(&data, on_message))
        .await
        .map_err(|e| format!("the data channels did not start: {e}"))
        .and_then(|started| started.map_err(|e| e.to_string()));
    let room = match started {
        Ok(room) => room,
        Err(error) => {
            tracing::error!("{error}");
            events
                .send(SessionEvent::State(SessionState::Stopped {
                    error: Some(error),
                }))
                .await;
            if let Some(mut server) = hosted {
                server.shutdown().await;
            }
            return;
        }
    };
    let preview = preview.map(PreviewTap::new);
    // Outlasts each attempt, so mute holds across reconnections.
    let audio = Arc::new(AudioFigures::default());
    audio
        .muted
        .store(settings.audio_muted, std::sync::atomic::Ordering::Relaxed);
    let commands = attempt_commands(commands, |c| match c {
        SessionCommand::Broadcast(c) => Ok(c),
        other => Err(other),
    });
    let lasting = broadcaster::Lasting {
        room,
        preview,
        audio,
        recorder,
    };
    supervise("broadcast", &events, stop, retry, |stop| {
        let (settings, lasting, events, commands) = (
            settings.clone(),
            lasting.clone(),
            events.clone(),
            commands.clone(),
        );
        async move {
            let mut commands = commands.lock().await;
            broadcaster::run(
                settings,
                lasting,
                &mut commands,
                &events.reporter(SessionEvent::Broadcast),
                stop,
            )
            .await
        }
    })
    .await;
    if let Some(mut server) = hosted {
        server.shutdown().await;
    }
}

/// A session's commands, handed to each attempt in turn; those sent between attempts wait.
type AttemptCommands<C> = Arc<AsyncMutex<mpsc::Receiver<C>>>;

/// The commands of one kind of session (`pick` gives back those of another kind, which are
/// logged and dropped).
fn attempt_commands<C: Send + 'static>(
    mut commands: mpsc::Receiver<SessionCommand>,
    pick: fn(SessionCommand) -> Result<C, SessionCommand>,
) -> AttemptCommands<C> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        while let Some(command) = commands.recv().await {
            match pick(command) {
                Ok(c) => {
                    if tx.send(c).await.is_err() {
                        return;
                    }
                }
                Err(other) => tracing::debug!("a command for another kind of session: {other:?}"),
            }
        }
    });
    Arc::new(AsyncMutex::new(rx))
}

async fn run_view(
    plan: ViewPlan,
    events: SessionEvents,
    commands: mpsc::Receiver<SessionCommand>,
    stop: session::StopSignal,
) {
    let ViewPlan {
        settings,
        sinks,
        retry,
    } = plan;
    let commands = attempt_commands(commands, |c| match c {
        SessionCommand::View(c) => Ok(c),
        other => Err(other),
    });
    let sinks: Arc<[Arc<dyn ViewSink>]> = sinks.into();
    supervise("viewer", &events, stop, retry, |stop| {
        let (settings, sinks, events, commands) = (
            settings.clone(),
            sinks.clone(),
            events.clone(),
            commands.clone(),
        );
        async move {
            let mut commands = commands.lock().await;
            viewer::run(
                settings,
                sinks,
                &mut commands,
                &events.reporter(SessionEvent::View),
                stop,
            )
            .await
        }
    })
    .await;
}

/// Runs a session's attempts under [`session::supervise`], its states reported as its events.
async fn supervise<F, Fut>(
    what: &str,
    events: &SessionEvents,
    stop: session::StopSignal,
    retry: Retry,
    attempt: F,
) where
    F: FnMut(session::StopSignal) -> Fut,
    Fut: std::future::Future<Output = Result<(), session::SessionError>>,
{
    session::supervise(what, attempt, stop, retry, |s| {
        let events = events.clone();
        async move { events.send(SessionEvent::State(s)).await }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broadcaster::BroadcastStatus;

    fn status(frames_encoded: u64) -> SessionEvent {
        SessionEvent::Broadcast(BroadcastEvent::Status(Box::new(BroadcastStatus {
            frames_encoded,
            ..BroadcastStatus::default()
        })))
    }

    #[tokio::test]
    async fn a_sessions_end_waits_for_room_while_figures_give_way() {
        let (tx, mut rx) = mpsc::channel(2);
        let events = SessionEvents {
            id: SessionId(7),
            outbox: Outbox {
                events: tx,
                wake: Arc::new(|| {}),
            },
        };
        // The UI is not draining: the third figures update is dropped…
        for n in 1..=3 {
            events.offer(status(n));
        }
        // …but the end of the session waits for room.
        let ending = tokio::spawn({
            let events = events.clone();
            async move {
                let stopped = SessionState::Stopped { error: None };
                events.send(SessionEvent::State(stopped)).await;
            }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!ending.is_finished(), "waiting, not dropped");
        let mut got = Vec::new();
        while got.len() < 3 {
            match rx.recv().await {
                Some(Event::Session { id, event }) => got.push((id, event)),
                other => panic!("{other:?}"),
            }
        }
        ending.await.unwrap();
        assert_eq!(
            got,
            [
                (SessionId(7), status(1)),
                (SessionId(7), status(2)),
                (
                    SessionId(7),
                    SessionEvent::State(SessionState::Stopped { error: None })
                ),
            ]
        );
    }
}
