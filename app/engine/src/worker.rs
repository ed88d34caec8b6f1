//! A named thread that runs until told to stop: the media, audio and replay threads. Stopping
//! waits for it off the async threads; dropping it without `stop` (a session aborted) only tells
//! it to stop, and it ends on its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub struct Worker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Worker {
    /// Starts `run` on a thread called `name`; `run` returns once the flag it gets is set.
    pub fn spawn(
        name: &str,
        run: impl FnOnce(&AtomicBool) + Send + 'static,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new().name(name.to_owned()).spawn({
            let stop = stop.clone();
            move || run(&stop)
        })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the thread and waits for it (off the async threads).
    pub async fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stop_ends_the_thread_and_waits_for_it() {
        let ended = Arc::new(AtomicBool::new(false));
        let worker = Worker::spawn("omnicast-test", {
            let ended = ended.clone();
            move |stop| {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                ended.store(true, Ordering::Relaxed);
            }
        })
        .unwrap();
        worker.stop().await;
        assert!(ended.load(Ordering::Relaxed));
    }
}
