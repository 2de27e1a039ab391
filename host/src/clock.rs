//! The host's only source of wall-clock time. Engine and runtime code never read the
//! system clock directly: they take a [`Clock`], so tests can run a three-day timer in
//! milliseconds with a [`ManualClock`].

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

pub use spool_formats::EpochMs;

pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> EpochMs;
    /// Completes once `now_ms() >= deadline_ms`.
    fn sleep_until(
        &self,
        deadline_ms: EpochMs,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>>;
}

pub type SharedClock = Arc<dyn Clock>;

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> EpochMs {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }

    fn sleep_until(
        &self,
        deadline_ms: EpochMs,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            // Sleep in bounded steps so a wall-clock jump is noticed within a minute.
            loop {
                let now = self.now_ms();
                if now >= deadline_ms {
                    return;
                }
                let wait = (deadline_ms - now).min(60_000);
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
        })
    }
}

/// A clock that moves only when told to. Sleepers wake when `advance` passes their
/// deadline.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<watch::Sender<EpochMs>>,
    /// The deadlines of the `sleep_until` futures waiting right now.
    sleeping: Arc<std::sync::Mutex<Vec<EpochMs>>>,
}

impl ManualClock {
    pub fn new(start_ms: EpochMs) -> Self {
        Self {
            now: Arc::new(watch::channel(start_ms).0),
            sleeping: Arc::default(),
        }
    }

    pub fn advance(&self, by: Duration) {
        self.now.send_modify(|now| *now += by.as_millis() as u64);
    }

    /// The deadlines that sleepers wait for right now, earliest first: lets a test move
    /// time exactly to the moment the code under test waits for.
    pub fn sleeping(&self) -> Vec<EpochMs> {
        let mut deadlines = self.sleeping.lock().map(|d| d.clone()).unwrap_or_default();
        deadlines.sort_unstable();
        deadlines
    }

    /// Sets the time to `to_ms` (never backwards).
    pub fn advance_to(&self, to_ms: EpochMs) {
        self.now.send_modify(|now| *now = (*now).max(to_ms));
    }
}

/// One sleeper's entry in [`ManualClock::sleeping`], removed when the sleep ends or is
/// dropped.
struct Sleeping {
    deadlines: Arc<std::sync::Mutex<Vec<EpochMs>>>,
    deadline: EpochMs,
}

impl Drop for Sleeping {
    fn drop(&mut self) {
        if let Ok(mut deadlines) = self.deadlines.lock() {
            if let Some(at) = deadlines.iter().position(|d| *d == self.deadline) {
                deadlines.swap_remove(at);
            }
        }
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> EpochMs {
        *self.now.borrow()
    }

    fn sleep_until(
        &self,
        deadline_ms: EpochMs,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        let mut rx = self.now.subscribe();
        if let Ok(mut deadlines) = self.sleeping.lock() {
            deadlines.push(deadline_ms);
        }
        let sleeping = Sleeping {
            deadlines: self.sleeping.clone(),
            deadline: deadline_ms,
        };
        Box::pin(async move {
            let _sleeping = sleeping;
            // The sender lives as long as `self`, so `wait_for` ends only by the predicate.
            let _ = rx.wait_for(|now| *now >= deadline_ms).await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn manual_clock_wakes_sleepers_when_advanced_past_deadline() {
        let clock = ManualClock::new(1_000);
        let sleeper = {
            let clock = clock.clone();
            tokio::spawn(async move { clock.sleep_until(5_000).await })
        };
        clock.advance(Duration::from_millis(3_000));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        clock.advance(Duration::from_millis(1_000));
        sleeper.await.unwrap();
        assert_eq!(clock.now_ms(), 5_000);
    }
}
