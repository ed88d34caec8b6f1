//! Keeping a broadcast or a viewer going: run it until told to stop, and when it fails (the
//! signal server unreachable, say) say why and start it again after a backoff that grows from
//! half a second to 30 s. The window, kiosk mode and the command line all run their sessions
//! this way (through [`crate::service::Service`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::signal::SignalError;

/// An event on its way, for [`Reporter::new`]'s `send`.
pub type Delivery = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Where a running broadcast or viewer reports its events (`E`: what it reports). The service
/// makes one per session; a change of state waits for room and is never dropped, figures that
/// the next report supersedes may be. Events arrive in the order they were reported.
pub struct Reporter<E> {
    send: Arc<dyn Fn(E) -> Delivery + Send + Sync>,
    offer: Arc<dyn Fn(E) + Send + Sync>,
}

impl<E> Clone for Reporter<E> {
    fn clone(&self) -> Self {
        Self {
            send: self.send.clone(),
            offer: self.offer.clone(),
        }
    }
}

impl<E> Reporter<E> {
    /// `send` delivers an event that must arrive (waiting for room), `offer` one that may be
    /// dropped when the receiver is behind.
    pub fn new(
        send: impl Fn(E) -> Delivery + Send + Sync + 'static,
        offer: impl Fn(E) + Send + Sync + 'static,
    ) -> Self {
        Self {
            send: Arc::new(send),
            offer: Arc::new(offer),
        }
    }

    /// A change of state: never dropped (waits for room).
    pub async fn send(&self, event: E) {
        (self.send)(event).await;
    }

    /// Figures the next report supersedes: dropped when the receiver is behind.
    pub fn offer(&self, event: E) {
        (self.offer)(event);
    }
}

/// Delays between attempts: doubling from `min` up to `max`; back to `min` after a run that
/// lasted [`HEALTHY_RUN`].
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

/// A run this long counts as having worked: the next failure starts the backoff afresh.
pub const HEALTHY_RUN: Duration = Duration::from_secs(30);

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            next: min,
        }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(Duration::from_millis(500), Duration::from_secs(30))
    }
}

/// Which session an event or a command is about. Every start makes a new one, so the events of
/// a session that is still ending are never taken for those of the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "session {}", self.0)
    }
}

/// What a supervised session is doing.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionState {
    Running,
    /// The last attempt failed with `error`; the next starts after `retry_in`.
    Retrying {
        error: String,
        retry_in: Duration,
    },
    /// The session is over: stopped when asked (`error` none), or given up on with `error`.
    /// Always a session's last event.
    Stopped {
        error: Option<String>,
    },
}

/// When a failed attempt is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Retry {
    /// Always (the window, kiosk mode): the server may come back at any time.
    #[default]
    Forever,
    /// Always, except when the very first attempt cannot reach the signal server: someone who
    /// typed a wrong address wants to hear so, not wait (the command line).
    UnlessFirstUnreachable,
}

/// Why an attempt ended.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The signal server could not be reached, or did not accept us, at the start.
    #[error(transparent)]
    Unreachable(SignalError),
    /// The signal server was lost later (rust_socketio gave up reconnecting).
    #[error(transparent)]
    Signal(SignalError),
    #[error("cannot start the {what} thread: {source}")]
    Thread {
        what: &'static str,
        source: std::io::Error,
    },
}

/// A stop signal for sessions: cloned into every attempt.
#[derive(Debug, Clone)]
pub struct StopSignal(watch::Receiver<bool>);

/// The other end: stops every attempt and the supervisor.
#[derive(Debug)]
pub struct StopHandle(watch::Sender<bool>);

pub fn stop_signal() -> (StopHandle, StopSignal) {
    let (tx, rx) = watch::channel(false);
    (StopHandle(tx), StopSignal(rx))
}

impl StopHandle {
    pub fn stop(&self) {
        let _ = self.0.send(true);
    }
}

impl StopSignal {
    pub fn is_stopped(&self) -> bool {
        *self.0.borrow()
    }

    /// Completes when stopped (or when the handle is gone).
    pub async fn stopped(mut self) {
        let _ = self.0.wait_for(|s| *s).await;
    }
}

