//! Keeping a broadcast or a viewer going: run it until told to stop, and when it fails (the
//! signal server unreachable, say) say why and start it again after a backoff that grows from
//! half a second to 30 s, for ever. The GUI and kiosk mode both run their sessions this way.

use std::fmt::Display;
use std::future::Future;
use std::time::{Duration, Instant};

use tokio::sync::watch;

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

/// What a supervised session is doing.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionState {
    Running,
    /// The last attempt failed with `error`; the next starts after `retry_in`.
    Retrying {
        error: String,
        retry_in: Duration,
    },
    Stopped,
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
/// attempt that ends by itself without being stopped counts as a failure too). Each change of
/// state goes to `on_state`, and failures are logged once each, naming `what`.
pub async fn supervise<F, Fut, E>(
    what: &str,
    mut attempt: F,
    stop: StopSignal,
    mut on_state: impl FnMut(SessionState),
) where
    F: FnMut(StopSignal) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    let mut backoff = Backoff::default();
    while !stop.is_stopped() {
        on_state(SessionState::Running);
        let started = Instant::now();
        let result = attempt(stop.clone()).await;
        if stop.is_stopped() {
            break;
        }
        if started.elapsed() >= HEALTHY_RUN {
            backoff.reset();
        }
        let error = match result {
            Ok(()) => "ended by itself".to_owned(),
            Err(e) => e.to_string(),
        };
        let retry_in = backoff.next_delay();
        tracing::warn!(
            "{what}: {error}; trying again in {:.1} s",
            retry_in.as_secs_f32()
        );
        on_state(SessionState::Retrying {
            error: error.clone(),
            retry_in,
        });
        tokio::select! {
            () = tokio::time::sleep(retry_in) => {}
            () = stop.clone().stopped() => break,
        }
    }
    on_state(SessionState::Stopped);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

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
        let (handle, stop) = stop_signal();
        let attempts = Arc::new(AtomicU32::new(0));
        let states = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let task = {
            let (attempts, states) = (attempts.clone(), states.clone());
            tokio::spawn(async move {
                supervise(
                    "test session",
                    |_stop| {
                        let n = attempts.fetch_add(1, Ordering::Relaxed);
                        async move { Err::<(), _>(format!("failure {n}")) }
                    },
                    stop,
                    move |s| states.lock().push(s),
                )
                .await;
            })
        };
        // Paused time: 0.5 + 1 + 2 + 4 s of backoff pass instantly, in order.
        tokio::time::sleep(Duration::from_millis(7_600)).await;
        assert_eq!(attempts.load(Ordering::Relaxed), 5);
        handle.stop();
        task.await.unwrap();
        let states = states.lock();
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
            SessionState::Retrying { error, .. } if error == "failure 0"
        ));
        assert_eq!(states.last(), Some(&SessionState::Stopped));
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
                            Ok::<(), String>(())
                        }
                    },
                    stop,
                    |_| {},
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
