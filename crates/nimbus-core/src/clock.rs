//! Time, as the platform sees it: a [`Clock`] gives the monotonic instant that budgets, buckets
//! and caches measure by, and the wall-clock milliseconds that records carry. Services hold an
//! `Arc<dyn Clock>`; the server runs on [`SystemClock`], unit tests on [`ManualClock`], which
//! moves only when told. (Sleeping stays with tokio's timer, which tests pause and advance.)

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A source of time.
pub trait Clock: Send + Sync + 'static {
    /// The monotonic now.
    fn now(&self) -> Instant;
    /// Milliseconds since the Unix epoch.
    fn epoch_millis(&self) -> i64;
}

/// The machine's clocks.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn epoch_millis(&self) -> i64 {
        chrono::Utc::now().timestamp_millis()
    }
}

/// A clock for tests: starts at a fixed instant and epoch time and moves only by
/// [`ManualClock::advance`].
#[derive(Debug)]
pub struct ManualClock {
    start: Instant,
    start_millis: i64,
    elapsed: Mutex<Duration>,
}

impl ManualClock {
    /// A clock that reads `epoch_millis` now.
    pub fn new(epoch_millis: i64) -> ManualClock {
        ManualClock {
            start: Instant::now(),
            start_millis: epoch_millis,
            elapsed: Mutex::new(Duration::ZERO),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut e = self.elapsed.lock().unwrap_or_else(|p| p.into_inner());
        *e = e.saturating_add(by);
    }

    fn elapsed(&self) -> Duration {
        *self.elapsed.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.start + self.elapsed()
    }

    fn epoch_millis(&self) -> i64 {
        let ms = i64::try_from(self.elapsed().as_millis()).unwrap_or(i64::MAX);
        self.start_millis.saturating_add(ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let c = ManualClock::new(1_700_000_000_000);
        let t0 = c.now();
        assert_eq!(c.now(), t0);
        assert_eq!(c.epoch_millis(), 1_700_000_000_000);
        c.advance(Duration::from_millis(1500));
        assert_eq!(c.now() - t0, Duration::from_millis(1500));
        assert_eq!(c.epoch_millis(), 1_700_000_001_500);
    }
}