/// Runs `attempt` until `stop`, starting it again with [`Backoff`] whenever it returns (an
/// attempt that ends by itself without being stopped counts as a failure too), as `retry`
/// allows. Each change of state goes to `on_state`, ending with [`SessionState::Stopped`];
/// failures are logged once each, naming `what`.
pub async fn supervise<F, Fut, S, SFut>(
    what: &str,
    mut attempt: F,
    stop: StopSignal,
    retry: Retry,
    mut on_state: S,
) where
    F: FnMut(StopSignal) -> Fut,
    Fut: Future<Output = Result<(), SessionError>>,
    S: FnMut(SessionState) -> SFut,
    SFut: Future<Output = ()>,
{
    let mut backoff = Backoff::default();
    let mut first = true;
    let mut gave_up = None;
    while !stop.is_stopped() {
        on_state(SessionState::Running).await;
        let started = Instant::now();
        let result = attempt(stop.clone()).await;
        if stop.is_stopped() {
            break;
        }
        if started.elapsed() >= HEALTHY_RUN {
            backoff.reset();
        }
        let unreachable_at_first = first && matches!(result, Err(SessionError::Unreachable(_)));
        first = false;
        let error = match result {
            Ok(()) => "ended by itself".to_owned(),
            Err(e) => e.to_string(),
        };
        if unreachable_at_first && retry == Retry::UnlessFirstUnreachable {
            gave_up = Some(error);
            break;
        }
        let retry_in = backoff.next_delay();
        tracing::warn!(
            "{what}: {error}; trying again in {:.1} s",
            retry_in.as_secs_f32()
        );
        on_state(SessionState::Retrying {
            error: error.clone(),
            retry_in,
        })
        .await;
        tokio::select! {
            () = tokio::time::sleep(retry_in) => {}
            () = stop.clone().stopped() => break,
        }
    }
    on_state(SessionState::Stopped { error: gave_up }).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn lost(n: u32) -> SessionError {
        SessionError::Signal(SignalError::Lost {
            url: format!("http://server-{n}"),
            secs: 60,
        })
    }

    fn unreachable() -> SessionError {
        SessionError::Unreachable(SignalError::Timeout {
            url: "http://nowhere".into(),
            secs: 10,
        })
    }

    /// Supervises attempts that fail with `errors(n)` for attempt `n` (from 0), collecting
    /// the states, until `until` of paused time has passed; then stops it.
    async fn run(
        retry: Retry,
        until: Duration,
        errors: impl Fn(u32) -> SessionError + Send + Sync + 'static,
    ) -> (u32, Vec<SessionState>) {
        let (handle, stop) = stop_signal();
        let attempts = Arc::new(AtomicU32::new(0));
        let states = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let errors = Arc::new(errors);
        let task = {
            let (attempts, states) = (attempts.clone(), states.clone());
            tokio::spawn(async move {
                supervise(
                    "test session",
                    |_stop| {
                        let n = attempts.fetch_add(1, Ordering::Relaxed);
                        let e = errors(n);
                        async move { Err(e) }
                    },
                    stop,
                    retry,
                    move |s| {
                        states.lock().push(s);
                        std::future::ready(())
                    },
                )
                .await;
            })
        };
        tokio::time::sleep(until).await;
        handle.stop();
        task.await.unwrap();
        let states = states.lock().clone();
        (attempts.load(Ordering::Relaxed), states)
    }

    #[test]
    fn backoff_doubles_to_its_ceiling_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(4));
        let delays: Vec<_> = (0..6).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(delays, [500, 1000, 2000, 4000, 4000, 4000]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(500));
    }

    #[tokio::test(start_paused = true)]
    async fn failures_are_retried_with_growing_delays_until_stopped() {
        // Paused time: 0.5 + 1 + 2 + 4 s of backoff pass instantly, in order.
        let (attempts, states) = run(Retry::Forever, Duration::from_millis(7_600), lost).await;
        assert_eq!(attempts, 5);
        let delays: Vec<_> = states
            .iter()
            .filter_map(|s| match s {
                SessionState::Retrying { retry_in, .. } => Some(retry_in.as_millis()),
                _ => None,
            })
            .collect();
        assert_eq!(delays, [500, 1000, 2000, 4000, 8000]);
        assert!(matches!(
            &states[1],
            SessionState::Retrying { error, .. } if error.contains("server-0")
        ));
        assert_eq!(
            states.last(),
            Some(&SessionState::Stopped { error: None }),
            "stopped when asked"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_command_line_gives_up_only_on_a_server_it_never_reached() {
        // Unreachable at the very first attempt: given up at once, saying why.
        let (attempts, states) = run(
            Retry::UnlessFirstUnreachable,
            Duration::from_secs(5),
            |_| unreachable(),
        )
        .await;
        assert_eq!(attempts, 1);
        assert_eq!(states.len(), 2, "{states:?}");
        assert!(matches!(
            &states[1],
            SessionState::Stopped { error: Some(e) } if e.contains("http://nowhere")
        ));
        // Reached once, then lost and unreachable for a while: retried like the window does.
        let (attempts, states) = run(Retry::UnlessFirstUnreachable, Duration::from_secs(5), |n| {
            if n == 0 { lost(0) } else { unreachable() }
        })
        .await;
        assert!(attempts >= 3, "{attempts}");
        assert_eq!(states.last(), Some(&SessionState::Stopped { error: None }));
        // The window retries even a server it never reached.
        let (attempts, _) = run(Retry::Forever, Duration::from_secs(5), |_| unreachable()).await;
        assert!(attempts >= 3, "{attempts}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_stopped_session_ends_its_attempt_and_is_not_retried() {
        let (handle, stop) = stop_signal();
        let attempts = Arc::new(AtomicU32::new(0));
        let task = {
            let attempts = attempts.clone();
            tokio::spawn(async move {
                supervise(
                    "test session",
                    |stop: StopSignal| {
                        attempts.fetch_add(1, Ordering::Relaxed);
                        async move {
                            stop.stopped().await;
                            Ok(())
                        }
                    },
                    stop,
                    Retry::Forever,
                    |_| std::future::ready(()),
                )
                .await;
            })
        };
        tokio::time::sleep(Duration::from_secs(60)).await;
        handle.stop();
        task.await.unwrap();
        assert_eq!(attempts.load(Ordering::Relaxed), 1);
    }
}
