//! A one-item hand-over between threads that keeps only the newest item: a producer that is
//! faster than its consumer overwrites, it never queues. Used for camera frames on their way to
//! the encoder and for decoded pictures on their way to the screen. Items carry big buffers, so
//! the consumer can hand one back for the producer to fill next instead of allocating.

use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

type Waker = Box<dyn Fn() + Send + Sync>;

pub struct LatestSlot<T> {
    latest: Mutex<Option<T>>,
    fresh: Condvar,
    waker: Mutex<Option<Waker>>,
    /// One item the consumer is done with, for the producer to reuse.
    spare: Mutex<Option<T>>,
}

impl<T> std::fmt::Debug for LatestSlot<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatestSlot")
            .field("full", &self.latest.lock().is_some())
            .finish_non_exhaustive()
    }
}

impl<T> Default for LatestSlot<T> {
    fn default() -> Self {
        Self {
            latest: Mutex::new(None),
            fresh: Condvar::new(),
            waker: Mutex::new(None),
            spare: Mutex::new(None),
        }
    }
}

impl<T> LatestSlot<T> {
    /// Called after each new item (on the producer's thread), e.g. egui's `request_repaint`.
    pub fn set_waker(&self, wake: impl Fn() + Send + Sync + 'static) {
        *self.waker.lock() = Some(Box::new(wake));
    }

    /// Stores `item` and wakes the consumer. Returns the item it replaced (one nobody took),
    /// for the producer to reuse.
    pub fn put(&self, item: T) -> Option<T> {
        let replaced = self.latest.lock().replace(item);
        self.fresh.notify_one();
        if let Some(wake) = &*self.waker.lock() {
            wake();
        }
        replaced
    }

    /// The item to fill next: the one `put` replaced if any, else one handed back.
    pub fn reuse(&self, replaced: Option<T>) -> Option<T> {
        replaced.or_else(|| self.take_spare())
    }

    /// Hands an item the consumer is done with back to the producer (keeps one).
    pub fn recycle(&self, item: T) {
        self.spare.lock().get_or_insert(item);
    }

    /// An item to fill, if the consumer handed one back (before the first `put`).
    pub fn take_spare(&self) -> Option<T> {
        self.spare.lock().take()
    }

    /// The newest item, if one arrived since the last take.
    pub fn take(&self) -> Option<T> {
        self.latest.lock().take()
    }

    /// Like [`take`](Self::take), waiting up to `timeout` for an item.
    pub fn take_within(&self, timeout: Duration) -> Option<T> {
        let deadline = Instant::now() + timeout;
        let mut latest = self.latest.lock();
        while latest.is_none() {
            if self.fresh.wait_until(&mut latest, deadline).timed_out() {
                break;
            }
        }
        latest.take()
    }
}

impl<T: Clone> LatestSlot<T> {
    /// A copy of the newest item without taking it.
    pub fn peek(&self) -> Option<T> {
        self.latest.lock().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn a_fast_producer_overwrites_and_hands_back_what_nobody_took() {
        let slot = LatestSlot::default();
        let wakes = Arc::new(AtomicUsize::new(0));
        let w = wakes.clone();
        slot.set_waker(move || {
            w.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(slot.put(1), None);
        assert_eq!(slot.put(2), Some(1));
        assert_eq!(slot.peek(), Some(2));
        assert_eq!(slot.take(), Some(2));
        assert_eq!(slot.take(), None);
        assert_eq!(wakes.load(Ordering::Relaxed), 2);
        // What the consumer hands back is what the producer fills next.
        slot.recycle(2);
        assert_eq!(slot.put(3), None);
        assert_eq!(slot.reuse(None), Some(2));
        assert_eq!(slot.reuse(slot.put(4)), Some(3));
        assert_eq!(slot.take_spare(), None);
    }

    #[test]
    fn a_waiting_consumer_gets_the_item_or_gives_up_in_time() {
        let slot = Arc::new(LatestSlot::default());
        let started = Instant::now();
        assert_eq!(slot.take_within(Duration::from_millis(30)), None::<u32>);
        assert!(started.elapsed() >= Duration::from_millis(30));
        let producer = {
            let slot = slot.clone();
            std::thread::Builder::new()
                .name("slot-test".into())
                .spawn(move || {
                    std::thread::sleep(Duration::from_millis(20));
                    slot.put(7);
                })
                .unwrap()
        };
        assert_eq!(slot.take_within(Duration::from_secs(10)), Some(7));
        producer.join().unwrap();
    }
}
